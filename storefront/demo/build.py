#!/usr/bin/env python3
"""Builds the demo storefront: static pages plus a catalog made from the REES46 sample's products.

The REES46 clickstream (data/rees46-2019-oct-sample.csv, see data/PROVENANCE.md) names each product by
id, category code, brand and price only. The catalog gives each product a display name made from its
brand and the last part of its category code ("Samsung smartphone"), the price of its latest row, and
the URL of the demo's product page; products the file gives neither a category nor a brand are left out.
Popularity here is the count of the file's rows for the product.

Writes into OUT: the files of storefront/demo/static/, one page per storefront/demo/pages/NAME.html
(NAME.html: layout.html, the head, snippet and header every page shares, with `$page` the page's name,
the body's data-page, and `$main` that file, its <main>), the built kit (storefront/dist/*.js) and
catalog.json: {"products": [ids, most popular first], "by_id": {id: {name, category, brand, price, url}}}.
Nothing but the standard library.

Usage: build.py --out DIR [--data CSV] [--dist DIR]
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import shutil
import string
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


def display_name(category: str, brand: str) -> str:
    leaf = category.rsplit(".", 1)[-1].replace("_", " ") if category else ""
    return " ".join(p for p in (brand.capitalize() if brand else "", leaf) if p) or "Product"


def catalog(csv_path: Path) -> dict:
    rows_per_product: collections.Counter[str] = collections.Counter()
    info: dict[str, dict] = {}
    with csv_path.open(newline="") as f:
        for row in csv.DictReader(f):
            pid = (row.get("product_id") or "").strip()
            category = (row.get("category_code") or "").strip()
            brand = (row.get("brand") or "").strip()
            if not pid.isdigit() or not (category or brand):
                continue  # the cut-off last row, or a product with nothing to show
            rows_per_product[pid] += 1
            try:
                price = round(float(row.get("price") or ""), 2)
            except ValueError:
                price = None
            entry = {"name": display_name(category, brand), "url": f"product.html?id={pid}"}
            if category:
                entry["category"] = category
            if brand:
                entry["brand"] = brand
            if price is not None:
                entry["price"] = price
            info[pid] = entry
    order = [pid for pid, _ in rows_per_product.most_common()]
    return {"products": order, "by_id": {pid: info[pid] for pid in order}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "rees46-2019-oct-sample.csv")
    ap.add_argument("--dist", type=Path, default=ROOT / "storefront" / "dist")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for f in (HERE / "static").iterdir():
        shutil.copy2(f, args.out / f.name)
    layout = string.Template((HERE / "layout.html").read_text())
    for f in (HERE / "pages").glob("*.html"):
        (args.out / f.name).write_text(layout.substitute(page=f.stem, main=f.read_text()))
    for name in ("affinity.js", "affinity-recommendations.js"):
        src = args.dist / name
        if not src.exists():
            raise SystemExit(f"build.py: {src} is missing: run `npm run build` in storefront/ first")
        shutil.copy2(src, args.out / name)
    (args.out / "catalog.json").write_text(json.dumps(catalog(args.data), separators=(",", ":")))


if __name__ == "__main__":
    main()
