//! The ingest function: `POST /v1/sites/{site_id}/events` (storefronts, live) and
//! `POST /v1/sites/{site_id}/events/import` (server to server, history; tenant API key).
//!
//! Each event stands or falls alone. Valid, new events are stored (BatchWriteItem, 25 a request) and then
//! folded into their shopper's profile with one conditional write per shopper per request. A retried batch
//! is recognised by its event ids and changes nothing. When storage fails for some events, the answer is
//! 503 and names them (`not_stored`), never 200.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use affinity::admit::{admit_site, admit_tenant, Access};
use affinity::event::{self, Event, IngestMode, Rejection, MAX_BODY_BYTES, MAX_EVENTS_PER_REQUEST};
use affinity::http::{self, ApiError};
use affinity::ids::SiteId;
use affinity::pii::{self, PiiKeySource};
use affinity::profile::{Decay, Profile};
use affinity::store::{
    customer_key, guest_key, EventSink, ProfileRecord, ProfileStore, ProfileWrite, StoreError,
    StoredEvent, TenantLookup,
};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde_json::Value;

/// Attempts at a shopper's profile write when a concurrent request changed it first.
pub const PROFILE_ATTEMPTS: usize = 4;

/// What the handler needs, built once per cold start.
pub struct Deps<S, K> {
    /// Storage.
    pub store: S,
    /// Tenants' PII keys (KMS-decrypted peppers, cached per warm Lambda).
    pub pii_keys: K,
    /// Affinity decay and weights.
    pub decay: Decay,
    /// Raw-event retention, in seconds.
    pub event_ttl_s: i64,
    /// The clock, epoch ms (a parameter so tests can fix it).
    pub clock: fn() -> i64,
}

/// The 200 answer (and the counts inside a 503).
#[derive(Debug, Default, Serialize, PartialEq)]
pub struct IngestSummary {
    /// Events stored and applied to their shopper's profile.
    pub accepted: usize,
    /// Events already received before (same event id), ignored.
    pub duplicates: usize,
    /// Events refused, with the field and the reason.
    pub rejected: Vec<Rejection>,
    /// Events whose personal fields (email, phone) were dropped on arrival: no messaging consent, or the
    /// shopper's browser sent `Sec-GPC: 1`.
    pub pii_dropped: usize,
}

/// Handles one request; every outcome is a response.
pub async fn handle<S, K>(deps: &Deps<S, K>, req: Request) -> Response<Body>
where
    S: TenantLookup + ProfileStore + EventSink,
    K: PiiKeySource,
{
    let resp = match ingest(deps, &req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    };
    // The live route serves storefront browsers on merchants' domains; import is server to server.
    match route(&req) {
        Ok((_, IngestMode::Live)) => http::allow_any_origin(resp),
        _ => resp,
    }
}

/// Parses the route: the site id and which route it is.
fn route(req: &Request) -> Result<(String, IngestMode), ApiError> {
    let segs = http::v1_segments(req.uri().path()).unwrap_or_default();
    let (site, mode) = match segs.as_slice() {
        [s, site, e] if s == "sites" && e == "events" => (site.clone(), IngestMode::Live),
        [s, site, e, i] if s == "sites" && e == "events" && i == "import" => {
            (site.clone(), IngestMode::Import)
        }
        _ => return Err(ApiError::not_found(None, "no such route")),
    };
    if req.method() != Method::POST {
        return Err(ApiError::method_not_allowed("POST"));
    }
    Ok((site, mode))
}

/// Reads the body into the events array.
fn parse_body(req: &Request) -> Result<Vec<Value>, ApiError> {
    http::require_json_content(req)?;
    let body = http::body_bytes(req);
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::too_large(
            "body",
            format!(
                "the body is {} bytes; the limit is {MAX_BODY_BYTES}",
                body.len()
            ),
        ));
    }
    let parsed: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "body",
            format!(
                "malformed JSON at line {} column {}: {}",
                e.line(),
                e.column(),
                classify(&e)
            ),
        )
    })?;
    let Some(Value::Array(events)) = parsed.get("events") else {
        return Err(ApiError::bad_request(
            "events",
            "the body must be {\"events\": [...]}",
        ));
    };
    if events.len() > MAX_EVENTS_PER_REQUEST {
        return Err(ApiError::too_large(
            "events",
            format!(
                "{} events sent; at most {MAX_EVENTS_PER_REQUEST} per request",
                events.len()
            ),
        ));
    }
    match parsed {
        Value::Object(mut m) => match m.remove("events") {
            Some(Value::Array(v)) => Ok(v),
            _ => Ok(Vec::new()),
        },
        _ => Ok(Vec::new()),
    }
}

