//! The HTTP side end to end, against a fake API on 127.0.0.1: request bodies, routes, headers,
//! 503 `not_stored` retries, rejections, the report on stdout and the exit status.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::process::Command as Process;

use affinity_importer::cli::{Cli, Command};
use affinity_importer::event::format_epoch_ms;
use affinity_importer::guest::guest_id;
use affinity_importer::replay::run;
use clap::Parser;
use common::{accept_all, data_file, lookup_for, FakeApi};
use serde_json::{json, Value};

const NOW: i64 = 1_800_000_000_000;

fn replay(args: &[&str]) -> (u8, Vec<Value>, String) {
    let argv = ["affinity-import", "replay"]
        .iter()
        .chain(args.iter())
        .copied();
    let Command::Replay(args) = Cli::try_parse_from(argv).expect("valid arguments").command;
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = run(&args, NOW, false, &mut out, &mut err);
    let out = String::from_utf8(out).expect("utf-8");
    let lines = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("stdout lines are JSON"))
        .collect();
    (code, lines, String::from_utf8(err).expect("utf-8"))
}

/// Replays `file` in `format` to the API at `url` for `site`, with more `flags` (separated by
/// spaces).
fn replay_to(
    url: &str,
    site: &str,
    format: &str,
    file: &str,
    flags: &str,
) -> (u8, Vec<Value>, String) {
    let mut args = vec!["--api", url, "--site", site, "--format", format];
    args.extend(flags.split_whitespace());
    args.push(file);
    replay(&args)
}

/// Replays `data/`'s file of `format` to `api` for `site`, with more `flags` (separated by spaces).
fn replay_file(api: &FakeApi, site: &str, format: &str, flags: &str) -> (u8, Vec<Value>, String) {
    let file = match format {
        "uci" => data_file("uci-online-retail-sample.csv"),
        _ => data_file("rees46-2019-oct-sample.csv"),
    };
    replay_to(&api.url(), site, format, &file.to_string_lossy(), flags)
}

