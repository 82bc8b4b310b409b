//! Webhook receipts: [`WebhookReceipts`], items at `webhook#{id}` of the tenants table (holding the id,
//! the topic and the time; no tenant data), expiring after [`WEBHOOK_RECEIPT_TTL_S`].

use super::attrs::{n, s, unavailable};
use super::DynamoStore;
use crate::store::tenants::WebhookReceipts;
use crate::store::StoreError;

/// How long a webhook id is remembered, in seconds (Shopify retries a failed delivery for up to 48
/// hours; a week leaves room).
pub const WEBHOOK_RECEIPT_TTL_S: i64 = 7 * 86_400;

/// The key of a processed webhook delivery.
pub fn webhook_pk(webhook_id: &str) -> String {
    format!("webhook#{webhook_id}")
}

impl WebhookReceipts for DynamoStore {
    async fn claim_webhook(
        &self,
        webhook_id: &str,
        topic: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let r = self
            .client()
            .put_item()
            .table_name(&self.tables().tenants)
            .item("pk", s(webhook_pk(webhook_id)))
            .item("topic", s(topic))
            .item("received_at", s(crate::rfc3339(now_ms)))
            .item("expires_at", n(now_ms / 1000 + WEBHOOK_RECEIPT_TTL_S))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match r {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn release_webhook(&self, webhook_id: &str) -> Result<(), StoreError> {
        self.client()
            .delete_item()
            .table_name(&self.tables().tenants)
            .key("pk", s(webhook_pk(webhook_id)))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
