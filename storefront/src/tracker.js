// Affinity's storefront tracker: builds the events that `POST /v1/sites/{site_id}/events` takes and
// delivers them without losing what a shopper would expect to be kept.
//
// Delivery: every event gets an `event_id` (UUID) when it is made and keeps it across retries (the
// server de-duplicates by it). Events wait in a small queue persisted to localStorage, are batched for
// `batchMs`, and are sent with `fetch(..., {keepalive: true})` and a string body, which the browser
// labels `text/plain;charset=UTF-8`: a CORS simple request, so no preflight. When fetch cannot take the
// request (no keepalive, or the keepalive quota is used up) `navigator.sendBeacon` carries it. 429, 5xx
// and network errors back off exponentially (1 s doubling to 60 s) and keep the events; any other 4xx
// drops the batch (it would fail again). The queue is flushed at once on `pagehide` and when the page is
// hidden; events sent then stay queued until an answer says they arrived, so the next page resends
// what an unload cut off (same ids, stored once). Offline, nothing is tried until the `online` event.
//
// Privacy: with `requireConsent`, nothing is stored or sent (no cookie, no queue) until the page calls
// `consent(true)` or Shopify's Customer Privacy API says analytics are allowed; `consent(false)` drops
// what waited. When `navigator.globalPrivacyControl` is true, email and phone (and their digests) are
// never put on an event. The customer id and its identity token come from the page (`identify`),
// never guessed.
//
// Sizes and limits: a request body stays under 60,000 bytes (the keepalive limit is 64 KiB for all
// in-flight keepalive requests of a page) and 500 events (the server's limit); the persisted queue
// keeps the newest 500 events.

/** Guest id cookie and localStorage key (13 months; Safari caps script-set cookies at 7 days, so the
 * localStorage copy restores it). */
const GUEST = "_affinity_guest";
/** Session `{id, t}` in localStorage; a new session after 30 minutes without an event. */
const SESSION = "_affinity_session";
/** The persisted queue of events not yet acknowledged by the server. */
const QUEUE = "_affinity_queue";
const GUEST_MAX_AGE_S = 396 * 24 * 3600;
const SESSION_MS = 30 * 60 * 1000;
const MAX_BODY = 60000;
const MAX_BATCH = 500;
const MAX_QUEUE = 500;
const PII = ["email", "phone", "email_sha256", "phone_sha256"];

const uuid = () => crypto.randomUUID();

function store(key, value) {
  try {
    if (value === undefined) return JSON.parse(localStorage.getItem(key));
    localStorage.setItem(key, JSON.stringify(value));
  } catch (e) {
    // Storage blocked or full: the tracker still works from memory.
  }
}

function cookie(name, value, maxAge) {
  if (value === undefined) {
    const m = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return m && decodeURIComponent(m[1]);
  }
  document.cookie = name + "=" + encodeURIComponent(value) + "; Path=/; Max-Age=" + maxAge + "; SameSite=Lax" +
    (location.protocol == "https:" ? "; Secure" : "");
}

/** A product as events carry it: `{id, category, brand, price}` from a page's product object. */
function product(p) {
  if (p == null || typeof p != "object") return { id: String(p) };
  const out = { id: String(p.id != null ? p.id : p.product_id) };
  for (const k of ["category", "brand", "price"]) if (p[k] != null && p[k] !== "") out[k] = p[k];
  return out;
}

function lines(items) {
  return (items || []).map((i) => Object.assign(product(i), { quantity: i.quantity || 1 }));
}

/**
 * Creates a tracker.
 * @param {object} o options: `site` (site id, required), `endpoint` (API base URL, required),
 *   `requireConsent` (boolean: wait for consent), `batchMs` (default 300), `customerId`,
 *   `identityToken` (the signed token of the logged-in customer, sent as each event's
 *   `identity_token`), `email`, `phone`, `guestCookie` (a platform cookie whose value becomes the guest
 *   id when there is none yet, e.g. Shopify's `_shopify_y`), `fetch`, `onSend` (called with each
 *   request's status, 0 for a network error, and its events).
 * @returns the tracker API (see the returned object).
 */
