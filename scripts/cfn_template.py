"""Reads template.yaml (the single source of truth for tables, routes and function settings).

Shared by create_tables.py, gateway.py and stream_pump.py. Only needs PyYAML.

CloudFormation short tags (!Ref, !GetAtt, !Sub, ...) are turned into their long form
({"Ref": x}, {"Fn::GetAtt": x}, ...), so the rest of the code sees plain data.

As a script: `literal-env` prints the literal (non-!Ref) variables of Globals.Function.Environment
as `export KEY=VALUE` lines (for the local stack's env file); `binaries` the cargo binary of every
function; `stream-binaries` those of the DynamoDB stream consumers; `global KEY` a Globals.Function
value (e.g. MemorySize).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that accepts any `!Tag` (CloudFormation intrinsic functions)."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load(path: str | os.PathLike | None = None) -> dict:
    with open(path or DEFAULT_TEMPLATE, encoding="utf-8") as f:
        return yaml.load(f, Loader=_CfnLoader)  # noqa: S506 (SafeLoader subclass)


def ref_target(value) -> str | None:
    """Logical id of `!Ref X`, or None."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return value["Ref"]
    return None


def getatt_target(value) -> tuple[str, str] | None:
    """(logical id, attribute) of `!GetAtt X.Attr`, or None."""
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        if isinstance(target, list) and len(target) == 2:
            return target[0], target[1]
    return None


def local_table_name(logical_id: str, prefix: str | None = None) -> str:
    """TenantsTable -> affinity-tenants (prefix from AFFINITY_TABLE_PREFIX, default 'affinity')."""
    prefix = prefix or os.environ.get("AFFINITY_TABLE_PREFIX", "affinity")
    base = re.sub(r"Table$", "", logical_id)
    kebab = re.sub(r"(?<!^)(?=[A-Z])", "-", base).lower()
    return f"{prefix}-{kebab}"


def tables(template: dict) -> dict[str, dict]:
    """Logical id -> Properties of every AWS::DynamoDB::Table."""
    return {
        lid: res.get("Properties", {})
        for lid, res in template.get("Resources", {}).items()
        if res.get("Type") == "AWS::DynamoDB::Table"
    }


def global_env(template: dict) -> dict:
    return (
        template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    ) or {}


def table_env_vars(template: dict) -> dict[str, str]:
    """Logical table id -> the Globals environment variable that holds its name (!Ref)."""
    table_ids = tables(template)
    out = {}
    for var, value in global_env(template).items():
        target = ref_target(value)
        if target in table_ids:
            out[target] = var
    return out


def literal_env(template: dict) -> dict[str, str]:
    """Globals environment variables whose value is a literal (not !Ref / !Sub ...)."""
    return {k: str(v) for k, v in global_env(template).items() if not isinstance(v, (dict, list))}


@dataclass
class Route:
    method: str  # upper case, or ANY
    path: str  # template path, e.g. /v1/sites/{site_id}/events
    function: str  # logical id
    binary: str  # cargo binary name (BuildProperties.Binary)
    auth: str | None = None  # e.g. AWS_IAM
    segments: list[str] = field(default_factory=list)

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class StreamSource:
    function: str
    binary: str
    table: str  # logical id of the table whose stream feeds the function
    batch_size: int
    patterns: list[dict]  # FilterCriteria patterns (parsed JSON); empty = every record
    starting_position: str


def _functions(template: dict):
    for lid, res in template.get("Resources", {}).items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        props = res.get("Properties", {})
        binary = (res.get("Metadata", {}).get("BuildProperties", {}) or {}).get("Binary")
        yield lid, props, binary or lid


def routes(template: dict) -> list[Route]:
    out = []
    for lid, props, binary in _functions(template):
        for event in (props.get("Events") or {}).values():
            if event.get("Type") != "HttpApi":
                continue
            p = event.get("Properties", {}) or {}
            path, method = p.get("Path"), str(p.get("Method", "ANY")).upper()
            if not path:
                continue  # catch-all $default route: not used here
            if method in ("X-AMAZON-APIGATEWAY-ANY-METHOD", "*"):
                method = "ANY"
            auth = ((p.get("Auth") or {}).get("Authorizer")) or None
            segs = [s for s in path.split("/") if s]
            out.append(Route(method, path, lid, binary, auth, segs))
    return out


def stream_sources(template: dict) -> list[StreamSource]:
    import json

    out = []
    for lid, props, binary in _functions(template):
        for event in (props.get("Events") or {}).values():
            if event.get("Type") != "DynamoDB":
                continue
            p = event.get("Properties", {}) or {}
            target = getatt_target(p.get("Stream"))
            if not target or target[1] != "StreamArn":
                raise ValueError(f"{lid}: DynamoDB event Stream must be !GetAtt <Table>.StreamArn")
            patterns = [
                json.loads(f["Pattern"]) for f in ((p.get("FilterCriteria") or {}).get("Filters") or [])
            ]
            out.append(
                StreamSource(
                    function=lid,
                    binary=binary,
                    table=target[0],
                    batch_size=int(p.get("BatchSize", 100)),
                    patterns=patterns,
                    starting_position=p.get("StartingPosition", "LATEST"),
                )
            )
    return out


def http_api_cors(template: dict) -> dict | None:
    for res in template.get("Resources", {}).values():
        if res.get("Type") == "AWS::Serverless::HttpApi":
            return (res.get("Properties", {}) or {}).get("CorsConfiguration")
    return None


def binaries(template: dict) -> list[str]:
    """The cargo binary of every function, in template order."""
    return [binary for _, _, binary in _functions(template)]


def main(argv: list[str]) -> int:
    cmd = argv[1:]
    if cmd == ["literal-env"]:
        for k, v in literal_env(load()).items():
            print(f"export {k}={shlex.quote(v)}")
    elif cmd == ["binaries"]:
        print("\n".join(binaries(load())))
    elif len(cmd) == 2 and cmd[0] == "global":
        value = load().get("Globals", {}).get("Function", {}).get(cmd[1])
        print("" if value is None else value)
    elif cmd == ["stream-binaries"]:
        print("\n".join(s.binary for s in stream_sources(load())))
    else:
        print("usage: cfn_template.py literal-env|binaries|stream-binaries|global KEY", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
