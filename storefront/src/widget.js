// <affinity-recommendations>: fetches the shopper's recommendations and renders them as a list.
//
//   <affinity-recommendations limit="8" type="for_you" heading="Picked for you"
//       catalog="/catalog.json"></affinity-recommendations>
//
// Attributes: `limit` (1-50, default 8); `type` (the list type the recommend function serves, sent as
// `type`; default: the shopper's list); `product-id` (a product page's product, sent as `product_id`);
// `cart` (comma-separated product ids, sent as `product_ids`); `heading`; `catalog` (URL of a JSON
// object `{product_id: {name, url, image, price}}`, or one with that object as `by_id`, used to show
// what the answer lacks); `site` and
// `endpoint` (default: the tracker's). The tracker (affinity.js) gives the guest id, the identity
// token of a logged-in customer (sent as `identity_token`, so history from other devices counts) and
// carries the widget's events.
//
// Rendering: every value is set with `textContent` or as a checked attribute, never as markup (product
// ids, names and categories come from the public internet); links and images accept only http(s) and
// relative URLs. A child `<template>` replaces the default card: elements marked `data-field="name"`
// (also `brand`, `category`, `price`, `reason`) get that text, `data-field="url"` its `href`,
// `data-field="image"` its `src` and `alt`. Theme it with CSS custom properties: `--affinity-columns`,
// `--affinity-gap`, `--affinity-card-background`, `--affinity-card-border`, `--affinity-radius`,
// `--affinity-text`, `--affinity-muted`.
//
// Events: a click on a card sends a `click` event with the answer's `recommendation_id`; a card at least
// half visible for one second sends one `impression` event (IntersectionObserver), with the same id.
// The element dispatches `affinity:rendered` (detail: the answer) when the list is shown.

const CSS = "affinity-recommendations{display:block;color:var(--affinity-text,inherit)}" +
  "affinity-recommendations ul{list-style:none;margin:0;padding:0;display:grid;gap:var(--affinity-gap,1rem);" +
  "grid-template-columns:repeat(var(--affinity-columns,4),minmax(0,1fr))}" +
  "affinity-recommendations li{background:var(--affinity-card-background,#fff);border:var(--affinity-card-border," +
  "1px solid #ddd);border-radius:var(--affinity-radius,.5rem);padding:.75rem}" +
  "affinity-recommendations a{color:inherit;text-decoration:none;display:block}" +
  "affinity-recommendations img{width:100%;aspect-ratio:1;object-fit:cover}" +
  ".affinity-muted{color:var(--affinity-muted,#666);font-size:.875em}";

