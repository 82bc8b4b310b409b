//! Sending batches with a pool of worker threads, retrying what a 503 says was not stored.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use indicatif::ProgressBar;

use crate::client::{ApiClient, ApiError, IngestAnswer, PostAnswer, Route};
use crate::event::Event;
use crate::shape::{request_body, Batch};

/// How to send.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// The ingest route.
    pub route: Route,
    /// Requests in flight at once (worker threads), at least 1.
    pub concurrency: usize,
    /// How many times events a 503 left unstored (or a request that got no answer) are sent
    /// again before they count as failed (or the API as unreachable).
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
}

/// Most rejected events described one by one in [`SendTotals::rejected_examples`].
const MAX_EXAMPLES: usize = 20;

/// What the API made of the events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendTotals {
    /// HTTP requests that got an answer.
    pub requests: u64,
    /// Events the API answered for at least once.
    pub events_sent: u64,
    /// Events stored.
    pub accepted: u64,
    /// Events the API already had (same event id).
    pub duplicates: u64,
    /// Events the API refused, by `field: reason`.
    pub rejected: BTreeMap<String, u64>,
    /// The first few rejected events: source line, event id and reason.
    pub rejected_examples: Vec<String>,
    /// Personal data fields the API dropped.
    pub pii_dropped: u64,
    /// Events still not stored after every retry of a 503.
    pub failed: u64,
    /// Events never sent because the import stopped on an error.
    pub not_sent: u64,
    /// Requests sent again (after a 503 or no answer).
    pub retries: u64,
}

impl SendTotals {
    /// Events the API refused, all reasons together.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// Adds the totals of another run of [`send_batches`].
    pub fn merge(&mut self, other: SendTotals) {
        self.requests += other.requests;
        self.events_sent += other.events_sent;
        self.accepted += other.accepted;
        self.duplicates += other.duplicates;
        for (reason, n) in other.rejected {
            *self.rejected.entry(reason).or_default() += n;
        }
        for example in other.rejected_examples {
            if self.rejected_examples.len() < MAX_EXAMPLES {
                self.rejected_examples.push(example);
            }
        }
        self.pii_dropped += other.pii_dropped;
        self.failed += other.failed;
        self.not_sent += other.not_sent;
        self.retries += other.retries;
    }

    /// Adds the counts of an answer about the events `sent` (global indexes, in request order).
    fn add_answer(&mut self, answer: IngestAnswer, sent: &[usize], events: &[Event]) {
        self.accepted += answer.accepted;
        self.duplicates += answer.duplicates;
        self.pii_dropped += answer.pii_dropped;
        for rejection in answer.rejected {
            let reason = if rejection.field.is_empty() {
                rejection.reason.clone()
            } else {
                format!("{}: {}", rejection.field, rejection.reason)
            };
            if self.rejected_examples.len() < MAX_EXAMPLES {
                let example = match sent.get(rejection.index).and_then(|&i| events.get(i)) {
                    Some(e) => format!("line {} ({}): {reason}", e.line, e.event_id),
                    None => format!("request position {}: {reason}", rejection.index),
                };
                self.rejected_examples.push(example);
            }
            *self.rejected.entry(reason).or_default() += 1;
        }
    }
}

/// Sends `batches` (built over `events`, whose serialized forms are `json`) with
/// `options.concurrency` worker threads. Batches with the same key go to the same worker, in
/// order. `log` receives warnings (retries, failures). Stops at the first error other than a
/// 503 and returns it with the totals so far (the events not sent are counted as such).
pub fn send_batches(
    client: &ApiClient,
    events: &[Event],
    json: &[Vec<u8>],
    batches: Vec<Batch>,
    options: &SendOptions,
    progress: &ProgressBar,
    log: &(dyn Fn(&str) + Sync),
) -> (SendTotals, Option<ApiError>) {
    let workers = options.concurrency.max(1);
    let abort = AtomicBool::new(false);
    let first_error: Mutex<Option<ApiError>> = Mutex::new(None);
    let mut totals = SendTotals::default();

    thread::scope(|scope| {
        let mut senders = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (tx, rx) = sync_channel::<Batch>(2);
            senders.push(tx);
            let (abort, first_error) = (&abort, &first_error);
            handles.push(scope.spawn(move || {
                worker(
                    client,
                    events,
                    json,
                    rx,
                    options,
                    progress,
                    log,
                    abort,
                    first_error,
                )
            }));
        }
        for batch in batches {
            if abort.load(Ordering::SeqCst) {
                totals.not_sent += batch.events.len() as u64;
                continue;
            }
            let slot = usize::try_from(batch.key % workers as u64).unwrap_or(0);
            if let Err(returned) = senders[slot].send(batch) {
                totals.not_sent += returned.0.events.len() as u64;
            }
        }
        drop(senders);
        for handle in handles {
            match handle.join() {
                Ok(worker_totals) => totals.merge(worker_totals),
                Err(_) => {
                    abort.store(true, Ordering::SeqCst);
                    log("a sending thread panicked");
                }
            }
        }
    });
    let error = first_error.into_inner().unwrap_or_else(|e| e.into_inner());
    (totals, error)
}