export function createTracker(o) {
  const base = String(o.endpoint || "").replace(/\/+$/, "") + "/v1/sites/" + encodeURIComponent(o.site);
  const url = base + "/events";
  const batchMs = o.batchMs != null ? o.batchMs : 300;
  const who = {};
  let allowed = !o.requireConsent;
  let waiting = []; // events made before consent: memory only
  let memQueue = [];
  let timer = 0;
  let inFlight = false;
  let backoff = 0;
  let retryAt = 0;

  const queue = (q) => {
    if (q === undefined) return store(QUEUE) || memQueue;
    memQueue = q.slice(-MAX_QUEUE);
    store(QUEUE, memQueue);
  };

  function guestId() {
    let id = cookie(GUEST) || store(GUEST) || (o.guestCookie && cookie(o.guestCookie));
    if (!id || !/^[\w=/+.-]{16,128}$/.test(id)) id = uuid();
    cookie(GUEST, id, GUEST_MAX_AGE_S);
    store(GUEST, id);
    return id;
  }

  function sessionId(now) {
    let s = store(SESSION);
    if (!s || now - s.t > SESSION_MS) s = { id: uuid() };
    s.t = now;
    store(SESSION, s);
    return s.id;
  }

  function identify(i) {
    i = i || {};
    for (const [k, f] of [["customerId", "customer_id"], ["identityToken", "identity_token"], ["email", "email"],
      ["phone", "phone"]]) {
      const v = i[k] != null ? i[k] : i[f];
      if (v != null) who[f] = String(v);
      else if (k in i || f in i) delete who[f];
    }
  }
  identify(o);

  /** Stamps ids, time and identity on an event and queues it; returns its event_id. */
  function track(e) {
    e.event_id = uuid();
    e.timestamp = Date.now();
    Object.assign(e, who);
    if (navigator.globalPrivacyControl === true) for (const k of PII) delete e[k];
    if (!allowed) {
      waiting.push(e);
      return e.event_id;
    }
    enqueue(e);
    return e.event_id;
  }

  function enqueue(e) {
    e.shopper_id = guestId();
    e.session_id = sessionId(e.timestamp);
    queue(queue().concat(e));
    schedule(batchMs);
  }

  function schedule(ms) {
    if (!timer) timer = setTimeout(() => { timer = 0; flush(); }, ms);
  }

  /** The next request body: as many queued events as fit in MAX_BODY bytes and MAX_BATCH events. */
  function batch(q) {
    const out = [];
    let size = 12;
    for (const e of q) {
      const n = new Blob([JSON.stringify(e)]).size + 1;
      if (out.length && (size + n > MAX_BODY || out.length >= MAX_BATCH)) break;
      out.push(e);
      size += n;
    }
    return out;
  }

  function ack(events) {
    const sent = new Set(events.map((e) => e.event_id));
    queue(queue().filter((e) => !sent.has(e.event_id)));
  }

  function retry() {
    backoff = Math.min(backoff ? backoff * 2 : 1000, 60000);
    retryAt = Date.now() + backoff;
    schedule(backoff);
  }

  /**
   * Sends what is queued. `unloading`: the page is going away, so every batch goes now, without
   * waiting for answers (an unanswered batch stays queued and is resent by the next page).
   */
  function flush(unloading) {
    if (!allowed || (!unloading && (inFlight || Date.now() < retryAt))) return;
    if (navigator.onLine === false) return;
    let q = queue();
    while (q.length) {
      const events = batch(q);
      q = q.slice(events.length);
      const body = JSON.stringify({ events });
      let req;
      try {
        req = (o.fetch || fetch)(url, { method: "POST", body, keepalive: true, credentials: "omit", mode: "cors" });
      } catch (err) {
        // fetch refused the keepalive request (quota): the beacon takes it, unanswered.
        navigator.sendBeacon && navigator.sendBeacon(url, body);
        continue;
      }
      if (unloading) {
        // Chromium rejects a keepalive fetch over its quota asynchronously: the beacon gets a try too.
        req.then((r) => r.ok && ack(events), () => navigator.sendBeacon && navigator.sendBeacon(url, body));
        continue;
      }
      inFlight = true;
      req.then((r) => {
        inFlight = false;
        if (o.onSend) o.onSend(r.status, events);
        if (r.status == 429 || r.status >= 500) return retry();
        backoff = retryAt = 0;
        ack(events); // accepted, duplicates, rejected per event, or a 4xx that a retry cannot fix
        if (queue().length) schedule(0);
      }, () => {
        inFlight = false;
        if (o.onSend) o.onSend(0, events);
        retry();
      });
      return;
    }
  }

  function consent(granted) {
    allowed = !!granted;
    if (allowed) {
      const w = waiting;
      waiting = [];
      w.forEach(enqueue);
      flush();
    } else waiting = [];
  }

  // Shopify's Customer Privacy API, when the page has it and the merchant asked for the gate.
  const privacy = window.Shopify && window.Shopify.customerPrivacy;
  if (o.requireConsent && privacy) {
    if (privacy.analyticsProcessingAllowed && privacy.analyticsProcessingAllowed()) consent(true);
    document.addEventListener("visitorConsentCollected", (ev) =>
      consent(ev.detail && ev.detail.analyticsAllowed));
  }

  addEventListener("pagehide", () => flush(true));
  document.addEventListener("visibilitychange", () => document.visibilityState == "hidden" && flush(true));
  addEventListener("online", () => { retryAt = 0; flush(); });
  if (allowed && queue().length) schedule(0); // what an earlier page left unsent

  return {
    /** `view(product)`: a product page was seen. */
    view: (p) => track({ type: "view", product: product(p) }),
    /** `click(product, {recommendation_id})`: an item was clicked in a list or a recommendation. */
    click: (p, extra) => track(Object.assign({ type: "click", product: product(p) }, extra)),
    /** `search(query)`: search terms entered. */
    search: (query) => track({ type: "search", query: String(query) }),
    /** `cartAdd(product, cart)`: `cart` is the whole cart after the change (`[{id, ..., quantity}]`), if known. */
    cartAdd: (p, cart) => track(cartEvent("cart_add", p, cart)),
    /** `cartRemove(product, cart)`. */
    cartRemove: (p, cart) => track(cartEvent("cart_remove", p, cart)),
    /** `purchase({order_id, items: [{id, category, brand, price, quantity}], currency})`. */
    purchase: (order) => track({ type: "purchase", order_id: order.order_id || order.orderId,
      currency: order.currency, items: lines(order.items) }),
    /** Any event object (e.g. the widget's impressions); ids, time and identity are added. */
    track,
    identify,
    consent,
    flush,
    /** The logged-in customer's identity token, as the page last gave it (`identify`), or undefined. */
    identityToken: () => who.identity_token,
    /** The guest id (made on first use), or null while consent is awaited. */
    shopperId: () => (allowed ? guestId() : null),
    /** Options, and the site's API base (`.../v1/sites/{site_id}`). */
    options: o,
    base,
  };
}

function cartEvent(type, p, cart) {
  const e = { type, product: product(p) };
  if (cart) e.cart = lines(cart);
  return e;
}

/**
 * Runs the pre-load queue (`window.affinity = window.affinity || []; affinity.push([...])`) and replaces it
 * with an object whose `push` runs commands at once. Commands: `["init", options]`, then
 * `["view", product]`, `["search", query]`, ... (any tracker method), or a function called with the
 * tracker once it exists.
 */
export function boot(w) {
  const pending = Array.isArray(w.affinity) ? w.affinity : [];
  let tracker = null;
  let later = [];
  const run = (cmd) => {
    if (typeof cmd == "function") return tracker ? cmd(tracker) : later.push(cmd);
    const [name, ...args] = cmd;
    if (name == "init") {
      tracker = createTracker(args[0]);
      const l = later;
      later = [];
      l.forEach(run);
    } else if (tracker) tracker[name](...args);
    else later.push(cmd);
  };
  w.affinity = { push: (...cmds) => cmds.forEach(run), tracker: () => tracker };
  pending.forEach(run);
  return w.affinity;
}
