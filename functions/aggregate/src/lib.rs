//! The aggregate function: reads the events table's DynamoDB stream (new events only) and folds them
//! into each tenant's product popularity (one conditional write per tenant per batch) and neighbour
//! lists ([`lists`]: one conditional write per list changed).
//!
//! Tenants are independent: a tenant whose write fails has its records reported back as
//! `batchItemFailures` (Lambda's `ReportBatchItemFailures`), the others' stand. Lambda then sends the
//! batch again from the first failed record, so the popularity item remembers the fingerprints of the
//! events it folded ([`affinity::popularity::Popularity::applied`]) and a record delivered again is
//! skipped: nobody's events count twice. The popularity write is the commit: lists are folded from the
//! events it newly applied, after it; a list write that fails is logged and its share lost (a decayed
//! aggregate), never retried into a double count.
//!
//! A tenant being deleted gets no write: the popularity write is a transaction that checks the tenant is
//! active, so a late stream batch cannot bring back a deleted tenant's data.

pub mod lists;

use std::collections::BTreeMap;

use affinity::popularity::applied_fingerprint;
use affinity::profile::Decay;
use affinity::recommender::neighbours::CoVisitWeights;
use affinity::store::{
    NeighbourStore, PopularityStore, PopularityWrite, ProfileStore, StoreError, StoredEvent,
};
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

/// The neighbour lists' weighting: the recommender's ([`affinity::recommender::Params`]), so what is
/// stored is what `make eval` measured.
pub fn covisit() -> CoVisitWeights {
    affinity::recommender::Params::default().covisit
}

/// What one batch did; logged.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    /// Stream records received.
    pub records: usize,
    /// New events folded in.
    pub applied: usize,
    /// Events folded in by an earlier delivery of the same record, skipped.
    pub duplicates: usize,
    /// Records that were not new events (updates, TTL removals) or not events at all.
    pub ignored: usize,
    /// Events of tenants no longer active, dropped.
    pub inactive: usize,
    /// Tenants whose popularity was written.
    pub tenants: usize,
    /// Records reported as failed (their tenant's write failed).
    pub failed: usize,
    /// Neighbour lists written.
    pub lists_written: usize,
    /// Neighbour lists not written (storage failure or lasting conflict).
    pub lists_lost: usize,
    /// The sequence numbers of the failed records.
    pub failed_records: Vec<String>,
}

impl Report {
    /// The answer to Lambda: the failed records.
    pub fn response(&self) -> BatchResponse {
        BatchResponse {
            batch_item_failures: self
                .failed_records
                .iter()
                .map(|s| ItemFailure {
                    item_identifier: s.clone(),
                })
                .collect(),
        }
    }
}

/// The answer to Lambda's `ReportBatchItemFailures`: `{"batchItemFailures":[{"itemIdentifier": seq}]}`,
/// the sequence numbers of the records to deliver again (none: the batch is done).
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    /// The failed records.
    pub batch_item_failures: Vec<ItemFailure>,
}

/// One failed record.
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ItemFailure {
    /// The record's `dynamodb.SequenceNumber`.
    pub item_identifier: String,
}

/// A new event and the sequence number of its stream record.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// `dynamodb.SequenceNumber` (absent only in hand-made events).
    pub seq: Option<String>,
    /// The event.
    pub event: StoredEvent,
}

/// The new events in a stream batch, and how many records were something else.
pub fn new_events(event: StreamEvent) -> (Vec<StoredEvent>, usize) {
    let (records, ignored) = new_records(event);
    (records.into_iter().map(|r| r.event).collect(), ignored)
}

/// [`new_events`] with each event's sequence number.
pub fn new_records(event: StreamEvent) -> (Vec<Record>, usize) {
    let mut ignored = 0;
    let mut out = Vec::new();
    for r in event.records {
        if r.event_name != "INSERT" {
            ignored += 1;
            continue;
        }
        let seq = r.change.sequence_number.clone();
        match serde_dynamo::from_item::<_, StoredEvent>(r.change.new_image) {
            Ok(event) => out.push(Record { seq, event }),
            Err(e) => {
                tracing::warn!(error = %e, "stream record is not an event");
                ignored += 1;
            }
        }
    }
    (out, ignored)
}

/// How one tenant's share of a batch went.
enum Outcome {
    Applied {
        fresh: Vec<StoredEvent>,
        dups: usize,
    },
    Inactive,
}

