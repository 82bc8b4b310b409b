// The tracker's rules, on fake browser globals (timers, storage, cookies and fetch under the test's control).
// The same code runs in real Chromium in tests/browser/.
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";

let now, timers, sent, answers, cookies, storage, listeners;

function install(extra = {}) {
  now = 1_764_600_000_000;
  timers = [];
  sent = [];
  answers = [];
  cookies = {};
  storage = new Map();
  listeners = {};
  const on = (target) => (name, fn) => (listeners[target + ":" + name] = fn);
  Object.assign(globalThis, {
    window: globalThis,
    location: { protocol: "https:" },
    localStorage: { getItem: (k) => (storage.has(k) ? storage.get(k) : null), setItem: (k, v) => storage.set(k, String(v)) },
    addEventListener: on("window"),
    setTimeout: (fn, ms) => { timers.push({ fn, at: now + ms }); return timers.length; },
  });
  Object.defineProperty(globalThis, "navigator", { configurable: true, value: Object.assign({ onLine: true }, extra.navigator) });
  globalThis.document = {
    visibilityState: "visible",
    addEventListener: on("document"),
    get cookie() { return Object.entries(cookies).map(([k, v]) => k + "=" + v.value).join("; "); },
    set cookie(c) { const [kv, ...attrs] = c.split("; "); const [k, v] = kv.split("="); cookies[k] = { value: v, attrs }; },
  };
}

const fakeFetch = (url, init) => {
  sent.push({ url, init, body: JSON.parse(init.body) });
  const a = answers.shift() || 200;
  if (a === "network") return Promise.reject(new TypeError("Failed to fetch"));
  return Promise.resolve({ status: a, ok: a < 300 });
};

/** Runs due timers (and the promise callbacks they start) until time `ms` later. */
async function advance(ms) {
  const until = now + ms;
  for (;;) {
    await new Promise((r) => setImmediate(r));
    timers.sort((a, b) => a.at - b.at);
    const t = timers[0];
    if (!t || t.at > until) break;
    timers.shift();
    now = Math.max(now, t.at);
    t.fn();
  }
  now = until;
  await new Promise((r) => setImmediate(r));
}

let createTracker, boot;
beforeEach(async () => {
  install();
  ({ createTracker, boot } = await import("../src/tracker.js"));
  Date.now = () => now;
});

const opts = (o = {}) => Object.assign({ site: "site-1", endpoint: "https://api.example.com/", fetch: fakeFetch }, o);

test("events wait for the batch window, then go in one text/plain keepalive request", async () => {
  const t = createTracker(opts());
  t.view({ id: 42, category: "shoes", brand: "acme", price: 19.9, name: "not sent" });
  t.search("red shoes");
  await advance(299);
  assert.equal(sent.length, 0);
  await advance(1);
  assert.equal(sent.length, 1);
  const { url, init, body } = sent[0];
  assert.equal(url, "https://api.example.com/v1/sites/site-1/events");
  assert.equal(typeof init.body, "string");
  assert.equal(init.headers, undefined); // the browser labels a string body text/plain: no preflight
  assert.equal(init.keepalive, true);
  assert.equal(init.credentials, "omit");
  const [view, search] = body.events;
  assert.deepEqual(view.product, { id: "42", category: "shoes", brand: "acme", price: 19.9 });
  assert.equal(search.query, "red shoes");
  assert.match(view.event_id, /^[0-9a-f-]{36}$/);
  assert.notEqual(view.event_id, search.event_id);
  assert.equal(view.timestamp, now - 300);
  assert.equal(view.shopper_id, search.shopper_id);
  assert.ok(view.shopper_id.length >= 16);
  assert.equal(storage.get("_affinity_queue"), "[]");
});

