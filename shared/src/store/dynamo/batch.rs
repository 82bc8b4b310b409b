//! The adapter's one batch loop: `BatchGetItem` and `BatchWriteItem` with their unprocessed keys and
//! items retried with exponential backoff, and writes of any size as parallel requests of 25.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::{
    DeleteRequest, KeysAndAttributes, PutRequest, ReturnConsumedCapacity, WriteRequest,
};

use super::attrs::{build_err, s, unavailable, Item};
use super::DynamoStore;
use crate::store::StoreError;

/// Most attempts for a batch whose items DynamoDB left unprocessed (throttling), with exponential
/// backoff from [`BACKOFF_BASE_MS`].
pub const BATCH_ATTEMPTS: u32 = 6;
/// First backoff, in ms (then 2x each attempt, with jitter).
pub const BACKOFF_BASE_MS: u64 = 25;
/// Most requests in one `BatchWriteItem` (DynamoDB's limit).
pub const WRITE_BATCH: usize = 25;

async fn backoff(attempt: u32) {
    let base = BACKOFF_BASE_MS << attempt.min(8);
    // Jitter from the clock's nanoseconds: enough to spread retries of concurrent requests.
    let jitter = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()),
    ) % (base / 2 + 1);
    tokio::time::sleep(Duration::from_millis(base / 2 + jitter)).await;
}

/// A `PutRequest` of `item`.
pub(crate) fn put_request(item: Item) -> Result<WriteRequest, StoreError> {
    PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map(|p| WriteRequest::builder().put_request(p).build())
        .map_err(build_err)
}

/// A `DeleteRequest` of the item at `key`.
pub(crate) fn delete_request(key: Item) -> Result<WriteRequest, StoreError> {
    DeleteRequest::builder()
        .set_key(Some(key))
        .build()
        .map(|d| WriteRequest::builder().delete_request(d).build())
        .map_err(build_err)
}

/// Strongly consistent reads of the items at the `pk`s.
pub(crate) fn keys_of(
    pks: impl IntoIterator<Item = String>,
) -> Result<KeysAndAttributes, StoreError> {
    KeysAndAttributes::builder()
        .set_keys(Some(
            pks.into_iter()
                .map(|pk| HashMap::from([("pk".to_string(), s(pk))]))
                .collect(),
        ))
        .consistent_read(true)
        .build()
        .map_err(build_err)
}

impl DynamoStore {
    /// `BatchGetItem` with `UnprocessedKeys` retried; returns the items per table.
    pub(crate) async fn batch_get(
        &self,
        mut request: HashMap<String, KeysAndAttributes>,
    ) -> Result<HashMap<String, Vec<Item>>, StoreError> {
        let mut out: HashMap<String, Vec<Item>> = HashMap::new();
        for attempt in 0..BATCH_ATTEMPTS {
            let resp = self
                .client()
                .batch_get_item()
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .set_request_items(Some(request))
                .send()
                .await
                .map_err(unavailable)?;
            for (table, items) in resp.responses.unwrap_or_default() {
                out.entry(table).or_default().extend(items);
            }
            match resp.unprocessed_keys {
                Some(rest) if !rest.is_empty() => {
                    request = rest;
                    backoff(attempt).await;
                }
                _ => return Ok(out),
            }
        }
        Err(StoreError::Unavailable(
            "BatchGetItem left keys unprocessed after retries".into(),
        ))
    }

    /// One `BatchWriteItem` (at most [`WRITE_BATCH`] requests) with `UnprocessedItems` retried.
    async fn batch_write(
        &self,
        table: &str,
        mut requests: Vec<WriteRequest>,
    ) -> Result<(), StoreError> {
        for attempt in 0..BATCH_ATTEMPTS {
            let resp = self
                .client()
                .batch_write_item()
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .request_items(table, requests)
                .send()
                .await
                .map_err(unavailable)?;
            match resp.unprocessed_items.and_then(|mut m| m.remove(table)) {
                Some(rest) if !rest.is_empty() => {
                    requests = rest;
                    backoff(attempt).await;
                }
                _ => return Ok(()),
            }
        }
        Err(StoreError::Unavailable(
            "BatchWriteItem left items unprocessed after retries".into(),
        ))
    }

    /// Writes each chunk (at most [`WRITE_BATCH`] requests) of `table` as one `BatchWriteItem`, the
    /// chunks in parallel; returns each chunk's result, in order.
    pub(crate) async fn write_chunks(
        &self,
        table: &str,
        chunks: Vec<Vec<WriteRequest>>,
    ) -> Vec<Result<(), StoreError>> {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                let (this, table) = (self.clone(), table.to_string());
                tokio::spawn(async move { this.batch_write(&table, chunk).await })
            })
            .collect();
        let mut out = Vec::with_capacity(handles.len());
        for h in handles {
            out.push(
                h.await
                    .unwrap_or_else(|e| Err(StoreError::Unavailable(e.to_string()))),
            );
        }
        out
    }

    /// Writes `requests` of `table` in chunks of [`WRITE_BATCH`], in parallel.
    ///
    /// # Errors
    /// The first chunk's failure (the other chunks are written).
    pub(crate) async fn write_all(
        &self,
        table: &str,
        requests: Vec<WriteRequest>,
    ) -> Result<(), StoreError> {
        let chunks = requests.chunks(WRITE_BATCH).map(<[_]>::to_vec).collect();
        self.write_chunks(table, chunks).await.into_iter().collect()
    }
}
