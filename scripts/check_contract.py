#!/usr/bin/env python3
"""Checks openapi.yaml, the published contract, against what it describes:

1. it is valid OpenAPI 3.1 (openapi-spec-validator);
2. it has exactly the routes of template.yaml (each HttpApi event's Method and Path), no more, no less;
3. the operator routes (Auth AWS_IAM in the template) and only they require the `awsIam` scheme;
4. its error-code enum (`components.schemas.ErrorCode`) is the README's list of error codes (the table
   under "## Error codes"), and, where shared/src/http/code.rs defines `enum ErrorCode`, the strings of its
   `as_str`.

Prints one line per problem and exits 1 when there is any, else prints a summary and exits 0.

Usage: check_contract.py [--contract openapi.yaml] [--template template.yaml] [--readme README.md]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cfn_template  # noqa: E402
import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def load_contract(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def validity(spec: dict) -> list[str]:
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    if not str(spec.get("openapi", "")).startswith("3.1"):
        return [f"openapi is {spec.get('openapi')!r}, not 3.1.x"]
    try:
        validate(spec)
    except OpenAPIValidationError as e:
        return [f"not valid OpenAPI 3.1: {e.message}"]
    return []


def contract_routes(spec: dict) -> dict[str, dict]:
    """'METHOD /path' -> the operation."""
    out = {}
    for path, item in (spec.get("paths") or {}).items():
        for method in METHODS:
            if method in (item or {}):
                out[f"{method.upper()} {path}"] = item[method]
    return out


def routes(spec: dict, template: dict) -> list[str]:
    problems = []
    ours = contract_routes(spec)
    theirs = {r.route_key: r for r in cfn_template.routes(template)}
    for key in sorted(set(theirs) - set(ours)):
        problems.append(f"route {key} ({theirs[key].function}) is in template.yaml but not in the contract")
    for key in sorted(set(ours) - set(theirs)):
        problems.append(f"route {key} is in the contract but not in template.yaml")
    default_security = spec.get("security") or []
    for key in sorted(set(ours) & set(theirs)):
        schemes = {name for req in (ours[key].get("security", default_security) or []) for name in req}
        iam = theirs[key].auth == "AWS_IAM"
        if iam and schemes != {"awsIam"}:
            problems.append(f"route {key} is AWS_IAM in template.yaml; the contract says security {sorted(schemes)}")
        if not iam and "awsIam" in schemes:
            problems.append(f"route {key} is not AWS_IAM in template.yaml but the contract requires awsIam")
    return problems


def readme_codes(readme: str) -> list[str]:
    """The codes of the README's "## Error codes" table (first column, in backticks), in order."""
    m = re.search(r"^## Error codes\s*$(.*?)(?=^## |\Z)", readme, re.M | re.S)
    if not m:
        return []
    return re.findall(r"^\|\s*`([a-z_]+)`\s*\|", m.group(1), re.M)


def rust_codes(source: str) -> list[str] | None:
    """The strings of `ErrorCode::as_str` in shared/src/http/code.rs, or None when there is no such enum."""
    if not re.search(r"pub enum ErrorCode\b", source):
        return None
    m = re.search(r"fn as_str\(\s*(?:&)?self\s*\)[^{]*\{(.*?)\n    \}", source, re.S)
    if not m:
        return None
    return re.findall(r'=>\s*"([a-z_]+)"', m.group(1))


def codes(spec: dict, readme: str, rust: str | None) -> list[str]:
    problems = []
    enum = (((spec.get("components") or {}).get("schemas") or {}).get("ErrorCode") or {}).get("enum") or []
    if not enum:
        return ["components.schemas.ErrorCode has no enum"]
    if len(set(enum)) != len(enum):
        problems.append("the ErrorCode enum lists a code twice")
    listed = readme_codes(readme)
    if not listed:
        problems.append('README.md has no "## Error codes" table')
    elif set(listed) != set(enum):
        problems.append(f"README error codes differ from the contract: only in README {sorted(set(listed) - set(enum))}, "
                        f"only in the contract {sorted(set(enum) - set(listed))}")
    in_rust = rust_codes(rust) if rust is not None else None
    if in_rust is not None and set(in_rust) != set(enum):
        problems.append(f"shared/src/http/code.rs ErrorCode differs from the contract: only in Rust "
                        f"{sorted(set(in_rust) - set(enum))}, only in the contract {sorted(set(enum) - set(in_rust))}")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--contract", default=str(ROOT / "openapi.yaml"))
    ap.add_argument("--template", default=str(cfn_template.DEFAULT_TEMPLATE))
    ap.add_argument("--readme", default=str(ROOT / "README.md"))
    ap.add_argument("--rust", default=str(ROOT / "shared" / "src" / "http" / "code.rs"))
    args = ap.parse_args(argv)
    spec = load_contract(args.contract)
    template = cfn_template.load(args.template)
    readme = Path(args.readme).read_text(encoding="utf-8")
    rust = Path(args.rust).read_text(encoding="utf-8") if Path(args.rust).is_file() else None
    problems = validity(spec) + routes(spec, template) + codes(spec, readme, rust)
    for p in problems:
        print(f"check_contract: {p}", file=sys.stderr)
    if not problems:
        n_codes = len(spec["components"]["schemas"]["ErrorCode"]["enum"])
        print(f"check_contract: {args.contract}: valid OpenAPI {spec['openapi']}, {len(contract_routes(spec))} "
              f"routes = template.yaml's, {n_codes} error codes = README's", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