const safeUrl = (u) => {
  if (u == null) return null;
  const s = String(u).trim();
  return /^(https?:|\/|\.|\?|#)/i.test(s) || !/^[a-z][a-z0-9+.-]*:/i.test(s) ? s : null;
};

const leaf = (c) => (c ? String(c).split(/[./>]/).pop().replace(/_/g, " ") : "");

/** A display name for an item without one: "Brand category-leaf", or its id. */
const nameOf = (it) => it.name || [it.brand, leaf(it.category)].filter(Boolean).join(" ") || "Product " + it.product_id;

const REASONS = { preferred_category: "Because you like this category", preferred_brand: "Because you like this brand",
  trending: "Popular right now" };

const catalogs = {};

class AffinityRecommendations extends HTMLElement {
  static get observedAttributes() {
    return ["limit", "type", "product-id", "cart", "site"];
  }

  attributeChangedCallback() {
    if (this._tracker) this.load(this._tracker);
  }

  connectedCallback() {
    if (!document.getElementById("affinity-recommendations-css")) {
      const st = document.createElement("style");
      st.id = "affinity-recommendations-css";
      st.textContent = CSS;
      document.head.append(st);
    }
    this._template = this._template || this.querySelector("template");
    (window.affinity = window.affinity || []).push((t) => this.load(t));
  }

  disconnectedCallback() {
    if (this._io) this._io.disconnect();
  }

  /** Fetches and renders; resolves to the answer, or null when there is nothing to show. */
  async load(tracker) {
    this._tracker = tracker;
    const shopper = tracker.shopperId();
    if (!shopper) return null; // consent awaited: no guest id, nothing to ask for
    const a = (n) => this.getAttribute(n);
    const base = a("site")
      ? String(a("endpoint") || tracker.options.endpoint).replace(/\/+$/, "") + "/v1/sites/" + encodeURIComponent(a("site"))
      : tracker.base;
    const q = new URLSearchParams({ limit: a("limit") || "8" });
    for (const [attr, param] of [["type", "type"], ["product-id", "product_id"], ["cart", "product_ids"]]) {
      if (a(attr)) q.set(param, a(attr));
    }
    const token = tracker.identityToken();
    if (token) q.set("identity_token", token);
    const res = await fetch(base + "/shoppers/" + encodeURIComponent(shopper) + "/recommendations?" + q,
      { credentials: "omit" });
    if (!res.ok) return null;
    const answer = await res.json();
    const items = (answer.items || []).slice();
    const cat = a("catalog") && await (catalogs[a("catalog")] = catalogs[a("catalog")] ||
      fetch(a("catalog")).then((r) => r.json()).catch(() => ({})));
    const byId = cat && (cat.by_id || cat);
    if (byId) items.forEach((it, i) => (items[i] = Object.assign({}, byId[it.product_id] || {}, it)));
    this.render(items, answer.recommendation_id);
    this.dispatchEvent(new CustomEvent("affinity:rendered", { detail: answer, bubbles: true }));
    return answer;
  }

  render(items, recId) {
    const doc = document;
    const el = (tag, cls) => {
      const e = doc.createElement(tag);
      if (cls) e.className = cls;
      return e;
    };
    const list = el("ul");
    list.setAttribute("role", "list");
    for (const it of items) {
      const li = el("li");
      li.dataset.productId = it.product_id;
      const fields = { name: nameOf(it), brand: it.brand, category: leaf(it.category),
        price: it.price != null ? String(it.price) : "", reason: REASONS[it.reason] || "" };
      if (this._template) {
        li.append(this._template.content.cloneNode(true));
        li.querySelectorAll("[data-field]").forEach((f) => {
          const k = f.dataset.field;
          if (k == "url") { const u = safeUrl(it.url); if (u) f.setAttribute("href", u); }
          else if (k == "image") { const u = safeUrl(it.image); if (u) f.setAttribute("src", u); f.setAttribute("alt", fields.name); }
          else f.textContent = fields[k] || "";
        });
      } else {
        const link = el("a");
        const u = safeUrl(it.url);
        if (u) link.href = u;
        const img = safeUrl(it.image);
        if (img) {
          const im = el("img");
          im.src = img;
          im.alt = "";
          im.loading = "lazy";
          link.append(im);
        }
        const name = el("span", "affinity-name");
        name.textContent = fields.name;
        link.append(name);
        for (const k of ["price", "reason"]) {
          if (!fields[k]) continue;
          const s = el("div", "affinity-muted affinity-" + k);
          s.textContent = fields[k];
          link.append(s);
        }
        li.append(link);
      }
      li.addEventListener("click", () => this._send("click", it, recId));
      list.append(li);
    }
    const heading = this.getAttribute("heading");
    const parts = [];
    if (heading) {
      const h = el("h2");
      h.textContent = heading;
      h.id = "affinity-h-" + Math.random().toString(36).slice(2);
      list.setAttribute("aria-labelledby", h.id);
      parts.push(h);
    }
    parts.push(list);
    this.replaceChildren(...parts);
    this._watch(list, items, recId);
  }

  _send(type, it, recId) {
    const p = { id: it.product_id };
    if (it.category) p.category = it.category;
    if (it.brand) p.brand = it.brand;
    const e = { type, product: p };
    if (recId) e.recommendation_id = recId;
    this._tracker.track(e);
  }

  /** One impression per card: at least half of it visible for a whole second. */
  _watch(list, items, recId) {
    if (this._io) this._io.disconnect();
    if (!window.IntersectionObserver) return;
    const timers = new Map();
    const seen = new Set();
    this._io = new IntersectionObserver((entries) => {
      for (const en of entries) {
        const i = [...list.children].indexOf(en.target);
        if (i < 0 || seen.has(i)) continue;
        if (en.intersectionRatio >= 0.5) {
          timers.set(i, setTimeout(() => {
            seen.add(i);
            this._io.unobserve(en.target);
            this._send("impression", items[i], recId);
          }, 1000));
        } else clearTimeout(timers.get(i));
      }
    }, { threshold: [0, 0.5] });
    [...list.children].forEach((li) => this._io.observe(li));
  }
}

if (!customElements.get("affinity-recommendations")) {
  customElements.define("affinity-recommendations", AffinityRecommendations);
}