#[test]
fn import_sends_the_rows_retries_what_a_503_did_not_store_and_reports() {
    let api = FakeApi::start(|req, n| {
        if req.path.ends_with("/recommendations/lookup") {
            return lookup_for(req);
        }
        match n {
            // 12 events: 2 not stored, 1 rejected, 9 accepted.
            0 => (
                503,
                json!({
                    "error": {"code": "unavailable", "message": "some events could not be stored"},
                    "not_stored": [2, 5],
                    "accepted": 9, "duplicates": 0, "pii_dropped": 0,
                    "rejected": [{"index": 7, "field": "product.price", "reason": "must be a non-negative number"}],
                })
                .to_string(),
            ),
            // The retry: one stored now, one had been stored after all.
            _ => (
                200,
                r#"{"accepted":1,"duplicates":1,"rejected":[],"pii_dropped":0}"#.to_string(),
            ),
        }
    });
    // The file's own times (shown exactly below); the default shifts them to now.
    let (code, lines, err) = replay_file(
        &api,
        "demo-shop",
        "rees46",
        "--api-key k3y --limit-rows 12 --concurrency 2 --keep-times",
    );
    assert_eq!(code, 0, "stderr: {err}");

    let requests = api.requests();
    let posts: Vec<_> = requests
        .iter()
        .filter(|r| r.path.ends_with("/events/import"))
        .collect();
    assert_eq!(posts.len(), 2);
    for post in &posts {
        assert_eq!(post.path, "/v1/sites/demo-shop/events/import");
        assert_eq!(post.header("authorization"), Some("Bearer k3y"));
        assert_eq!(post.header("content-type"), Some("application/json"));
    }
    let first = posts[0].events();
    assert_eq!(first.len(), 12);
    let ids: HashSet<&str> = first
        .iter()
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    let expected: HashSet<String> = (2..=13).map(|l| format!("rees46-{l}")).collect();
    assert_eq!(ids, expected.iter().map(String::as_str).collect());
    // The wire form of line 2 of the file, exactly.
    let line2 = first
        .iter()
        .find(|e| e["event_id"] == "rees46-2")
        .expect("line 2 sent");
    assert_eq!(
        *line2,
        json!({
            "type": "view",
            "shopper_id": "541312140",
            "session_id": "72d76fde-8bb3-4e00-8c23-a032dfed738c",
            "event_id": "rees46-2",
            "timestamp": "2019-10-01T00:00:00Z",
            "product": {"id": "44600062", "category": "2103807459595387724", "brand": "shiseido", "price": 35.79}
        })
    );
    // Sorted by shopper (then time) across shoppers.
    let shoppers: Vec<&str> = first
        .iter()
        .filter_map(|e| e["shopper_id"].as_str())
        .collect();
    assert!(shoppers.windows(2).all(|w| w[0] <= w[1]));
    // The retry holds exactly the two events the 503 named, in order.
    assert_eq!(posts[1].events(), vec![first[2].clone(), first[5].clone()]);

    // Preferences and recommendations of the 5 most active shoppers (1 event each here: ties go to
    // the most recent, then by id), in one request to the API-key lookup route.
    let lookups: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/sites/demo-shop/recommendations/lookup")
        .collect();
    assert_eq!(lookups.len(), 1);
    assert_eq!(requests.len(), 3);
    assert_eq!(
        shoppers.iter().collect::<HashSet<_>>().len(),
        shoppers.len(),
        "one event each"
    );
    // Same-format RFC 3339 UTC times order as text.
    let mut by_recency: Vec<(&str, &str)> = first
        .iter()
        .filter_map(|e| Some((e["shopper_id"].as_str()?, e["timestamp"].as_str()?)))
        .collect();
    by_recency.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let by_count: Vec<&str> = by_recency.iter().map(|(s, _)| *s).collect();
    let asked: Vec<Value> = by_count[..5]
        .iter()
        .map(|s| json!({"shopper_id": s}))
        .collect();
    assert_eq!(lookups[0].json(), json!({"shoppers": asked, "limit": 10}));
    assert_eq!(lookups[0].header("authorization"), Some("Bearer k3y"));

    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0]["shopper_id"], by_count[0]);
    assert_eq!(lines[0]["events"], 1);
    assert_eq!(
        lines[0]["preferred_categories"][0]["name"],
        "electronics.smartphone"
    );
    assert_eq!(lines[0]["preferred_brands"][0]["name"], "samsung");
    assert_eq!(lines[0]["items"][0]["product_id"], "1004856");

    let totals = &lines[5];
    assert_eq!(totals["rows"], 12);
    assert_eq!(totals["events"], 12);
    assert_eq!(totals["events_sent"], 12);
    assert_eq!(totals["accepted"], 10);
    assert_eq!(totals["duplicates"], 1);
    assert_eq!(
        totals["rejected"],
        json!({"product.price: must be a non-negative number": 1})
    );
    assert_eq!(totals["failed"], 0);
    assert_eq!(totals["bad_rows"], json!({}));
    assert_eq!(totals["mode"], "import");
    assert!(err.contains("rejected line"), "{err}");
}

#[test]
fn events_a_503_keeps_refusing_count_as_failed() {
    let api = FakeApi::start(|req, _| {
        let n = req.events().len();
        (
            503,
            json!({"error": {"code": "unavailable"}, "not_stored": [0], "accepted": n - 1,
                   "duplicates": 0, "rejected": [], "pii_dropped": 0})
            .to_string(),
        )
    });
    let (code, lines, err) =
        replay_file(&api, "s", "rees46", "--limit-rows 5 --retries 2 --report 0");
    assert_eq!(code, 0, "a 503 is not fatal; stderr: {err}");
    let posts = api.requests();
    let sizes: Vec<usize> = posts.iter().map(|r| r.events().len()).collect();
    assert_eq!(
        sizes,
        vec![5, 1, 1],
        "one request, then two retries of the unstored event"
    );
    assert_eq!(posts[1].events()[0], posts[0].events()[0]);
    let totals = lines.last().expect("totals");
    assert_eq!(totals["events_sent"], 5);
    assert_eq!(totals["accepted"], 4);
    assert_eq!(totals["failed"], 1);
    assert!(err.contains("still not stored after 2 retries"), "{err}");
}

