#!/usr/bin/env python3
"""Local stand-in for the Lambda event source mapping of a DynamoDB stream.

Takes the DynamoDB stream event of template.yaml (AggregateFunction: Stream !GetAtt
EventsTable.StreamArn, BatchSize, FilterCriteria), reads every shard of that table's stream in
DynamoDB Local (AWS_ENDPOINT_URL_DYNAMODB), turns the records into the event Lambda sends
({"Records": [{eventID, eventName, eventVersion, eventSource, awsRegion, dynamodb: {...},
eventSourceARN}]}, binary attributes base64), keeps the records that match the FilterCriteria, and
invokes the function through cargo lambda watch's invoke API
(POST http://127.0.0.1:WATCHPORT/2015-03-31/functions/<binary>/invocations), one shard's records at
a time, at most BatchSize per call.

  --drain   process everything now in the stream, then exit (non-zero if a batch failed)
  (default) follow: poll every 500 ms until killed

Progress (last sequence number per shard) is checkpointed in $STACK_DIR/stream_pump.json, under a
file lock, after each successful call; so a drain then a follow (or a drain while a follower runs)
never hands a record over twice. A batch the function fails is retried (MaximumRetryAttempts of
the template, default 2), then skipped with an error, like the real mapping without a failure
destination. Not emulated: MaximumBatchingWindowInSeconds (batches go out at once), bisecting.

Usage: stream_pump.py [--drain] [--watch-port P] [--function LOGICAL_ID] [--template FILE]
"""

from __future__ import annotations

import os
import sys

# Run under the repo's venv (.tools/venv: boto3, PyYAML) even when started as ./scripts/x.py.
_VENV = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, ".tools", "venv")
if os.path.exists(os.path.join(_VENV, "bin", "python")) and os.path.realpath(sys.prefix) != os.path.realpath(_VENV):
    os.execv(os.path.join(_VENV, "bin", "python"), [os.path.join(_VENV, "bin", "python"), *sys.argv])

import argparse
import base64
import contextlib
import fcntl
import http.client
import json
import signal
import time
from datetime import datetime
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

import cfn_template

POLL_SECONDS = 0.5


def log(msg: str) -> None:
    print(f"stream_pump: {msg}", file=sys.stderr, flush=True)


