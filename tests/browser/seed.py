#!/usr/bin/env python3
"""Gives the browser suite's tenant a store's worth of history: the first ROWS rows of the REES46 sample
(data/, see data/PROVENANCE.md) through the live ingest route, shifted so the last one is a minute ago,
each dataset user as a guest id of at least 16 characters (`rees46-<user_id>`); then drains the events
stream into the popularity aggregate (scripts/stream_pump.py --drain), so recommendations have
products to rank.

Usage: seed.py API_URL SITE_ID [ROWS]   (environment: the stack's, for the stream pump)
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KINDS = {"view": "view", "cart": "cart_add", "purchase": "purchase"}


def main() -> None:
    api, site = sys.argv[1].rstrip("/"), sys.argv[2]
    rows_wanted = int(sys.argv[3]) if len(sys.argv) > 3 else 5000
    rows = []
    with (ROOT / "data" / "rees46-2019-oct-sample.csv").open(newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if i >= rows_wanted:
                break
            if row.get("event_type") in KINDS and (row.get("product_id") or "").isdigit():
                rows.append((i, row))
    def ms(row):
        return int(datetime.strptime(row["event_time"], "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=timezone.utc)
                   .timestamp() * 1000)
    shift = int(datetime.now(timezone.utc).timestamp() * 1000) - 60_000 - max(ms(r) for _, r in rows)
    events = []
    for i, row in rows:
        product = {"id": row["product_id"]}
        if row["category_code"]:
            product["category"] = row["category_code"]
        if row["brand"]:
            product["brand"] = row["brand"]
        if row["price"]:
            product["price"] = float(row["price"])
        e = {"type": KINDS[row["event_type"]], "shopper_id": f"rees46-{row['user_id']}", "event_id": f"seed-{i}",
             "session_id": row["user_session"], "timestamp": ms(row) + shift}
        if e["type"] == "purchase":
            e["items"] = [dict(product, quantity=1)]
            e["order_id"] = f"seed-order-{i}"
        else:
            e["product"] = product
        events.append(e)
    accepted = 0
    for start in range(0, len(events), 500):
        body = json.dumps({"events": events[start:start + 500]}).encode()
        req = urllib.request.Request(f"{api}/v1/sites/{site}/events", data=body, method="POST",
                                     headers={"content-type": "text/plain"})
        with urllib.request.urlopen(req, timeout=60) as r:
            answer = json.load(r)
        if answer.get("rejected"):
            raise SystemExit(f"seed: rejected {answer['rejected'][:3]}")
        accepted += answer["accepted"] + answer["duplicates"]
    subprocess.run([sys.executable, str(ROOT / "scripts" / "stream_pump.py"), "--drain"], check=True,
                   stdout=subprocess.DEVNULL)
    print(f"seed: {accepted} events of {len(events)} stored, stream drained", file=sys.stderr)


if __name__ == "__main__":
    main()
