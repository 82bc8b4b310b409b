#!/usr/bin/env python3
"""Runs every example of docs/EVENTS.md against the running local stack and checks what it documents.

An example is a ```sh block preceded by a line `<!-- expect: STATUS [JSON] -->`: the block runs under
bash with the stack's environment (AFFINITY_API_URL, AFFINITY_SITE, AFFINITY_API_KEY), `curl` wrapped
so that it also writes the HTTP status; the example passes when the status is STATUS and the JSON
answer contains JSON (objects: these keys with these values, recursively; lists: element by element,
same length). Also checks that the examples cover every event type of the contract (openapi.yaml's
Event.type enum) with an accepted event.

Prints one line per example and "check_events_doc: N passed, M failed"; exits 1 if any failed.

Usage: check_events_doc.py [--doc docs/EVENTS.md]
"""

from __future__ import annotations

import os
import sys

_VENV = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, ".tools", "venv")
if os.path.exists(os.path.join(_VENV, "bin", "python")) and os.path.realpath(sys.prefix) != os.path.realpath(_VENV):
    os.execv(os.path.join(_VENV, "bin", "python"), [os.path.join(_VENV, "bin", "python"), *sys.argv])

import argparse
import json
import re
import subprocess
from pathlib import Path

import yaml

from local_api import Checks

ROOT = Path(__file__).resolve().parent.parent
EXPECT = re.compile(r"^<!-- expect: (\d{3})(?: (.*))? -->$")
STATUS_MARK = "__affinity_status="


def examples(text: str) -> list[tuple[int, int, object, str]]:
    """(line, status, expected JSON or None, script) of every example, in order."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        m = EXPECT.match(line.strip())
        if not m:
            continue
        if i + 1 >= len(lines) or lines[i + 1].strip() != "```sh":
            raise ValueError(f"line {i + 1}: an expect comment must be followed by a ```sh block")
        end = next(j for j in range(i + 2, len(lines)) if lines[j].strip() == "```")
        expected = json.loads(m.group(2)) if m.group(2) else None
        out.append((i + 1, int(m.group(1)), expected, "\n".join(lines[i + 2:end])))
    return out


def contains(got, want) -> bool:
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and contains(got[k], v) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(map(contains, got, want))
    return got == want


def run(script: str) -> tuple[int | None, object]:
    """(status, answer) of one example."""
    wrapper = f"curl() {{ command curl -w '\\n{STATUS_MARK}%{{http_code}}\\n' \"$@\"; }}\nset -e\n{script}\n"
    p = subprocess.run(["bash", "-c", wrapper], capture_output=True, text=True, timeout=60, cwd=ROOT)
    out = p.stdout
    if STATUS_MARK not in out:
        return None, (p.returncode, out + p.stderr)
    body, _, tail = out.rpartition(STATUS_MARK)
    try:
        answer = json.loads(body) if body.strip() else None
    except ValueError:
        answer = body
    return int(tail.strip()[:3]), answer


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--doc", default=str(ROOT / "docs" / "EVENTS.md"))
    args = ap.parse_args()
    c = Checks("check_events_doc")
    for var in ("AFFINITY_API_URL", "AFFINITY_SITE", "AFFINITY_API_KEY"):
        if not os.environ.get(var):
            c.check(f"{var} is set (source the stack's env)", False, "unset")
            return c.finish()
    found = examples(Path(args.doc).read_text(encoding="utf-8"))
    types_ok = set()
    for line, status, expected, script in found:
        got, answer = run(script)
        ok = got == status and (expected is None or contains(answer, expected))
        c.check(f"{Path(args.doc).name}:{line}: {status}", ok, {"status": got, "answer": answer})
        if ok and isinstance(answer, dict) and answer.get("accepted"):
            types_ok |= set(re.findall(r'"type": "([a-z_]+)"', script))
    contract = yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8"))
    types = contract["components"]["schemas"]["Event"]["properties"]["type"]["enum"]
    c.check("an accepted example of every event type of openapi.yaml", set(types) <= types_ok,
            f"missing {sorted(set(types) - types_ok)}")
    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
