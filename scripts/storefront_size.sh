#!/usr/bin/env bash
# Size budgets of the storefront kit (issue 12), measured on the minified builds (esbuild --minify, via
# `npm run build` in storefront/) compressed with `gzip -9`:
#   tracker (dist/affinity.js)                                  <= 4096 bytes
#   tracker + widget (dist/affinity.js + affinity-recommendations.js) <= 10240 bytes
# Prints one line per measure and exits non-zero if a budget is exceeded.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../storefront"
npm run --silent build
gz() { gzip -9c "$1" | wc -c | tr -d ' '; }
tracker="$(gz dist/affinity.js)"
widget="$(gz dist/affinity-recommendations.js)"
esm="$(gz dist/affinity.esm.js)"
rc=0
printf 'storefront_size: tracker %s B gzip (min %s B; budget 4096)\n' "$tracker" "$(wc -c <dist/affinity.js | tr -d ' ')"
printf 'storefront_size: tracker ES module %s B gzip\n' "$esm"
printf 'storefront_size: widget %s B gzip (min %s B)\n' "$widget" "$(wc -c <dist/affinity-recommendations.js | tr -d ' ')"
printf 'storefront_size: tracker + widget %s B gzip (budget 10240)\n' "$((tracker + widget))"
((tracker <= 4096)) || { echo "storefront_size: the tracker is over its 4 KB budget" >&2; rc=1; }
((tracker + widget <= 10240)) || { echo "storefront_size: tracker + widget are over their 10 KB budget" >&2; rc=1; }
exit "$rc"
