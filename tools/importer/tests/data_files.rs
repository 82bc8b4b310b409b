//! What the importer makes of the three real files in `data/`, row for row: every row is an
//! event, a bad row or a skipped row, and the counts match what the files hold (checked against
//! an independent count of the files with Python's csv module when they were added).

mod common;

use std::collections::BTreeMap;
use std::fs::File;

use affinity_importer::event::EventType;
use affinity_importer::{gms, rees46, uci};
use common::data_file;

fn open(name: &str) -> File {
    File::open(data_file(name)).expect("data file is in the repo")
}

fn kinds(events: &[affinity_importer::event::Event]) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();
    for e in events {
        *counts.entry(e.kind.as_str()).or_default() += 1;
    }
    counts
}

#[test]
fn rees46_file_every_row_but_the_cut_off_last_one() {
    let parsed = rees46::parse(open("rees46-2019-oct-sample.csv"), None).expect("readable");
    assert_eq!(parsed.rows, 17_435);
    assert_eq!(parsed.events.len(), 17_434);
    assert!(parsed.skipped.is_empty());
    assert_eq!(parsed.bad_rows.len(), 1);
    let cut = &parsed.bad_rows[0];
    // The header is line 1: the 17,435th data row is line 17,436, the file's last, without
    // line end, holding `...,25.71,52040330` (user_id cut short, no session).
    assert_eq!(cut.line, 17_436);
    assert_eq!(cut.reason, "row cut off");
    assert_eq!(cut.detail, "the file ends mid-row: 8 of 9 fields");
    assert_eq!(
        kinds(&parsed.events),
        BTreeMap::from([("cart_add", 165), ("purchase", 214), ("view", 17_055)])
    );
    let last = parsed.events.last().expect("events");
    assert_eq!(last.event_id, "rees46-17435");
    // 2019-10-01 02:50:00 UTC.
    assert_eq!(last.timestamp_ms, 1_569_898_200_000);
}

#[test]
fn rees46_limit_rows_reads_only_the_first_rows() {
    let parsed = rees46::parse(open("rees46-2019-oct-sample.csv"), Some(100)).expect("readable");
    assert_eq!(parsed.rows, 100);
    assert_eq!(parsed.events.len(), 100);
    assert_eq!(
        parsed.events.last().map(|e| e.event_id.as_str()),
        Some("rees46-101")
    );
}

#[test]
fn gms_file_product_actions_become_events_the_rest_is_skipped() {
    let parsed = gms::parse(open("google-merch-store-sessions.csv"), None).expect("readable");
    assert_eq!(parsed.rows, 15_134);
    assert!(parsed.bad_rows.is_empty(), "{:?}", parsed.bad_rows);
    assert_eq!(
        kinds(&parsed.events),
        BTreeMap::from([
            ("cart_add", 37),
            ("cart_remove", 1),
            ("click", 134),
            ("purchase", 9),
            ("view", 137)
        ])
    );
    let skipped: u64 = parsed.skipped.values().sum();
    assert_eq!(
        parsed
            .skipped
            .get("not a shopper behaviour (eCommerceAction_type 0: no product action, no search)"),
        Some(&14_785)
    );
    assert_eq!(skipped, 14_785 + 31);
    assert_eq!(parsed.events.len() as u64 + skipped, parsed.rows);
    // The file has no search keyword at all.
    assert!(parsed.events.iter().all(|e| e.kind != EventType::Search));
    // Every visit start matches its date: no timestamp fell back to the date.
    assert!(parsed
        .notes
        .keys()
        .all(|k| !k.starts_with("visitId is not a start time")));
    let purchases: Vec<_> = parsed
        .events
        .iter()
        .filter(|e| e.kind == EventType::Purchase)
        .collect();
    assert!(purchases
        .iter()
        .all(|p| p.order_id.as_deref().is_some_and(|o| o.starts_with("ORD"))));
}

#[test]
fn uci_file_invoices_become_purchases() {
    let parsed = uci::parse(open("uci-online-retail-sample.csv"), None).expect("readable");
    assert_eq!(parsed.rows, 30_000);
    assert!(parsed.bad_rows.is_empty(), "{:?}", parsed.bad_rows);
    assert_eq!(parsed.skipped.get(uci::SKIP_CANCELLATION), Some(&620));
    // 2,000 rows without CustomerID, 4 of which are cancellations (counted as those).
    assert_eq!(parsed.skipped.get(uci::SKIP_NO_CUSTOMER), Some(&1_996));
    assert_eq!(parsed.skipped.get(uci::SKIP_NOT_PRODUCT), Some(&102));
    assert_eq!(parsed.skipped.get(uci::SKIP_NON_POSITIVE), None);
    // 30,000 - 620 - 1,996 - 102 = 27,282 lines in 11,175 invoices.
    let lines: usize = parsed
        .events
        .iter()
        .map(|e| e.items.as_ref().map_or(0, Vec::len))
        .sum();
    assert_eq!(lines, 27_282);
    assert_eq!(parsed.events.len(), 11_175);
    assert!(parsed.events.iter().all(|e| e.kind == EventType::Purchase
        && e.currency.as_deref() == Some("GBP")
        && e.shopper_id == format!("uci-{}", e.customer_id.as_deref().unwrap_or("?"))));
    let first = &parsed.events[0];
    assert_eq!(first.event_id, "uci-569901");
    assert_eq!(first.customer_id.as_deref(), Some("12923"));
}
