//! The webhook receipts port: a platform delivery is processed once per delivery id.

use std::future::Future;

use super::StoreError;

/// How long a webhook id is remembered, in seconds (Shopify retries a failed delivery for up to 48
/// hours; a week leaves room).
pub const WEBHOOK_RECEIPT_TTL_S: i64 = 7 * 86_400;

/// Receipts of processed webhook deliveries (they hold the id, the topic and the time; no tenant data).
pub trait WebhookReceipts: Send + Sync {
    /// Records delivery `webhook_id` of `topic` at `now_ms`, remembered for [`WEBHOOK_RECEIPT_TTL_S`].
    /// Returns `false` when it was recorded before (a repeated delivery).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    fn claim_webhook(
        &self,
        webhook_id: &str,
        topic: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Forgets delivery `webhook_id`, so that the platform's retry is processed (after a failure).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    fn release_webhook(
        &self,
        webhook_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
