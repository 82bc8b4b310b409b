"""Reads template.yaml (the single source of truth for tables, routes and function settings).

Shared by create_tables.py, gateway.py and stream_pump.py. Only needs PyYAML.

CloudFormation short tags (!Ref, !GetAtt, !Sub, ...) are turned into their long form
({"Ref": x}, {"Fn::GetAtt": x}, ...), so the rest of the code sees plain data.

As a script: `literal-env` prints the literal (non-!Ref) variables of Globals.Function.Environment
as `export KEY=VALUE` lines (for the local stack's env file); `binaries` the cargo binary of every
function; `stream-binaries` those of the DynamoDB stream consumers; `global KEY` a Globals.Function
value (e.g. MemorySize); `permissions` every function's permissions as JSON (see `permissions`), for
tests/tests/iam_scope.rs.
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
# AFFINITY_TEMPLATE: another template (the tests of the IAM proof use it to check that it fails).
DEFAULT_TEMPLATE = Path(os.environ.get("AFFINITY_TEMPLATE") or REPO_ROOT / "template.yaml")


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


# --- permissions ------------------------------------------------------------------------------

class PolicyError(ValueError):
    """A policy construct the IAM proof cannot read (it refuses rather than guess)."""


def _as_list(v) -> list:
    return v if isinstance(v, list) else [v]


def _role_of(value) -> str | None:
    """Logical id of the role in `!GetAtt Role.Arn` / `!Ref Role`."""
    target = getatt_target(value)
    if target and target[1] == "Arn":
        return target[0]
    return ref_target(value)


class _Names:
    """Resources as the IAM proof names them: local table names (the env vars of Globals, else the local
    default), `table/index/name`, `table/stream`, `log-group:LogicalId`, `*`."""

    def __init__(self, template: dict):
        self.resources = template.get("Resources", {})
        self.tables = tables(template)
        env = table_env_vars(template)
        self.table_name = {lid: os.environ.get(env.get(lid, ""), "") or local_table_name(lid) for lid in self.tables}

    def attr(self, lid: str, attr: str) -> str:
        kind = self.resources.get(lid, {}).get("Type")
        if lid in self.tables and attr == "Arn":
            return self.table_name[lid]
        if lid in self.tables and attr == "StreamArn":
            return f"{self.table_name[lid]}/stream"
        if kind == "AWS::Logs::LogGroup" and attr == "Arn":
            return f"log-group:{lid}"
        raise PolicyError(f"no name for !GetAtt {lid}.{attr}")

    def resource(self, value) -> str:
        if value == "*":
            return "*"
        target = getatt_target(value)
        if target:
            return self.attr(*target)
        if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            def sub(m: re.Match) -> str:
                lid, _, attr = m.group(1).partition(".")
                if not attr:
                    raise PolicyError(f"no name for ${{{lid}}} in {value}")
                return self.attr(lid, attr)

            return re.sub(r"\$\{([A-Za-z0-9.]+)\}", sub, value["Fn::Sub"])
        raise PolicyError(f"no name for resource {value!r}")


def _kms_resource(statement: dict, key: str, code_key: str | None) -> str:
    """How a key-policy statement restricts the key's use: `purpose=X` (the encryption context purpose the
    code's KMS calls carry; only for the key the code uses), `via=dynamodb` / `via=lambda` (only through
    that service, in this account), else `key:LogicalId` (unrestricted)."""
    cond = statement.get("Condition") or {}
    equals = cond.get("StringEquals") or {}
    purpose = equals.get("kms:EncryptionContext:purpose")
    via = equals.get("kms:ViaService")
    if purpose and not via and key == code_key:
        return f"purpose={purpose}"
    if via and not purpose and equals.get("kms:CallerAccount"):
        sub = via.get("Fn::Sub") if isinstance(via, dict) else via
        service = str(sub).split(".", 1)[0]
        if service in ("dynamodb", "lambda"):
            return f"via={service}"
    return f"key:{key}"


def permissions(template: dict) -> dict:
    """Every function's permissions, from its role (inline and template-managed policies), the
    AWS::IAM::Policy resources attached to the role, and the KMS key policies that name the role:
    `{FunctionLogicalId: {"binary", "role", "allowed": [{"action", "resource", "source"}]}}`.

    Resources are named as `_Names` and `_kms_resource` say. Raises PolicyError for what it cannot
    judge: a Deny, NotAction/NotResource, a condition on an identity policy, a role from outside the
    template, an AWS managed policy, a wildcard principal."""
    resources = template.get("Resources", {})
    names = _Names(template)
    code_key = ref_target(global_env(template).get("KMS_KEY_ID"))
    by_role: dict[str, list[dict]] = {}

    def add(role: str, statement: dict, source: str, kms_key: str | None = None):
        if statement.get("Effect") != "Allow":
            raise PolicyError(f"{source}: only Allow statements are supported")
        for bad in ("NotAction", "NotResource", "NotPrincipal"):
            if bad in statement:
                raise PolicyError(f"{source}: {bad} is not supported")
        if kms_key is None and statement.get("Condition"):
            raise PolicyError(f"{source}: conditions on identity policies are not supported")
        for action in _as_list(statement["Action"]):
            if kms_key is not None:
                res = [_kms_resource(statement, kms_key, code_key)]
            else:
                res = [names.resource(r) for r in _as_list(statement["Resource"])]
            for r in res:
                by_role.setdefault(role, []).append({"action": action, "resource": r, "source": source})

    def add_document(role: str, doc: dict, source: str):
        for i, s in enumerate(_as_list(doc.get("Statement", []))):
            add(role, s, f"{source}/{s.get('Sid', i)}")

    for lid, res in resources.items():
        props = res.get("Properties", {}) or {}
        kind = res.get("Type")
        if kind == "AWS::IAM::Role":
            for p in props.get("Policies", []) or []:
                add_document(lid, p["PolicyDocument"], f"{lid}/{p.get('PolicyName')}")
            for arn in props.get("ManagedPolicyArns", []) or []:
                managed = ref_target(arn)
                if managed not in resources:
                    raise PolicyError(f"{lid}: managed policy {arn!r} is not in the template")
                add_document(lid, resources[managed]["Properties"]["PolicyDocument"], managed)
        elif kind == "AWS::IAM::Policy":
            for role in props.get("Roles", []):
                add_document(ref_target(role), props["PolicyDocument"], lid)
        elif kind == "AWS::KMS::Key":
            for i, s in enumerate(props.get("KeyPolicy", {}).get("Statement", [])):
                principal = s.get("Principal", {})
                if principal == "*" or "*" in _as_list(principal.get("AWS", [])):
                    raise PolicyError(f"{lid}/{s.get('Sid', i)}: wildcard principal")
                for p in _as_list(principal.get("AWS", [])):
                    role = _role_of(p)
                    if role in resources:
                        add(role, s, f"{lid}/{s.get('Sid', i)}", kms_key=lid)

    out = {}
    for lid, props, binary in _functions(template):
        role = _role_of(props.get("Role"))
        if role not in resources:
            raise PolicyError(f"{lid}: needs Role: !GetAtt <Role>.Arn of a role in the template")
        if props.get("Policies"):
            raise PolicyError(f"{lid}: Policies is ignored with an explicit Role")
        out[lid] = {"binary": binary, "role": role, "allowed": by_role.get(role, [])}
    return out


# --- deployability -------------------------------------------------------------------------------

def sam_transform(template: dict, region: str = "us-east-1") -> dict:
    """The CloudFormation template SAM deploys (AWS::Serverless-2016-10-31 expanded), offline.

    Needs aws-sam-translator (installed with aws-sam-cli). CodeUri is replaced by a placeholder S3 URI
    (sam build/package do that), AWS managed policies are not looked up (the template uses none)."""
    import copy
    import logging

    from samtranslator.translator.transform import transform

    logging.getLogger("samtranslator").setLevel(logging.ERROR)  # "unpublished metrics" at exit

    class _NoManagedPolicies:
        def load(self):
            return {}

    tpl = copy.deepcopy(template)
    for res in tpl.get("Resources", {}).values():
        if res.get("Type") == "AWS::Serverless::Function":
            res["Properties"]["CodeUri"] = "s3://bucket/key"
    old = os.environ.get("AWS_DEFAULT_REGION")
    os.environ["AWS_DEFAULT_REGION"] = region
    try:
        return transform(tpl, {"AWS::Region": region}, _NoManagedPolicies())
    finally:
        if old is None:
            del os.environ["AWS_DEFAULT_REGION"]
        else:
            os.environ["AWS_DEFAULT_REGION"] = old


def dependencies(template: dict) -> dict[str, set[str]]:
    """Logical id -> the resources it depends on (Ref, GetAtt, ${X} in Sub, DependsOn)."""
    resources = template.get("Resources", {})

    def walk(v, acc: set[str]) -> set[str]:
        if isinstance(v, dict):
            for k, x in v.items():
                if k == "Ref" and isinstance(x, str) and x in resources:
                    acc.add(x)
                elif k == "Fn::GetAtt":
                    target = x[0] if isinstance(x, list) else str(x).split(".")[0]
                    if target in resources:
                        acc.add(target)
                elif k == "Fn::Sub":
                    text = x if isinstance(x, str) else x[0]
                    for name in re.findall(r"\$\{([A-Za-z0-9]+)[^}]*\}", text):
                        if name in resources:
                            acc.add(name)
                    if not isinstance(x, str):
                        walk(x[1], acc)
                else:
                    walk(x, acc)
        elif isinstance(v, list):
            for x in v:
                walk(x, acc)
        return acc

    out = {}
    for lid, res in resources.items():
        deps = walk(res.get("Properties", {}), set())
        depends_on = res.get("DependsOn", [])
        deps |= set([depends_on] if isinstance(depends_on, str) else depends_on)
        out[lid] = deps
    return out


def dependency_cycle(template: dict) -> list[str] | None:
    """A dependency cycle between resources (CloudFormation refuses to deploy one), or None."""
    graph = dependencies(template)
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if not state.get(nxt):
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if not state.get(node):
            found = visit(node, [node])
            if found:
                return found
    return None


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
    elif cmd == ["permissions"]:
        import json

        print(json.dumps(permissions(load()), indent=1, sort_keys=True))
    else:
        print("usage: cfn_template.py literal-env|binaries|stream-binaries|global KEY|permissions", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
