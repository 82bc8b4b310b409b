// Builds the storefront kit into dist/ with esbuild (bundled, minified):
//   dist/affinity.js                 the tracker, classic script (IIFE)
//   dist/affinity.esm.js             the tracker, ES module (createTracker, boot)
//   dist/affinity-recommendations.js the <affinity-recommendations> widget (classic script)
//   dist/affinity-bigcommerce.js     the BigCommerce script (the tracker fed by the storefront's data layer)
//   dist/shopify-pixel.js            the Shopify web pixel extension's code, bundled as Shopify CLI would
// and copies the tracker and the widget into the Shopify theme app extension's assets/.
// Browsers targeted: the last two years of evergreen browsers (es2020: optional chaining, BigInt-free).
import { copyFileSync, mkdirSync } from "node:fs";
import * as esbuild from "esbuild";

const common = { bundle: true, minify: true, target: "es2020", legalComments: "none", logLevel: "warning" };
await Promise.all([
  esbuild.build({ ...common, entryPoints: ["src/classic.js"], format: "iife", outfile: "dist/affinity.js" }),
  esbuild.build({ ...common, entryPoints: ["src/tracker.js"], format: "esm", outfile: "dist/affinity.esm.js" }),
  esbuild.build({ ...common, entryPoints: ["src/widget.js"], format: "iife", outfile: "dist/affinity-recommendations.js" }),
  esbuild.build({ ...common, entryPoints: ["bigcommerce/affinity-bigcommerce.js"], format: "iife",
    outfile: "dist/affinity-bigcommerce.js" }),
  esbuild.build({ ...common, entryPoints: ["shopify/extensions/affinity-pixel/src/index.js"], format: "esm",
    outfile: "dist/shopify-pixel.js" }),
]);

const assets = "shopify/extensions/affinity-theme/assets";
mkdirSync(assets, { recursive: true });
for (const f of ["affinity.js", "affinity-recommendations.js"]) copyFileSync(`dist/${f}`, `${assets}/${f}`);
