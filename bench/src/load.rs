//! The load client: the replay through the live ingest route and recommendation reads, with several
//! concurrent clients (threads), each request timed. Two ways in ([`Api`]): through the local HTTP API
//! (gateway.py and cargo lambda), or straight into the function's runtime API ([`crate::direct`]).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use affinity_importer::client::{encode_segment, ApiClient, ApiError, PostAnswer, Route};
use serde_json::{json, Value};

use crate::direct::{answer, http_event, Runtime};
use crate::plan::Plan;
use crate::stats::summary;

/// An answer: HTTP status and JSON body, or no answer at all.
pub type Answer = Result<(u16, Value), String>;

/// The routes the load uses.
pub trait Api: Sync {
    /// `POST /v1/sites/{site}/events` (`null`: an invalid site id, refused before any DynamoDB call).
    fn post_events(&self, body: &[u8], null: bool) -> Answer;
    /// `GET /v1/sites/{site}/shoppers/{shopper}/recommendations?limit=10`.
    fn recommendations(&self, shopper: &str) -> Answer;
}

/// Through the local HTTP API.
pub struct Http {
    main: ApiClient,
    null: ApiClient,
}

impl Http {
    /// Clients of `site` (and of an invalid site id) at `api`.
    pub fn new(api: &str, site: &str) -> Self {
        Http {
            main: ApiClient::new(api, site, None, Duration::from_secs(60)),
            null: ApiClient::new(api, "!bench-null", None, Duration::from_secs(60)),
        }
    }
}

fn from_api_error(e: ApiError) -> Answer {
    match e {
        ApiError::Status { status, body } => {
            Ok((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
        }
        other => Err(other.to_string()),
    }
}

impl Api for Http {
    fn post_events(&self, body: &[u8], null: bool) -> Answer {
        let c = if null { &self.null } else { &self.main };
        match c.post_events(Route::Live, body) {
            Ok(PostAnswer::Done(a)) => Ok((
                200,
                json!({"accepted": a.accepted, "duplicates": a.duplicates, "rejected": a.rejected.len()}),
            )),
            Ok(PostAnswer::Unavailable { body, .. }) => {
                Ok((503, serde_json::from_str(&body).unwrap_or(Value::Null)))
            }
            Err(e) => from_api_error(e),
        }
    }

    fn recommendations(&self, shopper: &str) -> Answer {
        match self.main.recommendations(shopper, 10) {
            Ok(v) => Ok((200, v)),
            Err(e) => from_api_error(e),
        }
    }
}

/// Straight into a function's runtime API.
pub struct Direct<'a> {
    /// The function's runtime.
    pub rt: &'a Runtime,
    /// The site id.
    pub site: String,
}

impl Api for Direct<'_> {
    fn post_events(&self, body: &[u8], null: bool) -> Answer {
        let site = if null {
            "!bench-null"
        } else {
            self.site.as_str()
        };
        let path = format!("/v1/sites/{}/events", encode_segment(site));
        let ev = http_event(
            "POST",
            "/v1/sites/{site_id}/events",
            &path,
            "",
            json!({"site_id": site}),
            Some(body),
        );
        self.rt.invoke(ev).map(|raw| answer(&raw))
    }

    fn recommendations(&self, shopper: &str) -> Answer {
        let path = format!(
            "/v1/sites/{}/shoppers/{}/recommendations",
            encode_segment(&self.site),
            encode_segment(shopper)
        );
        let ev = http_event(
            "GET",
            "/v1/sites/{site_id}/shoppers/{shopper_id}/recommendations",
            &path,
            "limit=10",
            json!({"site_id": self.site, "shopper_id": shopper}),
            None,
        );
        self.rt.invoke(ev).map(|raw| answer(&raw))
    }
}

#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    status: BTreeMap<String, u64>,
    accepted: u64,
    duplicates: u64,
    rejected: u64,
    first_error: Option<String>,
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        self.latencies.extend(o.latencies);
        for (k, v) in o.status {
            *self.status.entry(k).or_default() += v;
        }
        self.accepted += o.accepted;
        self.duplicates += o.duplicates;
        self.rejected += o.rejected;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }

    fn record(&mut self, r: &Answer, expect: u16) {
        let key = match r {
            Ok((s, _)) => s.to_string(),
            Err(_) => "no answer".into(),
        };
        *self.status.entry(key).or_default() += 1;
        let bad = match r {
            Ok((s, _)) => *s != expect,
            Err(_) => true,
        };
        if bad && self.first_error.is_none() {
            let mut s = match r {
                Ok((s, b)) => format!("HTTP {s}: {b}"),
                Err(e) => e.clone(),
            };
            s.truncate(300);
            self.first_error = Some(s);
        }
    }
}

