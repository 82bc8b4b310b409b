#!/usr/bin/env python3
"""A store's deletion on the running local stack, as an operator sees it: through the HTTP route, finished
by the every-minute schedule (scripts/scheduler.py), never by calling the job directly.

  1. creates a throw-away store (`affinity-admin create-demo-tenant`, --admin names the binary);
  2. sends it a few events through POST /v1/sites/{site_id}/events (two shoppers: views, a cart, a
     purchase) and waits until the stream pump has aggregated its popularity;
  3. counts its items in every table (DynamoDB Local, as the deletion test of tests/tests/deletion.rs
     recognises them: `site_id`, or a key of the site or the tenant);
  4. DELETE /v1/tenants/{tenant_id}: 202 `running` (the request works for 3 s; the grace period is 15 s,
     so only the schedule can finish it);
  5. polls GET /v1/tenants/{tenant_id}/deletion until `completed` (at most --timeout-s): the tombstone
     counts exactly what step 3 found, the schedule's log (--scheduler-log) names the tenant among the
     deletions a scheduled run completed, the site answers 410 `site_deleted`, and the tables hold
     nothing of the store but its site tombstone.

Prints one line per check and "local_deletion: N passed, M failed"; exits 1 if any failed. Needs the
stack's environment (source .stack/env) and a stack started by scripts/run_local.sh.

Usage: local_deletion.py --admin PATH [--scheduler-log FILE] [--timeout-s 150] [--quiet]
"""

from __future__ import annotations

import os
import sys

_VENV = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, ".tools", "venv")
if os.path.exists(os.path.join(_VENV, "bin", "python")) and os.path.realpath(sys.prefix) != os.path.realpath(_VENV):
    os.execv(os.path.join(_VENV, "bin", "python"), [os.path.join(_VENV, "bin", "python"), *sys.argv])

import argparse
import json
import secrets
import subprocess
import time

import boto3

from local_api import Checks, call

TABLES = {"tenants": "TENANTS_TABLE", "events": "EVENTS_TABLE", "profiles": "PROFILES_TABLE",
          "popularity": "POPULARITY_TABLE"}


def belongs(item: dict, site: str, tenant_id: str) -> bool:
    pk = (item.get("pk") or {}).get("S", "")
    return ((item.get("site_id") or {}).get("S") == site or pk.startswith(site + "#") or pk == site
            or pk == "site#" + site or pk == "tenant#" + tenant_id)


