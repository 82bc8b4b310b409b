//! The aggregate function: reads the events table's DynamoDB stream (new events only) and folds them
//! into each tenant's product popularity, with one conditional write per tenant per batch.
//!
//! A tenant being deleted gets no write: the write is a transaction that checks the tenant is active, so
//! a late stream batch cannot bring back a deleted tenant's popularity.

use std::collections::BTreeMap;

use affinity::profile::Decay;
use affinity::store::{PopularityStore, StoreError, StoredEvent};
use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use serde::Serialize;

/// Attempts per tenant when a concurrent batch wrote first.
pub const ATTEMPTS: usize = 5;

/// What the handler needs, built once per cold start.
pub struct Deps<S> {
    /// Storage.
    pub store: S,
    /// Popularity decay (the same half-life and weights as affinities).
    pub decay: Decay,
}

/// What one batch did; logged, and returned to the invoker.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    /// Stream records received.
    pub records: usize,
    /// New events folded into popularity.
    pub applied: usize,
    /// Records that were not new events (updates, TTL removals) or not events at all.
    pub ignored: usize,
    /// Events of tenants no longer active, dropped.
    pub inactive: usize,
    /// Tenants whose popularity was written.
    pub tenants: usize,
}

/// The new events in a stream batch, and how many records were something else.
pub fn new_events(event: StreamEvent) -> (Vec<StoredEvent>, usize) {
    let mut ignored = 0;
    let mut out = Vec::new();
    for r in event.records {
        if r.event_name != "INSERT" {
            ignored += 1;
            continue;
        }
        match serde_dynamo::from_item::<_, StoredEvent>(r.change.new_image) {
            Ok(e) => out.push(e),
            Err(e) => {
                tracing::warn!(error = %e, "stream record is not an event");
                ignored += 1;
            }
        }
    }
    (out, ignored)
}

/// Folds `events` into popularity, per tenant.
///
/// # Errors
/// The first storage failure: the invoker retries the batch.
pub async fn aggregate<S: PopularityStore>(
    deps: &Deps<S>,
    events: Vec<StoredEvent>,
) -> Result<Report, StoreError> {
    let mut report = Report::default();
    let mut by_site: BTreeMap<String, Vec<StoredEvent>> = BTreeMap::new();
    for e in events {
        by_site.entry(e.site_id.clone()).or_default().push(e);
    }
    for (site_id, events) in by_site {
        let mut attempt = 0;
        loop {
            let (mut pop, version) = deps.store.popularity(&site_id).await?;
            for e in &events {
                pop.add(e.kind, &e.products(), e.ts, &deps.decay);
            }
            pop.trim();
            match deps.store.save_popularity(&site_id, &pop, version).await {
                Ok(()) => {
                    report.applied += events.len();
                    report.tenants += 1;
                    break;
                }
                Err(StoreError::TenantInactive) => {
                    report.inactive += events.len();
                    break;
                }
                Err(StoreError::Conflict) if attempt + 1 < ATTEMPTS => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(report)
}

/// Handles one stream batch.
///
/// # Errors
/// A storage failure, so that Lambda retries the batch.
pub async fn handle<S: PopularityStore>(
    deps: &Deps<S>,
    event: StreamEvent,
) -> Result<Report, StoreError> {
    let records = event.records.len();
    let (events, ignored) = new_events(event);
    let mut report = aggregate(deps, events).await?;
    report.records = records;
    report.ignored = ignored;
    tracing::info!(
        records,
        applied = report.applied,
        tenants = report.tenants,
        inactive = report.inactive,
        "aggregate"
    );
    Ok(report)
}
