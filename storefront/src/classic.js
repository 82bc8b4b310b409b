// The classic build of the tracker (dist/affinity.js), for a plain script tag:
//   <script async src="affinity.js" data-site="SITE_ID" data-endpoint="https://API"></script>
// `data-require-consent="true"` turns the consent gate on. Commands pushed before it loads
// (`window.affinity = window.affinity || []; affinity.push([...])`) run once it has.
import { boot } from "./tracker.js";

const s = document.currentScript;
const q = (window.affinity = window.affinity || []);
if (s && s.dataset.site && Array.isArray(q) && !q.some((c) => c[0] == "init")) {
  const d = s.dataset;
  q.unshift(["init", { site: d.site, endpoint: d.endpoint, requireConsent: d.requireConsent == "true" }]);
}
boot(window);
