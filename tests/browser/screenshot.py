#!/usr/bin/env python3
"""Takes docs/storefront-demo.png: the demo storefront's home page after a shopper looked at a few
Samsung smartphones, its "Recommended for you" list personalized by that. Same environment as
test_storefront.py (run through scripts/browser_test.sh's setup, or by hand with the stack's env and
AFFINITY_SITE_ID set).

Usage: screenshot.py [OUT.png]
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "storefront-demo.png"
    api, site = os.environ["AFFINITY_API_URL"], os.environ["AFFINITY_SITE_ID"]
    server = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "serve_storefront.py"), "--site", site,
                               "--api", api], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        shop = re.search(r"(http://127\.0\.0\.1:\d+)/", server.stdout.readline()).group(1)
        with urllib.request.urlopen(shop + "/catalog.json") as r:
            cat = json.load(r)
        phones = [p for p in cat["products"] if cat["by_id"][p].get("category") == "electronics.smartphone"
                  and cat["by_id"][p].get("brand") == "samsung"][:3]
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                                         args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            for p in phones:
                page.goto(f"{shop}/product.html?id={p}")
                page.wait_for_selector("#add-to-cart")
                time.sleep(0.5)
            page.goto(f"{shop}/index.html")
            page.wait_for_selector("affinity-recommendations li")
            time.sleep(0.5)
            page.screenshot(path=str(out))
            browser.close()
        print(f"screenshot: {out}", file=sys.stderr)
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
