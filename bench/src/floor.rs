//! The floor: the DynamoDB work of the replay issued by a bare SDK loop, nothing else in the timed
//! part. Per request of the plan (one shopper's consecutive events, at most 25): one BatchWriteItem of
//! the event items, then one PutItem of the shopper's profile item. The items are the ones ingest
//! writes, byte for byte (built before the clock starts with the shared library's serializers and
//! profile logic), into copies of the tables (same definitions: keys, `by_site` index, stream, TTL).
//!
//! Also the read floor of recommendations: a single GetItem of a profile item, the BatchGetItem of
//! tenant + profile that recommend sends per request, and the one with the popularity item too that
//! it sends when its one-minute popularity cache is cold; against the real tables.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use affinity::event::{validate, IngestMode};
use affinity::profile::{Decay, Profile};
use affinity::store::dynamo::{event_to_item, profile_pk, tenant_pk};
use affinity::store::{guest_key, StoredEvent};
use aws_sdk_dynamodb::types::{
    AttributeValue, ConsumedCapacity, KeysAndAttributes, PutRequest, ReturnConsumedCapacity,
    WriteRequest,
};
use aws_sdk_dynamodb::Client;
use serde_json::{json, Value};

use crate::plan::Plan;
use crate::stats::summary;

type Item = HashMap<String, AttributeValue>;

/// What one request of the plan writes.
struct Work {
    events: Vec<WriteRequest>,
    profile: Item,
}

fn item_bytes(item: &Item) -> usize {
    // DynamoDB's item size: attribute names plus values (close enough for S, N, B).
    item.iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    AttributeValue::S(s) => s.len(),
                    AttributeValue::N(n) => n.len(),
                    AttributeValue::B(b) => b.as_ref().len(),
                    other => format!("{other:?}").len(),
                }
        })
        .sum()
}

/// The items of every request, per worker. Also returns the mean event and profile item sizes.
fn build(plan: &Plan, site: &str, now: i64, workers: usize) -> (Vec<Vec<Work>>, Value) {
    let decay = Decay::default();
    let ttl_s = 90 * 86_400;
    let mut profiles: HashMap<String, (Profile, u64)> = HashMap::new();
    let (mut ev_bytes, mut ev_n, mut pr_bytes, mut pr_n) = (0usize, 0usize, 0usize, 0usize);
    let mut per_batch: HashMap<*const affinity_importer::shape::Batch, Work> = HashMap::new();
    // Profiles evolve in the order ingest applies them: requests in plan order.
    for b in &plan.batches {
        let mut writes = Vec::with_capacity(b.events.len());
        let mut shopper = String::new();
        let mut validated = Vec::new();
        for (pos, &i) in b.events.iter().enumerate() {
            let v: Value = serde_json::from_slice(&plan.json[i]).expect("event json");
            let e = validate(&v, pos, now, IngestMode::Live).expect("valid event");
            let item = event_to_item(&StoredEvent::from_event(site, &e, now, ttl_s)).expect("item");
            ev_bytes += item_bytes(&item);
            ev_n += 1;
            writes.push(
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item))
                            .build()
                            .expect("put"),
                    )
                    .build(),
            );
            shopper.clone_from(&e.shopper_id);
            validated.push(e);
        }
        let (profile, version) = profiles.entry(shopper.clone()).or_default();
        validated.sort_by_key(|e| e.timestamp_ms);
        for e in &validated {
            if !profile.has_seen(&e.event_id) {
                profile.apply(e, &decay);
            }
        }
        profile.trim();
        *version += 1;
        let mut item: Item = serde_dynamo::to_item(&*profile).expect("profile item");
        item.insert(
            "pk".into(),
            AttributeValue::S(profile_pk(site, &guest_key(&shopper))),
        );
        item.insert("site_id".into(), AttributeValue::S(site.to_string()));
        item.insert("version".into(), AttributeValue::N(version.to_string()));
        pr_bytes += item_bytes(&item);
        pr_n += 1;
        per_batch.insert(
            b as *const _,
            Work {
                events: writes,
                profile: item,
            },
        );
    }
    let parts = plan
        .partition(workers)
        .into_iter()
        .map(|p| {
            p.into_iter()
                .map(|b| per_batch.remove(&(b as *const _)).expect("work"))
                .collect()
        })
        .collect();
    let sizes = json!({
        "event_item_bytes_mean": ev_bytes as f64 / ev_n.max(1) as f64,
        "profile_item_bytes_mean": pr_bytes as f64 / pr_n.max(1) as f64,
    });
    (parts, sizes)
}

fn units(c: Option<&ConsumedCapacity>) -> f64 {
    c.and_then(ConsumedCapacity::capacity_units).unwrap_or(0.0)
}

#[derive(Default)]
struct Count {
    requests: u64,
    write_requests: u64,
    wcu: f64,
    latencies: Vec<Duration>,
}

async fn run_worker(
    client: Client,
    events_table: String,
    profiles_table: String,
    work: Vec<Work>,
) -> Result<Count, String> {
    let mut c = Count::default();
    for w in work {
        let start = Instant::now();
        let mut pending = w.events;
        for attempt in 0..6u32 {
            let r = client
                .batch_write_item()
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .request_items(&events_table, pending)
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "BatchWriteItem: {}",
                        aws_sdk_dynamodb::error::DisplayErrorContext(e)
                    )
                })?;
            c.requests += 1;
            c.write_requests += 1;
            c.wcu += r
                .consumed_capacity()
                .iter()
                .map(|x| units(Some(x)))
                .sum::<f64>();
            match r
                .unprocessed_items
                .and_then(|mut m| m.remove(&events_table))
            {
                Some(rest) if !rest.is_empty() => {
                    pending = rest;
                    tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
                }
                _ => break,
            }
        }
        let r = client
            .put_item()
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .table_name(&profiles_table)
            .set_item(Some(w.profile))
            .send()
            .await
            .map_err(|e| {
                format!(
                    "PutItem: {}",
                    aws_sdk_dynamodb::error::DisplayErrorContext(e)
                )
            })?;
        c.requests += 1;
        c.write_requests += 1;
        c.wcu += units(r.consumed_capacity());
        c.latencies.push(start.elapsed());
    }
    Ok(c)
}