fn result(t: Tally, wall: f64, concurrency: usize) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("concurrency".into(), json!(concurrency));
    m.insert("requests".into(), json!(t.latencies.len()));
    m.insert("wall_s".into(), json!(wall));
    m.insert(
        "requests_per_s".into(),
        json!(t.latencies.len() as f64 / wall),
    );
    m.insert("latency_ms".into(), summary(&t.latencies));
    m.insert("status".into(), json!(t.status));
    m.insert("first_error".into(), json!(t.first_error));
    m
}

/// Replays the plan through the live ingest route with `concurrency` clients. Bodies are built
/// before the clock starts; a 503 is counted, not retried.
pub fn ingest(api: &dyn Api, plan: &Plan, concurrency: usize) -> Value {
    let parts: Vec<Vec<(usize, Vec<u8>)>> = plan
        .partition(concurrency)
        .into_iter()
        .map(|p| {
            p.into_iter()
                .map(|b| (b.events.len(), plan.body(b)))
                .collect()
        })
        .collect();
    let total = Mutex::new(Tally::default());
    let t0 = Instant::now();
    thread::scope(|s| {
        for part in &parts {
            let total = &total;
            s.spawn(move || {
                let mut t = Tally::default();
                for (_, body) in part {
                    let start = Instant::now();
                    let r = api.post_events(body, false);
                    t.latencies.push(start.elapsed());
                    t.record(&r, 200);
                    if let Ok((200, b)) = &r {
                        let n = |k: &str| {
                            b.get(k).map_or(0, |v| {
                                v.as_u64()
                                    .unwrap_or_else(|| v.as_array().map_or(0, |a| a.len() as u64))
                            })
                        };
                        t.accepted += n("accepted");
                        t.duplicates += n("duplicates");
                        t.rejected += n("rejected");
                    }
                }
                total.lock().unwrap_or_else(|e| e.into_inner()).merge(t);
            });
        }
    });
    let wall = t0.elapsed().as_secs_f64();
    let t = total.into_inner().unwrap_or_else(|e| e.into_inner());
    let events: usize = parts.iter().flatten().map(|(n, _)| n).sum();
    let (accepted, duplicates, rejected) = (t.accepted, t.duplicates, t.rejected);
    let mut m = result(t, wall, concurrency);
    m.insert("events".into(), json!(events));
    m.insert("events_per_s".into(), json!(events as f64 / wall));
    m.insert("accepted".into(), json!(accepted));
    m.insert("duplicates".into(), json!(duplicates));
    m.insert("rejected".into(), json!(rejected));
    Value::Object(m)
}

/// `requests` recommendation reads (limit 10), over `shoppers` in turn, `concurrency` at a time.
pub fn recommend(api: &dyn Api, shoppers: &[String], requests: usize, concurrency: usize) -> Value {
    let total = Mutex::new(Tally::default());
    let t0 = Instant::now();
    thread::scope(|s| {
        for w in 0..concurrency {
            let total = &total;
            s.spawn(move || {
                let mut t = Tally::default();
                for i in (w..requests).step_by(concurrency) {
                    let shopper = &shoppers[i % shoppers.len()];
                    let start = Instant::now();
                    let r = api.recommendations(shopper);
                    t.latencies.push(start.elapsed());
                    t.record(&r, 200);
                    if let Ok((200, v)) = &r {
                        // The storefront answer carries items only (issue 10): an answer counts
                        // when it recommends something.
                        if v.get("items")
                            .and_then(Value::as_array)
                            .is_some_and(|a| !a.is_empty())
                        {
                            t.accepted += 1;
                        }
                    }
                }
                total.lock().unwrap_or_else(|e| e.into_inner()).merge(t);
            });
        }
    });
    let wall = t0.elapsed().as_secs_f64();
    let t = total.into_inner().unwrap_or_else(|e| e.into_inner());
    let with_profile = t.accepted;
    let mut m = result(t, wall, concurrency);
    m.insert("with_profile".into(), json!(with_profile));
    Value::Object(m)
}

/// Requests the function answers before any DynamoDB call (ingest: an invalid site id, 404;
/// recommendations: an invalid shopper id, 400): the cost of the path into the function.
pub fn null_probe(api: &dyn Api, kind: &str, requests: usize, concurrency: usize) -> Value {
    let total = Mutex::new(Tally::default());
    let t0 = Instant::now();
    thread::scope(|s| {
        for w in 0..concurrency {
            let total = &total;
            s.spawn(move || {
                let mut t = Tally::default();
                for _ in (w..requests).step_by(concurrency) {
                    let start = Instant::now();
                    let (r, expect) = if kind == "ingest" {
                        (api.post_events(br#"{"events":[]}"#, true), 404)
                    } else {
                        (api.recommendations("bench:null"), 400)
                    };
                    t.latencies.push(start.elapsed());
                    t.record(&r, expect);
                }
                total.lock().unwrap_or_else(|e| e.into_inner()).merge(t);
            });
        }
    });
    let wall = t0.elapsed().as_secs_f64();
    let t = total.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut m = result(t, wall, concurrency);
    m.insert("kind".into(), json!(kind));
    Value::Object(m)
}
