//! Time shifting and request shaping: which events go together in one request.

use std::collections::HashMap;

use crate::event::{Event, MAX_ITEMS};

/// Most events in one request, as the API allows.
pub const MAX_EVENTS_PER_REQUEST: usize = 500;
/// Largest request body, as the API allows (1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most events of one shopper in one live request, like a storefront sends them.
pub const LIVE_EVENTS_PER_REQUEST: usize = 25;
/// The body around the events: `{"events":[` and `]}`.
const BODY_OVERHEAD: usize = r#"{"events":[]}"#.len();

/// Moves every timestamp by the same amount so that the latest event happens `margin_ms`
/// before `now_ms`; order and spacing are kept. Returns the shift applied (0 for no events).
pub fn shift_to_now(events: &mut [Event], now_ms: i64, margin_ms: i64) -> i64 {
    let Some(latest) = events.iter().map(|e| e.timestamp_ms).max() else {
        return 0;
    };
    let delta = now_ms - margin_ms - latest;
    for event in events.iter_mut() {
        event.timestamp_ms += delta;
    }
    delta
}

/// Splits every purchase of more than [`MAX_ITEMS`] items (more than the API takes in one
/// event) into several purchase events of the same order: the first keeps the event id, the
/// next ones get `{event_id}-part2`, `-part3`, ... Returns the events and how many purchases
/// were split.
pub fn split_large_purchases(events: Vec<Event>) -> (Vec<Event>, u64) {
    let mut out = Vec::with_capacity(events.len());
    let mut split = 0;
    for mut event in events {
        let items = match event.items.take() {
            Some(items) if items.len() > MAX_ITEMS => items,
            other => {
                event.items = other;
                out.push(event);
                continue;
            }
        };
        split += 1;
        for (n, chunk) in items.chunks(MAX_ITEMS).enumerate() {
            let mut part = event.clone();
            if n > 0 {
                part.event_id = format!("{}-part{}", event.event_id, n + 1);
            }
            part.items = Some(chunk.to_vec());
            out.push(part);
        }
    }
    (out, split)
}

/// One request's worth of events: indexes into the event list, in sending order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The events of the request.
    pub events: Vec<usize>,
    /// Batches with the same key are sent one after the other by the same worker, in order
    /// (live: the shopper's, so a shopper's requests never overtake each other).
    pub key: u64,
}

/// The request body for the events at `indexes`, from their pre-serialized JSON.
pub fn request_body(json: &[Vec<u8>], indexes: &[usize]) -> Vec<u8> {
    let len = BODY_OVERHEAD + indexes.iter().map(|&i| json[i].len() + 1).sum::<usize>();
    let mut body = Vec::with_capacity(len);
    body.extend_from_slice(br#"{"events":["#);
    for (n, &i) in indexes.iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&json[i]);
    }
    body.extend_from_slice(b"]}");
    body
}

/// Live shaping, like storefronts send: each request holds consecutive events (in time order)
/// of one shopper, at most [`LIVE_EVENTS_PER_REQUEST`], and a new request starts when the
/// shopper's next event comes more than `gap_ms` after the previous one or in another session.
/// Requests are ordered by the time of their first event.
pub fn live_batches(events: &[Event], gap_ms: i64) -> Vec<Batch> {
    live_batches_of(events, gap_ms, LIVE_EVENTS_PER_REQUEST)
}

fn live_batches_of(events: &[Event], gap_ms: i64, per_request: usize) -> Vec<Batch> {
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&i| (events[i].timestamp_ms, i));
    let mut keys: HashMap<&str, u64> = HashMap::new();
    let mut open: HashMap<&str, usize> = HashMap::new();
    let mut batches: Vec<Batch> = Vec::new();
    for i in order {
        let event = &events[i];
        let shopper = event.shopper_id.as_str();
        let next_key = keys.len() as u64;
        let key = *keys.entry(shopper).or_insert(next_key);
        let joins = open.get(shopper).and_then(|&b| {
            let batch = &batches[b];
            let last = &events[*batch.events.last()?];
            let fits = batch.events.len() < per_request
                && event.timestamp_ms - last.timestamp_ms <= gap_ms
                && event.session_id == last.session_id;
            fits.then_some(b)
        });
        match joins {
            Some(b) => batches[b].events.push(i),
            None => {
                open.insert(shopper, batches.len());
                batches.push(Batch {
                    events: vec![i],
                    key,
                });
            }
        }
    }
    batches
}

/// Import shaping: events sorted by shopper then time (so a shopper's history lands in as
/// few requests as possible), cut into requests of at most [`MAX_EVENTS_PER_REQUEST`] events
/// and [`MAX_BODY_BYTES`] of body. `json` holds each event's serialized form.
///
/// Returns the batches and the indexes of events too large to fit in any request on their own.
pub fn import_batches(events: &[Event], json: &[Vec<u8>]) -> (Vec<Batch>, Vec<usize>) {
    import_batches_of(events, json, MAX_EVENTS_PER_REQUEST, MAX_BODY_BYTES)
}