test("the guest cookie is first-party, SameSite=Lax, Secure on https, 13 months, mirrored to localStorage", async () => {
  const t = createTracker(opts());
  const id = t.shopperId();
  const c = cookies._affinity_guest;
  assert.equal(c.value, id);
  assert.deepEqual(c.attrs, ["Path=/", "Max-Age=34214400", "SameSite=Lax", "Secure"]);
  assert.equal(JSON.parse(storage.get("_affinity_guest")), id);
  delete cookies._affinity_guest; // Safari's 7-day cap
  assert.equal(createTracker(opts()).shopperId(), id);
  assert.equal(cookies._affinity_guest.value, id);
});

test("the session slides: the same id within 30 minutes of the last event, a new one after", async () => {
  const t = createTracker(opts());
  t.search("a");
  now += 29 * 60_000;
  t.search("b");
  now += 31 * 60_000;
  t.search("c");
  await advance(300);
  const [a, b, c] = sent[0].body.events.map((e) => e.session_id);
  assert.equal(a, b);
  assert.notEqual(b, c);
});

test("429, 503 and network errors back off and resend the same event ids", async () => {
  answers = [503, 429, "network", 200];
  const t = createTracker(opts());
  t.search("kept");
  await advance(300);
  await advance(1000);
  await advance(2000);
  assert.equal(sent.length, 3);
  await advance(3999);
  assert.equal(sent.length, 3);
  await advance(1);
  assert.equal(sent.length, 4);
  assert.equal(new Set(sent.map((s) => s.body.events[0].event_id)).size, 1);
  assert.equal(storage.get("_affinity_queue"), "[]");
});

test("a 4xx other than 429 is not retried", async () => {
  answers = [400];
  const t = createTracker(opts());
  t.search("bad");
  await advance(300);
  await advance(120_000);
  assert.equal(sent.length, 1);
  assert.equal(storage.get("_affinity_queue"), "[]");
});

test("requests stay under the keepalive limit and the server's 500 events", async () => {
  const t = createTracker(opts());
  for (let i = 0; i < 400; i++) t.search("q".repeat(400) + i);
  for (let i = 0; i < 600; i++) t.search("s" + i);
  await advance(300);
  for (let i = 0; i < 20 && storage.get("_affinity_queue") != "[]"; i++) await advance(1);
  const sizes = sent.map((s) => new Blob([s.init.body]).size);
  assert.ok(sizes.every((n) => n <= 60_000), sizes.join(","));
  assert.ok(sent.every((s) => s.body.events.length <= 500));
  // The persisted queue keeps the newest 500 events; all of those went out, each once.
  const ids = sent.flatMap((s) => s.body.events.map((e) => e.event_id));
  assert.equal(new Set(ids).size, ids.length);
  assert.equal(ids.length, 500);
});

test("pagehide sends what waits at once, and what it could not confirm is resent by the next page", async () => {
  const t = createTracker(opts({ fetch: (url, init) => { sent.push({ body: JSON.parse(init.body) }); return new Promise(() => {}); } }));
  t.search("leaving");
  listeners["window:pagehide"]();
  assert.equal(sent.length, 1);
  const id = sent[0].body.events[0].event_id;
  // The next page: the same storage, a new tracker.
  createTracker(opts());
  await advance(0);
  assert.equal(sent.length, 2);
  assert.equal(sent[1].body.events[0].event_id, id);
});

test("fetch refusing a keepalive request hands it to sendBeacon", async () => {
  const beacons = [];
  install({ navigator: { sendBeacon: (url, body) => beacons.push({ url, body }) } });
  Date.now = () => now;
  const t = createTracker(opts({ fetch: () => { throw new TypeError("keepalive quota exceeded"); } }));
  t.search("beacon");
  listeners["window:pagehide"]();
  assert.equal(beacons.length, 1);
  assert.equal(JSON.parse(beacons[0].body).events[0].query, "beacon");
});

test("offline, nothing is tried; the online event sends the queue", async () => {
  navigator.onLine = false;
  const t = createTracker(opts());
  t.search("offline");
  await advance(5000);
  assert.equal(sent.length, 0);
  navigator.onLine = true;
  listeners["window:online"]();
  await advance(0);
  assert.equal(sent.length, 1);
});

