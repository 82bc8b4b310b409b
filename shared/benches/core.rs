//! In-process costs of the hot paths (criterion): a 500-event ingest body parsed, validated, hashed and
//! folded into profiles; one profile update; one recommendation ranking. Then where that time goes
//! (the ingest stages one by one), and the per-request item costs the first three leave out: a
//! profile item read and written (DynamoDB attribute maps, serde_dynamo), the popularity item that
//! every recommendation deserializes, and one stream batch of aggregation.
//!
//! `cargo bench -p affinity --bench core` (or `make bench`). Input: the first 500 rows of the REES46
//! sample in `data/`, every other event carrying an email (hashed with a tenant key, as under consent).

use std::collections::HashMap;

use affinity::event::{validate, Event, IngestMode};
use affinity::pii::{identities, Pepper};
use affinity::popularity::Popularity;
use affinity::profile::{Decay, Profile};
use affinity::rank::recommend;
use affinity::store::dynamo::event_to_item;
use affinity::store::StoredEvent;
use aws_sdk_dynamodb::types::AttributeValue;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use serde_json::{json, Value};

const BASE_MS: i64 = 1_569_888_000_000;

fn rees46_events(n: usize) -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../data/rees46-2019-oct-sample.csv"
    );
    let text = std::fs::read_to_string(path).expect("data/rees46-2019-oct-sample.csv");
    text.lines()
        .skip(1)
        .take(n)
        .enumerate()
        .map(|(i, line)| {
            let f: Vec<&str> = line.split(',').collect();
            let t = f[0];
            let ts = BASE_MS
                + t[11..13].parse::<i64>().unwrap_or(0) * 3_600_000
                + t[14..16].parse::<i64>().unwrap_or(0) * 60_000
                + t[17..19].parse::<i64>().unwrap_or(0) * 1000;
            let kind = match f[1] {
                "cart" => "cart_add",
                "purchase" => "purchase",
                _ => "view",
            };
            let product = json!({"id": f[2], "category": if f[4].is_empty() { f[3] } else { f[4] },
                "brand": if f[5].is_empty() { Value::Null } else { json!(f[5]) }, "price": f[6]});
            let mut e = json!({"type": kind, "shopper_id": f[7], "session_id": f[8],
                "event_id": format!("rees46-{}", i + 2), "timestamp": ts});
            if kind == "purchase" {
                e["items"] = json!([product]);
            } else {
                e["product"] = product;
            }
            if i % 2 == 0 {
                e["email"] = json!(format!("shopper{}@example.com", f[7]));
            }
            e
        })
        .collect()
}

fn ingest_batch(c: &mut Criterion) {
    let body = serde_json::to_vec(&json!({"events": rees46_events(500)})).expect("body");
    let key = Pepper::new([7; 32]);
    let decay = Decay::default();
    let now = BASE_MS + 3 * 3_600_000;
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(500));
    // The budget: validation, hashing and aggregation (JSON parsing included).
    g.bench_function("parse+validate+hash+profiles, 500 events", |b| {
        b.iter(|| {
            let parsed: Value = serde_json::from_slice(&body).expect("json");
            let events = parsed["events"].as_array().expect("events");
            let mut profiles: HashMap<String, Profile> = HashMap::new();
            for (i, v) in events.iter().enumerate() {
                let Ok(mut e) = validate(v, i, now, IngestMode::Import) else {
                    continue;
                };
                if !e.pii.is_empty() {
                    e.identities = identities(&key, &e.pii, None).keys;
                    e.pii = Default::default();
                }
                let p = profiles.entry(e.shopper_id.clone()).or_default();
                if !p.has_seen(&e.event_id) {
                    p.apply(&e, &decay);
                }
            }
            for p in profiles.values_mut() {
                p.trim();
            }
            profiles.len()
        })
    });
    // What the adapter adds before the SDK: the stored form and its DynamoDB item (serde_dynamo).
    let parsed: Value = serde_json::from_slice(&body).expect("json");
    let valid: Vec<_> = parsed["events"]
        .as_array()
        .expect("events")
        .iter()
        .enumerate()
        .filter_map(|(i, v)| validate(v, i, now, IngestMode::Import).ok())
        .collect();
    g.bench_function("stored events to DynamoDB items, 500 events", |b| {
        b.iter(|| {
            valid
                .iter()
                .map(|e| {
                    event_to_item(&StoredEvent::from_event("site", e, now, 86_400)).expect("item")
                })
                .collect::<Vec<_>>()
        })
    });
    g.finish();
}

