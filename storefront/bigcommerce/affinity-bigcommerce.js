// The script Affinity's BigCommerce app installs on a store with the Scripts API
// (POST /stores/{store_hash}/v3/content/scripts, kind "script_tag", consent_category "analytics", so
// BigCommerce loads it only for shoppers who allowed analytics cookies):
//   <script async src="https://CDN/affinity-bigcommerce.js" data-site="SITE_ID" data-endpoint="https://API"></script>
// It runs the Affinity tracker (guest id, batching, retries: ../src/tracker.js) and feeds it the
// storefront's data layer events (BODL, see map.js). The logged-in customer is passed by the theme, if
// at all, with `affinity.push(["identify", {customerId, identityToken}])` (never read from the page).
import { boot } from "../src/tracker.js";
import { SUBSCRIPTIONS, toAffinity } from "./map.js";

const s = document.currentScript;
const q = (window.affinity = window.affinity || []);
if (s && s.dataset.site && Array.isArray(q) && !q.some((c) => c[0] == "init")) {
  q.unshift(["init", { site: s.dataset.site, endpoint: s.dataset.endpoint }]);
}
const a = boot(window);

function subscribe() {
  const bodl = window.bodlEvents;
  if (!bodl) return false;
  for (const [group, name, type] of SUBSCRIPTIONS) {
    const on = bodl[group] && bodl[group][name];
    if (typeof on == "function") {
      on((payload) => {
        const e = toAffinity(type, payload);
        if (e) a.push((t) => t.track(e));
      });
    }
  }
  return true;
}
// BODL may be defined after this script: try now, then once the page has loaded.
if (!subscribe()) addEventListener("load", subscribe, { once: true });
