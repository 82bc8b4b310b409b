#!/usr/bin/env python3
"""Writes the generated part of BENCHMARKS.md from the raw results of bench/run.sh.

Usage: report.py RESULTS_DIR BENCHMARKS.md

Only the text between the BEGIN/END GENERATED markers is replaced; what is written around them
(the analysis) stays. Medians across rounds; every figure names the command that produced it.
"""

from __future__ import annotations

import json
import os
import statistics
import sys

BEGIN = "<!-- BEGIN GENERATED (bench/report.py; edit outside these markers) -->"
END = "<!-- END GENERATED -->"

CMD_CRITERION = "`cargo bench -p affinity --bench core`"
CMD_INGEST = "`affinity-bench ingest --direct target/release/ingest --instances C --site S --concurrency C --data data/rees46-2019-oct-sample.csv`"
CMD_INGEST_HTTP = "`affinity-bench ingest --api $AFFINITY_API_URL --site S --concurrency C --data data/rees46-2019-oct-sample.csv`"
CMD_FLOOR = "`affinity-bench floor-writes --site S --events-table affinity-floor-events --profiles-table affinity-floor-profiles --concurrency C --data …`"
CMD_USAGE_I = "`bench/usage.py since - ingest direct LOGDIR` (sum of the \"aws usage\" lines)"
CMD_USAGE_A = "`scripts/stream_pump.py --drain` then `bench/usage.py since … aggregate`"
CMD_REC = "`affinity-bench recommend --direct target/release/recommend --instances C --site S --requests N --concurrency C --data …`"
CMD_REC_HTTP = "`affinity-bench recommend --api $AFFINITY_API_URL --site S --requests N --concurrency C --data …`"
CMD_REC_USAGE = "`bench/usage.py since - recommend direct LOGDIR`"
CMD_FLOOR_READS = "`affinity-bench floor-reads --site S --requests N --concurrency C --data …`"
CMD_NULL = "`affinity-bench null --direct target/release/<fn> (or --api $AFFINITY_API_URL) --site S --kind <ingest or recommend> --requests N`"
CMD_COLD = "`affinity-bench coldstart --runs R --env … target/release/<fn>`"
CMD_SIZES = "`cargo lambda build --release --arm64 --verbose --bin <fn>…` (cargo-lambda and zig from .tools/venv)"


def load(d: str, name: str):
    p = os.path.join(d, name)
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs):
    xs = [x for x in xs if x is not None]
    if len(xs) < 2:
        return ""
    return f" (rounds: {', '.join(f(x) for x in xs)})"


def f(x, nd=None):
    if x is None:
        return "–"
    if isinstance(x, int):
        return f"{x:,}"
    if nd is None:
        nd = 0 if abs(x) >= 100 else 1 if abs(x) >= 10 else 2 if abs(x) >= 1 else 3
    return f"{x:,.{nd}f}"


