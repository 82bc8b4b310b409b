// The pixel's behaviour, apart from Shopify's `register` so tests can drive it with a fake API.
//
// Consent: events are mapped and sent only while `customerPrivacy.analyticsProcessingAllowed` is true
// (from `init.customerPrivacy`, updated by the `visitorConsentCollected` event); email and phone ride
// on a purchase only while `marketingAllowed` is true too and the sale of data is not refused (a
// browser's Global Privacy Control makes Shopify refuse it).
// Shopper: the `_affinity_guest` cookie the theme's widget uses, else Shopify's `clientId` (the
// `_shopify_y` id, which the theme's tracker also adopts), written back to the cookie. Customer: the
// logged-in customer of `init.data.customer` (the pixel cannot sign it; the identity token comes from
// the theme, see ../affinity-theme).
// Delivery: one request per event, `fetch` with keepalive and a text/plain body (no preflight), else
// `browser.sendBeacon`; 429, 5xx and network failures are retried with back-off (1 s doubling, 5
// tries), each with the same event_id.
import { EVENTS, toAffinity } from "./map.js";

const COOKIE = "_affinity_guest";

export function createPixel(api, deps) {
  const { analytics, browser, init, settings } = api;
  const send = (deps && deps.fetch) || fetch;
  const wait = (deps && deps.sleep) || ((ms) => new Promise((r) => setTimeout(r, ms)));
  const url = String(settings.endpoint || "").replace(/\/+$/, "") + "/v1/sites/" + encodeURIComponent(settings.siteId) +
    "/events";
  let privacy = Object.assign({}, init.customerPrivacy);
  const customerId = init.data && init.data.customer && init.data.customer.id;
  api.customerPrivacy && api.customerPrivacy.subscribe("visitorConsentCollected", (e) => {
    privacy = Object.assign({}, e.customerPrivacy);
  });

  async function shopper(clientId) {
    let id = await browser.cookie.get(COOKIE);
    if (!id || id.length < 16) {
      id = clientId;
      await browser.cookie.set(COOKIE + "=" + id + "; path=/; max-age=34214400; samesite=lax; secure");
    }
    return id;
  }

  async function deliver(body) {
    for (let attempt = 0, delay = 1000; attempt < 5; attempt++, delay *= 2) {
      let status = 0;
      try {
        status = (await send(url, { method: "POST", body, keepalive: true, credentials: "omit" })).status;
      } catch (err) {
        if (attempt == 0 && (await browser.sendBeacon(url, body))) return "beacon";
      }
      if (status && status != 429 && status < 500) return status;
      await wait(delay);
    }
    return "gave up";
  }

  async function handle(ev) {
    if (!privacy.analyticsProcessingAllowed) return null;
    const e = toAffinity(ev, { pii: !!privacy.marketingAllowed && privacy.saleOfDataAllowed !== false });
    if (!e) return null;
    e.shopper_id = await shopper(ev.clientId);
    if (customerId) e.customer_id = String(customerId);
    return deliver(JSON.stringify({ events: [e] }));
  }

  const done = [];
  for (const name of EVENTS) analytics.subscribe(name, (ev) => done.push(handle(ev)));
  return { handle, pending: () => Promise.all(done) };
}