/// A shopper with a full history: every category and brand of the sample's first 2,000 events
/// (trimmed to 50 each), and those events.
fn full_profile(now: i64, decay: &Decay) -> (Vec<Event>, Profile) {
    let events = validated(2000, now);
    let mut full = Profile::default();
    for e in &events {
        full.apply(e, decay);
    }
    full.trim();
    (events, full)
}

fn profile_update(c: &mut Criterion) {
    let decay = Decay::default();
    let now = BASE_MS + 3 * 3_600_000;
    let (events, full) = full_profile(now, &decay);
    let batch: Vec<_> = events.iter().take(25).cloned().collect();
    c.bench_function("profile: apply 25 events to a full profile", |b| {
        b.iter_batched(
            || full.clone(),
            |mut p| {
                for e in &batch {
                    if !p.has_seen(&e.event_id) {
                        p.apply(e, &decay);
                    }
                }
                p.trim();
                p
            },
            BatchSize::SmallInput,
        )
    });
}

/// The REES46 sample's first `n` events that the import route accepts, validated at `now` (epoch ms).
fn validated(n: usize, now: i64) -> Vec<Event> {
    rees46_events(n)
        .iter()
        .enumerate()
        .filter_map(|(i, v)| validate(v, i, now, IngestMode::Import).ok())
        .collect()
}

/// The REES46 sample's first 17,000 events, validated on the import route, and the tenant's trimmed
/// popularity over them.
fn rees46_popularity(decay: &Decay) -> (Vec<Event>, Popularity) {
    let now = BASE_MS + 3 * 3_600_000;
    let events = validated(17_000, now);
    let mut pop = Popularity::default();
    for e in &events {
        let products: Vec<_> = e.products().collect();
        pop.add(e.kind, &products, e.timestamp_ms, decay);
    }
    pop.trim();
    (events, pop)
}

fn ranking(c: &mut Criterion) {
    let decay = Decay::default();
    let now = BASE_MS + 3 * 3_600_000;
    let (events, pop) = rees46_popularity(&decay);
    let mut profile = Profile::default();
    for e in events.iter().take(3000) {
        profile.apply(e, &decay);
    }
    profile.trim();
    c.bench_function(
        "rank: 1,000 popular products for a 50-category profile, limit 10",
        |b| b.iter(|| recommend("g", Some(&profile), Some(&pop), 10, now, &decay)),
    );
}

/// DynamoDB's size of an item: attribute names plus values (S, N, B; lists and maps recursively).
fn item_bytes(item: &HashMap<String, AttributeValue>) -> usize {
    fn value(v: &AttributeValue) -> usize {
        match v {
            AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
            AttributeValue::B(b) => b.as_ref().len(),
            AttributeValue::L(l) => 3 + l.iter().map(|x| 1 + value(x)).sum::<usize>(),
            AttributeValue::M(m) => {
                3 + m.iter().map(|(k, x)| 1 + k.len() + value(x)).sum::<usize>()
            }
            _ => 1,
        }
    }
    item.iter().map(|(k, v)| k.len() + value(v)).sum()
}