/// serde_json's error category, without its echo of the input (which may hold personal data).
fn classify(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "the body ends too early",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected value",
        serde_json::error::Category::Io => "unreadable body",
    }
}

/// What a route requires: the API key for imports, nothing more than the site for the live route.
fn access(mode: IngestMode, req: &Request) -> Access<'_> {
    match mode {
        IngestMode::Live => Access::Storefront,
        IngestMode::Import => Access::from_bearer(req),
    }
}

async fn ingest<S, K>(deps: &Deps<S, K>, req: &Request) -> Result<Response<Body>, ApiError>
where
    S: TenantLookup + ProfileStore + EventSink,
    K: PiiKeySource,
{
    let (site_id, mode) = route(req)?;
    let raw = parse_body(req)?;
    let site_id = SiteId::from_route(&site_id)?;
    let now = (deps.clock)();
    let mut summary = IngestSummary::default();
    let mut valid = Vec::with_capacity(raw.len());
    for (i, v) in raw.iter().enumerate() {
        match event::validate(v, i, now, mode) {
            Ok(e) => valid.push((i, e)),
            Err(r) => summary.rejected.push(r),
        }
    }
    // Storefront requests read the tenant and their shoppers' profiles in one round trip (the tenant
    // is checked before anything is written). Imports check the API key before reading any profile.
    let (tenant, preloaded) = match mode {
        IngestMode::Live if !valid.is_empty() => {
            let keys = base_keys(&valid);
            let asked: Vec<String> = keys.iter().cloned().collect();
            let (tenant, found) = deps.store.tenant_and_profiles(&site_id, &asked).await?;
            (
                admit_tenant(tenant, access(mode, req))?,
                Some((keys, found)),
            )
        }
        _ => (
            admit_site(&deps.store, &site_id, access(mode, req)).await?,
            None,
        ),
    };
    // Personal data is processed only under the tenant's messaging consent, and never for a browser
    // that sends Global Privacy Control (https://globalprivacycontrol.github.io/gpc-spec/).
    let gpc = req
        .headers()
        .get("sec-gpc")
        .is_some_and(|v| v.as_bytes().trim_ascii() == b"1");
    let consent = tenant.messaging_consent && !gpc;
    let mut pepper = None;
    let mut kept = Vec::with_capacity(valid.len());
    for (i, mut e) in valid {
        if !e.pii.is_empty() {
            if consent {
                if pepper.is_none() {
                    pepper = Some(deps.pii_keys.pii_key(&tenant).await?);
                }
                let Some(key) = pepper.as_deref() else {
                    continue;
                };
                match pii::identities(key, &e.pii, tenant.default_region.as_deref()) {
                    Ok(ids) => e.identities = ids,
                    Err((field, why)) => {
                        summary.rejected.push(Rejection {
                            index: i,
                            field: field.into(),
                            reason: why.to_string(),
                        });
                        continue;
                    }
                }
            } else {
                summary.pii_dropped += 1;
            }
            // The plaintext goes no further than here.
            e.pii = Default::default();
        }
        kept.push((i, e));
    }
    summary.rejected.sort_by_key(|r| r.index);
    let not_stored = apply(deps, &site_id, kept, now, &mut summary, preloaded).await;
    tracing::info!(
        site_id = %site_id,
        mode = ?mode,
        received = raw.len(),
        accepted = summary.accepted,
        duplicates = summary.duplicates,
        rejected = summary.rejected.len(),
        not_stored = not_stored.len(),
        "ingest"
    );
    if not_stored.is_empty() {
        return Ok(http::json_response(StatusCode::OK, &summary));
    }
    let err = ApiError::unavailable(
        "some events could not be stored; retry them (retries are de-duplicated)",
    );
    let mut body = err.body();
    body["not_stored"] = serde_json::json!(not_stored);
    body["accepted"] = serde_json::json!(summary.accepted);
    body["duplicates"] = serde_json::json!(summary.duplicates);
    body["rejected"] = serde_json::json!(summary.rejected);
    body["pii_dropped"] = serde_json::json!(summary.pii_dropped);
    Ok(http::json_response(StatusCode::SERVICE_UNAVAILABLE, &body))
}

