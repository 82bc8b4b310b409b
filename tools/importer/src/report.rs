//! The end-of-import report: the file's busiest shoppers and what the service now holds about them.
//!
//! The shoppers are picked from the file (most events, then most product lines, then id) and their
//! preferred categories and brands and recommendations are read through the API-key lookup route
//! (`POST /v1/sites/{site}/recommendations/lookup`, by guest id): the storefront's recommendations
//! route does not answer preferences.

use std::collections::HashMap;
use std::io::{self, Write};

use serde_json::{json, Map, Value};

use crate::client::{ApiClient, ApiError, MAX_LOOKUP_SHOPPERS};
use crate::event::Event;

/// Recommendations asked per reported shopper.
pub const RECOMMENDATIONS_LIMIT: u32 = 10;

/// How much a shopper did in the file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Activity {
    /// Events.
    pub events: u64,
    /// Product lines among them: one per view, click or cart event, one per item of a purchase.
    pub lines: u64,
    /// Time of the newest of them, epoch ms (as sent, after any shift).
    pub newest_ms: i64,
}

/// One reported shopper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reported {
    /// The guest id the events were sent under.
    pub shopper_id: String,
    /// The data file's own user id, when it is not the guest id (the live route's mapping,
    /// [`crate::guest::guest_id`]).
    pub user_id: Option<String>,
    /// What the shopper did in the file.
    pub activity: Activity,
}

impl Reported {
    /// The report line's first fields: `shopper_id`, `user_id` (when mapped) and `events`.
    fn line(&self) -> Map<String, Value> {
        let mut line = Map::new();
        line.insert("shopper_id".into(), json!(self.shopper_id));
        if let Some(user) = &self.user_id {
            line.insert("user_id".into(), json!(user));
        }
        line.insert("events".into(), json!(self.activity.events));
        line
    }
}

/// Activity per shopper id.
pub fn count_by_shopper(events: &[Event]) -> HashMap<&str, Activity> {
    let mut counts: HashMap<&str, Activity> = HashMap::new();
    for event in events {
        let a = counts.entry(event.shopper_id.as_str()).or_default();
        a.events += 1;
        a.lines += event.product_ids().count() as u64;
        a.newest_ms = a.newest_ms.max(event.timestamp_ms);
    }
    counts
}

/// The `n` busiest shoppers: most events first, then most product lines (a file whose visits are
/// one event each, like the Google Merchandise Store sample, shows its purchases first), then the
/// most recent (their scores have decayed least), then by id.
pub fn top_shoppers(counts: &HashMap<&str, Activity>, n: usize) -> Vec<(String, Activity)> {
    let mut all: Vec<(&str, Activity)> = counts.iter().map(|(s, a)| (*s, *a)).collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    all.into_iter()
        .take(n)
        .map(|(s, a)| (s.to_string(), a))
        .collect()
}

/// Writes one JSON line per shopper of `top` without asking the API (a dry run, or no API key):
/// `{"shopper_id", "user_id" (when mapped), "events"}`.
pub fn write_counts(top: &[Reported], out: &mut dyn Write) -> io::Result<()> {
    for shopper in top {
        writeln!(out, "{}", Value::Object(shopper.line()))?;
    }
    Ok(())
}

/// Asks the lookup route for the shoppers of `top` (by guest id, [`MAX_LOOKUP_SHOPPERS`] a request)
/// and writes one JSON line each: `{"shopper_id", "user_id" (when mapped), "events",
/// "preferred_categories", "preferred_brands", "items"}`, or `error` instead of the last three
/// when the API could not answer for them. Returns whether every shopper was answered; `say`
/// writes the errors on stderr.
pub fn write_lookups(
    client: &ApiClient,
    top: &[Reported],
    out: &mut dyn Write,
    say: &dyn Fn(&str) -> io::Result<()>,
) -> io::Result<bool> {
    let mut all_answered = true;
    for chunk in top.chunks(MAX_LOOKUP_SHOPPERS) {
        let ids: Vec<&str> = chunk.iter().map(|r| r.shopper_id.as_str()).collect();
        let answer = client.lookup(&ids, RECOMMENDATIONS_LIMIT);
        let results = answer.as_ref().map(|a| a["results"].as_array());
        for (i, shopper) in chunk.iter().enumerate() {
            let mut line = shopper.line();
            let result = match &results {
                Ok(Some(results)) => results.iter().find(|r| r["index"] == json!(i)),
                _ => None,
            };
            match (result, &answer) {
                (Some(r), _) if r.get("error").is_none() => {
                    for field in ["preferred_categories", "preferred_brands", "items"] {
                        line.insert(field.into(), r.get(field).cloned().unwrap_or(json!([])));
                    }
                }
                (found, answer) => {
                    let error = match (found, answer) {
                        (Some(r), _) => format!("the lookup refused it: {}", r["error"]),
                        (None, Err(e)) => e.to_string(),
                        (None, Ok(a)) => {
                            ApiError::BadAnswer(format!("no result {i}: {a}")).to_string()
                        }
                    };
                    say(&format!(
                        "affinity-import: lookup of {}: {error}",
                        shopper.shopper_id
                    ))?;
                    line.insert("error".into(), json!(error));
                    all_answered = false;
                }
            }
            writeln!(out, "{}", Value::Object(line))?;
        }
        if matches!(answer, Err(ApiError::Unreachable(_))) {
            break;
        }
    }
    Ok(all_answered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(events: u64, lines: u64) -> Activity {
        Activity {
            events,
            lines,
            newest_ms: 0,
        }
    }

    #[test]
    fn top_shoppers_most_events_first_then_lines_then_id() {
        let counts: HashMap<&str, Activity> = [
            ("b", act(3, 3)),
            ("a", act(3, 3)),
            ("c", act(7, 7)),
            ("d", act(1, 1)),
            ("e", act(1, 4)),
        ]
        .into();
        assert_eq!(
            top_shoppers(&counts, 4),
            vec![
                ("c".to_string(), act(7, 7)),
                ("a".to_string(), act(3, 3)),
                ("b".to_string(), act(3, 3)),
                ("e".to_string(), act(1, 4)),
            ]
        );
        assert!(top_shoppers(&counts, 0).is_empty());
    }

    #[test]
    fn among_equally_busy_shoppers_the_most_recent_come_first() {
        let at = |newest_ms| Activity {
            newest_ms,
            ..act(1, 1)
        };
        let counts: HashMap<&str, Activity> =
            [("old", at(1_000)), ("new", at(9_000)), ("mid", at(5_000))].into();
        let top: Vec<String> = top_shoppers(&counts, 2)
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(top, ["new", "mid"]);
    }

    #[test]
    fn lines_show_the_file_id_only_when_mapped() {
        let mapped = Reported {
            shopper_id: "0123456789abcdef0123456789abcdef".into(),
            user_id: Some("515136153".into()),
            activity: act(51, 51),
        };
        let same = Reported {
            user_id: None,
            shopper_id: "uci-12748".into(),
            ..mapped.clone()
        };
        let mut out = Vec::new();
        write_counts(&[mapped, same], &mut out).expect("writes");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "{\"events\":51,\"shopper_id\":\"0123456789abcdef0123456789abcdef\",\"user_id\":\"515136153\"}\n\
             {\"events\":51,\"shopper_id\":\"uci-12748\"}\n"
        );
    }
}
