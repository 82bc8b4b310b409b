#!/usr/bin/env python3
"""Checks every events/*.json file as the event its function receives, so that it is what
`sam local invoke <Function> -e events/<file>` would hand the function on AWS's behalf:

- API Gateway HTTP API, payload format 2.0: the fields API Gateway always sends, typed as in the SAM
  CLI's own sample (`sam local generate-event apigateway http-api-proxy`); the routeKey is a route of
  template.yaml and names the function; rawPath, http.method/path, pathParameters agree with it; the
  IAM authorizer context is there exactly on AWS_IAM routes; a base64 body decodes.
- EventBridge scheduled event (`sam local generate-event cloudwatch scheduled-event`): for the
  function with the template's Schedule event.
- DynamoDB stream batch (`sam local generate-event dynamodb update`): from a table whose stream feeds
  a function in the template, with that table's key attributes and stream view type.

Prints one line per file, `file<TAB>FunctionLogicalId<TAB>binary` (scripts/invoke_events.sh invokes
each binary with its files), and exits 1 naming every problem. `sam local invoke` itself needs a
container runtime, which CI machines do not have (shared/docs/toolchain.md).

Usage: check_events.py [FILE...]   (default: events/*.json)
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
from pathlib import Path

import cfn_template

ROOT = Path(__file__).resolve().parent.parent

# Maps whose keys are free-form: only the map itself is checked, not the sample's keys in it.
FREE_FORM = {"headers", "queryStringParameters", "pathParameters", "stageVariables", "claims", "detail",
             "Keys", "NewImage", "OldImage", "authorizer", "authentication"}
HTTP_REQUIRED = [
    "version", "routeKey", "rawPath", "rawQueryString", "headers", "isBase64Encoded", "requestContext",
    "requestContext.accountId", "requestContext.apiId", "requestContext.domainName",
    "requestContext.domainPrefix", "requestContext.http", "requestContext.http.method",
    "requestContext.http.path", "requestContext.http.protocol", "requestContext.http.sourceIp",
    "requestContext.http.userAgent", "requestContext.requestId", "requestContext.routeKey",
    "requestContext.stage", "requestContext.time", "requestContext.timeEpoch",
]
# Absent keys are omitted by API Gateway; the Rust event types also accept null for these maps.
HTTP_NULLABLE = {"queryStringParameters", "pathParameters", "stageVariables", "cookies", "body"}
SCHEDULE_REQUIRED = ["id", "detail-type", "source", "account", "time", "region", "resources", "detail"]
STREAM_RECORD_REQUIRED = [
    "eventID", "eventName", "eventVersion", "eventSource", "awsRegion", "eventSourceARN", "dynamodb",
    "dynamodb.Keys", "dynamodb.SequenceNumber", "dynamodb.SizeBytes", "dynamodb.StreamViewType",
]
ATTRIBUTE_TYPES = {"S", "N", "B", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"}


def sam_sample(service: str, kind: str) -> dict:
    """The SAM CLI's sample event (what `sam local generate-event SERVICE KIND` prints)."""
    from samcli.lib.generated_sample_events.events import Events

    events = Events()
    tags = events.event_mapping[service][kind]["tags"]
    values = {name: tag["default"] for name, tag in tags.items() if "default" in tag}
    return json.loads(events.generate_event(service, kind, values))


def _kind(v) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
            float: "number", type(None): "null"}[type(v)]


def get(event: dict, dotted: str):
    cur = event
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return KeyError
        cur = cur[part]
    return cur


def shape_problems(event, sample, required: list[str], nullable=frozenset(), path="") -> list[str]:
    """Required keys missing, and keys whose JSON type differs from the SAM sample's."""
    out = [f"missing {key}" for key in required if path == "" and get(event, key) is KeyError]
    if isinstance(event, dict) and isinstance(sample, dict):
        for key, ref in sample.items():
            if key not in event:
                continue
            here = f"{path}{key}"
            mine = event[key]
            if mine is None and key in nullable:
                continue
            if _kind(mine) != _kind(ref):
                out.append(f"{here} is {_kind(mine)}, the SAM sample's is {_kind(ref)}")
            elif key not in FREE_FORM:
                if isinstance(ref, list) and ref and isinstance(ref[0], dict):
                    for i, item in enumerate(mine):
                        out += shape_problems(item, ref[0], [], nullable, f"{here}[{i}].")
                else:
                    out += shape_problems(mine, ref, [], nullable, f"{here}.")
    return out


def match_route(path: str, route: cfn_template.Route) -> dict | None:
    segs = [s for s in path.split("/") if s]
    if len(segs) != len(route.segments):
        return None
    params = {}
    for seg, tpl in zip(segs, route.segments):
        if tpl.startswith("{") and tpl.endswith("}"):
            params[tpl[1:-1]] = seg
        elif seg != tpl:
            return None
    return params