test("Global Privacy Control keeps email and phone off every event", async () => {
  install({ navigator: { globalPrivacyControl: true } });
  Date.now = () => now;
  const t = createTracker(opts({ email: "a@example.com" }));
  t.identify({ phone: "+14155550132", customerId: "77", identityToken: "tok" });
  t.purchase({ order_id: "o1", items: [{ id: "1", quantity: 2 }], currency: "EUR" });
  await advance(300);
  const e = sent[0].body.events[0];
  assert.equal("email" in e || "phone" in e, false);
  assert.equal(e.customer_id, "77");
  assert.equal(e.identity_token, "tok");
  assert.deepEqual(e.items, [{ id: "1", quantity: 2 }]);
});

test("without GPC the page's email rides along", async () => {
  const t = createTracker(opts());
  t.identify({ email: "a@example.com" });
  t.search("x");
  await advance(300);
  assert.equal(sent[0].body.events[0].email, "a@example.com");
});

test("the consent gate: nothing stored or sent before consent; consent(false) drops what waited", async () => {
  const t = createTracker(opts({ requireConsent: true }));
  t.search("before");
  await advance(1000);
  assert.equal(sent.length, 0);
  assert.equal(cookies._affinity_guest, undefined);
  assert.equal(storage.size, 0);
  assert.equal(t.shopperId(), null);
  t.consent(false);
  t.consent(true);
  t.search("after");
  await advance(300);
  assert.deepEqual(sent.flatMap((s) => s.body.events.map((e) => e.query)), ["after"]);
  const u = createTracker(opts({ requireConsent: true }));
  u.search("waited");
  u.consent(true);
  await advance(300);
  assert.equal(sent.at(-1).body.events[0].query, "waited");
});

test("Shopify's Customer Privacy API opens the gate", async () => {
  globalThis.Shopify = { customerPrivacy: { analyticsProcessingAllowed: () => false } };
  try {
    const t = createTracker(opts({ requireConsent: true }));
    t.search("x");
    await advance(300);
    assert.equal(sent.length, 0);
    listeners["document:visitorConsentCollected"]({ detail: { analyticsAllowed: true } });
    await advance(300);
    assert.equal(sent.length, 1);
  } finally {
    delete globalThis.Shopify;
  }
});

test("the pre-load queue: commands pushed before the script loaded run in order, later pushes at once", async () => {
  const seen = [];
  window.affinity = [["search", "early"], (a) => seen.push(typeof a.view), ["init", opts()], ["view", { id: "p" }]];
  const a = boot(window);
  assert.equal(window.affinity, a);
  a.push(["click", { id: "r1" }, { recommendation_id: "rec-1" }]);
  await advance(300);
  assert.deepEqual(seen, ["function"]);
  assert.deepEqual(sent[0].body.events.map((e) => e.type), ["search", "view", "click"]);
  assert.equal(sent[0].body.events[2].recommendation_id, "rec-1");
});

test("the identity token the page gives is what the tracker reports, and a later identify replaces it", () => {
  const t = createTracker(opts({ identityToken: "v1.a" }));
  assert.equal(t.identityToken(), "v1.a");
  t.identify({ identityToken: "v1.b" });
  assert.equal(t.identityToken(), "v1.b");
  t.identify({ identityToken: null });
  assert.equal(t.identityToken(), undefined);
});

test("a keepalive fetch rejected while the page unloads is handed to sendBeacon", async () => {
  const beacons = [];
  install({ navigator: { sendBeacon: (url, body) => beacons.push(body) } });
  Date.now = () => now;
  const t = createTracker(opts({ fetch: () => Promise.reject(new TypeError("keepalive quota")) }));
  t.search("over quota");
  listeners["document:visibilitychange"] && (document.visibilityState = "hidden");
  listeners["document:visibilitychange"]();
  await advance(0);
  assert.equal(beacons.length, 1);
  assert.equal(JSON.parse(beacons[0]).events[0].query, "over quota");
});
