#!/usr/bin/env python3
"""Serves the demo storefront (storefront/demo) on 127.0.0.1, on its own port: another origin than the
API's, so the browser applies CORS to every tracker and widget request, as on a merchant's domain.

Builds the pages first (storefront/demo/build.py: static files, the built kit from storefront/dist,
catalog.json from the REES46 sample) into --out, and answers /config.js with the site id and API URL:
`window.AFFINITY_DEMO = {"site": ..., "endpoint": ...}` (the options the pages pass to the tracker's
init). Logs one line per request (method, path, status), never query strings.

Usage: serve_storefront.py --site SITE_ID --api URL [--port PORT] [--out DIR]
Prints `storefront: http://127.0.0.1:PORT/` once it listens. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent


class Handler(SimpleHTTPRequestHandler):
    config_js: bytes = b""

    def do_GET(self):  # noqa: N802 (http.server's naming)
        if urlsplit(self.path).path == "/config.js":
            self.send_response(200)
            self.send_header("content-type", "text/javascript")
            self.send_header("cache-control", "no-store")
            self.send_header("content-length", str(len(self.config_js)))
            self.end_headers()
            self.wfile.write(self.config_js)
            return
        super().do_GET()

    def end_headers(self):
        # Pages change between builds; nothing should be cached across test runs.
        if urlsplit(self.path).path != "/config.js":
            self.send_header("cache-control", "no-cache")
        super().end_headers()

    def log_message(self, fmt, *args):
        sys.stderr.write("storefront: %s\n" % (fmt % args))

    def log_request(self, code="-", size="-"):
        self.log_message("%s %s -> %s", self.command, urlsplit(self.path).path, code)


def main() -> None:
    ap = argparse.ArgumentParser(description="Serve the demo storefront")
    ap.add_argument("--site", required=True, help="the tenant's site id")
    ap.add_argument("--api", required=True, help="the API base URL, e.g. http://127.0.0.1:8080")
    ap.add_argument("--port", type=int, default=0, help="0: a free port")
    ap.add_argument("--out", type=Path, help="where to build the pages (default: a temporary directory)")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="affinity-storefront-"))
    subprocess.run([sys.executable, str(ROOT / "storefront" / "demo" / "build.py"), "--out", str(out)], check=True)
    Handler.config_js = ("window.AFFINITY_DEMO = %s;\n" % json.dumps(
        {"site": args.site, "endpoint": args.api.rstrip("/")})).encode()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), partial(Handler, directory=str(out)))
    print(f"storefront: http://127.0.0.1:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