def met(ok):
    if ok is None:
        return "not measured"
    return "**met**" if ok else "**missed**"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def generate(d: str) -> str:
    meta = load(d, "meta.json") or {}
    steps = load(d, "steps.json") or {}
    crit = load(d, "criterion.json")
    cold = load(d, "coldstart.json")
    cold_ca = load(d, "coldstart-cafile.json")
    sizes = load(d, "sizes.json")
    C = meta.get("concurrency")
    out = []
    load_end = (load(d, "load-end.json") or {}).get("loadavg_end")
    out.append(
        f"Run of {meta.get('date', '?')} at commit `{meta.get('commit', '?')}`"
        f"{(' with uncommitted changes to ' + ', '.join(f'`{x}`' for x in meta.get('dirty_files', []))) if meta.get('dirty') else ''}; {meta.get('cpus')} × {meta.get('cpu_model', '?')} "
        f"({meta.get('machine')}), shared with other builds: load average {' '.join(meta.get('loadavg_start', []))} at the start"
        f"{', ' + ' '.join(load_end) + ' at the end' if load_end else ''}. {meta.get('rustc', '')}. "
        f"Concurrency {C} (clients, and instances per function), {meta.get('rounds')} rounds. "
        "Raw results: `bench/results/`. Regenerate everything with `make bench` (`bench/run.sh`)."
    )
    summary = []  # (area, figure, measured, target, ok, command)

    # --- 1. criterion
    sec1 = []
    if crit:
        rows = []
        for name, e in sorted(crit.items()):
            n = e.get("elements")
            per = e["median_ns"] / n / 1000 if n else None
            lo, hi = e["median_ci_ns"]
            rows.append([name, f(e["median_ns"] / 1000), f"{f(lo / 1000)}–{f(hi / 1000)}", f(e["mad_ns"] / 1000),
                         f(per) if per else "", n or ""])
        sec1.append(table(["benchmark", "median µs", "95% CI of the median, µs", "MAD µs", "µs per element", "elements"], rows))
        key = next((k for k in crit if k.startswith("ingest/parse+validate")), None)
        if key:
            per = crit[key]["median_ns"] / crit[key]["elements"] / 1000
            summary.append(("in process", "CPU per ingested event (500-event batch: parse, validate, hash 250 emails, fold into profiles; the DynamoDB item conversion is measured apart)",
                            f"{f(per)} µs", "≤ 5 µs", per <= 5, CMD_CRITERION))
        sizes_log = os.path.join(d, "criterion-sizes.log")
        if os.path.exists(sizes_log):
            sec1.append("\nItem sizes printed by the benches: " + "; ".join(
                l.strip() for l in open(sizes_log) if l.strip()) + ".")
        sec1.append("\nWall-clock medians of criterion (on this shared machine, wall ≈ CPU of one core only when the "
                    "other core's load leaves it alone: compare the CI and MAD).")
    else:
        sec1.append("Not run (BENCH_SKIP).")

    # --- 2/3. ingest, floor, aggregate
    sec2 = []
    rounds = []
    r = 1
    while load(d, f"round{r}-ingest.json") is not None:
        rounds.append({k: load(d, f"round{r}-{k}.json") for k in ("ingest", "ingest-usage", "aggregate-usage", "floor")})
        r += 1
    if rounds:
        rows = []
        agg = {k: [] for k in ("ing_eps", "floor_eps", "ratio", "ing_p50", "ing_p99", "fl_p50", "fl_p99", "ing_req_ev",
                               "ing_wr", "agg_wr", "fl_wr", "wr_ratio", "ing_wcu_ev", "agg_wcu_ev", "fl_wcu_ev",
                               "wcu_ratio", "ing_rcu_ev", "agg_rcu_ev", "agg_inv", "drain_s", "events", "requests",
                               "ing_cpu", "fl_cpu", "ing_rss")}
        for i, rd in enumerate(rounds, 1):
            ing, iu, au, fl = rd["ingest"], rd["ingest-usage"] or {}, rd["aggregate-usage"] or {}, rd["floor"] or {}
            ev = ing["events"]
            agg["events"].append(ev)
            agg["requests"].append(ing["requests"])
            agg["ing_eps"].append(ing["events_per_s"])
            agg["floor_eps"].append(fl.get("events_per_s"))
            agg["ratio"].append(ing["events_per_s"] / fl["events_per_s"] if fl.get("events_per_s") else None)
            agg["ing_p50"].append(ing["latency_ms"]["p50"])
            agg["ing_p99"].append(ing["latency_ms"]["p99"])
            agg["fl_p50"].append(fl.get("latency_ms", {}).get("p50"))
            agg["fl_p99"].append(fl.get("latency_ms", {}).get("p99"))
            agg["ing_req_ev"].append(iu.get("dynamodb_requests", 0) / ev)
            agg["ing_wr"].append(iu.get("dynamodb_write_requests"))
            agg["agg_wr"].append(au.get("dynamodb_write_requests"))
            agg["fl_wr"].append(fl.get("dynamodb_write_requests"))
            whole = (iu.get("dynamodb_write_requests") or 0) + (au.get("dynamodb_write_requests") or 0)
            agg["wr_ratio"].append(whole / fl["dynamodb_write_requests"] if fl.get("dynamodb_write_requests") else None)
            agg["ing_wcu_ev"].append(iu.get("wcu", 0) / ev)
            agg["agg_wcu_ev"].append(au.get("wcu", 0) / ev)
            agg["fl_wcu_ev"].append(fl.get("wcu", 0) / ev if fl else None)
            agg["wcu_ratio"].append((iu.get("wcu", 0) + au.get("wcu", 0)) / fl["wcu"] if fl.get("wcu") else None)
            agg["ing_rcu_ev"].append(iu.get("rcu", 0) / ev)
            agg["agg_rcu_ev"].append(au.get("rcu", 0) / ev)
            agg["agg_inv"].append(au.get("invocations"))
            agg["drain_s"].append(au.get("drain_s"))
            agg["ing_cpu"].append(ing.get("function_cpu_us_per_event"))
            agg["fl_cpu"].append(fl.get("cpu_us_per_event"))
            agg["ing_rss"].append(ing.get("function_peak_rss_mb"))
            bad = {k: v for k, v in ing["status"].items() if k != "200"}
            rows.append([i, f(ev), f(ing["requests"]), f(ing["events_per_s"]), f(fl.get("events_per_s")),
                         f(agg["ratio"][-1], 2), f(ing["latency_ms"]["p50"]), f(ing["latency_ms"]["p99"]),
                         f(fl.get("latency_ms", {}).get("p50")), f(fl.get("latency_ms", {}).get("p99")),
                         f(ing.get("function_cpu_us_per_event")), f(fl.get("cpu_us_per_event")),
                         f(ing["accepted"]) + (f" ({bad})" if bad else "")])
        sec2.append("Per round (each round a fresh tenant; ingest driven straight into its release binary through a "
                    "runtime API in the load client, see below for the HTTP API; the floor writes the same items into copies "
                    "of the tables; latency is per request for ingest, per BatchWriteItem + PutItem pair for the floor):\n")
        sec2.append(table(["round", "events", "requests", "ingest events/s", "floor events/s", "ingest / floor",
                           "ingest p50 ms", "ingest p99 ms", "floor p50 ms", "floor p99 ms",
                           "ingest CPU µs/event", "floor CPU µs/event", "accepted"], rows))
        sec2.append("\nCPU: ingest's is user + system time of its 4 processes over the replay (wait4 rusage; all of "
                    "it: the runtime client, lambda_http, parsing, validation, profiles, the SDK and its interceptor); "
                    "the floor's is the bare SDK loop's own process over its timed part. DynamoDB Local's CPU is in neither.")
        M = {k: med(v) for k, v in agg.items()}
        sec2.append("\nDynamoDB work, counted (medians of the rounds):\n")
        wrows = [
            ["ingest: DynamoDB requests per event", f(M["ing_req_ev"], 3), CMD_USAGE_I],
            ["ingest: DynamoDB requests per request", f(M["ing_req_ev"] * M["events"] / M["requests"], 2), CMD_USAGE_I],
            ["ingest: write requests", f(M["ing_wr"]), CMD_USAGE_I],
            ["aggregate: write requests (popularity, per tenant per stream batch)", f(M["agg_wr"]) + f" in {f(M['agg_inv'])} invocations", CMD_USAGE_A],
            ["floor: write requests", f(M["fl_wr"]), CMD_FLOOR],
            ["whole replay (ingest + aggregate) / floor write requests", f(M["wr_ratio"], 3) + spread(agg["wr_ratio"]), "ratio of the two above"],
            ["ingest: WCU per event", f(M["ing_wcu_ev"], 3), CMD_USAGE_I],
            ["aggregate: WCU per event", f(M["agg_wcu_ev"], 3), CMD_USAGE_A],
            ["floor: WCU per event", f(M["fl_wcu_ev"], 3), CMD_FLOOR],
            ["whole replay / floor WCU", f(M["wcu_ratio"], 2) + spread(agg["wcu_ratio"]), "ratio"],
            ["ingest: RCU per event", f(M["ing_rcu_ev"], 3), CMD_USAGE_I],
            ["aggregate: RCU per event", f(M["agg_rcu_ev"], 3), CMD_USAGE_A],
            ["aggregate: drain time, s", f(M["drain_s"]), CMD_USAGE_A],
        ]
        fl0 = rounds[0]["floor"] or {}
        if fl0.get("item_sizes"):
            s = fl0["item_sizes"]
            wrows.append(["mean item size written: event / profile (bytes)",
                          f"{f(s['event_item_bytes_mean'])} / {f(s['profile_item_bytes_mean'])}", CMD_FLOOR])
        sec2.append(table(["figure", "value", "command"], wrows))
        http, hu, ha = load(d, "http-ingest.json"), load(d, "http-ingest-usage.json"), load(d, "http-aggregate-usage.json")
        nrows = []
        if http:
            ratio_http = http["events_per_s"] / M["floor_eps"] if M["floor_eps"] else None
            nrows.append(["replay through the HTTP API (gateway.py + cargo lambda watch)", f(http["events_per_s"]),
                          f(ratio_http, 2), f(http["latency_ms"]["p50"]), f(http["latency_ms"]["p99"]),
                          f"{http['status']}", CMD_INGEST_HTTP])
        nrows.append(["replay straight into the function (median of the rounds)", f(M["ing_eps"]), f(M["ratio"], 2),
                      f(M["ing_p50"]), f(M["ing_p99"]), "", CMD_INGEST])
        nrows.append(["floor (median of the rounds)", f(M["floor_eps"]), "1", f(M["fl_p50"]), f(M["fl_p99"]), "", CMD_FLOOR])
        for way in ("http", "direct"):
            n = load(d, f"null-{way}-ingest.json")
            if n:
                nrows.append([f"the way in alone, {'HTTP API' if way == 'http' else 'direct'}: invalid site id, 404 before any DynamoDB call",
                              f"({f(n['requests_per_s'])} requests/s)", "", f(n["latency_ms"]["p50"]), f(n["latency_ms"]["p99"]),
                              f"{n['status']}", CMD_NULL])
        sec2.append("\nThe two ways in, and what the way in costs by itself:\n")
        sec2.append(table(["what", "events/s", "/ floor", "p50 ms", "p99 ms", "status", "command"], nrows))
        # Where the ingest process's CPU goes, per request, from three independent measurements.
        nd = load(d, "null-direct-ingest.json")
        fls = [rd["floor"] for rd in rounds if rd["floor"]]
        if nd and nd.get("function_cpu_s") and fls and crit:
            frame = nd["function_cpu_s"] * 1e6 / (nd["requests"] + 8 * C)
            per_call = med([x["cpu_s"] * 1e6 / x["dynamodb_requests"] for x in fls])
            calls = M["ing_req_ev"] * M["events"] / M["requests"]
            ev_per_req = M["events"] / M["requests"]
            logic_ev = sum(crit[k]["median_ns"] / crit[k]["elements"] / 1000 for k in crit
                           if k.startswith("ingest/") and crit[k].get("elements"))
            total = M["ing_cpu"] * ev_per_req
            rest = total - frame - per_call * calls - logic_ev * ev_per_req
            sec2.append("\nWhere ingest's CPU goes, per request (medians; each line measured on its own):\n")
            sec2.append(table(["part", "µs per request", "measured by"], [
                ["the way in: runtime API, lambda_http, routing, logs (an invalid site id: no DynamoDB call)", f(frame), f"`null --direct` CPU / requests ({CMD_NULL})"],
                [f"SDK calls: {f(calls, 2)} per request × {f(per_call)} µs (one SDK call of the floor)", f(per_call * calls), f"floor CPU / its requests ({CMD_FLOOR})"],
                [f"domain logic: {f(ev_per_req, 2)} events × {f(logic_ev, 2)} µs (criterion `ingest/*` per event)", f(logic_ev * ev_per_req), CMD_CRITERION],
                ["not accounted for by the above", f(rest), "the difference"],
                ["measured: the ingest processes' CPU over the replay", f(total), CMD_INGEST],
            ]))
            summary.append(("ingest", "peak RSS of an ingest instance over the replay (wait4)", f"{f(M['ing_rss'], 1)} MiB", "(< 16 MB is the cold-start target)", None, CMD_INGEST))
        if hu and http:
            sec2.append(f"\nThrough the HTTP API the function made the same DynamoDB calls: {f(hu.get('dynamodb_requests'))} requests, "
                        f"{f(hu.get('dynamodb_write_requests'))} writes, {f(hu.get('wcu'))} WCU for {f(http['events'])} events"
                        + (f"; aggregate then {f(ha.get('dynamodb_write_requests'))} writes in {f(ha.get('invocations'))} invocations." if ha else "."))
        summary.append(("ingest", f"throughput straight into the function / bare-SDK floor ({C} clients)",
                        f"{f(M['ratio'], 2)}× ({f(M['ing_eps'])} vs {f(M['floor_eps'])} events/s){spread(agg['ratio'])}",
                        "≥ 0.8×", M["ratio"] >= 0.8 if M["ratio"] else None, f"{CMD_INGEST} vs {CMD_FLOOR}"))
        if http and M["floor_eps"]:
            r_http = http["events_per_s"] / M["floor_eps"]
            summary.append(("ingest", f"throughput through the HTTP API (gateway.py, cargo lambda) / floor",
                            f"{f(r_http, 2)}× ({f(http['events_per_s'])} events/s)", "≥ 0.8×", r_http >= 0.8,
                            f"{CMD_INGEST_HTTP} vs {CMD_FLOOR}"))
        if M["ing_cpu"] is not None:
            summary.append(("ingest", "CPU per event of the whole ingest process under the replay (floor: the bare SDK loop)",
                            f"{f(M['ing_cpu'])} µs ({f(M['fl_cpu'])} µs){spread(agg['ing_cpu'])}", "–", None, CMD_INGEST))
        summary.append(("ingest", "p50 / p99 latency per request (≤ 25 events)",
                        f"{f(M['ing_p50'])} / {f(M['ing_p99'])} ms", "–", None, CMD_INGEST))
        summary.append(("write cost", "write requests of the whole replay (ingest + aggregate) / floor",
                        f"{f(M['wr_ratio'], 3)}×", "≤ 1.5×", M["wr_ratio"] <= 1.5 if M["wr_ratio"] else None,
                        f"{CMD_USAGE_I}, {CMD_USAGE_A}, {CMD_FLOOR}"))
        summary.append(("write cost", "WCU per event: ingest + aggregate (floor)",
                        f"{f(M['ing_wcu_ev'] + M['agg_wcu_ev'], 2)} ({f(M['fl_wcu_ev'], 2)})", "–", None,
                        f"{CMD_USAGE_I}, {CMD_USAGE_A}"))
    else:
        sec2.append("Not run (BENCH_SKIP).")

    # --- 4. recommendations
    sec4 = []
    rec, ru, fr = load(d, "recommend.json"), load(d, "recommend-usage.json"), load(d, "floor-reads.json")
    rec_http = load(d, "http-recommend.json")
    if rec and fr:
        def row(name, x, cmd, rps=None):
            l = x["latency_ms"]
            return [name, f(l["p50"]), f(l["p90"]), f(l["p99"]), f(rps if rps is not None else x["requests_per_s"]), cmd]
        rows = [row("GET recommendations, straight into the function", rec, CMD_REC)]
        if rec_http:
            rows.append(row("GET recommendations through the HTTP API (gateway.py + cargo lambda)", rec_http, CMD_REC_HTTP))
        for way in ("direct", "http"):
            n = load(d, f"null-{way}-recommend.json")
            if n:
                rows.append(row(f"the way in alone, {way}: invalid shopper id, 400 before any DynamoDB call", n, CMD_NULL))
        for k, name in (("get_item", "GetItem of a profile (bare SDK)"),
                        ("batch_get_2", "BatchGetItem tenant + profile: recommend's read (bare SDK)"),
                        ("batch_get_3", "BatchGetItem tenant + profile + popularity: its read with a cold popularity cache (bare SDK)")):
            if k in fr:
                rows.append(row(name, fr[k], CMD_FLOOR_READS, fr[k]["requests"] / fr[k]["wall_s"]))
        sec4.append(f"{rec['requests']} reads over the replay's shoppers ({rec.get('with_profile')} with a profile), {C} at a time, "
                    f"{C} instances; status {rec['status']}; recommend's CPU (its {C} processes, wait4): "
                    f"{f(rec.get('function_cpu_us_per_request'))} µs per request, peak RSS {f(rec.get('function_peak_rss_mb'))} MiB.\n")
        sec4.append(table(["what", "p50 ms", "p90 ms", "p99 ms", "requests/s", "command"], rows))
        ratio = rec["latency_ms"]["p99"] / fr["get_item"]["latency_ms"]["p99"]
        if ru:
            dist = ru["dynamodb_requests_per_invocation"]
            worst = max(int(k) for k in dist) if dist else None
            rcu = {k: f(fr[k]["rcu_per_request"], 2) for k in ("get_item", "batch_get_2", "batch_get_3") if k in fr}
            sec4.append(f"\nDynamoDB requests per recommendation, from the usage lines of {ru['invocations']} invocations "
                        f"(requests: invocations): {dist}; RCU per request {f(ru['rcu'] / max(ru['invocations'], 1), 2)} "
                        f"(bare SDK: {rcu}). recommend makes its calls one after the other, so requests = round trips.")
            summary.append(("recommendations", "sequential DynamoDB round trips per request (most seen)", f"{worst}", "≤ 2",
                            worst <= 2 if worst is not None else None, CMD_REC_USAGE))
        summary.append(("recommendations", "p99 straight into the function / p99 of one GetItem",
                        f"{f(ratio, 1)}× ({f(rec['latency_ms']['p99'])} vs {f(fr['get_item']['latency_ms']['p99'])} ms)", "≤ 2×", ratio <= 2,
                        f"{CMD_REC} vs {CMD_FLOOR_READS}"))
        if rec_http:
            rh = rec_http["latency_ms"]["p99"] / fr["get_item"]["latency_ms"]["p99"]
            summary.append(("recommendations", "p99 through the HTTP API / p99 of one GetItem",
                            f"{f(rh, 1)}× ({f(rec_http['latency_ms']['p99'])} ms)", "≤ 2×", rh <= 2, f"{CMD_REC_HTTP} vs {CMD_FLOOR_READS}"))
        if "batch_get_2" in fr:
            rb = fr["batch_get_2"]["latency_ms"]["p99"] / fr["get_item"]["latency_ms"]["p99"]
            summary.append(("recommendations", "p99 of recommend's BatchGetItem alone (bare SDK) / p99 of one GetItem",
                            f"{f(rb, 1)}×", "(what DynamoDB Local leaves)", None, CMD_FLOOR_READS))
    else:
        sec4.append("Not run (BENCH_SKIP).")

    # --- 5. cold start
    sec5 = []
    if cold:
        rows = []
        for name, c in cold.items():
            fp, rss = c["first_poll_ms"], c["peak_rss_mb"]
            if c.get("error") or not fp.get("n"):
                rows.append([name, "error: " + str(c.get("error"))[:200], "", "", "", "", ""])
                continue
            ca = (cold_ca or {}).get(name, {}).get("first_poll_ms", {})
            rows.append([name, f(fp["p50"], 2), f(fp["p90"], 2), f(fp["max"], 2), f(ca.get("p50"), 2), f(rss["p50"], 1), f(rss["max"], 1), f(c["binary_bytes"] / 1e6, 2)])
            if name != "bare-lambda":
                summary.append(("cold start", f"{name}: start → first poll, median (max)", f"{f(fp['p50'], 2)} ms ({f(fp['max'], 2)})", "≤ 10 ms", fp["p50"] <= 10, CMD_COLD))
                summary.append(("cold start", f"{name}: peak RSS, median (max)", f"{f(rss['p50'], 1)} MB ({f(rss['max'], 1)})", "< 16 MB", rss["max"] < 16, CMD_COLD))
        sec5.append(f"x86_64 release binaries (the root release profile: opt-level z, fat LTO, 1 codegen unit, panic=abort, strip), "
                    f"{meta.get('coldstart_runs')} runs each after one untimed start; RSS in MiB (ru_maxrss). `bare-lambda` is "
                    "`lambda_runtime::run` of a handler that does nothing, the same profile: the floor of this measurement.\n")
        sec5.append(table(["binary", "first poll p50 ms", "p90 ms", "max ms", "p50 ms, one CA file", "peak RSS p50 MiB", "max MiB", "x86_64 size MB"], rows))
        if cold_ca:
            sec5.append("\n\"One CA file\": the same runs with `SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt SSL_CERT_DIR=/nonexistent`. "
                        "At start the SDK's HTTPS client loads the system's root certificates (rustls-native-certs): the bundle "
                        f"file, then every file of /etc/ssl/certs ({len(os.listdir('/etc/ssl/certs')) if os.path.isdir('/etc/ssl/certs') else '?'} here), "
                        "parsing each; the difference between the two columns is that directory walk.")
    else:
        sec5.append("Not run (BENCH_SKIP).")

    # --- 6. sizes
    sec6 = []
    if sizes:
        rows = []
        for name, s in sizes["functions"].items():
            mb = s["bytes"] / 1e6
            rows.append([name, f"{s['bytes']:,}", f(mb, 2), s["file"].split(",")[0] + ("; stripped" if "stripped" in s["file"] and "not stripped" not in s["file"] else "; NOT stripped" if "not stripped" in s["file"] else "")])
            summary.append(("size", f"{name}: stripped arm64 bootstrap", f"{f(mb, 2)} MB", "< 6 MB", mb < 6, CMD_SIZES))
        sec6.append(table(["function", "bytes", "MB", "file"], rows))
        flags = next((s["rustc_flags"] for s in sizes["functions"].values() if s.get("rustc_flags")), None)
        fresh = any(s.get("rustc_flags_from_this_build") for s in sizes["functions"].values())
        sec6.append("\nProfile as applied (the rustc command line of the binaries in the verbose build log"
                    + ("" if fresh else ", of the last build that relinked them: `bench/results/lambda-rustc-flags.json`") + "): "
                    + (", ".join(f"`{x}`" for x in flags) if flags else "not in this log (nothing was rebuilt)")
                    + (("; environment set by cargo lambda: " + ", ".join(f"`{x}`" for x in sizes["profile_env"])) if sizes.get("profile_env") else "")
                    + (f"; cargo lambda's own addition (its debug log, `release optimizations config=`): `{sizes['cargo_lambda_config']}`" if sizes.get("cargo_lambda_config") else "")
                    + ".")
    else:
        sec6.append("Not run (BENCH_SKIP).")

    # --- harness health
    import glob as _glob
    health = {}
    for hp in sorted(_glob.glob(os.path.join(d, "health-*.json"))):
        try:
            health[os.path.basename(hp)[7:-5]] = json.load(open(hp))
        except ValueError:
            pass
    sec_h = []
    if health:
        tables = list(next(iter(health.values()))["get_item_ms"].keys())
        rows = []
        slow = []
        for phase, h in health.items():
            cells = []
            for t in tables:
                v = h["get_item_ms"].get(t)
                if v is not None and v > 5:
                    slow.append(f"{t} before {phase}")
                cells.append(f"**{f(v)}**" if v is not None and v > 5 else f(v))
            cpu = h.get("dynamodb_local_cpu_s")
            rows.append([phase, *cells, f"{cpu} s / {h.get('dynamodb_local_age_s')} s" if cpu is not None else ""])
        sec_h.append("Median GetItem of a missing key per table just before each phase (`bench/health.py`; bold: over 5 ms), and "
                     "DynamoDB Local's CPU time over its age. DynamoDB Local runs every table in one SQLite database behind "
                     "one worker thread (\"SQLiteQueue\"), so it is the bottleneck of every figure against the stack, and it has "
                     "been seen to serve one stream-enabled table at 30–45 ms per call while the others took 1 ms.\n")
        sec_h.append(table(["before", *tables, "DynamoDB Local CPU / age"], rows))
        sec_h.append("\n" + ("Slow tables in this run: " + "; ".join(slow) + "." if slow else "No table was slow in this run."))

    lines = ["## Targets\n", table(["area", "figure", "measured", "target", "", "command"],
                                   [[a, b, c, t, met(ok) if t not in ("–",) and not t.startswith("(") else "", cmd] for a, b, c, t, ok, cmd in summary])]
    lines += ["\n## 1. In process (criterion)\n", *sec1]
    lines += ["\n## 2–3. Ingest through the local stack, and its floor\n", *sec2]
    lines += ["\n## 4. Recommendations\n", *sec4]
    lines += ["\n### The emulator's health during the run\n", *sec_h] if sec_h else []
    lines += ["\n## 5. Cold start\n", *sec5]
    lines += ["\n## 6. Sizes (arm64, as deployed)\n", *sec6]
    if steps:
        lines += ["\n## How long `make bench` took, by step (s)\n",
                  table(["step", "s"], [[k, f(v)] for k, v in steps.items()])]
    return "\n".join([out[0], ""] + lines) + "\n"


def main(argv):
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    results, target = argv[1], argv[2]
    body = generate(results)
    if os.path.exists(target):
        text = open(target).read()
    else:
        text = f"# Benchmarks\n\n{BEGIN}\n{END}\n\n## Analysis\n\n(to be written)\n"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = f"{head}{BEGIN}\n{body}{END}{tail}"
    else:
        text = f"{text.rstrip()}\n\n{BEGIN}\n{body}{END}\n"
    with open(target, "w") as fh:
        fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
