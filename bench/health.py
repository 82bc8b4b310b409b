#!/usr/bin/env python3
"""How healthy DynamoDB Local is right now: the median latency of a GetItem of a missing key and of a
DescribeTable, per table (10 and 3 calls), and the CPU the DynamoDB Local process used since it started.

DynamoDB Local sometimes serves one table far slower than the others (a GetItem of a missing key on an
almost empty stream-enabled table measured 30-45 ms while every other table answered in about 1 ms, with
nothing else running; it comes and goes with no change of ours). bench/run.sh records this before each
measured phase so that a slow phase can be told apart from a slow emulator.

Usage: health.py TABLE... > health.json   (AWS_ENDPOINT_URL_DYNAMODB from the stack's env)
"""

from __future__ import annotations

import os
import sys

_VENV = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, ".tools", "venv")
if os.path.exists(os.path.join(_VENV, "bin", "python")) and os.path.realpath(sys.prefix) != os.path.realpath(_VENV):
    os.execv(os.path.join(_VENV, "bin", "python"), [os.path.join(_VENV, "bin", "python"), *sys.argv])

import json
import statistics
import subprocess
import time

import boto3


def median_ms(call, n):
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        call()
        ts.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(ts), 2)


def main(tables: list[str]) -> int:
    ddb = boto3.client("dynamodb")
    out = {"get_item_ms": {}, "describe_table_ms": {}}
    for t in tables:
        keys = [k["AttributeName"] for k in ddb.describe_table(TableName=t)["Table"]["KeySchema"]]
        key = {k: {"S": "bench-health#missing"} for k in keys}
        out["get_item_ms"][t] = median_ms(lambda: ddb.get_item(TableName=t, Key=key), 10)
        out["describe_table_ms"][t] = median_ms(lambda: ddb.describe_table(TableName=t), 3)
    port = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB", "").rsplit(":", 1)[-1]
    pids = subprocess.run(["pgrep", "-f", f"DynamoDBLocal.jar -inMemory -port {port} "], capture_output=True, text=True).stdout.split()
    if pids:
        t = subprocess.run(["ps", "-o", "etimes=,times=", "-p", pids[0]], capture_output=True, text=True).stdout.split()
        if len(t) == 2:
            out["dynamodb_local_cpu_s"], out["dynamodb_local_age_s"] = int(t[1]), int(t[0])
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
