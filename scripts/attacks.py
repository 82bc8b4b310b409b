#!/usr/bin/env python3
"""The attacker of issue 10, over HTTP against the running local stack (the real function binaries behind
scripts/gateway.py, DynamoDB Local, moto): what a browser that knows only a site id can try, and what
it gets. Each attack runs on a throw-away store of its own (`affinity-admin create-demo-tenant`, --admin
names the binary; such a store has messaging consent, an API key and an identity secret).

  claimed customer id   a view with the victim's customer id and no identity token: accepted, counted in
                        `identity_unverified`, the attacker's answer is what the same view without the
                        claim gets, the victim's profile is not touched
  claimed email, phone  the victim's address typed into the attacker's browser: counted, no alias made,
                        the answer is the unclaimed one, the merchant's lookup still finds the victim
  short guest id        a 15-character `shopper_id`: refused alone (field `shopper_id`), its good
                        neighbour kept; a request of short ids alone accepts nothing
  identity tokens       forged, expired and other-site tokens prove nothing (counted, no link; the
                        victim's own guest id with one gets only the trend, with the valid token the
                        victim's private category: the control)
  profile bloat         300 distinct cart lines with long multi-byte names to one shopper: every request
                        200, its next event 200, the stored profile item under 72 KiB (README "Limits")
  event without id      an event with an email and no event_id: neither the address nor its unkeyed
                        SHA-256 (hex or base64) is in any table
  second device         the positive case: a customer who logs in on a second device with a valid token
                        gets recommendations from the whole history (and without the token, only its own)

Prints one line per attack with its answer, then "attacks: N passed, M failed"; exits 1 if any failed.
Needs the stack's environment (source .stack/env) and a stack started by scripts/run_local.sh.

Usage: attacks.py --admin PATH
"""

from __future__ import annotations

import os
import sys

_VENV = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, ".tools", "venv")
if os.path.exists(os.path.join(_VENV, "bin", "python")) and os.path.realpath(sys.prefix) != os.path.realpath(_VENV):
    os.execv(os.path.join(_VENV, "bin", "python"), [os.path.join(_VENV, "bin", "python"), *sys.argv])

import argparse
import base64
import hashlib
import hmac
import json
import secrets
import subprocess
import time
import uuid

import boto3

from local_api import Checks, call

SECRET_CATEGORY = "health.intimate.pregnancy_test"
# README "Limits": one profile item in DynamoDB is at most 72 KiB (MAX_PROFILE_ITEM_BYTES).
MAX_PROFILE_ITEM_BYTES = 72 * 1024


def guest() -> str:
    """A guest id as the storefront kit makes one (a UUID: 36 characters)."""
    return str(uuid.uuid4())


def sign(secret_hex: str, site: str, customer: str, expires_s: int) -> str:
    """An identity token (README "Identity tokens"): HMAC-SHA256 under the identity secret's hex text."""
    payload = f"v1.{site}.{customer}.{expires_s}.."
    return payload + "." + hmac.new(secret_hex.encode(), payload.encode(), hashlib.sha256).hexdigest()


class Store:
    """A throw-away store: site id, tenant id, API key, identity secret."""

    def __init__(self, admin: str, prefix: str):
        site = f"{prefix}-{secrets.token_hex(4)}"
        made = subprocess.run([admin, "create-demo-tenant", site], capture_output=True, text=True, check=True)
        out = json.loads(made.stdout)
        self.site, self.tenant_id = site, out["tenant_id"]
        self.key, self.secret = out["api_key"], out["identity_secret"]
        # Messaging consent, as the merchant grants it: emails and phones are then hashed and kept.
        status, answer = call("PUT", f"/v1/sites/{site}/messaging-consent", {"granted": True}, key=self.key)
        if status != 200:
            raise RuntimeError(f"messaging consent: {status} {answer}")

    def live(self, events: list) -> tuple[int, dict]:
        return call("POST", f"/v1/sites/{self.site}/events", {"events": events})

    def imported(self, events: list) -> tuple[int, dict]:
        return call("POST", f"/v1/sites/{self.site}/events/import", {"events": events}, key=self.key)

    def recs(self, shopper: str, query: str = "") -> tuple[int, dict]:
        return call("GET", f"/v1/sites/{self.site}/shoppers/{shopper}/recommendations{query}")

    def lookup(self, who: dict) -> tuple[int, dict]:
        return call("POST", f"/v1/sites/{self.site}/recommendations/lookup", {"shoppers": [who]}, key=self.key)

    def profile_item(self, key: str) -> dict | None:
        ddb = boto3.client("dynamodb")
        got = ddb.query(TableName=os.environ["PROFILES_TABLE"], ConsistentRead=True,
                        KeyConditionExpression="pk = :p",
                        ExpressionAttributeValues={":p": {"S": f"{self.site}#{key}"}})
        return got["Items"][0] if got["Items"] else None


