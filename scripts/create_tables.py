#!/usr/bin/env python3
"""Creates the DynamoDB tables of template.yaml in the local DynamoDB (AWS_ENDPOINT_URL_DYNAMODB).

Every AWS::DynamoDB::Table resource becomes a table named after its logical id
(TenantsTable -> affinity-tenants; prefix from AFFINITY_TABLE_PREFIX). Prints one
`export VAR=name` line per table, VAR being the Globals environment variable that holds the
table's !Ref (TENANTS_TABLE, ...).

Idempotent: an existing table is left as it is, except that a global secondary index of the template it
lacks is added (a stack made before the index existed) and its TTL is switched on if missing.

Usage: create_tables.py [--template template.yaml]
"""

from __future__ import annotations

import os
import sys

# Run under the repo's venv (.tools/venv: boto3, PyYAML) even when started as ./scripts/x.py.
_VENV = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, ".tools", "venv")
if os.path.exists(os.path.join(_VENV, "bin", "python")) and os.path.realpath(sys.prefix) != os.path.realpath(_VENV):
    os.execv(os.path.join(_VENV, "bin", "python"), [os.path.join(_VENV, "bin", "python"), *sys.argv])

import argparse
import shlex
import time

import boto3
from botocore.exceptions import ClientError

import cfn_template

# Only the parts DynamoDB Local supports are sent. Left out on purpose:
#   SSESpecification (DynamoDB Local ignores encryption settings), PointInTimeRecoverySpecification
#   (no PITR), DeletionProtectionEnabled (not supported), Tags (no tagging), ContributorInsights,
#   Kinesis streaming, resource policies. Those are checked on the template (cfn-lint), not here.
_GSI_KEYS = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")


def create_table_request(name: str, props: dict) -> dict:
    req = {
        "TableName": name,
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if req["BillingMode"] == "PROVISIONED":
        req["ProvisionedThroughput"] = props.get(
            "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        )
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        if props.get(key):
            req[key] = [{k: v for k, v in idx.items() if k in _GSI_KEYS} for idx in props[key]]
    stream = props.get("StreamSpecification")
    if stream:
        req["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": stream["StreamViewType"],
        }
    return req


def add_missing_indexes(ddb, name: str, props: dict) -> None:
    """Adds each global secondary index of `props` that the existing table `name` lacks, and waits for it."""
    have = {i["IndexName"] for i in ddb.describe_table(TableName=name)["Table"].get("GlobalSecondaryIndexes", [])}
    wanted = create_table_request(name, props).get("GlobalSecondaryIndexes", [])
    for idx in (i for i in wanted if i["IndexName"] not in have):
        used = {k["AttributeName"] for k in idx["KeySchema"]}
        ddb.update_table(
            TableName=name,
            AttributeDefinitions=[a for a in props["AttributeDefinitions"] if a["AttributeName"] in used],
            GlobalSecondaryIndexUpdates=[{"Create": idx}],
        )
        deadline = time.monotonic() + 30
        while True:
            indexes = ddb.describe_table(TableName=name)["Table"].get("GlobalSecondaryIndexes", [])
            if any(i["IndexName"] == idx["IndexName"] and i.get("IndexStatus") == "ACTIVE" for i in indexes):
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"index {idx['IndexName']} of {name} not ACTIVE after 30 s")
            time.sleep(0.2)


def ensure_table(ddb, name: str, props: dict) -> str:
    try:
        ddb.create_table(**create_table_request(name, props))
        status = "created"
    except ClientError as e:
        if e.response["Error"]["Code"] != "ResourceInUseException":
            raise
        status = "exists"
    deadline = time.monotonic() + 30
    while ddb.describe_table(TableName=name)["Table"]["TableStatus"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise TimeoutError(f"table {name} not ACTIVE after 30 s")
        time.sleep(0.2)

    add_missing_indexes(ddb, name, props)
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        current = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
            )
    return status


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--template", default=str(cfn_template.DEFAULT_TEMPLATE))
    args = ap.parse_args()

    endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
    if not endpoint:
        print("create_tables: AWS_ENDPOINT_URL_DYNAMODB is not set (refusing to touch real AWS)", file=sys.stderr)
        return 2

    template = cfn_template.load(args.template)
    env_vars = cfn_template.table_env_vars(template)
    ddb = boto3.client("dynamodb", endpoint_url=endpoint)
    for logical_id, props in cfn_template.tables(template).items():
        name = cfn_template.local_table_name(logical_id)
        status = ensure_table(ddb, name, props)
        print(f"create_tables: {logical_id} -> {name} ({status})", file=sys.stderr)
        var = env_vars.get(logical_id)
        if var:
            print(f"export {var}={shlex.quote(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