fn import_batches_of(
    events: &[Event],
    json: &[Vec<u8>],
    max_events: usize,
    max_bytes: usize,
) -> (Vec<Batch>, Vec<usize>) {
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by(|&a, &b| {
        let (ea, eb) = (&events[a], &events[b]);
        (ea.shopper_id.as_str(), ea.timestamp_ms, a).cmp(&(
            eb.shopper_id.as_str(),
            eb.timestamp_ms,
            b,
        ))
    });
    let mut batches = Vec::new();
    let mut too_large = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut size = BODY_OVERHEAD;
    for i in order {
        let len = json[i].len();
        if BODY_OVERHEAD + len > max_bytes {
            too_large.push(i);
            continue;
        }
        let separator = usize::from(!current.is_empty());
        if current.len() == max_events || size + separator + len > max_bytes {
            let key = batches.len() as u64;
            batches.push(Batch {
                events: std::mem::take(&mut current),
                key,
            });
            size = BODY_OVERHEAD;
        }
        size += usize::from(!current.is_empty()) + len;
        current.push(i);
    }
    if !current.is_empty() {
        let key = batches.len() as u64;
        batches.push(Batch {
            events: current,
            key,
        });
    }
    (batches, too_large)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventType, Line, Product};

    fn serialized(events: &[Event]) -> Vec<Vec<u8>> {
        events
            .iter()
            .map(|e| serde_json::to_vec(e).expect("json"))
            .collect()
    }

    fn event(shopper: &str, ts: i64, session: &str) -> Event {
        Event {
            kind: EventType::View,
            shopper_id: shopper.into(),
            customer_id: None,
            session_id: Some(session.into()),
            event_id: format!("t-{shopper}-{ts}"),
            timestamp_ms: ts,
            query: None,
            product: Some(Product {
                id: "p".into(),
                category: None,
                brand: None,
                price: Some(1.0),
            }),
            items: None,
            order_id: None,
            currency: None,
            line: 0,
        }
    }

    #[test]
    fn purchases_over_100_items_are_split() {
        let mut big = event("a", 0, "s");
        big.kind = EventType::Purchase;
        big.product = None;
        big.event_id = "uci-536365".into();
        big.order_id = Some("536365".into());
        big.items = Some(
            (0..250)
                .map(|n| Line {
                    product: Product {
                        id: format!("p{n}"),
                        category: None,
                        brand: None,
                        price: Some(1.0),
                    },
                    quantity: 1,
                })
                .collect(),
        );
        let small = event("b", 1, "s");
        let (events, split) = split_large_purchases(vec![big, small.clone()]);
        assert_eq!(split, 1);
        let shape: Vec<(&str, usize)> = events
            .iter()
            .map(|e| (e.event_id.as_str(), e.items.as_ref().map_or(0, Vec::len)))
            .collect();
        assert_eq!(
            shape,
            vec![
                ("uci-536365", 100),
                ("uci-536365-part2", 100),
                ("uci-536365-part3", 50),
                ("t-b-1", 0)
            ]
        );
        assert!(events[..3]
            .iter()
            .all(|e| e.order_id.as_deref() == Some("536365")));
        assert_eq!(events[3], small);
        assert_eq!(
            events[2].items.as_ref().map(|i| i[0].product.id.as_str()),
            Some("p200")
        );
    }

    #[test]
    fn shift_moves_the_last_event_to_now_minus_margin() {
        // Two REES46 times: 2019-10-01 00:00:00 and 02:50:00 UTC.
        let mut events = vec![
            event("a", 1_569_898_200_000, "s"),
            event("b", 1_569_888_000_000, "s"),
        ];
        let now = 1_750_000_000_000;
        let delta = shift_to_now(&mut events, now, 5_000);
        assert_eq!(delta, now - 5_000 - 1_569_898_200_000);
        assert_eq!(events[0].timestamp_ms, now - 5_000);
        // Spacing kept: 2 h 50 min earlier.
        assert_eq!(events[1].timestamp_ms, now - 5_000 - 10_200_000);
        assert_eq!(shift_to_now(&mut [], now, 5_000), 0);
    }

    #[test]
    fn live_requests_hold_one_shoppers_run_of_at_most_25() {
        let mut events = Vec::new();
        // Shopper a: 60 events a second apart; b interleaved: 3 events.
        for n in 0..60 {
            events.push(event("a", 1_000 * n, "s1"));
        }
        for n in 0..3 {
            events.push(event("b", 1_000 * n + 500, "s2"));
        }
        let batches = live_batches(&events, 1_800_000);
        let shape: Vec<(String, usize)> = batches
            .iter()
            .map(|b| (events[b.events[0]].shopper_id.clone(), b.events.len()))
            .collect();
        assert_eq!(
            shape,
            vec![
                ("a".to_string(), 25),
                ("b".to_string(), 3),
                ("a".to_string(), 25),
                ("a".to_string(), 10)
            ]
        );
        for batch in &batches {
            let shopper = &events[batch.events[0]].shopper_id;
            assert!(batch
                .events
                .iter()
                .all(|&i| &events[i].shopper_id == shopper));
            let times: Vec<i64> = batch
                .events
                .iter()
                .map(|&i| events[i].timestamp_ms)
                .collect();
            assert!(times.windows(2).all(|w| w[0] <= w[1]), "time order");
        }
        // Same shopper, same key: sent in order by one worker.
        assert_eq!(batches[0].key, batches[2].key);
        assert_ne!(batches[0].key, batches[1].key);
    }

    #[test]
    fn live_requests_break_at_gaps_and_session_changes() {
        let events = vec![
            event("a", 0, "s1"),
            event("a", 60_000, "s1"),
            event("a", 60_000 + 1_800_001, "s1"),
            event("a", 60_000 + 1_800_002, "s2"),
        ];
        let batches = live_batches(&events, 1_800_000);
        let sizes: Vec<_> = batches.iter().map(|b| b.events.clone()).collect();
        assert_eq!(sizes, vec![vec![0, 1], vec![2], vec![3]]);
    }

    #[test]
    fn import_requests_hold_at_most_500_events() {
        let events: Vec<Event> = (0..1_201)
            .map(|n| event(&format!("s{}", n % 7), n, "x"))
            .collect();
        let json = serialized(&events);
        let (batches, too_large) = import_batches(&events, &json);
        assert!(too_large.is_empty());
        let sizes: Vec<_> = batches.iter().map(|b| b.events.len()).collect();
        assert_eq!(sizes, vec![500, 500, 201]);
        // Sorted by shopper, then time; every event exactly once.
        let flat: Vec<usize> = batches.iter().flat_map(|b| b.events.clone()).collect();
        let mut seen = flat.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..1_201).collect::<Vec<_>>());
        let keys: Vec<(&str, i64)> = flat
            .iter()
            .map(|&i| (events[i].shopper_id.as_str(), events[i].timestamp_ms))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] <= w[1]));
        for batch in &batches {
            assert!(request_body(&json, &batch.events).len() <= MAX_BODY_BYTES);
        }
    }

    #[test]
    fn import_requests_stay_under_one_mebibyte() {
        // Events of about 10 KB each: 500 of them would be 5 MB.
        let mut events = Vec::new();
        for n in 0..300 {
            let mut e = event("big", n, "x");
            e.query = Some("q".repeat(10_000));
            events.push(e);
        }
        let json = serialized(&events);
        let (batches, too_large) = import_batches(&events, &json);
        assert!(too_large.is_empty());
        let total: usize = batches.iter().map(|b| b.events.len()).sum();
        assert_eq!(total, 300);
        for batch in &batches {
            let body = request_body(&json, &batch.events);
            assert!(body.len() <= MAX_BODY_BYTES, "{} bytes", body.len());
            let parsed: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
            assert_eq!(
                parsed["events"].as_array().map(Vec::len),
                Some(batch.events.len())
            );
        }
        // Each batch is as full as the limit allows: adding the next event would overflow.
        let per_event = json[0].len() + 1;
        let full = (MAX_BODY_BYTES - BODY_OVERHEAD + 1) / per_event;
        assert_eq!(batches[0].events.len(), full);
        assert!(batches.len() >= 3);
    }

    #[test]
    fn exact_byte_limit_and_oversized_events() {
        let events: Vec<Event> = (0..4).map(|n| event("a", n, "x")).collect();
        let json: Vec<Vec<u8>> = vec![
            b"1234".to_vec(),
            b"12345".to_vec(),
            b"1".to_vec(),
            b"x".repeat(100),
        ];
        // Limit 13 + 4 + 1 + 5 = 23: the first two fit exactly together.
        let (batches, too_large) = import_batches_of(&events, &json, 500, 23);
        assert_eq!(too_large, vec![3]);
        let sets: Vec<_> = batches.iter().map(|b| b.events.clone()).collect();
        assert_eq!(sets, vec![vec![0, 1], vec![2]]);
        assert_eq!(request_body(&json, &[0, 1]).len(), 23);
        assert_eq!(
            request_body(&json, &[0, 1]),
            br#"{"events":[1234,12345]}"#.to_vec()
        );
    }
}
