// Shopify's standard customer events (the Web Pixels API's shapes, @shopify/web-pixels-extension's
// PixelEvents types) as Affinity events. Pure functions: src/pixel.js adds the shopper, consent and
// delivery.
//
//   product_viewed            -> view          (data.productVariant)
//   collection_viewed         -> search        (data.collection.title: browsing a collection is a
//                                               navigational query; Affinity has no collection event)
//   search_submitted          -> search        (data.searchResult.query)
//   product_added_to_cart     -> cart_add      (data.cartLine.merchandise)
//   product_removed_from_cart -> cart_remove   (data.cartLine.merchandise)
//   checkout_completed        -> purchase      (data.checkout: lineItems, order.id, currencyCode; email
//                                               and phone only when the caller allows them)
// The event's own `id` becomes `event_id` (Shopify keeps it across its retries, so Affinity de-duplicates)
// and its `timestamp` (RFC 3339) the event time. A product is `{id: product.id, category: product.type,
// brand: product.vendor, price: price.amount}`; ids are Shopify's numeric product ids as strings.

/** The Shopify event names this pixel subscribes to. */
export const EVENTS = ["product_viewed", "collection_viewed", "search_submitted", "product_added_to_cart",
  "product_removed_from_cart", "checkout_completed"];

/** A ProductVariant as an Affinity product, or null without a product id. */
export function product(variant) {
  const p = variant && variant.product;
  if (!p || p.id == null) return null;
  const out = { id: String(p.id) };
  if (p.type) out.category = p.type;
  if (p.vendor) out.brand = p.vendor;
  const amount = variant.price && variant.price.amount;
  if (typeof amount == "number" && amount >= 0) out.price = amount;
  return out;
}

/**
 * The Affinity event for a Shopify event, or null when it carries nothing Affinity keeps.
 * @param {object} ev the Shopify event (`{id, name, timestamp, data}`)
 * @param {{pii: boolean}} opts `pii`: email and phone may be sent (messaging consent of the visitor)
 */
export function toAffinity(ev, opts) {
  const d = ev.data || {};
  let e = null;
  switch (ev.name) {
    case "product_viewed": {
      const p = product(d.productVariant);
      if (p) e = { type: "view", product: p };
      break;
    }
    case "collection_viewed":
      if (d.collection && d.collection.title) e = { type: "search", query: d.collection.title.slice(0, 512) };
      break;
    case "search_submitted":
      if (d.searchResult && d.searchResult.query && d.searchResult.query.trim()) {
        e = { type: "search", query: d.searchResult.query.trim().slice(0, 512) };
      }
      break;
    case "product_added_to_cart":
    case "product_removed_from_cart": {
      const p = d.cartLine && product(d.cartLine.merchandise);
      if (p) e = { type: ev.name == "product_added_to_cart" ? "cart_add" : "cart_remove", product: p };
      break;
    }
    case "checkout_completed": {
      const c = d.checkout || {};
      const items = (c.lineItems || []).map((li) => {
        const p = product(li.variant);
        return p && Object.assign(p, { quantity: li.quantity > 0 ? li.quantity : 1 });
      }).filter(Boolean);
      if (!items.length) break;
      e = { type: "purchase", items };
      const orderId = (c.order && c.order.id) || c.token;
      if (orderId) e.order_id = String(orderId);
      if (c.currencyCode) e.currency = c.currencyCode;
      if (opts && opts.pii) {
        if (c.email) e.email = c.email;
        const phone = c.phone || c.smsMarketingPhone;
        if (phone) e.phone = phone;
      }
      break;
    }
  }
  if (!e) return null;
  if (ev.id) e.event_id = String(ev.id).replace(/[^A-Za-z0-9_=/+.:-]/g, "").slice(0, 128);
  if (ev.timestamp) e.timestamp = ev.timestamp;
  return e;
}