#[test]
fn a_503_that_names_nothing_retries_the_whole_request() {
    let api = FakeApi::start(|req, n| match n {
        0 => (503, "upstream unavailable".to_string()),
        _ => accept_all(req),
    });
    let (code, lines, err) = replay_file(&api, "s", "rees46", "--limit-rows 7 --report 0");
    assert_eq!(code, 0, "{err}");
    let posts = api.requests();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].body, posts[1].body);
    let totals = lines.last().expect("totals");
    assert_eq!(totals["accepted"], 7);
    assert_eq!(totals["events_sent"], 7);
    assert_eq!(totals["failed"], 0);
}

#[test]
fn shifted_live_replay_sends_each_shoppers_runs_in_order() {
    let api = FakeApi::start(|req, _| {
        if req.path.ends_with("/recommendations/lookup") {
            lookup_for(req)
        } else {
            accept_all(req)
        }
    });
    // The live route is asked for (the import route is the default since shifting is).
    let (code, lines, err) = replay_file(
        &api,
        "s",
        "rees46",
        "--shift-to-now --live --concurrency 3 --report 2 --api-key k3y",
    );
    assert_eq!(code, 0, "{err}");
    let posts: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/sites/s/events")
        .collect();
    let mut seen = HashSet::new();
    let mut per_shopper: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut latest = String::new();
    for post in &posts {
        assert_eq!(post.path, "/v1/sites/s/events", "live route");
        let events = post.events();
        assert!((1..=25).contains(&events.len()));
        let shopper = events[0]["shopper_id"]
            .as_str()
            .expect("shopper")
            .to_string();
        for e in &events {
            assert_eq!(e["shopper_id"], shopper.as_str(), "one shopper per request");
            assert!(seen.insert(e["event_id"].as_str().expect("id").to_string()));
            let ts = e["timestamp"].as_str().expect("timestamp").to_string();
            // Whole-second RFC 3339 UTC strings (REES46 has no fractions) compare like their times.
            latest = latest.max(ts.clone());
            per_shopper.entry(shopper.clone()).or_default().push(ts);
        }
    }
    // Every row of the file but the cut-off last one.
    assert_eq!(seen.len(), 17_434);
    for (shopper, times) in &per_shopper {
        assert!(
            times.windows(2).all(|w| w[0] <= w[1]),
            "{shopper}'s events arrive in time order"
        );
    }
    // The last event is now minus 5 seconds.
    assert_eq!(Some(latest), format_epoch_ms(NOW - 5_000));
    // The busiest shopper (515136153, 51 events) needed several requests, under its guest id.
    let busiest = guest_id("rees46", "515136153");
    let most = per_shopper.values().map(Vec::len).max().unwrap_or(0);
    assert_eq!(most, 51);
    let busiest_requests = posts
        .iter()
        .filter(|p| p.events()[0]["shopper_id"] == busiest.as_str())
        .count();
    assert!(busiest_requests >= 3, "{busiest_requests}");
    let totals = lines.last().expect("totals");
    assert_eq!(totals["mode"], "live");
    assert_eq!(totals["accepted"], 17_434);
    assert_eq!(totals["bad_rows"], json!({"row cut off": 1}));
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["events"].as_u64(), Some(most as u64));
    // The report shows the file's id beside the guest id it was sent under, and what the lookup
    // route answered for it.
    assert_eq!(lines[0]["user_id"], "515136153");
    assert_eq!(lines[0]["shopper_id"], busiest.as_str());
    assert_eq!(lines[0]["preferred_brands"][0]["name"], "samsung");
    // Every guest id on the wire is a mapped one: 32 hex digits, never a file id.
    assert!(per_shopper
        .keys()
        .all(|g| g.len() == 32 && g.bytes().all(|b| b.is_ascii_hexdigit())));
}