# --- record -> Lambda event ------------------------------------------------------------------
def _attr_json(value):
    """A boto3 AttributeValue (bytes for B/BS) as the JSON Lambda sends (base64 for binary)."""
    if isinstance(value, dict):
        return {k: _attr_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_attr_json(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode()
    return value


def lambda_record(rec: dict, stream_arn: str, region: str) -> dict:
    ddb = rec["dynamodb"]
    out_ddb = {}
    created = ddb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        ts = created.timestamp()
        out_ddb["ApproximateCreationDateTime"] = int(ts) if ts == int(ts) else ts
    elif created is not None:
        out_ddb["ApproximateCreationDateTime"] = created
    for key in ("Keys", "NewImage", "OldImage"):
        if key in ddb:
            out_ddb[key] = _attr_json(ddb[key])
    for key in ("SequenceNumber", "SizeBytes", "StreamViewType"):
        if key in ddb:
            out_ddb[key] = ddb[key]
    out = {
        "eventID": rec["eventID"],
        "eventName": rec["eventName"],
        "eventVersion": rec.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,  # DynamoDB Local says "ddblocal"
        "dynamodb": out_ddb,
        "eventSourceARN": stream_arn,
    }
    if "userIdentity" in rec:  # TTL deletions
        out["userIdentity"] = rec["userIdentity"]
    return out


# --- FilterCriteria (Lambda event filtering, the subset this project uses) ---------------------
def _matches(pattern, value) -> bool:
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        return all(_matches(p, value.get(k, _MISSING)) for k, p in pattern.items())
    if isinstance(pattern, list):
        for p in pattern:
            if isinstance(p, dict):
                raise ValueError(f"filter operator {p} is not emulated by stream_pump.py")
            if value is not _MISSING and value == p:
                return True
        return False
    raise ValueError(f"bad filter pattern {pattern!r}")


_MISSING = object()


def passes(patterns: list[dict], record: dict) -> bool:
    return not patterns or any(_matches(p, record) for p in patterns)


# --- checkpoint ----------------------------------------------------------------------------------
class Checkpoint:
    """{stream_arn: {shard_id: {"seq": str | None, "closed": bool}}} in a JSON file, under flock."""

    def __init__(self, path: Path):
        self.path = path
        self.lock_path = path.with_suffix(".lock")
        self.data: dict = {}

    @contextlib.contextmanager
    def locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self.data = json.loads(self.path.read_text()) if self.path.exists() else {}
                yield self
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def shard(self, stream_arn: str, shard_id: str) -> dict:
        return self.data.setdefault(stream_arn, {}).setdefault(shard_id, {"seq": None, "closed": False})

    def save(self):
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        tmp.replace(self.path)


# --- the pump ------------------------------------------------------------------------------------
class Pump:
    def __init__(self, source: cfn_template.StreamSource, table: str, watch_port: int,
                 checkpoint: Checkpoint, max_retries: int, timeout: float):
        endpoint = os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
        self.ddb = boto3.client("dynamodb", endpoint_url=endpoint)
        self.streams = boto3.client("dynamodbstreams", endpoint_url=endpoint)
        self.region = self.ddb.meta.region_name
        self.source = source
        self.table = table
        self.watch_port = watch_port
        self.checkpoint = checkpoint
        self.max_retries = max_retries
        self.timeout = timeout
        self.failed_batches = 0

    def stream_arn(self) -> str:
        arn = self.ddb.describe_table(TableName=self.table)["Table"].get("LatestStreamArn")
        if not arn:
            raise SystemExit(f"stream_pump: table {self.table} has no stream")
        return arn

    def shards(self, arn: str) -> list[dict]:
        shards, start = [], None
        while True:
            kw = {"StreamArn": arn}
            if start:
                kw["ExclusiveStartShardId"] = start
            desc = self.streams.describe_stream(**kw)["StreamDescription"]
            shards += desc.get("Shards", [])
            start = desc.get("LastEvaluatedShardId")
            if not start:
                return shards

    def invoke(self, records: list[dict]) -> bool:
        body = json.dumps({"Records": records}).encode()
        for attempt in range(1 + self.max_retries):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.watch_port, timeout=self.timeout)
                conn.request("POST", f"/2015-03-31/functions/{self.source.binary}/invocations",
                             body=body, headers={"content-type": "application/json"})
                resp = conn.getresponse()
                out = resp.read()
                conn.close()
                if resp.status < 300 and not resp.getheader("x-amz-function-error"):
                    return True
                log(f"{self.source.binary} failed (HTTP {resp.status}, attempt {attempt + 1}): {out[:300]!r}")
            except (OSError, http.client.HTTPException) as e:
                log(f"cannot reach cargo lambda watch on port {self.watch_port} "
                    f"(attempt {attempt + 1}): {e}")
            time.sleep(min(2 ** attempt, 5))
        return False

    def _flush(self, arn, shard_id, batch, last_seq) -> int:
        """Hands a batch over; checkpoints the shard up to last_seq. Returns records delivered."""
        if batch:
            if self.invoke(batch):
                log(f"{self.source.binary}: {len(batch)} record(s) from {shard_id}")
            else:
                self.failed_batches += 1
                log(f"dropped a batch of {len(batch)} record(s) from {shard_id} after retries")
        self.checkpoint.shard(arn, shard_id)["seq"] = last_seq
        self.checkpoint.save()
        return len(batch)

    def cycle(self) -> int:
        """One pass over every readable shard. Returns the number of stream records read."""
        read = 0
        with self.checkpoint.locked():
            arn = self.stream_arn()
            shards = self.shards(arn)
            known = {s["ShardId"] for s in shards}
            for shard in shards:
                sid = shard["ShardId"]
                state = self.checkpoint.shard(arn, sid)
                if state["closed"]:
                    continue
                parent = shard.get("ParentShardId")
                if parent in known and not self.checkpoint.shard(arn, parent)["closed"]:
                    continue  # parent first, as Lambda does
                read += self._read_shard(arn, sid, state)
        return read

    def _read_shard(self, arn: str, sid: str, state: dict) -> int:
        kw = {"StreamArn": arn, "ShardId": sid}
        if state["seq"]:
            kw.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=state["seq"])
        else:
            kw["ShardIteratorType"] = "TRIM_HORIZON"
        try:
            iterator = self.streams.get_shard_iterator(**kw)["ShardIterator"]
        except ClientError as e:
            if e.response["Error"]["Code"] in ("ResourceNotFoundException", "TrimmedDataAccessException"):
                state["closed"] = True
                self.checkpoint.save()
                return 0
            raise
        read, batch, last_seq = 0, [], state["seq"]
        while iterator:
            resp = self.streams.get_records(ShardIterator=iterator, Limit=1000)
            records = resp.get("Records", [])
            iterator = resp.get("NextShardIterator")
            for rec in records:
                read += 1
                event = lambda_record(rec, arn, self.region)
                if passes(self.source.patterns, event):
                    batch.append(event)
                last_seq = rec["dynamodb"]["SequenceNumber"]
                if len(batch) >= self.source.batch_size:
                    self._flush(arn, sid, batch, last_seq)
                    batch = []
            if not records:
                break
        if batch or last_seq != state["seq"]:
            self._flush(arn, sid, batch, last_seq)
        if iterator is None:  # the shard is closed and fully read
            self.checkpoint.shard(arn, sid)["closed"] = True
            self.checkpoint.save()
        return read


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--drain", action="store_true", help="process what is in the stream now, then exit")
    ap.add_argument("--watch-port", type=int, default=int(os.environ.get("AFFINITY_WATCH_PORT", "0")),
                    help="cargo lambda watch port (default: $AFFINITY_WATCH_PORT)")
    ap.add_argument("--function", help="logical id of the stream consumer (default: the only one)")
    ap.add_argument("--template", default=str(cfn_template.DEFAULT_TEMPLATE))
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for one invocation")
    args = ap.parse_args()

    if not args.watch_port:
        ap.error("--watch-port or AFFINITY_WATCH_PORT is required")
    if not os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        ap.error("AWS_ENDPOINT_URL_DYNAMODB is not set (source .stack/env)")

    template = cfn_template.load(args.template)
    sources = [s for s in cfn_template.stream_sources(template) if args.function in (None, s.function)]
    if len(sources) != 1:
        ap.error(f"need exactly one DynamoDB stream consumer, found {[s.function for s in sources]}")
    source = sources[0]
    table_var = cfn_template.table_env_vars(template).get(source.table)
    table = os.environ.get(table_var or "", "") or cfn_template.local_table_name(source.table)
    fn_events = template["Resources"][source.function]["Properties"]["Events"]
    max_retries = next(
        (int(e["Properties"].get("MaximumRetryAttempts", 2)) for e in fn_events.values()
         if e.get("Type") == "DynamoDB"), 2)

    stack_dir = Path(os.environ.get("AFFINITY_STACK_DIR") or cfn_template.REPO_ROOT / ".stack")
    if not stack_dir.is_absolute():
        stack_dir = cfn_template.REPO_ROOT / stack_dir
    pump = Pump(source, table, args.watch_port, Checkpoint(stack_dir / "stream_pump.json"),
                max_retries, args.timeout)
    log(f"{table} stream -> {source.binary} (batch {source.batch_size}, "
        f"filters {json.dumps(source.patterns)}){'' if args.drain else ', following'}")

    if args.drain:
        total = 0
        while (n := pump.cycle()) > 0:
            total += n
        if total:
            log(f"drained {total} stream record(s) into {source.binary}")
        else:
            # The stack's own pump (started by run_local.sh) follows the same checkpoint: it had
            # already passed every record on, so the aggregates are current.
            log(f"nothing left to drain: every stream record had already reached {source.binary}")
        return 1 if pump.failed_batches else 0

    stop = False

    def _stop(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while not stop:
        try:
            if pump.cycle() == 0:
                time.sleep(POLL_SECONDS)
        except (ClientError, OSError) as e:  # DynamoDB Local restarting, etc.: keep following
            log(f"poll failed: {e}")
            time.sleep(POLL_SECONDS * 4)
    return 0


if __name__ == "__main__":
    sys.exit(main())