def items_of(answer: dict) -> list:
    return [(i.get("product_id"), i.get("category"), i.get("reason")) for i in answer.get("items", [])]


def personal(answer: dict) -> bool:
    """Whether an answer gives any item for a reason of the shopper's own (anything but the trend)."""
    return any(i[2] != "trending" for i in items_of(answer))


def attribute_bytes(v: dict) -> int:
    """An attribute value's size by DynamoDB's rules (strings and binaries their bytes; numbers about a
    byte per two digits plus one; a map or list 3 bytes plus a byte per element plus its elements)."""
    (t, x), = v.items()
    if t == "S":
        return len(x.encode())
    if t == "B":
        return len(x)
    if t == "N":
        return len(x.lstrip("-").replace(".", "")) // 2 + 2
    if t in ("BOOL", "NULL"):
        return 1
    if t in ("SS", "NS", "BS"):
        return sum(len(e.encode()) if isinstance(e, str) else len(e) for e in x)
    if t == "L":
        return 3 + sum(1 + attribute_bytes(e) for e in x)
    if t == "M":
        return 3 + sum(1 + len(k.encode()) + attribute_bytes(e) for k, e in x.items())
    raise ValueError(t)


def item_bytes(item: dict) -> int:
    return sum(len(k.encode()) + attribute_bytes(v) for k, v in item.items())


VICTIM_EMAIL, VICTIM_PHONE = "jane.victim@example.com", "+14155550123"


def victim(s: Store, c: Checks) -> str:
    """Customer 77001's private purchase, imported by the merchant's server (trusted) with the address,
    from a guest id that becomes the customer's alias; returns that guest id."""
    victim_guest = guest()
    status, answer = s.imported([{"type": "purchase", "shopper_id": victim_guest, "customer_id": "77001",
                                  "email": VICTIM_EMAIL, "phone": VICTIM_PHONE,
                                  "timestamp": int(time.time() * 1000) - 60_000,
                                  "items": [{"id": "test-kit", "category": SECRET_CATEGORY, "brand": "clearblue"}]}])
    c.check("the victim's history is imported", status == 200 and answer.get("accepted") == 1, (status, answer))
    return victim_guest


def view(shopper: str, **extra) -> dict:
    return {"type": "view", "shopper_id": shopper, "product": {"id": "socks", "category": "apparel.socks"}, **extra}


def customer_events(s: Store) -> int:
    item = s.profile_item("c:77001")
    return -1 if item is None else int(item.get("event_count", {}).get("N", "-1"))


def settle(s: Store) -> None:
    """Waits (at most 20 s) until the store's trend is the same twice a second apart: the stream pump
    aggregates popularity after the events, and two answers compared must see the same trend."""
    deadline, last = time.monotonic() + 20, None
    while time.monotonic() < deadline:
        _, t = s.recs(guest(), "?type=trending&limit=20")
        now = items_of(t) if isinstance(t, dict) else None
        if now and now == last:
            return
        last = now
        time.sleep(1)


def same_as_a_stranger(s: Store, shopper: str, query: str, control: str) -> tuple[bool, dict]:
    """Whether `shopper`'s answer (with `query`) lists exactly what `control`'s does without one. The
    trend names every popular product, the victim's purchase included, so the proof is the comparison:
    an answer that read the victim's profile is personalized by it and differs."""
    settle(s)
    _, mine = s.recs(shopper, query)
    _, theirs = s.recs(control)
    return isinstance(mine, dict) and bool(mine.get("items")) and items_of(mine) == items_of(theirs), mine