/// The profile an event belongs to: its customer's when logged in; else the profile its email or phone
/// is linked to (or, for an email or phone new in this request, the profile of its first event, so two
/// devices that send one address in one request are linked); else the customer its guest id logs in as within this request (so a session's
/// anonymous events and its login land together); else where its guest id points (an alias), or the
/// guest's own profile.
fn canonical_of(
    e: &Event,
    logins: &HashMap<&str, &str>,
    claims: &HashMap<String, String>,
    records: &HashMap<String, ProfileRecord>,
) -> String {
    if let Some(c) = &e.customer_id {
        return customer_key(c);
    }
    let known_identity = e.identities.iter().find_map(|k| match records.get(k) {
        Some(ProfileRecord::Alias { linked_to, .. }) => Some(linked_to.clone()),
        _ => None,
    });
    if let Some(target) =
        known_identity.or_else(|| e.identities.iter().find_map(|k| claims.get(k).cloned()))
    {
        return target;
    }
    if let Some(c) = logins.get(e.shopper_id.as_str()) {
        return customer_key(c);
    }
    match records.get(&guest_key(&e.shopper_id)) {
        Some(ProfileRecord::Alias { linked_to, .. }) => linked_to.clone(),
        _ => guest_key(&e.shopper_id),
    }
}

/// Guest id to customer id, for the guests that log in within this request (the latest login wins).
fn logins_in(events: &[(usize, Event)]) -> HashMap<&str, &str> {
    let mut by_time: Vec<&Event> = events
        .iter()
        .map(|(_, e)| e)
        .filter(|e| e.customer_id.is_some())
        .collect();
    by_time.sort_by_key(|e| e.timestamp_ms);
    by_time
        .into_iter()
        .filter_map(|e| e.customer_id.as_deref().map(|c| (e.shopper_id.as_str(), c)))
        .collect()
}

fn profile_of(r: Option<&ProfileRecord>) -> Option<&Profile> {
    match r {
        Some(ProfileRecord::Profile { profile, .. }) => Some(profile),
        _ => None,
    }
}

