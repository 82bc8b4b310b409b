"""Small client of a running local stack for the checks under scripts/ (standard library only).

Reads the stack's environment (`set -a; source .stack/env; set +a`): AFFINITY_API_URL, and the
tables and endpoints for the checks that count stored items (boto3, from the repo's venv).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request


def api_url() -> str:
    url = os.environ.get("AFFINITY_API_URL")
    if not url:
        sys.exit(f"{os.path.basename(sys.argv[0])}: AFFINITY_API_URL is not set: source the stack's env first")
    return url.rstrip("/")


def call(method: str, path: str, body=None, key: str | None = None, content_type: str = "application/json",
         timeout: float = 60.0) -> tuple[int, object]:
    """(status, parsed JSON answer or the text) of one request to the local API; never raises for a status."""
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": content_type} if data is not None else {}
    if key:
        headers["authorization"] = "Bearer " + key
    req = urllib.request.Request(api_url() + path, method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode("utf-8", "replace")


class Checks:
    """Named checks of one script, counted for make test's summary ("NAME: N passed, M failed")."""

    def __init__(self, name: str):
        self.name, self.passed, self.failed = name, 0, 0

    def check(self, what: str, ok: bool, detail: object = "") -> bool:
        if ok:
            self.passed += 1
            print(f"{self.name}: ok   {what}", file=sys.stderr, flush=True)
        else:
            self.failed += 1
            print(f"{self.name}: FAIL {what}: {detail}", file=sys.stderr, flush=True)
        return ok

    def finish(self) -> int:
        print(f"{self.name}: {self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed or not self.passed else 0