def claimed(s: Store, c: Checks, what: str, claim: dict) -> None:
    """A claim in the attacker's browser beside an identical unclaimed view in a control browser."""
    before = customer_events(s)
    attacker, control = guest(), guest()
    status, answer = s.live([view(attacker, **claim)])
    s.live([view(control)])
    ok = status == 200 and answer.get("accepted") == 1 and answer.get("identity_unverified") == 1
    record = s.profile_item("g:" + attacker)
    alias = record is not None and "linked_to" in record
    same, _ = same_as_a_stranger(s, attacker, "", control)
    read = not same
    untouched = customer_events(s) == before
    line = {"attack": what, "answer": {k: answer.get(k) for k in ("accepted", "identity_unverified")},
            "alias_made": alias, "victim_read": read, "victim_profile_changed": not untouched}
    print(json.dumps(line))
    c.check(f"{what}: accepted, counted unverified, no alias, nothing read, victim untouched",
            ok and record is not None and not alias and not read and untouched and before >= 1, line)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--admin", required=True, help="the affinity-admin binary")
    args = ap.parse_args()
    c = Checks("attacks")

    # --- claimed customer id, email, phone ------------------------------------------------------------
    for what, claim in [("claimed customer id", {"customer_id": "77001"}),
                        ("claimed email", {"email": VICTIM_EMAIL}),
                        ("claimed phone", {"phone": VICTIM_PHONE})]:
        s = Store(args.admin, "atk")
        victim(s, c)
        claimed(s, c, what, claim)
        if "customer_id" not in claim:
            field = next(iter(claim))
            status, found = s.lookup(claim)
            result = (found.get("results") or [{}])[0] if isinstance(found, dict) else {}
            print(json.dumps({"attack": what, "merchant_lookup": result.get("shopper_id")}))
            c.check(f"{what}: the merchant's lookup by {field} still finds the victim",
                    status == 200 and result.get("shopper_id") == "c:77001", (status, found))

    # --- short guest id ---------------------------------------------------------------------------------
    s = Store(args.admin, "atk-short")
    short, good = "0123456789abcde", guest()
    status, answer = s.live([view(short), view(good)])
    rejected = answer.get("rejected", []) if isinstance(answer, dict) else []
    print(json.dumps({"attack": "short guest id beside a good neighbour", "status": status, "answer": answer}))
    c.check("short guest id: refused alone, naming shopper_id; the neighbour kept",
            status == 200 and answer.get("accepted") == 1 and len(rejected) == 1
            and rejected[0].get("index") == 0 and rejected[0].get("field") == "shopper_id"
            and "at least 16 characters" in rejected[0].get("reason", "")
            and s.profile_item("g:" + good) is not None and s.profile_item("g:" + short) is None, answer)
    status, answer = s.live([view("a")])
    print(json.dumps({"attack": "a one-letter guest id alone", "status": status, "answer": answer}))
    only = answer.get("rejected", []) if isinstance(answer, dict) else []
    c.check("one-letter guest id alone: nothing accepted, its rejection names shopper_id, nothing stored",
            status == 200 and answer.get("accepted") == 0 and len(only) == 1
            and only[0].get("field") == "shopper_id" and s.profile_item("g:a") is None, (status, answer))

    # --- forged, expired, other-site tokens ---------------------------------------------------------------
    s = Store(args.admin, "atk-token")
    other = Store(args.admin, "atk-other")
    victim_guest = victim(s, c)
    # Another product of the victim's private category, popular in the store: an answer that read the
    # victim's profile recommends it for that preference (reason `preferred_category`).
    s.live([{"type": "view", "shopper_id": guest(), "product": {"id": "vitamins", "category": SECRET_CATEGORY}}])
    now_s = int(time.time())
    tokens = {
        "forged token": sign("00" * 32, s.site, "77001", now_s + 3600),
        "expired token": sign(s.secret, s.site, "77001", now_s - 60),
        "other site's token": sign(other.secret, other.site, "77001", now_s + 3600),
        "other site's secret": sign(other.secret, s.site, "77001", now_s + 3600),
    }
    for what, token in tokens.items():
        claimed(s, c, what, {"customer_id": "77001", "identity_token": token})
        # The victim's own guest id (an alias of customer 77001, e.g. a stolen cookie) asking with the
        # bad token: the route follows it to the customer only when the token proves that customer.
        status, answer = s.recs(victim_guest, f"?identity_token={token}")
        c.check(f"{what}: the victim's guest id with it gets only the store's trend (no personal reason)",
                status == 200 and bool(answer.get("items")) and not personal(answer), (status, answer))
    # The check can fail: the same guest id with the customer's valid token reads the victim's profile.
    valid = sign(s.secret, s.site, "77001", now_s + 3600)
    status, answer = s.recs(victim_guest, f"?identity_token={valid}")
    print(json.dumps({"attack": "control: the victim's guest id with the victim's valid token",
                      "items": items_of(answer) if isinstance(answer, dict) else answer}))
    c.check("control: with the valid token the same request is personalized",
            status == 200 and personal(answer), (status, answer))

    # --- profile bloat ------------------------------------------------------------------------------------
    s = Store(args.admin, "atk-bloat")
    shopper = guest()
    long_name = "\U0001F600" * 200  # 800 bytes of 4-byte characters, past the 256-byte name bound
    statuses = []
    for batch in range(3):
        events = [{"type": "cart_add", "shopper_id": shopper, "event_id": f"add-{batch}-{n}",
                   "product": {"id": f"sku-{batch}-{n}-" + "x" * 100, "category": long_name + str(n),
                               "brand": long_name + str(batch * 100 + n)}}
                  for n in range(100)]
        statuses.append(s.live(events)[0])
    status, answer = s.live([view(shopper)])
    item = s.profile_item("g:" + shopper)
    size = item_bytes(item) if item else -1
    print(json.dumps({"attack": "profile bloat: 300 distinct cart lines, 800-byte names", "statuses": statuses,
                      "next_event": status, "profile_item_bytes": size, "bound": MAX_PROFILE_ITEM_BYTES}))
    c.check("profile bloat: every request 200, the next event 200, the item under the bound",
            statuses == [200, 200, 200] and status == 200 and answer.get("accepted") == 1
            and 0 < size < MAX_PROFILE_ITEM_BYTES, (statuses, status, size))

    # --- an event without id carrying an email ------------------------------------------------------------
    s = Store(args.admin, "atk-noid")
    email = f"no.id.{secrets.token_hex(4)}@example.com"
    status, answer = s.live([{"type": "search", "shopper_id": guest(), "query": "newsletter", "email": email}])
    digest = hashlib.sha256(email.encode()).digest()
    needles = [email, email.lower(), digest.hex(), base64.b64encode(digest).decode(),
               base64.urlsafe_b64encode(digest).decode().rstrip("=")]
    ddb = boto3.client("dynamodb")
    found, scanned = [], 0
    for table in ddb.list_tables()["TableNames"]:
        for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            for i in page["Items"]:
                scanned += 1
                text = json.dumps(i, default=lambda b: base64.b64encode(b).decode())
                found += [(table, n) for n in needles if n in text]
    print(json.dumps({"attack": "event without id carrying an email", "status": status,
                      "accepted": answer.get("accepted"), "items_scanned": scanned, "traces": found}))
    c.check("event without id: accepted; neither the address nor its unkeyed SHA-256 in any table",
            status == 200 and answer.get("accepted") == 1 and scanned > 0 and not found, found)

    # --- the positive case: a second device with a valid token ---------------------------------------------
    s = Store(args.admin, "atk-device")
    now = int(time.time() * 1000)
    crowd = []
    for i in range(8):
        g = guest()
        crowd += [{"type": "view", "shopper_id": g, "timestamp": now - 20_000 + i,
                   "product": {"id": f"k{j}", "category": "kitchen", "brand": "acme"}} for j in range(3)]
        if i < 3:
            crowd += [{"type": "view", "shopper_id": g, "timestamp": now - 19_000 + i,
                       "product": {"id": f"g{j}", "category": "garden", "brand": "leaf"}} for j in range(1, 4)]
    c.check("device: the crowd's views accepted", s.live(crowd)[0] == 200)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _, t = s.recs(guest(), "?type=trending&limit=10")
        if {"kitchen", "garden"} <= {i[1] for i in items_of(t)}:
            break
        time.sleep(0.5)
    token = sign(s.secret, s.site, "c-5150", int(time.time()) + 3600)
    laptop, phone = guest(), guest()
    who = {"customer_id": "c-5150", "identity_token": token}
    _, a = s.live([{"type": "view", "shopper_id": laptop, "product": {"id": "g1", "category": "garden",
                                                                       "brand": "leaf"}, **who},
                   {"type": "cart_add", "shopper_id": laptop, "product": {"id": "g1", "category": "garden",
                                                                           "brand": "leaf"}, **who}])
    _, b = s.live([{"type": "search", "shopper_id": phone, "query": "login", **who}])
    _, with_token = s.recs(phone, f"?limit=3&identity_token={token}")
    _, without = s.recs(phone, "?limit=3")
    line = {"attack": "second device with a valid token (positive case)",
            "unverified": (a.get("identity_unverified"), b.get("identity_unverified")),
            "with_token": items_of(with_token), "without": items_of(without)}
    print(json.dumps(line))
    first = (items_of(with_token) or [(None, None, None)])[0]
    c.check("second device: with the token the laptop's garden taste leads; without it, only the trend",
            line["unverified"] == (0, 0) and first[1:] == ("garden", "preferred_category")
            and bool(items_of(without)) and not personal(without), line)
    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
