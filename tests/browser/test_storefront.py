"""The storefront kit in a real browser: Debian's Chromium (headless, driven by Playwright) on the demo
storefront, against the local stack (the real function binaries behind scripts/gateway.py, DynamoDB
Local, moto). What the tracker and the widget did is read back from DynamoDB, never from the page.

Run by scripts/browser_test.sh, which starts the stack, installs a tenant, seeds its popularity and
sets: AFFINITY_API_URL, AFFINITY_SITE_ID, AFFINITY_API_KEY, AFFINITY_GATEWAY_LOG, the stack's
AWS_ENDPOINT_URL_DYNAMODB and table names. CHROMIUM (default /usr/bin/chromium).

Between the browser and the API sits a recording proxy on loopback (its own origin, so CORS is real):
it keeps every request exactly as Chromium sent it (method, headers, body) and the API's answer, and
can fail a request on purpose. (Playwright's own request events do not see `keepalive` fetches.)

Two server fields are still being added by others: `recommendation_id` on events (the event schema)
and in recommendation answers. Assertions that need them are skipped, with a message naming what is
missing, only while the server lacks the field, which each test detects from the server's answers.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import threading
import subprocess
import sys
import time
import unittest
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import boto3
from boto3.dynamodb.conditions import Key
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
API = os.environ.get("AFFINITY_API_URL", "").rstrip("/")
SITE = os.environ.get("AFFINITY_SITE_ID", "")
API_KEY = os.environ.get("AFFINITY_API_KEY", "")
GATEWAY_LOG = os.environ.get("AFFINITY_GATEWAY_LOG", "")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
GPC_INIT = "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', {get: () => true});"

# Request headers a page may set without a preflight (Fetch standard, CORS-safelisted request-header)...
SAFELISTED = {"accept", "accept-language", "content-language", "content-type"}
# ...and the ones the browser sets itself (forbidden request-headers, client hints, fetch metadata).
BROWSER_HEADERS = {"host", "connection", "content-length", "accept-encoding", "origin", "referer", "user-agent",
                   "priority", "pragma", "cache-control", "dnt"}

state: dict = {}


class Recorder(BaseHTTPRequestHandler):
    """Forwards each request to the API unchanged and records it; `state["faults"]` fails event POSTs on
    purpose, in order: "503" answers 503 without forwarding, "drop" forwards (so the API stores the
    events) and then resets the connection instead of answering."""

    protocol_version = "HTTP/1.1"
    HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "date", "server"}

    def log_message(self, *args):
        pass

    def _any(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        entry = {"method": self.command, "path": urlsplit(self.path).path, "url": self.path,
                 "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body.decode() or None}
        state["log"].append(entry)
        fault = None
        if self.command == "POST" and entry["path"].endswith("/events") and state["faults"]:
            fault = state["faults"].pop(0)
        if fault == "503":
            out = b'{"error":{"code":"unavailable","message":"not_stored: injected by the test"}}'
            entry["status"] = 503
            self.send_response(503)
            self.send_header("content-type", "application/json")
            self.send_header("access-control-allow-origin", "*")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            return
        target = urlsplit(API)
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in self.HOP}
        conn.request(self.command, self.path, body=body or None, headers=headers)
        resp = conn.getresponse()
        out = resp.read()
        conn.close()
        entry["status"] = resp.status
        try:
            entry["answer"] = json.loads(out)
        except ValueError:
            entry["answer"] = None
        if fault == "drop":
            entry["dropped"] = True
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in self.HOP:
                self.send_header(k, v)
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_OPTIONS = do_HEAD = _any

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass  # the connection a "drop" fault reset


class QuietServer(ThreadingHTTPServer):
    """The recording proxy's server: a browser closing a connection as its page goes away is normal."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def setUpModule():  # noqa: N802 (unittest's name)
    missing = [n for n in ("AFFINITY_API_URL", "AFFINITY_SITE_ID", "AFFINITY_API_KEY", "EVENTS_TABLE",
                           "AWS_ENDPOINT_URL_DYNAMODB") if not os.environ.get(n)]
    if missing:
        raise RuntimeError(f"run through scripts/browser_test.sh: {', '.join(missing)} not set")
    state["log"] = []
    state["faults"] = []
    proxy = QuietServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    state["proxy"] = proxy
    state["proxy_url"] = f"http://127.0.0.1:{proxy.server_address[1]}"
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "serve_storefront.py"), "--site", SITE, "--api", state["proxy_url"]],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = server.stdout.readline()
    m = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
    if not m:
        server.kill()
        raise RuntimeError(f"storefront server did not start: {line!r}")
    state["server"] = server
    state["shop"] = m.group(1)
    state["pw"] = sync_playwright().start()
    state["browser"] = state["pw"].chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    state["events"] = boto3.resource("dynamodb").Table(os.environ["EVENTS_TABLE"])


