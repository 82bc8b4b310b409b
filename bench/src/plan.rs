//! The replay plan shared by the load client and the floor: the REES46 sample read and shaped exactly
//! as `affinity-import replay --live --shift-to-now` does (user ids under their long guest ids, one shopper's consecutive events, at most 25
//! a request), and the requests split over workers as the importer splits them (by shopper, in order).

use std::fs::File;
use std::path::Path;

use affinity_importer::event::Event;
use affinity_importer::shape::{
    live_batches, request_body, shift_to_now, split_large_purchases, Batch,
};

/// The events, their JSON as sent, and the requests.
pub struct Plan {
    /// Events as the importer builds them.
    pub events: Vec<Event>,
    /// Each event's JSON, as sent.
    pub json: Vec<Vec<u8>>,
    /// Requests (indexes into `events`).
    pub batches: Vec<Batch>,
}

/// The importer's defaults for `--live`.
const LIVE_GAP_MS: i64 = 1800 * 1000;
const SHIFT_MARGIN_MS: i64 = 5_000;

/// Reads and shapes `file` (REES46 format), the last event `SHIFT_MARGIN_MS` before `now_ms`.
pub fn plan(file: &Path, now_ms: i64) -> Result<Plan, String> {
    let f = File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let parsed = affinity_importer::rees46::parse(f, None).map_err(|e| e.to_string())?;
    let (mut events, _) = split_large_purchases(parsed.events);
    // The live route wants guest ids of 16+ characters: the file's user ids under the importer's
    // mapping (affinity_importer::guest).
    for e in &mut events {
        e.shopper_id = affinity_importer::guest::guest_id("rees46", &e.shopper_id);
    }
    shift_to_now(&mut events, now_ms, SHIFT_MARGIN_MS);
    let json = events
        .iter()
        .map(|e| serde_json::to_vec(e).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let batches = live_batches(&events, LIVE_GAP_MS);
    Ok(Plan {
        events,
        json,
        batches,
    })
}

impl Plan {
    /// The requests of each of `n` workers, in order (a shopper always goes to the same worker).
    pub fn partition(&self, n: usize) -> Vec<Vec<&Batch>> {
        let mut parts: Vec<Vec<&Batch>> = (0..n).map(|_| Vec::new()).collect();
        for b in &self.batches {
            parts[(b.key % n as u64) as usize].push(b);
        }
        parts
    }

    /// The request body of a batch.
    pub fn body(&self, b: &Batch) -> Vec<u8> {
        request_body(&self.json, &b.events)
    }

    /// Distinct shopper ids in order of first appearance.
    pub fn shoppers(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        self.events
            .iter()
            .filter(|e| seen.insert(e.shopper_id.as_str()))
            .map(|e| e.shopper_id.clone())
            .collect()
    }
}
