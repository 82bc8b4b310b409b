//! Raw events: [`EventSink`].

use super::batch::{put_request, WRITE_BATCH};
use super::{event_to_item, DynamoStore};
use crate::store::{EventSink, StoredEvent};

impl EventSink for DynamoStore {
    async fn put_events(&self, events: Vec<StoredEvent>) -> Vec<usize> {
        let mut failed = Vec::new();
        let mut chunks = Vec::new();
        let mut spans = Vec::new();
        for (chunk_no, chunk) in events.chunks(WRITE_BATCH).enumerate() {
            let span = chunk_no * WRITE_BATCH..chunk_no * WRITE_BATCH + chunk.len();
            match chunk
                .iter()
                .map(|e| event_to_item(e).and_then(put_request))
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(requests) => {
                    chunks.push(requests);
                    spans.push(span);
                }
                Err(e) => {
                    tracing::error!(error = %e, events = chunk.len(), "event batch not stored");
                    failed.extend(span);
                }
            }
        }
        let results = self.write_chunks(&self.tables().events, chunks).await;
        for (span, result) in spans.into_iter().zip(results) {
            if let Err(e) = result {
                tracing::error!(error = %e, events = span.len(), "event batch not stored");
                failed.extend(span);
            }
        }
        failed.sort_unstable();
        failed
    }
}
