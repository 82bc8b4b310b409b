#!/usr/bin/env python3
"""Local stand-in for EventBridge Scheduler: fires the template's `Schedule` events on the functions
running under `cargo lambda watch`, as AWS would.

Reads every AWS::Serverless::Function's `Events` of `Type: Schedule` from template.yaml (today one:
TenantDeleteFunction's `Sweep`, `rate(1 minute)`: it continues unfinished store deletions) and, every
period, POSTs a "Scheduled Event" (the shape of events/tenant-delete-schedule.json: version, a fresh id,
detail-type, source aws.events, account, the time of the tick in ISO 8601 UTC, region, the rule's ARN in
resources, empty detail) to
http://127.0.0.1:WATCHPORT/2015-03-31/functions/<binary>/invocations, as scripts/gateway.py does for
HTTP routes.

Like EventBridge, a tick does not wait for the previous invocation (each runs in its own thread; the
function itself tells a busy deletion apart); one line per finished invocation is logged (the
function's answer, or its error).

The period is the template's rate unless --period-s (or AFFINITY_SCHEDULE_PERIOD_S) says otherwise:
tests use a few seconds. Only `rate(N minute|minutes|hour|hours|day|days)` is read; a cron() schedule is
refused at start (none exists in the template).

Binds nothing. Dependencies: the standard library and PyYAML (through cfn_template).

Usage: scheduler.py --watch-port WATCHPORT [--period-s SECONDS] [--template FILE] [--once]
"""

from __future__ import annotations

import os
import sys

# Run under the repo's venv (.tools/venv: PyYAML) even when started as ./scripts/x.py.
_VENV = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, ".tools", "venv")
if os.path.exists(os.path.join(_VENV, "bin", "python")) and os.path.realpath(sys.prefix) != os.path.realpath(_VENV):
    os.execv(os.path.join(_VENV, "bin", "python"), [os.path.join(_VENV, "bin", "python"), *sys.argv])

import argparse
import http.client
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import cfn_template

# The account and region of the local stand-ins (the sample events use the same).
ACCOUNT = "123456789012"
UNITS_S = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass(frozen=True)
class Schedule:
    function: str  # logical id
    binary: str
    name: str  # the event's name in the template (the rule)
    period_s: float  # from the rate() expression


def parse_rate(expr: str) -> float:
    """Seconds between ticks of an EventBridge `rate(value unit)` expression."""
    m = re.fullmatch(r"\s*rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)\s*", expr or "")
    if not m:
        raise ValueError(f"only rate(N minute|hour|day) schedules are read, not {expr!r}")
    value, unit = int(m.group(1)), m.group(2).rstrip("s")
    if value < 1 or (value == 1) != (m.group(2) == unit):
        # EventBridge: "rate(1 minute)", "rate(5 minutes)"; the singular only for 1.
        raise ValueError(f"{expr!r}: EventBridge wants the singular unit for 1 and the plural otherwise")
    return float(value * UNITS_S[unit])


def schedules(template: dict) -> list[Schedule]:
    """Every Schedule event of the template's functions, in template order."""
    out = []
    for lid, props, binary in cfn_template._functions(template):
        for name, event in (props.get("Events") or {}).items():
            if event.get("Type") != "Schedule":
                continue
            p = event.get("Properties", {}) or {}
            if p.get("Enabled") is False or str(p.get("State", "ENABLED")).upper() == "DISABLED":
                continue
            out.append(Schedule(lid, binary, name, parse_rate(p.get("Schedule", ""))))
    return out


def scheduled_event(s: Schedule, at: datetime, region: str) -> dict:
    """The event EventBridge sends for one tick of `s` at `at` (UTC, whole seconds)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{ACCOUNT}:rule/affinity-{s.function}{s.name}-local"],
        "detail": {},
    }


def invoke(watch_port: int, binary: str, event: dict, timeout: float) -> tuple[int, str, bytes]:
    """(status, function error or "", body) of one synchronous invocation under cargo lambda watch."""
    conn = http.client.HTTPConnection("127.0.0.1", watch_port, timeout=timeout)
    try:
        conn.request("POST", f"/2015-03-31/functions/{binary}/invocations", body=json.dumps(event).encode(),
                     headers={"content-type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.getheader("x-amz-function-error") or "", resp.read()
    finally:
        conn.close()


def fire(watch_port: int, s: Schedule, region: str, timeout: float) -> None:
    event = scheduled_event(s, datetime.now(timezone.utc), region)
    started = time.monotonic()
    try:
        status, error, body = invoke(watch_port, s.binary, event, timeout)
    except OSError as e:
        print(f"scheduler: {s.function}.{s.name} -> {s.binary}: not reached ({e})", file=sys.stderr, flush=True)
        return
    took = (time.monotonic() - started) * 1000
    verdict = "failed" if status >= 300 or error else "ok"
    text = body.decode("utf-8", "replace").strip()[:400]
    print(f"scheduler: {s.function}.{s.name} -> {s.binary}: {verdict} ({status}{' ' + error if error else ''}) "
          f"in {took:.0f} ms: {text}", file=sys.stderr, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--watch-port", type=int, required=True)
    env_period = os.environ.get("AFFINITY_SCHEDULE_PERIOD_S") or None
    ap.add_argument("--period-s", type=float, default=float(env_period) if env_period else None,
                    help="seconds between ticks (default: the template's rate; env AFFINITY_SCHEDULE_PERIOD_S)")
    ap.add_argument("--template", default=str(cfn_template.DEFAULT_TEMPLATE))
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for one invocation")
    ap.add_argument("--once", action="store_true", help="fire every schedule once, wait for it, and exit")
    args = ap.parse_args()
    if args.period_s is not None and args.period_s <= 0:
        ap.error("--period-s must be positive")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"

    found = schedules(cfn_template.load(args.template))
    if not found:
        print("scheduler: the template has no Schedule event; nothing to fire", file=sys.stderr, flush=True)
        return 0
    if args.once:
        for s in found:
            fire(args.watch_port, s, region, args.timeout)
        return 0
    for s in found:
        period = args.period_s or s.period_s
        print(f"scheduler: {s.function}.{s.name} -> {s.binary} every {period:g} s "
              f"(template: every {s.period_s:g} s)", file=sys.stderr, flush=True)

    # The first tick one period after start, as a new rule's would be; then on a fixed grid (no drift).
    start = time.monotonic()
    next_at = {s: start + (args.period_s or s.period_s) for s in found}
    try:
        while True:
            s = min(next_at, key=next_at.get)
            delay = next_at[s] - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            threading.Thread(target=fire, args=(args.watch_port, s, region, args.timeout), daemon=True).start()
            next_at[s] += args.period_s or s.period_s
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