/// Folds one tenant's events into its popularity, skipping events already applied.
async fn fold_popularity<S: PopularityStore>(
    deps: &Deps<S>,
    site_id: &str,
    events: &[StoredEvent],
) -> Result<Outcome, StoreError> {
    let mut attempt = 0;
    loop {
        let (mut pop, version) = deps.store.popularity(site_id).await?;
        let mut fresh = Vec::new();
        for e in events {
            let fp = applied_fingerprint(&e.shopper_id, &e.event_id);
            if pop.was_applied(fp) {
                continue;
            }
            pop.add(e.kind, &e.products(), e.ts, &deps.decay);
            pop.applied.push(fp);
            fresh.push(e.clone());
        }
        let dups = events.len() - fresh.len();
        if fresh.is_empty() {
            return Ok(Outcome::Applied { fresh, dups });
        }
        pop.trim();
        let write = PopularityWrite {
            site_id,
            popularity: &pop,
            expected: version,
        };
        match deps.store.save_popularity(&write).await {
            Ok(()) => return Ok(Outcome::Applied { fresh, dups }),
            Err(StoreError::TenantInactive) => return Ok(Outcome::Inactive),
            Err(StoreError::Conflict) if attempt + 1 < ATTEMPTS => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Folds `events` (no stream records: a local stand-in for the stream) like [`aggregate_records`].
///
/// # Errors
/// The first tenant's storage failure (the other tenants' writes stand).
pub async fn aggregate<S>(deps: &Deps<S>, events: Vec<StoredEvent>) -> Result<Report, StoreError>
where
    S: PopularityStore + NeighbourStore + ProfileStore,
{
    let records = events
        .into_iter()
        .map(|event| Record { seq: None, event })
        .collect();
    let (report, first_error) = aggregate_records(deps, records).await;
    match first_error {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// Folds `records` into popularity and neighbour lists, tenant by tenant; returns what happened (with
/// the records whose tenant failed) and the first tenant failure.
pub async fn aggregate_records<S>(
    deps: &Deps<S>,
    records: Vec<Record>,
) -> (Report, Option<StoreError>)
where
    S: PopularityStore + NeighbourStore + ProfileStore,
{
    let mut report = Report::default();
    let mut first_error = None;
    let mut by_site: BTreeMap<String, Vec<Record>> = BTreeMap::new();
    for r in records {
        by_site.entry(r.event.site_id.clone()).or_default().push(r);
    }
    for (site_id, records) in by_site {
        let events: Vec<StoredEvent> = records.iter().map(|r| r.event.clone()).collect();
        let fresh = match fold_popularity(deps, &site_id, &events).await {
            Ok(Outcome::Applied { fresh, dups }) => {
                report.duplicates += dups;
                report.applied += fresh.len();
                report.tenants += usize::from(!fresh.is_empty());
                fresh
            }
            Ok(Outcome::Inactive) => {
                report.inactive += events.len();
                continue;
            }
            Err(e) => {
                tracing::warn!(site_id = %site_id, error = %e, "tenant batch failed; reported for retry");
                report.failed += records.len();
                report
                    .failed_records
                    .extend(records.into_iter().filter_map(|r| r.seq));
                first_error.get_or_insert(e);
                continue;
            }
        };
        if fresh.is_empty() {
            continue;
        }
        let lists = async {
            let history = lists::histories(&deps.store, &site_id, &fresh).await?;
            let steps = lists::plan(&fresh, &history);
            lists::fold_lists(&deps.store, &site_id, &steps, &covisit()).await
        };
        match lists.await {
            Ok(w) => {
                report.lists_written += w.written;
                report.lists_lost += w.gave_up;
            }
            Err(e) => {
                tracing::warn!(site_id = %site_id, error = %e, "neighbour lists not written");
                report.lists_lost += 1;
            }
        }
    }
    (report, first_error)
}

/// Handles one stream batch: every outcome is a report, whose [`Report::response`] names the failed
/// records so that Lambda delivers just those (and what follows them) again.
pub async fn handle<S>(deps: &Deps<S>, event: StreamEvent) -> Report
where
    S: PopularityStore + NeighbourStore + ProfileStore,
{
    let records = event.records.len();
    let (events, ignored) = new_records(event);
    let (mut report, _) = aggregate_records(deps, events).await;
    report.records = records;
    report.ignored = ignored;
    tracing::info!(
        records,
        applied = report.applied,
        duplicates = report.duplicates,
        tenants = report.tenants,
        inactive = report.inactive,
        failed = report.failed,
        lists_written = report.lists_written,
        lists_lost = report.lists_lost,
        "aggregate"
    );
    report
}