#[test]
fn binary_exits_1_on_an_error_answer_and_prints_it() {
    let api = FakeApi::start(|_, _| {
        (
            400,
            r#"{"error":{"code":"bad_request","message":"body is not JSON"}}"#.to_string(),
        )
    });
    let output = Process::new(env!("CARGO_BIN_EXE_affinity-import"))
        .args([
            "replay",
            "--api",
            &api.url(),
            "--site",
            "s",
            "--format",
            "uci",
        ])
        .arg(data_file("uci-online-retail-sample.csv"))
        .env_remove("AFFINITY_API_KEY")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("HTTP 400"), "{err}");
    assert!(err.contains("body is not JSON"), "{err}");
    let out = String::from_utf8_lossy(&output.stdout);
    let totals: Value = serde_json::from_str(out.lines().last().expect("totals")).expect("json");
    assert_eq!(totals["accepted"], 0);
    assert_eq!(totals["events"], 11_175);
    assert_eq!(totals["not_sent"], 11_175);
    // No Authorization header without a key.
    assert!(api
        .requests()
        .iter()
        .all(|r| r.header("authorization").is_none()));
}

#[test]
fn binary_exits_1_when_the_api_is_unreachable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let output = Process::new(env!("CARGO_BIN_EXE_affinity-import"))
        .args([
            "replay",
            "--api",
            &format!("http://127.0.0.1:{port}"),
            "--site",
            "s",
        ])
        .args(["--format", "gms", "--retries", "0"])
        .arg(data_file("google-merch-store-sessions.csv"))
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("API unreachable"), "{err}");
}

#[test]
fn binary_dry_run_needs_no_api_and_a_wrong_format_exits_2() {
    let output = Process::new(env!("CARGO_BIN_EXE_affinity-import"))
        .args(["replay", "--dry-run", "--format", "rees46", "--report", "1"])
        .arg(data_file("rees46-2019-oct-sample.csv"))
        .env_remove("AFFINITY_API_URL")
        .env_remove("AFFINITY_SITE")
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(0));
    let out = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines[0], json!({"shopper_id": "515136153", "events": 51}));
    assert_eq!(lines[1]["events"], 17_434);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("rees46-2019-oct-sample.csv:17436: bad row: row cut off"),
        "{err}"
    );

    let output = Process::new(env!("CARGO_BIN_EXE_affinity-import"))
        .args(["replay", "--dry-run", "--format", "uci"])
        .arg(data_file("rees46-2019-oct-sample.csv"))
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("lacks the column(s) InvoiceNo"), "{err}");
}

