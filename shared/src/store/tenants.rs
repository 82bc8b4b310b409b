//! Tenant records beyond the site-id lookup: the `tenant#{tenant_id}` pointer, install and re-install,
//! OAuth states, consent changes and API key rotation. More `impl DynamoStore` methods, over the tenants
//! table (`docs/DESIGN.md`).

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::error::display::DisplayErrorContext;

use super::dynamo::DynamoStore;
use super::{StoreError, TenantLookup};
use crate::tenant::Tenant;

type Item = HashMap<String, AttributeValue>;

/// The key of the pointer from a tenant id to its site id.
pub fn tenant_pointer_pk(tenant_id: &str) -> String {
    format!("tenant#{tenant_id}")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn unavailable<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(DisplayErrorContext(e).to_string())
}

fn string_attr(item: &Item, name: &str) -> Result<String, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(StoreError::Corrupt(format!("item without {name}"))),
    }
}

impl DynamoStore {
    /// The site id of `tenant_id`, from its `tenant#{tenant_id}` pointer (strongly consistent).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`]; [`StoreError::Corrupt`] when the pointer has no `site_id`.
    pub async fn site_id_of_tenant(&self, tenant_id: &str) -> Result<Option<String>, StoreError> {
        let resp = self
            .client()
            .get_item()
            .table_name(&self.tables().tenants)
            .key("pk", s(tenant_pointer_pk(tenant_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        resp.item.map(|i| string_attr(&i, "site_id")).transpose()
    }

    /// The tenant of `tenant_id`: its pointer, then its record (two strongly consistent reads).
    /// `None` when either is missing (never installed, or deleted).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    pub async fn tenant_by_tenant_id(&self, tenant_id: &str) -> Result<Option<Tenant>, StoreError> {
        let Some(site_id) = self.site_id_of_tenant(tenant_id).await? else {
            return Ok(None);
        };
        self.tenant_by_site(&site_id).await
    }
}
