// The Shopify web pixel: Shopify's documented event shapes (fixtures/shopify) in, Affinity events out.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { toAffinity, EVENTS } from "../shopify/extensions/affinity-pixel/src/map.js";
import { createPixel } from "../shopify/extensions/affinity-pixel/src/pixel.js";

const fx = JSON.parse(readFileSync(new URL("./fixtures/shopify/pixel-events.json", import.meta.url)));
const ev = fx.events;

test("each standard event maps to its Affinity event", () => {
  assert.deepEqual(toAffinity(ev.product_viewed, { pii: true }), {
    type: "view", event_id: "sh-0f6bd3e2-0001-4C2A-8B1E-2F3A4B5C6D7E", timestamp: "2026-12-01T21:11:00.000Z",
    product: { id: "7412345678901", category: "electronics.smartphone", brand: "Samsung", price: 130.76 },
  });
  assert.deepEqual(toAffinity(ev.collection_viewed, {}).query, "Smartphones");
  assert.equal(toAffinity(ev.collection_viewed, {}).type, "search");
  assert.equal(toAffinity(ev.search_submitted, {}).query, "samsung galaxy");
  assert.equal(toAffinity(ev.product_added_to_cart, {}).type, "cart_add");
  const removed = toAffinity(ev.product_removed_from_cart, {});
  assert.deepEqual([removed.type, removed.product.id, removed.product.brand], ["cart_remove", "7412345678902", "Bialetti"]);
  assert.deepEqual(EVENTS.sort(), Object.keys(ev).sort());
});

test("a completed checkout is a purchase with its lines, order id and currency; PII only when allowed", () => {
  const p = toAffinity(ev.checkout_completed, { pii: true });
  assert.equal(p.type, "purchase");
  assert.equal(p.order_id, "gid://shopify/OrderIdentity/5512345678901");
  assert.equal(p.currency, "USD");
  assert.deepEqual(p.items.map((i) => [i.id, i.quantity, i.price]), [["7412345678901", 1, 130.76], ["7412345678902", 2, 29.5]]);
  assert.equal(p.email, "shopper@example.com");
  assert.equal(p.phone, "+1 415 555 0132");
  const without = toAffinity(ev.checkout_completed, { pii: false });
  assert.equal("email" in without || "phone" in without, false);
});

test("events without a product or a query map to nothing", () => {
  assert.equal(toAffinity({ name: "product_viewed", data: { productVariant: { product: { id: null } } } }, {}), null);
  assert.equal(toAffinity({ name: "search_submitted", data: { searchResult: { query: "   " } } }, {}), null);
  assert.equal(toAffinity({ name: "cart_viewed", data: {} }, {}), null);
  assert.equal(toAffinity({ name: "checkout_completed", data: { checkout: { lineItems: [] } } }, {}), null);
});

function fakeApi(privacy, opts = {}) {
  const subs = {};
  const consentSubs = [];
  const jar = { _affinity_guest: opts.cookie || "" };
  const api = {
    settings: { siteId: "site-1", endpoint: "https://api.example.com/" },
    init: Object.assign({}, fx.init, { customerPrivacy: Object.assign({}, fx.init.customerPrivacy, privacy) }),
    analytics: { subscribe: (name, cb) => { subs[name] = cb; return () => true; } },
    customerPrivacy: { subscribe: (name, cb) => consentSubs.push([name, cb]) },
    browser: {
      cookie: { get: async (n) => jar[n] || "", set: async (c) => { const [kv] = c.split(";"); const [k, v] = kv.split("="); jar[k] = v; return c; } },
      sendBeacon: async (url, body) => { api.beacons.push({ url, body }); return true; },
    },
    beacons: [],
    sent: [],
  };
  const statuses = opts.statuses || [];
  const pixel = createPixel(api, {
    fetch: async (url, init) => {
      api.sent.push({ url, init, body: JSON.parse(init.body) });
      const s = statuses.shift();
      if (s === "network") throw new TypeError("Failed to fetch");
      return { status: s || 200 };
    },
    sleep: async () => {},
  });
  return { api, subs, consentSubs, jar, pixel };
}

test("the pixel sends each event once, text/plain with keepalive, as the cookie's guest and the logged-in customer", async () => {
  const { api, subs, jar, pixel } = fakeApi({});
  subs.product_viewed(ev.product_viewed);
  await pixel.pending();
  assert.equal(api.sent.length, 1);
  const { url, init, body } = api.sent[0];
  assert.equal(url, "https://api.example.com/v1/sites/site-1/events");
  assert.equal(init.keepalive, true);
  assert.equal(typeof init.body, "string"); // a string body: text/plain, no preflight
  assert.equal(init.headers, undefined);
  assert.equal(body.events[0].shopper_id, "a2c6a8b0-3f1e-4d4e-9f0a-1b2c3d4e5f60");
  assert.equal(body.events[0].customer_id, "6012345678901");
  assert.equal(jar._affinity_guest, "a2c6a8b0-3f1e-4d4e-9f0a-1b2c3d4e5f60");
});

test("without analytics consent nothing is sent; consent given later lets the next events through", async () => {
  const { api, subs, consentSubs, pixel } = fakeApi({ analyticsProcessingAllowed: false });
  subs.product_viewed(ev.product_viewed);
  await pixel.pending();
  assert.equal(api.sent.length, 0);
  const [[name, cb]] = consentSubs;
  assert.equal(name, "visitorConsentCollected");
  cb({ customerPrivacy: Object.assign({}, fx.init.customerPrivacy, { analyticsProcessingAllowed: true, marketingAllowed: false }) });
  subs.checkout_completed(ev.checkout_completed);
  await pixel.pending();
  assert.equal(api.sent.length, 1);
  assert.equal("email" in api.sent[0].body.events[0], false); // marketing not allowed: no email
});

test("a refused sale of data (GPC) keeps email and phone out", async () => {
  const { api, subs, pixel } = fakeApi({ saleOfDataAllowed: false });
  subs.checkout_completed(ev.checkout_completed);
  await pixel.pending();
  const e = api.sent[0].body.events[0];
  assert.equal("email" in e || "phone" in e, false);
});

test("429, 5xx and network errors are retried with the same event_id; other 4xx are not", async () => {
  const a = fakeApi({}, { statuses: [503, 429, "network", 200] });
  a.subs.search_submitted(ev.search_submitted);
  await a.pixel.pending();
  // The network error goes to sendBeacon only on the first attempt; here it was the third.
  assert.equal(a.api.sent.length, 4);
  assert.equal(new Set(a.api.sent.map((s) => s.body.events[0].event_id)).size, 1);
  const b = fakeApi({}, { statuses: [400] });
  b.subs.search_submitted(ev.search_submitted);
  await b.pixel.pending();
  assert.equal(b.api.sent.length, 1);
});

test("fetch failing at once falls back to sendBeacon", async () => {
  const { api, subs, pixel } = fakeApi({}, { statuses: ["network"] });
  subs.product_viewed(ev.product_viewed);
  await pixel.pending();
  assert.equal(api.beacons.length, 1);
  assert.equal(JSON.parse(api.beacons[0].body).events[0].type, "view");
});

test("an existing Affinity guest cookie wins over Shopify's client id", async () => {
  const { api, subs, pixel } = fakeApi({}, { cookie: "0b9f3c1e-5a7d-4e2b-9c8f-112233445566" });
  subs.product_viewed(ev.product_viewed);
  await pixel.pending();
  assert.equal(api.sent[0].body.events[0].shopper_id, "0b9f3c1e-5a7d-4e2b-9c8f-112233445566");
});
