#!/usr/bin/env python3
"""The aggregate function's write cost per 1,000 events, computed from item sizes (not measured).

Replays the REES46 sample (data/, see data/PROVENANCE.md) in time order in stream batches of 1,000
events, folding views into co-view lists and cart/purchase events into co-buy lists the way
functions/aggregate/src/lists.rs does (a session: one shopper's views with gaps of at most 30 minutes;
pairs within the last 20 products), keeps each list's distinct neighbours (at most 100, the stored
bound), and sums, per batch, ceil(item bytes / 1 KB) over the lists written once each plus the
popularity item (write units of PutItem; TransactWriteItems doubles the popularity's). Item bytes use
the same upper estimates as NeighbourList::approx_bytes and Popularity::approx_bytes.

Usage: bench/list_write_cost.py [data/rees46-2019-oct-sample.csv] [batch size]
"""
import csv, math, sys
from collections import defaultdict

path = sys.argv[1] if len(sys.argv) > 1 else "data/rees46-2019-oct-sample.csv"
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
GAP, WINDOW, MAXN, MAXB = 30 * 60, 20, 100, 8 * 1024
rows = sorted(csv.DictReader(open(path)), key=lambda r: r["event_time"])
lists = defaultdict(dict)  # (kind, id) -> {neighbour: category bytes}
cat = {}
session = {}  # user -> (last ts, [ids])
carts = defaultdict(list)
pop = {}

def ts(r):
    import datetime
    return datetime.datetime.strptime(r["event_time"], "%Y-%m-%d %H:%M:%S UTC").timestamp()

def size(key):
    n = lists[key]
    entries = sorted(n.items(), key=lambda kv: kv[1])[:MAXN]
    b = 160 + len(cat.get(key[1], "")) + 12
    for nid, c in entries:
        b += len(nid) + c + 42 + 16
        if b > MAXB:
            return MAXB
    return b

wcu_lists = wcu_pop = events = 0
batches = 0
lists_written = 0
for start in range(0, len(rows), batch):
    touched = set()
    for r in rows[start:start + batch]:
        t, p, u = ts(r), r["product_id"], r["user_id"]
        cat[p] = r["category_code"]
        pop[p] = len(p) + len(r["category_code"]) + len(r["brand"]) + 64
        kind = "v" if r["event_type"] == "view" else "b"
        if kind == "v":
            last, ids = session.get(u, (0, []))
            ids = ids if t - last <= GAP else []
            before = [x for x in ids if x != p][-WINDOW:]
            if not ids or ids[-1] != p:
                ids = ids + [p]
            session[u] = (t, ids)
        else:
            before = [x for x in carts[u] if x != p][-WINDOW:]
            if p not in carts[u]:
                carts[u].append(p)
        touched.add((kind, p))
        for q in before:
            cq = len(cat.get(q, "")) + 12
            lists[(kind, q)][p] = len(cat.get(p, "")) + 12
            lists[(kind, p)][q] = cq
            touched.add((kind, q))
    for k in touched:
        wcu_lists += math.ceil(size(k) / 1024)
    lists_written += len(touched)
    pop_bytes = min(96 * 1024, sum(sorted(pop.values())[:1000])) + 128 + 8 * 2048
    wcu_pop += 2 * math.ceil(pop_bytes / 1024)
    events += len(rows[start:start + batch])
    batches += 1
per = 1000 / events
print(f"events {events}, batches of {batch}: {batches}")
print(f"lists written per 1,000 events: {lists_written * per:.0f}")
print(f"WCU per 1,000 events: lists {wcu_lists * per:.0f}, popularity {wcu_pop * per:.0f} (transaction), total {(wcu_lists + wcu_pop) * per:.0f}")
