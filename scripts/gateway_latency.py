#!/usr/bin/env python3
"""Latency of one request through the local gateway: N sequential requests on one keep-alive
connection (and, with --new-connections, one connection each), printed as p50/p90/p99 in ms.

The default request is one every function refuses before any DynamoDB call (a malformed site id:
`GET /v1/sites/no!such/shoppers/x/recommendations` -> 404 unknown_site), so what is measured is the
HTTP path: client -> gateway.py -> cargo lambda's runtime API -> the function, and back.

Usage: gateway_latency.py URL [--path P] [-n 300] [--new-connections]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import time
from urllib.parse import urlsplit


def measure(base: str, path: str, n: int, new_connections: bool) -> list[float]:
    u = urlsplit(base)
    conn = None
    out = []
    for _ in range(n):
        if conn is None or new_connections:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        t = time.perf_counter()
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        out.append((time.perf_counter() - t) * 1000)
        if resp.getheader("connection", "").lower() == "close":
            conn.close()
            conn = None
    if conn is not None:
        conn.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ap.add_argument("--path", default="/v1/sites/no!such/shoppers/x/recommendations")
    ap.add_argument("-n", type=int, default=300)
    ap.add_argument("--new-connections", action="store_true")
    args = ap.parse_args()
    ms = measure(args.url, args.path, args.n, args.new_connections)
    q = statistics.quantiles(ms, n=100)
    print(f"gateway_latency: {args.n} x GET {args.path} ({'new connection each' if args.new_connections else 'keep-alive'}): "
          f"p50 {statistics.median(ms):.1f} ms, p90 {q[89]:.1f} ms, p99 {q[98]:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