def tearDownModule():  # noqa: N802
    if "browser" in state:
        state["browser"].close()
    if "pw" in state:
        state["pw"].stop()
    if "proxy" in state:
        state["proxy"].shutdown()
    if "server" in state:
        state["server"].terminate()
        state["server"].wait(10)


def wait_for(fn, timeout=15.0, every=0.25):
    """Polls fn until it returns a truthy value; returns the last value (falsy on time-out)."""
    deadline = time.monotonic() + timeout
    value = fn()
    while not value and time.monotonic() < deadline:
        time.sleep(every)
        value = fn()
    return value


def stored(shopper_id: str) -> list[dict]:
    """The events DynamoDB holds for a shopper of the test site."""
    resp = state["events"].query(KeyConditionExpression=Key("pk").eq(f"{SITE}#{shopper_id}"), ConsistentRead=True)
    return resp["Items"]


def api(method: str, path: str, body=None, key: str | None = API_KEY) -> tuple[int, dict]:
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = "Bearer " + key
    req = urllib.request.Request(API + path, method=method, headers=headers,
                                 data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def server_validates_event_recommendation_id() -> bool:
    """True when ingest knows the `recommendation_id` field: it then refuses a malformed one by name."""
    status, answer = api("POST", f"/v1/sites/{SITE}/events", {"events": [{
        "type": "click", "shopper_id": str(uuid.uuid4()), "product": {"id": "probe"},
        "recommendation_id": "not a valid id!" + "x" * 64}]}, key=None)
    return status == 200 and any(r.get("field") == "recommendation_id" for r in answer.get("rejected", []))


class Session:
    """A fresh browser context (its own cookies and storage) with every API request and answer recorded."""

    def __init__(self, gpc: bool = False):
        kwargs = {"extra_http_headers": {"Sec-GPC": "1"}} if gpc else {}
        self.context = state["browser"].new_context(**kwargs)
        if gpc:
            self.context.add_init_script(GPC_INIT)
        self.start = len(state["log"])
        self.page = self.context.new_page()

    @property
    def requests(self) -> list[dict]:
        """What this session's browser sent to the API (through the recording proxy)."""
        return state["log"][self.start:]

    def answers(self) -> list[dict]:
        """The API's answers to the event POSTs that reached the browser."""
        return [r for r in self.requests if r["method"] == "POST" and r.get("answer") and not r.get("dropped")]

    def sent_events(self) -> list[dict]:
        """Each distinct event sent (by event_id, first sending): a page resends what it could not
        confirm, with the same id."""
        out = {}
        for r in self.requests:
            if r["method"] == "POST" and r["body"]:
                for e in json.loads(r["body"])["events"]:
                    out.setdefault(e.get("event_id"), e)
        return list(out.values())

    def goto(self, path: str):
        self.page.goto(state["shop"] + "/" + path)
        self.page.wait_for_function("window.affinity && !Array.isArray(window.affinity) && affinity.tracker()")

    def shopper(self) -> str:
        return self.page.evaluate("affinity.tracker().shopperId()")

    def close(self):
        self.context.close()


def kinds(events) -> list[tuple]:
    """(type, product id or query) of each event, sorted: what a test compares."""
    out = []
    for e in events:
        what = e.get("query") or (e.get("product") or {}).get("id") or ",".join(i["id"] for i in e.get("items", []))
        out.append((e["type"], what))
    return sorted(out)


class StorefrontTest(unittest.TestCase):
    def setUp(self):
        self.s = Session()

    def tearDown(self):
        self.s.close()

    def test_browsing_the_demo_store_stores_exactly_the_expected_events(self):
        s = self.s
        s.goto("index.html")
        s.page.fill("input[name=q]", "samsung smartphone")
        s.page.press("input[name=q]", "Enter")
        s.page.wait_for_selector("#products a")
        first = s.page.get_attribute("#products a", "data-product-id")
        s.page.click("#products a")  # a click, then the product page's view, as the page unloads
        s.page.wait_for_selector("#add-to-cart")
        s.page.click("#add-to-cart")
        s.goto("index.html")
        second = s.page.get_attribute("#products li:nth-child(2) a", "data-product-id")
        s.goto(f"product.html?id={second}")
        s.page.click("#add-to-cart")
        s.goto("cart.html")
        s.page.click(f"#cart li[data-product-id='{second}'] .remove")
        s.page.click("#place-order")
        s.page.wait_for_selector("#thanks:not([hidden])")
        shopper = s.shopper()
        expected = sorted([("search", "samsung smartphone"), ("click", first), ("view", first), ("cart_add", first),
                           ("view", second), ("cart_add", second), ("cart_remove", second), ("purchase", first)])
        items = wait_for(lambda: (lambda got: got if len(got) >= len(expected) else None)(stored(shopper)))
        self.assertEqual(kinds(items or stored(shopper)), expected)
        items = stored(shopper)
        # What DynamoDB holds is what the browser sent: same ids, one shopper, one session, its own fields.
        sent = {e["event_id"]: e for e in s.sent_events()}
        self.assertEqual({i["event_id"] for i in items} - set(sent), set())
        self.assertEqual({i["shopper_id"] for i in items}, {shopper})
        self.assertEqual(len({i["session_id"] for i in items}), 1)
        self.assertGreaterEqual(len(shopper), 16)
        purchase = next(i for i in items if i["type"] == "purchase")
        self.assertEqual([(line["id"], int(line["quantity"])) for line in purchase["items"]], [(first, 1)])
        self.assertEqual(purchase["currency"], "USD")
        cart_remove = next(i for i in items if i["type"] == "cart_remove")
        self.assertEqual([line["id"] for line in cart_remove["cart"]], [first])
        view = next(i for i in items if i["type"] == "view" and i["product"]["id"] == first)
        self.assertEqual(view["product"]["category"], "electronics.smartphone")
        self.assertEqual(view["product"]["brand"], "samsung")

    def test_no_cors_preflight_is_sent(self):
        s = self.s
        start = os.path.getsize(GATEWAY_LOG) if GATEWAY_LOG else 0
        s.goto("index.html")
        s.goto(f"product.html?id={self._popular_product()}")
        s.page.wait_for_selector("affinity-recommendations li", timeout=15000)
        shopper = s.shopper()
        self.assertTrue(wait_for(lambda: stored(shopper)), "the view was not stored")
        methods = sorted({r["method"] for r in s.requests})
        self.assertEqual(methods, ["GET", "POST"])  # no OPTIONS reached the network
        for r in s.requests:
            if r["method"] == "POST":
                self.assertTrue(r["headers"].get("content-type", "").startswith("text/plain"), r["headers"])
            # Every header is CORS-safelisted or one the browser itself controls: nothing a preflight guards.
            for h in r["headers"]:
                self.assertTrue(h in SAFELISTED or h in BROWSER_HEADERS or h.startswith("sec-"), f"{r['method']}: {h}")
        if GATEWAY_LOG:
            with open(GATEWAY_LOG) as f:
                f.seek(start)
                log = f.read()
            self.assertIn("POST /v1/sites/", log)
            self.assertNotIn("OPTIONS ", log)

    def test_an_event_fired_just_before_navigating_away_arrives(self):
        s = self.s
        s.goto("index.html")
        shopper = s.shopper()
        # Well inside the 300 ms batch window, and to a page without the tracker: only the pagehide flush
        # (fetch keepalive) can deliver it.
        s.page.evaluate("affinity.push(['search', 'last words before leaving']); location.href = 'about:blank'")
        s.page.wait_for_url("about:blank")
        items = wait_for(lambda: stored(shopper))
        self.assertEqual(kinds(items), [("search", "last words before leaving")])

    def test_a_failed_request_is_retried_with_the_same_event_id_and_stored_once(self):
        s = self.s
        # First a 503 (nothing stored), then a request the API stores but whose answer never comes back.
        state["faults"][:] = ["503", "drop"]
        s.goto(f"product.html?id={self._popular_product()}")
        shopper = s.shopper()
        posts = lambda: [r for r in s.requests if r["method"] == "POST" and r["path"].endswith("/events")]
        self.assertTrue(wait_for(lambda: len(posts()) >= 3 and "answer" in posts()[2], timeout=20),
                        f"{len(posts())} attempts")
        state["faults"].clear()
        attempts = [[e["event_id"] for e in json.loads(r["body"])["events"] if e["type"] == "view"] for r in posts()[:3]]
        self.assertEqual(len(attempts[0]), 1)
        self.assertEqual(attempts[0], attempts[1])
        self.assertEqual(attempts[1], attempts[2])
        self.assertEqual([r["status"] for r in posts()[:2]], [503, 200])
        self.assertTrue(posts()[1].get("dropped"))
        # The widget's impressions may ride in the same requests: count by event id.
        ids = lambda r: [e["event_id"] for e in json.loads(r["body"])["events"]]
        second, third = posts()[1], posts()[2]
        self.assertEqual((second["answer"]["accepted"], second["answer"]["duplicates"]),
                         (len(ids(second)), 0))  # stored the first time it arrived...
        again = [i for i in ids(third) if i in ids(second)]
        self.assertIn(attempts[0][0], again)
        self.assertEqual((third["answer"]["accepted"], third["answer"]["duplicates"]),
                         (len(ids(third)) - len(again), len(again)))  # ...and recognised the second time
        views = [i for i in stored(shopper) if i["type"] == "view"]
        self.assertEqual([i["event_id"] for i in views], attempts[0])

    def test_events_made_offline_arrive_after_reconnecting(self):
        s = self.s
        s.goto("index.html")
        shopper = s.shopper()
        s.context.set_offline(True)
        s.page.evaluate("affinity.push(['search', 'offline one']); affinity.push(['search', 'offline two'])")
        time.sleep(1.5)
        self.assertEqual([e for e in stored(shopper) if e["type"] == "search"], [])
        queued = json.loads(s.page.evaluate("localStorage.getItem('_affinity_queue')"))
        self.assertEqual(sorted(e["query"] for e in queued if e["type"] == "search"), ["offline one", "offline two"])
        self.assertEqual([r for r in s.requests if r["body"] and "offline" in r["body"]], [])
        s.context.set_offline(False)
        # Only the searches: the widget on the page records its impressions too.
        searches = lambda: [e for e in stored(shopper) if e["type"] == "search"]
        items = wait_for(lambda: (lambda got: got if len(got) == 2 else None)(searches()))
        self.assertEqual(kinds(items or searches()), [("search", "offline one"), ("search", "offline two")])
        self.assertTrue(wait_for(lambda: s.page.evaluate("localStorage.getItem('_affinity_queue')") == "[]"))

    def test_without_gpc_an_email_reaches_the_messaging_lookup(self):
        # The control of the GPC test below: the same steps do carry the email when GPC is off.
        email = f"control.{uuid.uuid4().hex[:8]}@example.com"
        shopper = self._checkout_with_email(self.s, email)
        self.assertTrue(any("email" in e for e in self.s.sent_events()))
        self.assertTrue(wait_for(lambda: self._lookup(email)), "the email was not linked to the shopper")
        self.assertEqual(self._lookup(email)["shopper_id"], "g:" + shopper)

    def test_gpc_keeps_the_email_out(self):
        gpc = Session(gpc=True)
        try:
            email = f"gpc.{uuid.uuid4().hex[:8]}@example.com"
            shopper = self._checkout_with_email(gpc, email)
            self.assertTrue(gpc.page.evaluate("navigator.globalPrivacyControl"))
            self.assertEqual([e for e in gpc.sent_events() if set(e) & {"email", "phone"}], [])
            self.assertIsNone(self._lookup(email))
            # The server's rule holds too: an email sent anyway under Sec-GPC: 1 is dropped on arrival.
            # (Playwright adds the emulated header to the page's ordinary requests, not to keepalive ones.)
            answer = gpc.page.evaluate("""async ([url, shopper, email]) => (await fetch(url, {method: 'POST',
                body: JSON.stringify({events: [{type: 'search', query: 'gpc', shopper_id: shopper, email}]})})).json()""",
                                       [f"{state['proxy_url']}/v1/sites/{SITE}/events", shopper, email])
            self.assertEqual((answer["accepted"], answer["pii_dropped"]), (1, 1))
            direct = [r for r in gpc.requests if r["body"] and email in r["body"]]
            self.assertEqual([r["headers"].get("sec-gpc") for r in direct], ["1"])
            self.assertIsNone(self._lookup(email))
        finally:
            gpc.close()

    def test_the_widget_renders_personalized_items_and_its_clicks_carry_the_recommendation_id(self):
        s = self.s
        product = self._popular_product()
        s.goto(f"product.html?id={product}")
        shopper = s.shopper()
        self.assertTrue(wait_for(lambda: stored(shopper)))
        with s.page.expect_response(lambda r: "/recommendations" in r.url) as resp:
            s.goto("index.html")
        answer = resp.value.json()
        s.page.wait_for_selector("affinity-recommendations li")
        cards = s.page.query_selector_all("affinity-recommendations li")
        self.assertEqual(len(cards), len(answer["items"]))
        self.assertGreater(len(cards), 0)
        # Personalized by what this browser viewed (issue 11's session lists), not the store's trend.
        self.assertIn(("viewed_with", product), {(i["reason"], i.get("because_of")) for i in answer["items"]},
                      answer["items"])
        first = answer["items"][0]
        self.assertEqual(cards[0].get_attribute("data-product-id"), first["product_id"])
        self.assertEqual(s.page.get_attribute("affinity-recommendations ul", "role"), "list")
        self.assertEqual(s.page.text_content("affinity-recommendations h2"), "Recommended for you")
        with s.page.expect_navigation():
            cards[0].click()
        s.page.wait_for_selector("#add-to-cart")
        clicks = [e for e in s.sent_events() if e["type"] == "click"]
        self.assertEqual([c["product"]["id"] for c in clicks], [first["product_id"]])
        click_items = wait_for(lambda: [i for i in stored(shopper) if i["type"] == "click"])
        self.assertEqual([i["event_id"] for i in click_items], [clicks[0]["event_id"]])
        rec_id = answer.get("recommendation_id")
        if rec_id is None:
            self.skipTest("the recommendation answer has no recommendation_id yet (helper H4 adds it); the "
                          "widget's click was stored without one")
        self.assertEqual(clicks[0].get("recommendation_id"), rec_id)
        if not server_validates_event_recommendation_id():
            self.skipTest("ingest does not know the event field recommendation_id yet (the lead adds it)")
        self.assertEqual(click_items[0].get("recommendation_id"), rec_id)

    def test_a_click_s_recommendation_id_reaches_storage(self):
        # The tracker half of attribution, whatever the recommend function answers: a click that names
        # its recommendation keeps the id in DynamoDB.
        if not server_validates_event_recommendation_id():
            self.skipTest("ingest does not know the event field recommendation_id yet (the lead adds it)")
        s = self.s
        s.goto("index.html")
        shopper = s.shopper()
        rec = "rec-" + uuid.uuid4().hex
        s.page.evaluate("rec => affinity.push(['click', {id: '1004856', category: 'electronics.smartphone'}, "
                        "{recommendation_id: rec}])", rec)
        clicks = wait_for(lambda: [i for i in stored(shopper) if i["type"] == "click"])
        self.assertEqual([c.get("recommendation_id") for c in clicks], [rec])

    def test_the_widget_reports_an_impression_after_a_second_in_view(self):
        s = self.s
        # Every product any recommendation answer gave this page: the widget may render again when the
        # stream's lists arrive, and an impression of the first rendering is still a true one.
        answered = set()

        def keep(resp):
            if "/recommendations" in resp.url and resp.ok:
                try:
                    answered.update(i["product_id"] for i in resp.json().get("items", []))
                except Exception:  # a body not yet readable: the next answer counts
                    pass

        s.page.on("response", keep)
        s.goto(f"product.html?id={self._popular_product()}")
        s.page.wait_for_selector("affinity-recommendations li")
        s.page.evaluate("document.querySelector('affinity-recommendations').scrollIntoView()")
        self.assertEqual([e for e in s.sent_events() if e["type"] == "impression"], [])
        impressions = wait_for(lambda: [e for e in s.sent_events() if e["type"] == "impression"], timeout=6)
        self.assertTrue(impressions, "no impression was sent")
        shown = s.page.eval_on_selector_all("affinity-recommendations li", "els => els.map(e => e.dataset.productId)")
        self.assertLessEqual({e["product"]["id"] for e in impressions}, set(shown) | answered)
        self.assertTrue(set(shown) <= answered, (shown, answered))
        answer = wait_for(lambda: next((a["answer"] for a in s.answers() if a["answer"].get("rejected")), None),
                          timeout=3)
        if answer and any(r["field"] == "type" for r in answer["rejected"]):
            self.skipTest("ingest has no `impression` event type yet: the widget's impressions are sent and refused")
        shopper = s.shopper()
        kept = wait_for(lambda: [i for i in stored(shopper) if i["type"] == "impression"])
        self.assertEqual(sorted(i["event_id"] for i in kept), sorted(e["event_id"] for e in impressions))

    def test_a_product_name_with_markup_is_shown_as_text(self):
        s = self.s
        name = '<img src=x onerror="window.__xss=1"><b>Bold</b> & "quoted"'

        def catalog(route):
            body = json.loads(route.fetch().text())
            for pid in body["by_id"]:
                body["by_id"][pid]["name"] = name
                body["by_id"][pid]["url"] = "javascript:window.__xss=2"
            route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

        s.context.route("**/catalog.json", catalog)
        s.goto("index.html")
        s.page.wait_for_selector("affinity-recommendations li")
        names = s.page.eval_on_selector_all("affinity-recommendations .affinity-name", "els => els.map(e => e.textContent)")
        self.assertTrue(names)
        self.assertEqual(set(names), {name})
        self.assertEqual(s.page.eval_on_selector_all("affinity-recommendations li img, affinity-recommendations li b",
                                                     "els => els.length"), 0)
        self.assertEqual(s.page.eval_on_selector_all("affinity-recommendations a[href^=javascript]",
                                                     "els => els.length"), 0)
        self.assertIsNone(s.page.evaluate("window.__xss"))

    def test_with_the_consent_gate_nothing_is_stored_or_sent_before_consent(self):
        s = self.s
        s.context.route("**/config.js", lambda route: route.fulfill(
            status=200, content_type="text/javascript",
            body=f"window.AFFINITY_DEMO = {json.dumps({'site': SITE, 'endpoint': API, 'requireConsent': True})};"))
        s.goto(f"product.html?id={self._popular_product()}")
        time.sleep(1)
        self.assertEqual([r for r in s.requests if r["method"] == "POST"], [])
        self.assertEqual(s.context.cookies(), [])
        self.assertIsNone(s.page.evaluate("localStorage.getItem('_affinity_guest')"))
        s.page.evaluate("affinity.push(['consent', true])")
        shopper = s.shopper()
        items = wait_for(lambda: stored(shopper))
        self.assertEqual([i["type"] for i in items], ["view"])

    def test_the_guest_id_is_a_first_party_cookie_mirrored_to_local_storage(self):
        s = self.s
        s.goto("index.html")
        shopper = s.shopper()
        self.assertRegex(shopper, r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        cookie = next(c for c in s.context.cookies() if c["name"] == "_affinity_guest")
        self.assertEqual((cookie["value"], cookie["sameSite"], cookie["path"]), (shopper, "Lax", "/"))
        months = (cookie["expires"] - time.time()) / (30.4 * 86400)
        self.assertTrue(12.5 < months < 13.5, months)
        # Safari drops script-set cookies after 7 days: the localStorage copy brings the same id back.
        s.context.clear_cookies()
        s.goto("index.html")
        self.assertEqual(s.shopper(), shopper)
        self.assertEqual(next(c["value"] for c in s.context.cookies() if c["name"] == "_affinity_guest"), shopper)

    def test_a_logged_in_customer_s_identity_token_is_passed_through_as_the_page_gave_it(self):
        s = self.s
        # The page (a theme, the merchant's server) says who is logged in, before the script has loaded.
        s.context.add_init_script("window.affinity = [['identify', {customerId: '77001', identityToken: 'v1.test-token'}]];")
        s.goto(f"product.html?id={self._popular_product()}")
        s.page.wait_for_selector("affinity-recommendations li")
        shopper = s.shopper()
        gets = [r for r in s.requests if r["method"] == "GET" and r["path"].endswith("/recommendations")]
        self.assertTrue(gets)
        self.assertTrue(all("identity_token=v1.test-token" in r.get("url", r["path"]) for r in gets),
                        [r.get("url") for r in gets])
        view = wait_for(lambda: next((e for e in s.sent_events() if e["type"] == "view"), None))
        self.assertEqual((view["customer_id"], view["identity_token"]), ("77001", "v1.test-token"))
        self.assertTrue(wait_for(lambda: stored(shopper)))

    # --- helpers -------------------------------------------------------------------------------------
    def _popular_product(self) -> str:
        """The demo catalog's most popular Samsung smartphone (in the seeded popularity too)."""
        if "popular" not in state:
            with urllib.request.urlopen(state["shop"] + "/catalog.json") as r:
                cat = json.load(r)
            state["popular"] = next(p for p in cat["products"] if cat["by_id"][p].get("category") ==
                                    "electronics.smartphone" and cat["by_id"][p].get("brand") == "samsung")
        return state["popular"]

    def _checkout_with_email(self, s: Session, email: str) -> str:
        s.goto(f"product.html?id={self._popular_product()}")
        s.page.click("#add-to-cart")
        s.goto("cart.html")
        s.page.fill("#email", email)
        s.page.click("#place-order")
        s.page.wait_for_selector("#thanks:not([hidden])")
        shopper = s.shopper()
        self.assertTrue(wait_for(lambda: any(i["type"] == "purchase" for i in stored(shopper))))
        return shopper

    def _lookup(self, email: str):
        status, answer = api("POST", f"/v1/sites/{SITE}/recommendations/lookup", {"shoppers": [{"email": email}],
                                                                                    "limit": 1})
        self.assertEqual(status, 200, answer)
        hit = answer["results"][0]
        return hit if hit.get("matched") else None


if __name__ == "__main__":
    unittest.main(verbosity=2)