def check_http(event: dict, routes: list[cfn_template.Route]) -> tuple[list[str], cfn_template.Route | None]:
    problems = shape_problems(event, sam_sample("apigateway", "http-api-proxy"), HTTP_REQUIRED, HTTP_NULLABLE)
    if event.get("version") != "2.0":
        problems.append('version must be "2.0" (payload format 2.0, what the template\'s HttpApi sends)')
    route = next((r for r in routes if r.route_key == event.get("routeKey")), None)
    if route is None:
        return problems + [f"routeKey {event.get('routeKey')!r} is no route of template.yaml"], None
    ctx = event.get("requestContext") or {}
    http = ctx.get("http") or {}
    if ctx.get("routeKey") != route.route_key:
        problems.append("requestContext.routeKey differs from routeKey")
    if http.get("method") != route.method:
        problems.append(f"requestContext.http.method {http.get('method')!r} is not the route's {route.method}")
    raw_path = event.get("rawPath", "")
    if http.get("path") != raw_path:
        problems.append("requestContext.http.path differs from rawPath")
    params = match_route(raw_path, route)
    if params is None:
        problems.append(f"rawPath {raw_path!r} does not match {route.path}")
    elif params and (event.get("pathParameters") or {}) != params:
        problems.append(f"pathParameters must be {params} for {raw_path}")
    iam = isinstance(ctx.get("authorizer"), dict) and "iam" in ctx["authorizer"]
    if route.auth == "AWS_IAM" and not iam:
        problems.append("an AWS_IAM route: requestContext.authorizer.iam is missing")
    if route.auth != "AWS_IAM" and iam:
        problems.append("requestContext.authorizer.iam on a route without IAM authorization")
    if event.get("isBase64Encoded") and event.get("body"):
        try:
            base64.b64decode(event["body"], validate=True)
        except (binascii.Error, ValueError):
            problems.append("isBase64Encoded, but body is not base64")
    return problems, route


def check_schedule(event: dict, template: dict) -> tuple[list[str], str | None]:
    problems = shape_problems(event, sam_sample("cloudwatch", "scheduled-event"), SCHEDULE_REQUIRED)
    if event.get("detail-type") != "Scheduled Event" or event.get("source") != "aws.events":
        problems.append('detail-type must be "Scheduled Event" and source "aws.events"')
    functions = [lid for lid, props, _ in cfn_template._functions(template)
                 if any(e.get("Type") in ("Schedule", "ScheduleV2") for e in (props.get("Events") or {}).values())]
    if len(functions) != 1:
        return problems + [f"the template has {len(functions)} scheduled functions, expected 1"], None
    return problems, functions[0]


def check_stream(event: dict, template: dict) -> tuple[list[str], str | None]:
    sample = sam_sample("dynamodb", "update")
    records = event.get("Records")
    if not isinstance(records, list) or not records:
        return ["Records must be a non-empty array"], None
    sources = {s.table: s for s in cfn_template.stream_sources(template)}
    tables = cfn_template.tables(template)
    by_name = {cfn_template.local_table_name(lid): lid for lid in tables}
    problems, function = [], None
    for i, rec in enumerate(records):
        where = f"Records[{i}]"
        problems += [f"{where}: {p}" for p in shape_problems(rec, sample["Records"][0], STREAM_RECORD_REQUIRED)]
        if rec.get("eventSource") != "aws:dynamodb" or rec.get("eventName") not in ("INSERT", "MODIFY", "REMOVE"):
            problems.append(f"{where}: eventSource must be aws:dynamodb, eventName INSERT, MODIFY or REMOVE")
        m = re.search(r":table/([^/]+)/stream/", str(rec.get("eventSourceARN", "")))
        lid = by_name.get(m.group(1)) if m else None
        if lid not in sources:
            problems.append(f"{where}: eventSourceARN is no stream that feeds a function of template.yaml")
            continue
        function = sources[lid].function
        ddb = rec.get("dynamodb") or {}
        view = (tables[lid].get("StreamSpecification") or {}).get("StreamViewType")
        if ddb.get("StreamViewType") != view:
            problems.append(f"{where}: StreamViewType must be {view}, the table's")
        key_attrs = {k["AttributeName"] for k in tables[lid]["KeySchema"]}
        if set(ddb.get("Keys") or {}) != key_attrs:
            problems.append(f"{where}: Keys must be {sorted(key_attrs)}")
        if rec.get("eventName") != "REMOVE" and view in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES") and "NewImage" not in ddb:
            problems.append(f"{where}: NewImage missing")
        for image in ("Keys", "NewImage", "OldImage"):
            for attr, value in (ddb.get(image) or {}).items():
                if not (isinstance(value, dict) and len(value) == 1 and set(value) <= ATTRIBUTE_TYPES):
                    problems.append(f"{where}: dynamodb.{image}.{attr} is not an attribute value")
    return problems, function


def check(event, template: dict) -> tuple[list[str], str | None]:
    """Problems of one event, and the logical id of the function it is for."""
    if not isinstance(event, dict):
        return ["not a JSON object"], None
    if "routeKey" in event or "requestContext" in event:
        problems, route = check_http(event, cfn_template.routes(template))
        return problems, route.function if route else None
    if event.get("detail-type") or event.get("source") == "aws.events":
        return check_schedule(event, template)
    if "Records" in event:
        return check_stream(event, template)
    return ["neither an HTTP API request, a scheduled event nor a DynamoDB stream batch"], None


def main(argv: list[str]) -> int:
    template = cfn_template.load()
    binaries = {lid: binary for lid, _, binary in cfn_template._functions(template)}
    files = [Path(a) for a in argv[1:]] or sorted((ROOT / "events").glob("*.json"))
    failed = 0
    for f in files:
        name = f.relative_to(ROOT) if f.is_absolute() and ROOT in f.parents else f
        try:
            event = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            problems, function = [f"unreadable: {e}"], None
        else:
            problems, function = check(event, template)
        if problems or function is None:
            failed += 1
            for p in problems or ["no function of template.yaml receives it"]:
                print(f"check_events: {name}: {p}", file=sys.stderr)
        else:
            print(f"{name}\t{function}\t{binaries[function]}")
    print(f"check_events: {len(files) - failed} of {len(files)} event files have their function's event shape",
          file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
