// The BigCommerce script's mapping: BODL payloads (fixtures/bigcommerce) in, Affinity events out.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { SUBSCRIPTIONS, toAffinity } from "../bigcommerce/map.js";

const fx = JSON.parse(readFileSync(new URL("./fixtures/bigcommerce/bodl-events.json", import.meta.url)));
const type = Object.fromEntries(SUBSCRIPTIONS.map(([, name, t]) => [name, t]));

test("every followed BODL event has a fixture and maps to its Affinity type", () => {
  assert.deepEqual(Object.keys(type).sort(), Object.keys(fx).sort());
  for (const [name, t] of Object.entries(type)) assert.equal(toAffinity(t, fx[name]).type, t, name);
});

test("a product page view names the product, its deepest category, brand and sale price", () => {
  assert.deepEqual(toAffinity("view", fx.pageViewed),
    { type: "view", product: { id: "112", category: "Garden", brand: "OFS", price: 109 } });
  assert.deepEqual(toAffinity("cart_remove", fx.removeItem).product, { id: "86", category: "Kitchen", brand: "Able", price: 225 });
});

test("a search keeps the trimmed keyword; an empty one is nothing", () => {
  assert.deepEqual(toAffinity("search", fx.searchPerformed), { type: "search", query: "terrarium" });
  assert.equal(toAffinity("search", { search_keyword: " " }), null);
});

test("a purchase carries the order id, currency and every line with its quantity", () => {
  const p = toAffinity("purchase", fx.orderPurchased);
  assert.equal(p.order_id, "100");
  assert.equal(p.currency, "USD");
  assert.deepEqual(p.items.map((i) => [i.id, i.quantity, i.price]), [["86", 1, 49.5], ["112", 2, 109]]);
  assert.equal(toAffinity("purchase", { line_items: [] }), null);
});
