//! Tenant popularity: [`PopularityStore`].

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{ConditionCheck, Put, ReturnConsumedCapacity, TransactWriteItem};

use super::attrs::{build_err, corrupt, n, s, unavailable, version_of, Item};
use super::{tenant_pk, DynamoStore};
use crate::popularity::Popularity;
use crate::store::{PopularityStore, PopularityWrite, StoreError};

pub(super) fn popularity_from_item(item: Item) -> Result<(Popularity, u64), StoreError> {
    let version = version_of(&item)?;
    Ok((serde_dynamo::from_item(item).map_err(corrupt)?, version))
}

impl PopularityStore for DynamoStore {
    async fn popularity(&self, site_id: &str) -> Result<(Popularity, u64), StoreError> {
        let resp = self
            .client()
            .get_item()
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .table_name(&self.tables().popularity)
            .key("pk", s(site_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        match resp.item {
            Some(item) => popularity_from_item(item),
            None => Ok((Popularity::default(), 0)),
        }
    }

    async fn save_popularity(&self, write: &PopularityWrite<'_>) -> Result<(), StoreError> {
        let &PopularityWrite {
            site_id,
            popularity,
            expected,
        } = write;
        let mut item: Item = serde_dynamo::to_item(popularity).map_err(corrupt)?;
        item.insert("pk".into(), s(site_id));
        item.insert("site_id".into(), s(site_id));
        item.insert("version".into(), n(expected + 1));
        let put = Put::builder()
            .table_name(&self.tables().popularity)
            .set_item(Some(item));
        let put = if expected == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :v")
                .expression_attribute_values(":v", n(expected))
        }
        .build()
        .map_err(build_err)?;
        let check = ConditionCheck::builder()
            .table_name(&self.tables().tenants)
            .key("pk", s(tenant_pk(site_id)))
            .condition_expression("#st = :active")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":active", s("active"))
            .build()
            .map_err(build_err)?;
        let r = self
            .client()
            .transact_write_items()
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        let Err(e) = r else { return Ok(()) };
        let reasons: Vec<String> = match e.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(t)) => t
                .cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("").to_string())
                .collect(),
            _ => Vec::new(),
        };
        match reasons.as_slice() {
            [first, ..] if first == "ConditionalCheckFailed" => Err(StoreError::TenantInactive),
            [_, second] if second == "ConditionalCheckFailed" => Err(StoreError::Conflict),
            _ => Err(unavailable(e)),
        }
    }
}