/// The stages of the `ingest` group one by one, on the same 500 events.
fn ingest_stages(c: &mut Criterion) {
    let body = serde_json::to_vec(&json!({"events": rees46_events(500)})).expect("body");
    let key = Pepper::new([7; 32]);
    let decay = Decay::default();
    let now = BASE_MS + 3 * 3_600_000;
    let parsed: Value = serde_json::from_slice(&body).expect("json");
    let raw = parsed["events"].as_array().expect("events").clone();
    let validated: Vec<_> = raw
        .iter()
        .enumerate()
        .filter_map(|(i, v)| validate(v, i, now, IngestMode::Import).ok())
        .collect();
    let mut g = c.benchmark_group("ingest stages, 500 events");
    g.throughput(Throughput::Elements(500));
    g.bench_function("1 parse the JSON body", |b| {
        b.iter(|| serde_json::from_slice::<Value>(&body).expect("json"))
    });
    g.bench_function("2 validate", |b| {
        b.iter(|| {
            raw.iter()
                .enumerate()
                .filter_map(|(i, v)| validate(v, i, now, IngestMode::Import).ok())
                .count()
        })
    });
    g.bench_function("3 hash the emails (250 of 500 events)", |b| {
        b.iter(|| {
            validated
                .iter()
                .filter(|e| !e.pii.is_empty())
                .map(|e| identities(&key, &e.pii, None).keys.len())
                .sum::<usize>()
        })
    });
    g.bench_function("4 event items (StoredEvent + serde_dynamo)", |b| {
        b.iter(|| {
            validated
                .iter()
                .map(|e| {
                    event_to_item(&StoredEvent::from_event("site", e, now, 86_400))
                        .expect("item")
                        .len()
                })
                .sum::<usize>()
        })
    });
    g.bench_function("5 profiles (apply + trim)", |b| {
        b.iter(|| {
            let mut profiles: HashMap<&str, Profile> = HashMap::new();
            for e in &validated {
                let p = profiles.entry(e.shopper_id.as_str()).or_default();
                if !p.has_seen(&e.event_id) {
                    p.apply(e, &decay);
                }
            }
            for p in profiles.values_mut() {
                p.trim();
            }
            profiles.len()
        })
    });
    g.finish();
}

/// Per request, ingest reads the shopper's profile item and writes it back: attribute map to Profile
/// and back (serde_dynamo). A full profile (50 categories, 50 brands, 20 views, 256 seen ids) and
/// the typical one of the replay (a few events).
fn profile_item(c: &mut Criterion) {
    let decay = Decay::default();
    let now = BASE_MS + 3 * 3_600_000;
    let (events, full) = full_profile(now, &decay);
    let mut small = Profile::default();
    for e in events.iter().take(4) {
        small.apply(e, &decay);
    }
    small.trim();
    for (name, p) in [("full", &full), ("4 events", &small)] {
        let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(p).expect("item");
        eprintln!("profile item ({name}): {} bytes", item_bytes(&item));
        c.bench_function(
            &format!("profile item ({name}): from_item + to_item"),
            |b| {
                b.iter_batched(
                    || item.clone(),
                    |item| {
                        let p: Profile = serde_dynamo::from_item(item).expect("profile");
                        serde_dynamo::to_item::<_, HashMap<String, AttributeValue>>(&p)
                            .expect("item")
                    },
                    BatchSize::SmallInput,
                )
            },
        );
    }
}

/// The popularity item (top 1,000 products): every recommendation reads and deserializes it; every
/// stream batch reads it, adds its events, trims and writes it back.
fn popularity_item(c: &mut Criterion) {
    let decay = Decay::default();
    let (events, pop) = rees46_popularity(&decay);
    let item: HashMap<String, AttributeValue> = serde_dynamo::to_item(&pop).expect("item");
    eprintln!(
        "popularity item: {} products, {} bytes",
        pop.products.len(),
        item_bytes(&item)
    );
    c.bench_function(
        "recommend: popularity item from_item (1,000 products)",
        |b| {
            b.iter_batched(
                || item.clone(),
                |item| serde_dynamo::from_item::<_, Popularity>(item).expect("popularity"),
                BatchSize::SmallInput,
            )
        },
    );
    let batch: Vec<_> = events.iter().take(1000).collect();
    let mut g = c.benchmark_group("aggregate");
    g.throughput(Throughput::Elements(1000));
    g.bench_function(
        "stream batch: 1,000 events into a full popularity, trim, to_item",
        |b| {
            b.iter_batched(
                || pop.clone(),
                |mut p| {
                    for e in &batch {
                        let products: Vec<_> = e.products().collect();
                        p.add(e.kind, &products, e.timestamp_ms, &decay);
                    }
                    p.trim();
                    serde_dynamo::to_item::<_, HashMap<String, AttributeValue>>(&p).expect("item")
                },
                BatchSize::SmallInput,
            )
        },
    );
    g.finish();
}

criterion_group!(
    benches,
    ingest_batch,
    profile_update,
    ranking,
    ingest_stages,
    profile_item,
    popularity_item
);
criterion_main!(benches);