/// The write floor of the replay: see the module documentation.
pub async fn writes(
    plan: &Plan,
    site: &str,
    events_table: &str,
    profiles_table: &str,
    concurrency: usize,
    observe: bool,
) -> Result<Value, String> {
    let now = affinity::now_ms();
    let (parts, sizes) = build(plan, site, now, concurrency);
    let requests_planned: usize = parts.iter().map(Vec::len).sum();
    let events: usize = plan.batches.iter().map(|b| b.events.len()).sum();
    let client =
        Client::new(&aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await);
    let t0 = Instant::now();
    let cpu0 = crate::direct::self_cpu_s();
    let mut tasks = tokio::task::JoinSet::new();
    for work in parts {
        tasks.spawn(run_worker(
            client.clone(),
            events_table.to_string(),
            profiles_table.to_string(),
            work,
        ));
    }
    let mut total = Count::default();
    while let Some(done) = tasks.join_next().await {
        let c = done.map_err(|e| e.to_string())??;
        total.requests += c.requests;
        total.write_requests += c.write_requests;
        total.wcu += c.wcu;
        total.latencies.extend(c.latencies);
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = crate::direct::self_cpu_s() - cpu0;
    Ok(json!({
        "cpu_s": cpu,
        "observe_interceptor": observe,
        "cpu_us_per_event": cpu * 1e6 / events.max(1) as f64,
        "site": site,
        "concurrency": concurrency,
        "events": events,
        "requests": requests_planned,
        "wall_s": wall,
        "events_per_s": events as f64 / wall,
        "latency_ms": summary(&total.latencies),
        "dynamodb_requests": total.requests,
        "dynamodb_write_requests": total.write_requests,
        "wcu": total.wcu,
        "item_sizes": sizes,
    }))
}

/// The read floor: `requests` GetItem of a profile item (consistent, as recommend reads it), then
/// `requests` BatchGetItem of tenant + profile (consistent) + popularity (eventually consistent), the
/// read of recommend, `concurrency` at a time, over `shoppers` in turn.
pub async fn reads(
    site: &str,
    shoppers: &[String],
    tables: (&str, &str, &str),
    requests: usize,
    concurrency: usize,
) -> Result<Value, String> {
    let (tenants, profiles, popularity) = tables;
    let client =
        Client::new(&aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await);
    let shoppers = Arc::new(shoppers.to_vec());
    let mut out = serde_json::Map::new();
    for kind in ["get_item", "batch_get_2", "batch_get_3"] {
        let t0 = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..concurrency {
            let (client, shoppers) = (client.clone(), shoppers.clone());
            let (site, tenants, profiles, popularity) = (
                site.to_string(),
                tenants.to_string(),
                profiles.to_string(),
                popularity.to_string(),
            );
            tasks.spawn(async move {
                let mut lat = Vec::new();
                let mut rcu = 0.0;
                for i in (w..requests).step_by(concurrency) {
                    let pk = profile_pk(&site, &guest_key(&shoppers[i % shoppers.len()]));
                    let start = Instant::now();
                    if kind == "get_item" {
                        let r = client
                            .get_item()
                            .return_consumed_capacity(ReturnConsumedCapacity::Total)
                            .table_name(&profiles)
                            .key("pk", AttributeValue::S(pk))
                            .consistent_read(true)
                            .send()
                            .await
                            .map_err(|e| {
                                format!(
                                    "GetItem: {}",
                                    aws_sdk_dynamodb::error::DisplayErrorContext(e)
                                )
                            })?;
                        rcu += units(r.consumed_capacity());
                    } else {
                        let keys = |pk: String, consistent: bool| {
                            KeysAndAttributes::builder()
                                .keys(HashMap::from([("pk".to_string(), AttributeValue::S(pk))]))
                                .consistent_read(consistent)
                                .build()
                                .expect("keys")
                        };
                        let mut b = client
                            .batch_get_item()
                            .return_consumed_capacity(ReturnConsumedCapacity::Total)
                            .request_items(&tenants, keys(tenant_pk(&site), true))
                            .request_items(&profiles, keys(pk, true));
                        if kind == "batch_get_3" {
                            b = b.request_items(&popularity, keys(site.clone(), false));
                        }
                        let r = b.send().await.map_err(|e| {
                            format!(
                                "BatchGetItem: {}",
                                aws_sdk_dynamodb::error::DisplayErrorContext(e)
                            )
                        })?;
                        rcu += r
                            .consumed_capacity()
                            .iter()
                            .map(|x| units(Some(x)))
                            .sum::<f64>();
                    }
                    lat.push(start.elapsed());
                }
                Ok::<_, String>((lat, rcu))
            });
        }
        let mut lat = Vec::new();
        let mut rcu = 0.0;
        while let Some(done) = tasks.join_next().await {
            let (l, r) = done.map_err(|e| e.to_string())??;
            lat.extend(l);
            rcu += r;
        }
        let wall = t0.elapsed().as_secs_f64();
        out.insert(
            kind.to_string(),
            json!({
                "requests": lat.len(),
                "concurrency": concurrency,
                "wall_s": wall,
                "latency_ms": summary(&lat),
                "rcu_per_request": rcu / lat.len().max(1) as f64,
            }),
        );
    }
    Ok(Value::Object(out))
}
