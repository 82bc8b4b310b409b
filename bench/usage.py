#!/usr/bin/env python3
"""The functions' `"aws usage"` log lines (shared/src/observe.rs), summed per phase of a benchmark.

Every function logs one JSON line per invocation: {"fields": {"message": "aws usage",
"dynamodb_requests": .., "dynamodb_write_requests": .., "wcu": .., "rcu": .., "kms_requests": ..}}.
Under bench/run.sh each instance logs to $STACK_DIR/logs/fn-<binary>-<i>.log.

  usage.py mark LOGDIR > marks.json            byte offsets of every function log now
  usage.py since LOGDIR marks.json BINARY [PREFIX]
                                               sums of BINARY's usage lines (files PREFIX-BINARY-N.log,
                                               PREFIX "fn" by default) written after the marks ("-":
                                               from the start), and the distribution of requests per
                                               invocation
Logs of `affinity-bench ... --direct` are `direct-BINARY-N.log` in the --log-dir given.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from collections import Counter

FIELDS = ("dynamodb_requests", "dynamodb_write_requests", "wcu", "rcu", "kms_requests")


def logs(logdir: str) -> list[str]:
    return sorted(glob.glob(os.path.join(logdir, "*.log")))


def mark(logdir: str) -> dict[str, int]:
    return {p: os.path.getsize(p) for p in logs(logdir)}


def since(logdir: str, marks: dict[str, int], binary: str, prefix: str = "fn") -> dict:
    totals = {f: 0 for f in FIELDS}
    invocations = 0
    per_invocation = Counter()
    writes_per_invocation = Counter()
    start = os.path.join(logdir, f"{prefix}-{binary}-")
    for path in logs(logdir):
        if not path.startswith(start) or not path[len(start):-4].isdigit():
            continue
        with open(path, "rb") as f:
            f.seek(marks.get(path, 0))
            for raw in f:
                if b'"aws usage"' not in raw:
                    continue
                try:
                    fields = json.loads(raw)["fields"]
                except (ValueError, KeyError):
                    continue
                invocations += 1
                for k in FIELDS:
                    totals[k] += fields.get(k, 0)
                per_invocation[int(fields.get("dynamodb_requests", 0))] += 1
                writes_per_invocation[int(fields.get("dynamodb_write_requests", 0))] += 1
    totals["wcu"] = round(totals["wcu"], 3)
    totals["rcu"] = round(totals["rcu"], 3)
    return {
        "binary": binary,
        "invocations": invocations,
        **totals,
        "dynamodb_requests_per_invocation": {str(k): v for k, v in sorted(per_invocation.items())},
        "write_requests_per_invocation": {str(k): v for k, v in sorted(writes_per_invocation.items())},
    }


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "mark":
        json.dump(mark(argv[2]), sys.stdout)
        return 0
    if len(argv) in (5, 6) and argv[1] == "since":
        marks = {}
        if argv[3] != "-":
            with open(argv[3]) as f:
                marks = json.load(f)
        json.dump(since(argv[2], marks, argv[4], *argv[5:]), sys.stdout)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
