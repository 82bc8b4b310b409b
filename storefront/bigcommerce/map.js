// BigCommerce's storefront data layer (BODL, `window.bodlEvents`) as Affinity events. Pure functions;
// affinity-bigcommerce.js subscribes and hands the results to the tracker.
//
//   bodlEvents.product.pageViewed     -> view         (payload.line_items[0])
//   bodlEvents.product.searchPerformed -> search      (payload.search_keyword)
//   bodlEvents.cart.addItem           -> cart_add     (payload.line_items[0])
//   bodlEvents.cart.removeItem        -> cart_remove  (payload.line_items[0])
//   bodlEvents.checkout.orderPurchased -> purchase    (payload.order_id, currency, line_items)
// A BODL line item names its product as `product_id`, `brand_name`, `category_names` (or
// `category_name`), `sale_price`/`purchase_price`/`base_price` and `quantity`.

/** [BODL group, BODL event, Affinity type] for every event the script follows. */
export const SUBSCRIPTIONS = [
  ["product", "pageViewed", "view"],
  ["product", "searchPerformed", "search"],
  ["cart", "addItem", "cart_add"],
  ["cart", "removeItem", "cart_remove"],
  ["checkout", "orderPurchased", "purchase"],
];

/** A BODL line item as an Affinity product (with its quantity when `withQuantity`), or null. */
export function product(li, withQuantity) {
  if (!li || li.product_id == null || li.product_id === "") return null;
  const out = { id: String(li.product_id) };
  const cats = li.category_names || (li.category_name ? [li.category_name] : []);
  if (cats.length) out.category = String(cats[cats.length - 1]);
  if (li.brand_name) out.brand = String(li.brand_name);
  const price = [li.sale_price, li.purchase_price, li.base_price].find((p) => typeof p == "number" && p >= 0);
  if (price != null) out.price = price;
  if (withQuantity) out.quantity = li.quantity > 0 ? li.quantity : 1;
  return out;
}

/** The Affinity event (without ids, time or shopper: the tracker adds them) for a BODL payload, or null. */
export function toAffinity(type, payload) {
  const p = payload || {};
  const first = (p.line_items || [])[0];
  if (type == "search") {
    const q = String(p.search_keyword || p.keyword || "").trim();
    return q ? { type, query: q.slice(0, 512) } : null;
  }
  if (type == "purchase") {
    const items = (p.line_items || []).map((li) => product(li, true)).filter(Boolean);
    if (!items.length) return null;
    const e = { type, items };
    if (p.order_id != null) e.order_id = String(p.order_id);
    if (p.currency) e.currency = String(p.currency);
    return e;
  }
  const prod = product(first);
  return prod ? { type, product: prod } : null;
}