def snapshot(site: str, tenant_id: str) -> dict[str, list[dict]]:
    """Every item of the store, per table (a full scan: the local tables are small)."""
    ddb = boto3.client("dynamodb")
    out = {}
    for name, var in TABLES.items():
        items = []
        for page in ddb.get_paginator("scan").paginate(TableName=os.environ[var], ConsistentRead=True):
            items += [i for i in page["Items"] if belongs(i, site, tenant_id)]
        out[name] = items
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--admin", required=True, help="the affinity-admin binary")
    ap.add_argument("--scheduler-log", help="scripts/scheduler.py's log ($STACK_DIR/logs/scheduler.log)")
    ap.add_argument("--timeout-s", type=float, default=150.0)
    args = ap.parse_args()
    c = Checks("local_deletion")

    site = "delete-me-" + secrets.token_hex(4)
    made = subprocess.run([args.admin, "create-demo-tenant", site], capture_output=True, text=True)
    if not c.check("a throw-away store", made.returncode == 0, made.stderr.strip()):
        return c.finish()
    store = json.loads(made.stdout)
    tenant_id, key = store["tenant_id"], store["api_key"]
    print(f"local_deletion: store {site}, tenant {tenant_id}", file=sys.stderr)

    now = int(time.time() * 1000)
    phone = {"id": "p-phone", "category": "electronics.smartphone", "brand": "acme", "price": 199.5}
    case = {"id": "p-case", "category": "electronics.accessories", "brand": "acme", "price": 9.99}
    events = [
        {"type": "view", "shopper_id": "guest-a-0000000000", "timestamp": now - 3000, "product": phone},
        {"type": "view", "shopper_id": "guest-a-0000000000", "timestamp": now - 2000, "product": case},
        {"type": "cart_add", "shopper_id": "guest-a-0000000000", "timestamp": now - 1000, "product": phone},
        {"type": "purchase", "shopper_id": "guest-a-0000000000", "timestamp": now, "order_id": "o-1", "currency": "USD",
         "items": [{"id": "p-phone", "category": "electronics.smartphone", "brand": "acme", "price": 199.5}]},
        {"type": "search", "shopper_id": "guest-b-0000000000", "timestamp": now, "query": "phone case"},
        {"type": "view", "shopper_id": "guest-b-0000000000", "timestamp": now, "product": case},
    ]
    status, answer = call("POST", f"/v1/sites/{site}/events", {"events": events})
    c.check("6 events accepted", status == 200 and isinstance(answer, dict) and answer.get("accepted") == 6,
            (status, answer))

    # The popularity aggregate arrives through the stream pump: wait for it, so the counts are final.
    deadline = time.monotonic() + 60
    while True:
        before = snapshot(site, tenant_id)
        if before["popularity"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    counts = {name: len(items) for name, items in before.items()}
    c.check("the store's items are stored (events, profiles, popularity, tenant records)",
            counts["events"] == 6 and counts["profiles"] >= 2 and counts["popularity"] >= 1
            and counts["tenants"] >= 2, counts)
    print(f"local_deletion: before: {json.dumps(counts)}", file=sys.stderr)

    started = time.monotonic()
    status, answer = call("DELETE", f"/v1/tenants/{tenant_id}")
    c.check("DELETE /v1/tenants/{id}: 202 running (the schedule continues)",
            status == 202 and isinstance(answer, dict) and answer.get("state") == "running", (status, answer))

    progress, seen = None, set()
    while time.monotonic() - started < args.timeout_s:
        status, progress = call("GET", f"/v1/tenants/{tenant_id}/deletion")
        if status == 200 and isinstance(progress, dict):
            phase = progress.get("phase")
            if phase not in seen:
                seen.add(phase)
                print(f"local_deletion: {time.monotonic() - started:5.1f} s  {progress.get('state')}: {phase}, "
                      f"deleted {json.dumps(progress.get('deleted'))}", file=sys.stderr, flush=True)
            if progress.get("state") == "completed":
                break
        time.sleep(1)
    took = time.monotonic() - started
    done = isinstance(progress, dict) and progress.get("state") == "completed"
    if not c.check(f"GET /v1/tenants/{{id}}/deletion: completed (in {took:.0f} s)", done, progress):
        return c.finish()
    c.check("the tombstone counts exactly what was stored",
            progress["deleted"] == {"events": counts["events"], "profiles": counts["profiles"],
                                    "popularity": counts["popularity"], "tenants": counts["tenants"]},
            {"tombstone": progress["deleted"], "stored": counts})
    c.check("the tombstone: operator trigger, completed_at, secrets destroyed, two clean passes",
            progress.get("trigger") == "operator" and bool(progress.get("completed_at"))
            and bool(progress.get("secrets_destroyed_at")) and progress.get("clean_passes", 0) >= 2, progress)
    if args.scheduler_log:
        # The scheduler logs a run when it returns, which can be a while after the tombstone was
        # written (the same run may go on with another store's deletion): wait for its line.
        def finished_by_schedule():
            with open(args.scheduler_log, encoding="utf-8", errors="replace") as f:
                return any(tenant_id in line and '"completed"' in line
                           and line.split('"completed"', 1)[1].split("]", 1)[0].find(tenant_id) >= 0
                           for line in f)
        log_deadline = time.monotonic() + 120
        while not finished_by_schedule() and time.monotonic() < log_deadline:
            time.sleep(1)
        c.check("a scheduled run (scripts/scheduler.py) completed it", finished_by_schedule(), args.scheduler_log)
    status, answer = call("POST", f"/v1/sites/{site}/events", {"events": events[:1]})
    code = answer.get("error", {}).get("code") if isinstance(answer, dict) else None
    c.check("the site answers 410 site_deleted", status == 410 and code == "site_deleted", (status, answer))
    left = snapshot(site, tenant_id)
    stubs = left["tenants"]
    c.check("nothing of the store is left but its site tombstone",
            not left["events"] and not left["profiles"] and not left["popularity"] and len(stubs) == 1
            and stubs[0]["pk"]["S"] == "site#" + site and stubs[0].get("status", {}).get("S") == "deleted",
            {k: len(v) for k, v in left.items()})
    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