/// Reads the profile items the events touch, following guest aliases to their customer profiles.
async fn load<S: ProfileStore>(
    store: &S,
    site_id: &str,
    events: &[(usize, Event)],
    preloaded: Option<Preloaded>,
) -> Result<HashMap<String, ProfileRecord>, StoreError> {
    let mut keys: BTreeSet<String> = BTreeSet::new();
    for (_, e) in events {
        keys.insert(guest_key(&e.shopper_id));
        if let Some(c) = &e.customer_id {
            keys.insert(customer_key(c));
        }
        keys.extend(e.identities.iter().cloned());
    }
    let (requested, mut records) = preloaded.unwrap_or_default();
    let missing: Vec<String> = keys.difference(&requested).cloned().collect();
    if !missing.is_empty() {
        records.extend(store.profiles(site_id, &missing).await?);
    }
    let targets: Vec<String> = records
        .values()
        .filter_map(|r| match r {
            ProfileRecord::Alias { linked_to, .. } if !records.contains_key(linked_to) => {
                Some(linked_to.clone())
            }
            _ => None,
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !targets.is_empty() {
        records.extend(store.profiles(site_id, &targets).await?);
    }
    Ok(records)
}

/// Profile items already read with the tenant: the keys asked for, and what was found.
type Preloaded = (BTreeSet<String>, HashMap<String, ProfileRecord>);

/// The profile keys a request's events name before any personal data is hashed: guest and customer.
fn base_keys(events: &[(usize, Event)]) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for (_, e) in events {
        keys.insert(guest_key(&e.shopper_id));
        if let Some(c) = &e.customer_id {
            keys.insert(customer_key(c));
        }
    }
    keys
}

/// Stores the new events and updates profiles. Returns the request indices of events not stored.
async fn apply<S, K>(
    deps: &Deps<S, K>,
    site_id: &str,
    events: Vec<(usize, Event)>,
    now: i64,
    summary: &mut IngestSummary,
    preloaded: Option<Preloaded>,
) -> Vec<usize>
where
    S: ProfileStore + EventSink,
{
    if events.is_empty() {
        return Vec::new();
    }
    let records = match load(&deps.store, site_id, &events, preloaded).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "profile read failed");
            return events.iter().map(|(i, _)| *i).collect();
        }
    };
    let owned: HashMap<String, String> = logins_in(&events)
        .into_iter()
        .map(|(g, c)| (g.to_string(), c.to_string()))
        .collect();
    let logins: HashMap<&str, &str> = owned
        .iter()
        .map(|(g, c)| (g.as_str(), c.as_str()))
        .collect();
    // Emails and phones new in this request belong to the profile of the first event that carries them.
    let mut claims: HashMap<String, String> = HashMap::new();
    let mut identified: Vec<&Event> = events
        .iter()
        .map(|(_, e)| e)
        .filter(|e| !e.identities.is_empty())
        .collect();
    identified.sort_by_key(|e| e.timestamp_ms);
    for e in identified {
        let target = canonical_of(e, &logins, &claims, &records);
        for k in &e.identities {
            claims.entry(k.clone()).or_insert_with(|| target.clone());
        }
    }
    // De-duplicate: against what the profiles already applied, and within the request.
    let mut in_request: HashSet<(String, String)> = HashSet::new();
    let mut fresh: Vec<(usize, Event)> = Vec::with_capacity(events.len());
    for (i, e) in events {
        let canonical = canonical_of(&e, &logins, &claims, &records);
        let seen = [
            records.get(&canonical),
            records.get(&guest_key(&e.shopper_id)),
        ]
        .into_iter()
        .filter_map(profile_of)
        .any(|p| p.has_seen(&e.event_id));
        if seen || !in_request.insert((e.shopper_id.clone(), e.event_id.clone())) {
            summary.duplicates += 1;
        } else {
            fresh.push((i, e));
        }
    }
    // Raw events first: a profile never counts an event that is not stored.
    let stored: Vec<StoredEvent> = fresh
        .iter()
        .map(|(_, e)| StoredEvent::from_event(site_id, e, now, deps.event_ttl_s))
        .collect();
    let failed: HashSet<usize> = deps.store.put_events(stored).await.into_iter().collect();
    let mut not_stored: Vec<usize> = Vec::new();
    let mut groups: BTreeMap<String, Vec<(usize, Event)>> = BTreeMap::new();
    for (pos, (i, e)) in fresh.into_iter().enumerate() {
        if failed.contains(&pos) {
            not_stored.push(i);
        } else {
            groups
                .entry(canonical_of(&e, &logins, &claims, &records))
                .or_default()
                .push((i, e));
        }
    }
    let mut records = records;
    for (canonical, group) in groups {
        match save_group(deps, site_id, &canonical, &group, &mut records).await {
            Ok((applied, dups)) => {
                summary.accepted += applied;
                summary.duplicates += dups;
            }
            Err(e) => {
                tracing::error!(error = %e, events = group.len(), "profile write failed");
                not_stored.extend(group.iter().map(|(i, _)| *i));
            }
        }
    }
    not_stored.sort_unstable();
    not_stored
}

/// The writes that fold `group` into the profile at `canonical`: the profile itself, and an alias for
/// each guest id newly linked to a customer (whose own profile, if any, is merged first).
/// Returns the writes, the events applied and the duplicates found.
fn plan(
    canonical: &str,
    group: &[(usize, Event)],
    records: &HashMap<String, ProfileRecord>,
    decay: &Decay,
) -> Result<(Vec<ProfileWrite>, usize, usize), StoreError> {
    let (mut profile, expected) = match records.get(canonical) {
        Some(ProfileRecord::Profile { profile, version }) => ((**profile).clone(), Some(*version)),
        // The canonical item turned into an alias since it was read: re-read and plan again.
        Some(ProfileRecord::Alias { .. }) => return Err(StoreError::Conflict),
        None => (Profile::default(), None),
    };
    let mut writes = Vec::new();
    // A guest id identified here (by a customer id, an email or a phone) joins the profile: its own
    // history is merged once, and it becomes an alias.
    let guests: BTreeSet<&str> = group.iter().map(|(_, e)| e.shopper_id.as_str()).collect();
    for g in guests {
        let gk = guest_key(g);
        let linked_here = matches!(records.get(&gk), Some(ProfileRecord::Alias { linked_to, .. }) if linked_to == canonical);
        let identified = group.iter().any(|(_, e)| {
            e.shopper_id == g && (e.customer_id.is_some() || !e.identities.is_empty())
        });
        if gk == canonical || linked_here || !identified {
            continue;
        }
        if let Some(ProfileRecord::Profile { profile: guest, .. }) = records.get(&gk) {
            profile.merge(guest, decay);
        }
        writes.push(ProfileWrite {
            key: gk.clone(),
            record: ProfileRecord::Alias {
                linked_to: canonical.to_string(),
                version: 0,
            },
            expected: records.get(&gk).map(ProfileRecord::version),
        });
    }
    // Email and phone keys point at the profile they were last seen with.
    let identities: BTreeSet<&String> = group
        .iter()
        .flat_map(|(_, e)| e.identities.iter())
        .collect();
    for k in identities {
        if matches!(records.get(k), Some(ProfileRecord::Alias { linked_to, .. }) if linked_to == canonical)
        {
            continue;
        }
        writes.push(ProfileWrite {
            key: k.clone(),
            record: ProfileRecord::Alias {
                linked_to: canonical.to_string(),
                version: 0,
            },
            expected: records.get(k).map(ProfileRecord::version),
        });
    }
    let mut ordered: Vec<&Event> = group.iter().map(|(_, e)| e).collect();
    ordered.sort_by_key(|e| e.timestamp_ms);
    let (mut applied, mut dups) = (0, 0);
    for e in ordered {
        if profile.has_seen(&e.event_id) {
            dups += 1;
        } else {
            profile.apply(e, decay);
            applied += 1;
        }
    }
    if applied == 0 && writes.is_empty() {
        return Ok((Vec::new(), 0, dups));
    }
    profile.trim();
    writes.insert(
        0,
        ProfileWrite {
            key: canonical.to_string(),
            record: ProfileRecord::Profile {
                profile: Box::new(profile),
                version: 0,
            },
            expected,
        },
    );
    Ok((writes, applied, dups))
}

