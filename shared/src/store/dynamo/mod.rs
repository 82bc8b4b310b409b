//! The DynamoDB adapter: items in, records out. No `AttributeValue` map leaves this module. One file
//! per capability, sharing one set of attribute helpers ([`attrs`]) and one batch loop ([`batch`]).
//!
//! Key layout (see `docs/DESIGN.md`): tenants at `pk = site#{site_id}`; events at
//! `pk = {site_id}#{guest id}`, `sk = event_id`; profiles at `pk = {site_id}#{shopper key}`; popularity at
//! `pk = {site_id}`; neighbour lists at `pk = {site_id}#n:{v|b}:{product_id}` in the profiles table.
//! Every data item carries `site_id` for the `by_site` index that tenant deletion
//! queries. Deletion jobs are at `deletion#{tenant_id}`, their queue at `deletion-queue` and webhook
//! receipts at `webhook#{id}`, in the tenants table.

pub(crate) mod attrs;
mod batch;
mod deletion_jobs;
mod events;
mod neighbours;
mod popularity;
mod profiles;
mod recommend;
mod shopper_records;
mod size;
mod tenant_items;
mod webhooks;

use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use aws_sdk_dynamodb::Client;

use attrs::{corrupt, s, unavailable, Item};
pub use batch::{BACKOFF_BASE_MS, BATCH_ATTEMPTS};
pub use deletion_jobs::{deletion_pk, QUEUE_PK};
pub use neighbours::list_pk;
pub use profiles::{BY_CLAIM, BY_LINK, CLAIM_ATTR, LINK_ATTR};
pub use size::item_size;
pub use webhooks::{webhook_pk, WEBHOOK_RECEIPT_TTL_S};

use super::{StoreError, StoredEvent, TenantLookup};
use crate::config::Tables;
use crate::tenant::Tenant;

/// The DynamoDB store. Cheap to clone (the SDK client is reference-counted).
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    tables: Tables,
}

/// The tenant record's key.
pub fn tenant_pk(site_id: &str) -> String {
    format!("site#{site_id}")
}

/// A profile item's key.
pub fn profile_pk(site_id: &str, shopper_key: &str) -> String {
    format!("{site_id}#{shopper_key}")
}

/// An event item's partition key.
pub fn event_pk(site_id: &str, shopper_id: &str) -> String {
    format!("{site_id}#{shopper_id}")
}

/// Reads a tenant item.
///
/// # Errors
/// [`StoreError::Corrupt`] when the item does not hold a tenant.
pub fn tenant_from_item(item: Item) -> Result<Tenant, StoreError> {
    serde_dynamo::from_item(item).map_err(corrupt)
}

/// The item of a tenant record.
///
/// # Errors
/// [`StoreError::Corrupt`] when it cannot be serialized (it always can).
pub fn tenant_to_item(t: &Tenant) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(t).map_err(corrupt)?;
    item.insert("pk".into(), s(tenant_pk(&t.site_id)));
    Ok(item)
}

/// Reads an event item (also from a stream record's new image).
///
/// # Errors
/// [`StoreError::Corrupt`] when the item is not an event.
pub fn event_from_item(item: Item) -> Result<StoredEvent, StoreError> {
    serde_dynamo::from_item(item).map_err(corrupt)
}

/// The item of a stored event.
///
/// # Errors
/// [`StoreError::Corrupt`] when it cannot be serialized (it always can).
pub fn event_to_item(e: &StoredEvent) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(e).map_err(corrupt)?;
    item.insert("pk".into(), s(event_pk(&e.site_id, &e.shopper_id)));
    item.insert("sk".into(), s(e.event_id.clone()));
    Ok(item)
}

impl DynamoStore {
    /// A store over `client` and the tables a function uses.
    pub fn new(client: Client, tables: Tables) -> Self {
        Self { client, tables }
    }

    /// The SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table names.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Creates or replaces a tenant record.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn put_tenant(&self, t: &Tenant) -> Result<(), StoreError> {
        self.client
            .put_item()
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .table_name(&self.tables.tenants)
            .set_item(Some(tenant_to_item(t)?))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// The item at `pk` of the tenants table, strongly consistent.
    pub(crate) async fn tenants_item(&self, pk: String) -> Result<Option<Item>, StoreError> {
        let resp = self
            .client
            .get_item()
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .table_name(&self.tables.tenants)
            .key("pk", s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(resp.item)
    }
}

impl TenantLookup for DynamoStore {
    async fn tenant_by_site(&self, site_id: &str) -> Result<Option<Tenant>, StoreError> {
        self.tenants_item(tenant_pk(site_id))
            .await?
            .map(tenant_from_item)
            .transpose()
    }
}