/// A store that already holds every event it is sent: each answer is all duplicates, and the export
/// of a shopper lists the events at `stored_ts` (the RFC 3339 times the first import sent).
fn store_holding(stored: std::sync::Arc<std::sync::Mutex<BTreeMap<String, i64>>>) -> FakeApi {
    FakeApi::start(move |req, _| {
        if req.path.ends_with("/recommendations/lookup") {
            return lookup_for(req);
        }
        if req.method == "GET" && req.path.ends_with("/export") {
            let events: Vec<Value> = stored
                .lock()
                .expect("lock")
                .iter()
                .map(|(id, ts)| json!({"event_id": id, "ts": ts, "type": "purchase"}))
                .collect();
            return (200, json!({"events": events}).to_string());
        }
        let n = req.events().len();
        (
            200,
            format!(r#"{{"accepted":0,"duplicates":{n},"rejected":[],"pii_dropped":0}}"#),
        )
    })
}

/// Asserts that the stderr text `err` holds every one of `parts` (separated by ` | `).
fn assert_says(err: &str, parts: &str) {
    for part in parts.split(" | ") {
        assert!(err.contains(part), "{part:?} missing from: {err}");
    }
}

/// The flags of the UCI runs below: a key (the export needs it), no report.
const UCI_FLAGS: &str = "--api-key k --report 0";

#[test]
fn the_default_shifts_to_now_through_the_import_route() {
    let api = FakeApi::start(|req, _| accept_all(req));
    let (code, lines, err) = replay_file(&api, "s", "uci", UCI_FLAGS);
    assert_eq!(code, 0, "{err}");
    let posts = api.requests();
    assert!(posts.iter().all(|p| p.path == "/v1/sites/s/events/import"));
    let latest = posts
        .iter()
        .flat_map(|p| p.events())
        .filter_map(|e| e["timestamp"].as_str().map(str::to_string))
        .max();
    assert_eq!(
        latest,
        format_epoch_ms(NOW - 5_000),
        "the last event is now - 5 s"
    );
    assert!(err.contains("shifted every timestamp by"), "{err}");
    assert_eq!(lines.last().expect("totals")["accepted"], 11_175);
}

#[test]
fn keep_times_warns_what_decay_does_to_old_events() {
    let api = FakeApi::start(|req, _| accept_all(req));
    let (code, _, err) = replay_file(&api, "s", "uci", &format!("{UCI_FLAGS} --keep-times"));
    assert_eq!(code, 0, "{err}");
    // The newest UCI invoice is of 2011-12; NOW is 2027-01-15: about 5,520 days, 184 half-lives.
    assert_says(
        &err,
        "warning: --keep-times: the newest event is | half-life of 30 days",
    );
    let first = &api.requests()[0].events()[0];
    assert!(
        first["timestamp"]
            .as_str()
            .is_some_and(|t| t.starts_with("201")),
        "{first}"
    );
}

#[test]
fn a_reimport_with_other_times_is_refused_with_exit_3_and_a_rerun_is_not() {
    let stored = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    let api = store_holding(stored.clone());

    // What the store holds: the events of a shifted import (the same run's times, 10 min earlier).
    let probe = FakeApi::start(|req, _| accept_all(req));
    let (code, _, err) = replay_file(&probe, "s", "uci", UCI_FLAGS);
    assert_eq!(code, 0, "{err}");
    for e in probe.requests().iter().flat_map(|p| p.events()) {
        let ts = e["timestamp"].as_str().expect("ts");
        let ms = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
            .expect("rfc 3339")
            .unix_timestamp()
            * 1000;
        stored.lock().expect("lock").insert(
            e["event_id"].as_str().expect("id").to_string(),
            ms - 600_000,
        );
    }

    // The same file shifted again 10 minutes later: the same import, answered with duplicates.
    let (code, lines, err) = replay_file(&api, "s", "uci", UCI_FLAGS);
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines.last().expect("totals")["duplicates"], 11_175);
    let posts = api.requests().iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 23, "every request was sent");

    // With the file's own times: refused after the first request, exit 3, saying why.
    let before = api.requests().len();
    let (code, lines, err) = replay_file(&api, "s", "uci", &format!("{UCI_FLAGS} --keep-times"));
    assert_eq!(code, 3, "{err}");
    assert_says(
        &err,
        "refused: this file is already in the store with other timestamps | would change nothing",
    );
    let after: Vec<_> = api.requests().into_iter().skip(before).collect();
    assert_eq!(after.iter().filter(|r| r.method == "POST").count(), 1);
    assert_eq!(
        after.iter().filter(|r| r.path.ends_with("/export")).count(),
        1
    );
    let totals = lines.last().expect("totals");
    assert_eq!(totals["events_sent"], 500);
    assert_eq!(totals["not_sent"], 11_175 - 500);
}