async fn save_group<S: ProfileStore, K>(
    deps: &Deps<S, K>,
    site_id: &str,
    canonical: &str,
    group: &[(usize, Event)],
    records: &mut HashMap<String, ProfileRecord>,
) -> Result<(usize, usize), StoreError> {
    let mut last = StoreError::Conflict;
    for _ in 0..PROFILE_ATTEMPTS {
        let planned = plan(canonical, group, records, &deps.decay);
        match planned {
            Ok((writes, applied, dups)) => {
                if writes.is_empty() {
                    return Ok((applied, dups));
                }
                match deps.store.save_profiles(site_id, writes).await {
                    Ok(()) => return Ok((applied, dups)),
                    Err(StoreError::Conflict) => last = StoreError::Conflict,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => last = e,
        }
        // Someone else wrote first: read again what this group touches, and plan again.
        let mut fresh = load(&deps.store, site_id, group, None).await?;
        let mut keys = base_keys(group);
        keys.extend(group.iter().flat_map(|(_, e)| e.identities.iter().cloned()));
        keys.insert(canonical.to_string());
        for k in keys {
            match fresh.remove(&k) {
                Some(r) => records.insert(k, r),
                None => records.remove(&k),
            };
        }
        // What the aliases point to now.
        records.extend(fresh);
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use affinity::store::memory::MemoryStore;
    use affinity::tenant::{Platform, Tenant, TenantStatus};
    use std::sync::atomic::Ordering;

    const NOW: i64 = 1_795_968_000_000;

    fn tenant(site: &str) -> Tenant {
        Tenant {
            tenant_id: format!("demo-{site}"),
            site_id: site.into(),
            platform: Platform::Demo,
            shop_domain: format!("{site}.example"),
            status: TenantStatus::Active,
            scopes: vec![],
            consent_granted_at: None,
            messaging_consent: false,
            messaging_consent_at: None,
            access_token_ciphertext: None,
            pii_key_ciphertext: None,
            api_key_sha256: None,
            default_region: None,
            created_at: "2026-11-29T00:00:00Z".into(),
        }
    }

    fn deps() -> Deps<MemoryStore, affinity::pii::DerivedPiiKeys> {
        Deps {
            store: MemoryStore::with_tenants([tenant("s1")]),
            pii_keys: affinity::pii::DerivedPiiKeys,
            decay: Decay::default(),
            event_ttl_s: 86_400,
            clock: || NOW,
        }
    }

    fn post(body: serde_json::Value) -> Request {
        lambda_http::http::Request::builder()
            .method("POST")
            .uri("/v1/sites/s1/events")
            .header("content-type", "application/json")
            .body(Body::Text(body.to_string()))
            .expect("request")
    }

    fn json(resp: Response<Body>) -> (u16, serde_json::Value) {
        let s = resp.status().as_u16();
        let Body::Text(t) = resp.body() else {
            panic!("text body")
        };
        (s, serde_json::from_str(t).expect("json"))
    }

    #[tokio::test]
    async fn when_event_writes_fail_should_answer_503_naming_them_and_count_nothing() {
        let d = deps();
        d.store.fail_event_writes.store(true, Ordering::SeqCst);
        let body = serde_json::json!({"events": [
            {"type": "view", "shopper_id": "g", "product": {"id": "p"}},
            {"type": "bogus", "shopper_id": "g"},
            {"type": "view", "shopper_id": "h", "product": {"id": "q"}}
        ]});
        let (s, b) = json(handle(&d, post(body.clone())).await);
        assert_eq!(s, 503);
        assert_eq!(b["not_stored"], serde_json::json!([0, 2]));
        assert_eq!(b["rejected"][0]["index"], 1);
        assert_eq!(b["accepted"], 0);
        assert!(
            d.store.profiles.lock().expect("lock").is_empty(),
            "no profile counts an unstored event"
        );
        // The client retries once storage is back: everything lands, once.
        d.store.fail_event_writes.store(false, Ordering::SeqCst);
        let (s, b) = json(handle(&d, post(body)).await);
        assert_eq!((s, b["accepted"].as_u64()), (200, Some(2)));
    }

    #[tokio::test]
    async fn when_reads_fail_should_answer_503() {
        let d = deps();
        d.store.fail_reads.store(true, Ordering::SeqCst);
        let (s, b) = json(handle(&d, post(serde_json::json!({"events": []}))).await);
        assert_eq!((s, b["error"]["code"].as_str()), (503, Some("unavailable")));
    }

    #[tokio::test]
    async fn two_devices_sending_one_email_in_one_request_are_linked_not_refused() {
        let d = deps();
        d.store
            .tenants
            .lock()
            .expect("lock")
            .entry("s1".into())
            .and_modify(|t| t.messaging_consent = true);
        let body = serde_json::json!({"events": [
            {"type": "view", "shopper_id": "phone", "timestamp": NOW - 2000, "email": "a@example.com", "product": {"id": "p", "category": "c"}},
            {"type": "view", "shopper_id": "laptop", "timestamp": NOW - 1000, "email": "A@example.com", "product": {"id": "q", "category": "c"}}
        ]});
        let (s, b) = json(handle(&d, post(body)).await);
        assert_eq!((s, b["accepted"].as_u64()), (200, Some(2)), "{b}");
        let p = d.store.profiles.lock().expect("lock");
        let aliases: Vec<&String> = p
            .iter()
            .filter(|((_, k), _)| k.starts_with("e:"))
            .filter_map(|(_, r)| match r {
                ProfileRecord::Alias { linked_to, .. } => Some(linked_to),
                ProfileRecord::Profile { .. } => None,
            })
            .collect();
        assert_eq!(
            aliases,
            [&"g:phone".to_string()],
            "the first device claims the email"
        );
        let Some(ProfileRecord::Profile { profile, .. }) =
            p.get(&("s1".to_string(), "g:phone".to_string()))
        else {
            panic!("profile")
        };
        assert_eq!(
            profile.event_count, 2,
            "the laptop's event joined the person's profile"
        );
        assert!(
            matches!(p.get(&("s1".to_string(), "g:laptop".to_string())), Some(ProfileRecord::Alias { linked_to, .. }) if linked_to == "g:phone")
        );
    }

    #[tokio::test]
    async fn a_login_in_the_same_request_takes_the_sessions_anonymous_events_along() {
        let d = deps();
        let body = serde_json::json!({"events": [
            {"type": "view", "shopper_id": "g", "timestamp": NOW - 3000, "product": {"id": "p", "category": "c"}},
            {"type": "view", "shopper_id": "g", "timestamp": NOW - 2000, "product": {"id": "q", "category": "c"}},
            {"type": "purchase", "shopper_id": "g", "customer_id": "42", "timestamp": NOW - 1000, "items": [{"id": "p", "category": "c"}]}
        ]});
        let (s, b) = json(handle(&d, post(body)).await);
        assert_eq!((s, b["accepted"].as_u64()), (200, Some(3)), "{b}");
        let p = d.store.profiles.lock().expect("lock");
        let Some(ProfileRecord::Profile { profile, .. }) =
            p.get(&("s1".to_string(), "c:42".to_string()))
        else {
            panic!("customer profile")
        };
        assert_eq!(profile.event_count, 3);
        assert!(
            matches!(p.get(&("s1".to_string(), "g:g".to_string())), Some(ProfileRecord::Alias { linked_to, .. }) if linked_to == "c:42")
        );
    }
}