#[allow(clippy::too_many_arguments)]
fn worker(
    client: &ApiClient,
    events: &[Event],
    json: &[Vec<u8>],
    batches: Receiver<Batch>,
    options: &SendOptions,
    progress: &ProgressBar,
    log: &(dyn Fn(&str) + Sync),
    abort: &AtomicBool,
    first_error: &Mutex<Option<ApiError>>,
) -> SendTotals {
    let mut totals = SendTotals::default();
    for batch in batches {
        if abort.load(Ordering::SeqCst) {
            totals.not_sent += batch.events.len() as u64;
            continue;
        }
        if let Err((error, unsent)) = send_one(
            client,
            events,
            json,
            batch,
            options,
            progress,
            log,
            &mut totals,
        ) {
            totals.not_sent += unsent;
            abort.store(true, Ordering::SeqCst);
            let mut slot = first_error.lock().unwrap_or_else(|e| e.into_inner());
            if slot.is_none() {
                *slot = Some(error);
            }
        }
    }
    totals
}

/// Sends one batch, retrying what is not stored. On a fatal error, returns it with the number
/// of events of the batch that got no answer.
#[allow(clippy::too_many_arguments)]
fn send_one(
    client: &ApiClient,
    events: &[Event],
    json: &[Vec<u8>],
    batch: Batch,
    options: &SendOptions,
    progress: &ProgressBar,
    log: &(dyn Fn(&str) + Sync),
    totals: &mut SendTotals,
) -> Result<(), (ApiError, u64)> {
    let mut pending = batch.events;
    let mut answered_before = false;
    let mut attempt: u32 = 0;
    loop {
        let body = request_body(json, &pending);
        let count = pending.len() as u64;
        match client.post_events(options.route, &body) {
            Ok(answer) => {
                totals.requests += 1;
                if !answered_before {
                    totals.events_sent += count;
                    answered_before = true;
                }
                match answer {
                    PostAnswer::Done(answer) => {
                        totals.add_answer(answer, &pending, events);
                        progress.inc(count);
                        return Ok(());
                    }
                    PostAnswer::Unavailable {
                        not_stored,
                        answer,
                        body,
                    } => {
                        let retry: Vec<usize> = match not_stored {
                            Some(positions) => {
                                let mut positions: Vec<usize> = positions
                                    .into_iter()
                                    .filter(|&p| p < pending.len())
                                    .collect();
                                positions.sort_unstable();
                                positions.dedup();
                                positions.into_iter().map(|p| pending[p]).collect()
                            }
                            None => pending.clone(),
                        };
                        let stored = count - retry.len() as u64;
                        match answer {
                            Some(answer) => totals.add_answer(answer, &pending, events),
                            None => totals.accepted += stored,
                        }
                        progress.inc(stored);
                        if retry.is_empty() {
                            return Ok(());
                        }
                        if attempt >= options.retries {
                            totals.failed += retry.len() as u64;
                            progress.inc(retry.len() as u64);
                            log(&format!(
                                "{} event(s) still not stored after {} retries (first: {}); last answer: HTTP 503 {}",
                                retry.len(),
                                options.retries,
                                describe(events, retry[0]),
                                body.trim()
                            ));
                            return Ok(());
                        }
                        pending = retry;
                    }
                }
            }
            Err(ApiError::Unreachable(e)) if attempt < options.retries => {
                log(&format!("no answer from the API ({e}); trying again"));
            }
            Err(error) => {
                let unsent = if answered_before { 0 } else { count };
                if answered_before {
                    // These events were counted as sent; they are lost now.
                    totals.failed += count;
                }
                return Err((error, unsent));
            }
        }
        attempt += 1;
        totals.retries += 1;
        thread::sleep(options.backoff.saturating_mul(1 << (attempt - 1).min(10)));
    }
}

fn describe(events: &[Event], index: usize) -> String {
    match events.get(index) {
        Some(e) => format!("{} from line {}", e.event_id, e.line),
        None => format!("event #{index}"),
    }
}
