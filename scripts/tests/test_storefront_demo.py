"""Unit tests of the demo storefront's build (storefront/demo/build.py) and server
(scripts/serve_storefront.py). Run: make test, or .tools/venv/bin/python -m unittest discover -s scripts/tests
"""

import importlib.util
import json
import subprocess
import sys
import tempfile
import unittest
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("demo_build", ROOT / "storefront" / "demo" / "build.py")
demo_build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(demo_build)

CSV = """event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session
2019-10-01 00:00:00 UTC,view,1,20,electronics.smartphone,samsung,130.76,5,s
2019-10-01 00:00:01 UTC,view,2,21,,,10.00,5,s
2019-10-01 00:00:02 UTC,view,3,22,furniture.living_room.sofa,,543.10,6,t
2019-10-01 00:00:03 UTC,cart,3,22,furniture.living_room.sofa,,540.00,6,t
2019-10-01 00:00:04 UTC,view,4,23,,xiaomi,29.51,7,u
2019-10-01 00:00:05 UTC,view,5
"""


class CatalogTest(unittest.TestCase):
    def catalog(self):
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "sample.csv"
            p.write_text(CSV)
            return demo_build.catalog(p)

    def test_products_are_named_from_brand_and_category_and_ordered_by_rows(self):
        c = self.catalog()
        self.assertEqual(c["products"], ["3", "1", "4"])
        self.assertEqual(c["by_id"]["1"], {"name": "Samsung smartphone", "url": "product.html?id=1",
                                           "category": "electronics.smartphone", "brand": "samsung", "price": 130.76})
        self.assertEqual(c["by_id"]["3"]["name"], "sofa")
        self.assertEqual(c["by_id"]["3"]["price"], 540.0)  # the latest row's price
        self.assertEqual(c["by_id"]["4"]["name"], "Xiaomi")

    def test_products_without_category_or_brand_and_the_cut_off_row_are_left_out(self):
        c = self.catalog()
        self.assertNotIn("2", c["by_id"])
        self.assertNotIn("5", c["by_id"])


class PagesTest(unittest.TestCase):
    def test_each_page_is_the_layout_around_its_own_main(self):
        layout = (ROOT / "storefront" / "demo" / "layout.html").read_text()
        head = layout.split("$page", 1)[0]
        with tempfile.TemporaryDirectory() as d:
            dist = Path(d) / "dist"
            dist.mkdir()
            for name in ("affinity.js", "affinity-recommendations.js"):
                (dist / name).write_text("")
            subprocess.run([sys.executable, str(ROOT / "storefront" / "demo" / "build.py"), "--out", d,
                            "--dist", str(dist)], check=True)
            for name, marker in [("index", 'id="products"'), ("product", 'id="product"'),
                                 ("search", 'id="search-title"'), ("cart", 'id="checkout"')]:
                page = (Path(d) / f"{name}.html").read_text()
                self.assertTrue(page.startswith(head + name + '">'), name)
                self.assertIn('<script async src="affinity.js"></script>', page)
                self.assertIn(marker, page.split("<main>", 1)[1].split("</main>", 1)[0])
                self.assertTrue(page.endswith("</main>\n</body>\n</html>\n"), name)
                self.assertNotIn("$", page)


class ServerTest(unittest.TestCase):
    def test_it_serves_the_pages_and_a_config_naming_the_site_and_api(self):
        if not (ROOT / "storefront" / "dist" / "affinity.js").exists():
            subprocess.run(["npm", "run", "--silent", "build"], cwd=ROOT / "storefront", check=True)
        with tempfile.TemporaryDirectory() as d:
            proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "serve_storefront.py"), "--site", "s-1",
                                     "--api", "http://127.0.0.1:9/", "--out", d],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            try:
                url = proc.stdout.readline().split()[-1]
                with urllib.request.urlopen(url + "config.js", timeout=10) as r:
                    body = r.read().decode()
                self.assertEqual(json.loads(body.split("=", 1)[1].strip().rstrip(";")),
                                 {"site": "s-1", "endpoint": "http://127.0.0.1:9"})
                with urllib.request.urlopen(url + "index.html", timeout=10) as r:
                    page = r.read().decode()
                self.assertIn('<script async src="affinity.js"></script>', page)
                self.assertIn("<affinity-recommendations", page)
            finally:
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    unittest.main()
