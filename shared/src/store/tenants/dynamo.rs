//! The DynamoDB adapter of the tenant ports ([`super`]): the `tenant#{tenant_id}` pointer, install and
//! re-install, OAuth states, consent changes and API key rotation, over the tenants table
//! (`docs/DESIGN.md`). The `impl DynamoStore` methods are the adapter's own API (the deletion adapter
//! uses them too); the port implementations at the end call them.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValue, TransactWriteItem, Update,
};
use aws_smithy_types::error::display::DisplayErrorContext;

use super::{
    oauth_state_pk, tenant_pointer_pk, DeletionStarter, KeyRotation, OAuthState, OAuthStates,
    Refresh, TenantDirectory, TenantWriter,
};
use crate::store::deletion::Trigger;
use crate::store::dynamo::{tenant_pk, tenant_to_item, DynamoStore};
use crate::store::{StoreError, TenantLookup};
use crate::tenant::Tenant;

type Item = HashMap<String, AttributeValue>;

fn b(v: &[u8]) -> AttributeValue {
    AttributeValue::B(aws_smithy_types::Blob::new(v))
}

fn cancelled_conditionally(e: &SdkError<TransactWriteItemsError, impl std::fmt::Debug>) -> bool {
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(t)) => t
            .cancellation_reasons()
            .iter()
            .any(|r| r.code() == Some("ConditionalCheckFailed")),
        _ => false,
    }
}

/// The outcome of a conditional request: `Ok(None)` when its condition failed.
fn conditional<T, E, R>(r: Result<T, SdkError<E, R>>) -> Result<Option<T>, StoreError>
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e)
            if e.as_service_error().and_then(ProvideErrorMetadata::code)
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(None)
        }
        Err(e) => Err(unavailable(e)),
    }
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
    /// Writes `items` in one transaction; `refused` when a condition failed.
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
        refused: StoreError,
    ) -> Result<(), StoreError> {
        let r = self
            .client()
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if cancelled_conditionally(&e) => Err(refused),
            Err(e) => Err(unavailable(e)),
        }
    }

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

    /// Creates a tenant: its record and its `tenant#` pointer, in one transaction. The record must not
    /// exist; the pointer must not exist, or (a store installed again after its deletion) still point at
    /// `replaces_site`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when another install won the race (read again and refresh);
    /// [`StoreError::Unavailable`].
    pub async fn create_tenant(
        &self,
        tenant: &Tenant,
        replaces_site: Option<&str>,
    ) -> Result<(), StoreError> {
        let table = &self.tables().tenants;
        let record = Put::builder()
            .table_name(table)
            .set_item(Some(tenant_to_item(tenant)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let pointer = Put::builder()
            .table_name(table)
            .item("pk", s(tenant_pointer_pk(&tenant.tenant_id)))
            .item("tenant_id", s(&tenant.tenant_id))
            .item("site_id", s(&tenant.site_id));
        let pointer = match replaces_site {
            None => pointer.condition_expression("attribute_not_exists(pk)"),
            Some(old) => pointer
                .condition_expression("attribute_not_exists(pk) OR site_id = :old")
                .expression_attribute_values(":old", s(old)),
        }
        .build()
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        self.transact(
            vec![
                TransactWriteItem::builder().put(record).build(),
                TransactWriteItem::builder().put(pointer).build(),
            ],
            StoreError::Conflict,
        )
        .await
    }

    /// Refreshes an active tenant on re-install: scopes, consent time and the access token's ciphertext
    /// (and a pepper if it had none), while the pointer still names this site. Site id, API key, pepper,
    /// messaging consent and data stay.
    ///
    /// # Errors
    /// [`StoreError::TenantInactive`] when the tenant is no longer active or no longer this site's;
    /// [`StoreError::Unavailable`].
    pub async fn refresh_tenant(&self, r: &Refresh) -> Result<(), StoreError> {
        let table = &self.tables().tenants;
        let mut set = String::from(
            "SET scopes = :scopes, consent_granted_at = :at, access_token_ciphertext = :token",
        );
        let mut update = Update::builder()
            .table_name(table)
            .key("pk", s(tenant_pk(&r.site_id)))
            .condition_expression("tenant_id = :tid AND #st = :active")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":tid", s(&r.tenant_id))
            .expression_attribute_values(":active", s("active"))
            .expression_attribute_values(
                ":scopes",
                AttributeValue::L(r.scopes.iter().map(|x| s(x.as_str())).collect()),
            )
            .expression_attribute_values(":at", s(&r.consent_granted_at))
            .expression_attribute_values(":token", b(&r.access_token_ciphertext));
        if let Some(pepper) = &r.pepper_ciphertext {
            set.push_str(", pepper_ciphertext = if_not_exists(pepper_ciphertext, :pepper)");
            update = update.expression_attribute_values(":pepper", b(pepper));
        }
        if let Some(region) = &r.default_region {
            set.push_str(", default_region = :region");
            update = update.expression_attribute_values(":region", s(region));
        }
        let update = update
            .update_expression(set)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let pointer = ConditionCheck::builder()
            .table_name(table)
            .key("pk", s(tenant_pointer_pk(&r.tenant_id)))
            .condition_expression("site_id = :site")
            .expression_attribute_values(":site", s(&r.site_id))
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        self.transact(
            vec![
                TransactWriteItem::builder().update(update).build(),
                TransactWriteItem::builder()
                    .condition_check(pointer)
                    .build(),
            ],
            StoreError::TenantInactive,
        )
        .await
    }

    /// Stores a single-use state; it must be new.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the value is taken (never, for 256 random bits);
    /// [`StoreError::Unavailable`].
    pub async fn put_oauth_state(&self, state: &OAuthState) -> Result<(), StoreError> {
        let mut item: Item =
            serde_dynamo::to_item(state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        item.insert("pk".into(), s(oauth_state_pk(&state.state)));
        let r = self
            .client()
            .put_item()
            .table_name(&self.tables().tenants)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        conditional(r)?.map(|_| ()).ok_or(StoreError::Conflict)
    }

    /// Takes a state away: deletes it if it exists (a conditional delete, so two concurrent callbacks
    /// with the same state cannot both get it) and returns it. `None` when unknown or already taken.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    pub async fn take_oauth_state(&self, state: &str) -> Result<Option<OAuthState>, StoreError> {
        let r = self
            .client()
            .delete_item()
            .table_name(&self.tables().tenants)
            .key("pk", s(oauth_state_pk(state)))
            .condition_expression("attribute_exists(pk)")
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let Some(out) = conditional(r)? else {
            return Ok(None);
        };
        serde_dynamo::from_item(out.attributes.unwrap_or_default())
            .map(Some)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Grants (`true`) or withdraws (`false`) consent to process email and phone (Personalized
    /// Messaging), stamped `at`. Granting needs an active tenant; withdrawing works in any state.
    ///
    /// # Errors
    /// [`StoreError::TenantInactive`] when there is no such tenant (or, to grant, it is not active);
    /// [`StoreError::Unavailable`].
    pub async fn set_messaging_consent(
        &self,
        site_id: &str,
        granted: bool,
        at: &str,
    ) -> Result<(), StoreError> {
        let mut u = self
            .client()
            .update_item()
            .table_name(&self.tables().tenants)
            .key("pk", s(tenant_pk(site_id)))
            .update_expression("SET messaging_consent = :c, messaging_consent_at = :at")
            .expression_attribute_values(":c", AttributeValue::Bool(granted))
            .expression_attribute_values(":at", s(at));
        u = if granted {
            u.condition_expression("attribute_exists(pk) AND #st = :active")
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":active", s("active"))
        } else {
            u.condition_expression("attribute_exists(pk)")
        };
        conditional(u.send().await)?
            .map(|_| ())
            .ok_or(StoreError::TenantInactive)
    }

    /// The platform uninstalled the app: messaging consent is withdrawn at once (stamped `at`) and the
    /// access token's ciphertext removed (the platform revoked the token). Data deletion is the
    /// tenant-delete function's.
    ///
    /// # Errors
    /// [`StoreError::TenantInactive`] when there is no such tenant; [`StoreError::Unavailable`].
    pub async fn record_uninstall(&self, site_id: &str, at: &str) -> Result<(), StoreError> {
        let r = self
            .client()
            .update_item()
            .table_name(&self.tables().tenants)
            .key("pk", s(tenant_pk(site_id)))
            .update_expression(
                "SET messaging_consent = :f, messaging_consent_at = :at REMOVE access_token_ciphertext",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":f", AttributeValue::Bool(false))
            .expression_attribute_values(":at", s(at))
            .send()
            .await;
        conditional(r)?
            .map(|_| ())
            .ok_or(StoreError::TenantInactive)
    }
}

impl TenantDirectory for DynamoStore {
    async fn site_id_of_tenant(&self, tenant_id: &str) -> Result<Option<String>, StoreError> {
        DynamoStore::site_id_of_tenant(self, tenant_id).await
    }
}

impl TenantWriter for DynamoStore {
    async fn create_tenant(
        &self,
        tenant: &Tenant,
        replaces_site: Option<&str>,
    ) -> Result<(), StoreError> {
        DynamoStore::create_tenant(self, tenant, replaces_site).await
    }
    async fn refresh_tenant(&self, refresh: &Refresh) -> Result<(), StoreError> {
        DynamoStore::refresh_tenant(self, refresh).await
    }
    async fn rotate_api_key(&self, r: &KeyRotation<'_>) -> Result<(), StoreError> {
        let u = self
            .client()
            .update_item()
            .table_name(&self.tables().tenants)
            .key("pk", s(tenant_pk(r.site_id)))
            .update_expression("SET api_key_sha256 = :new, identity_secret_ciphertext = :idsecret")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":new", s(r.new_sha256))
            .expression_attribute_values(
                ":idsecret",
                aws_sdk_dynamodb::types::AttributeValue::B(
                    r.identity_secret_ciphertext.to_vec().into(),
                ),
            )
            .expression_attribute_values(":active", s("active"));
        let u = match r.expected_sha256 {
            Some(old) => u
                .condition_expression("#st = :active AND api_key_sha256 = :old")
                .expression_attribute_values(":old", s(old)),
            None => {
                u.condition_expression("#st = :active AND attribute_not_exists(api_key_sha256)")
            }
        };
        conditional(u.send().await)?
            .map(|_| ())
            .ok_or(StoreError::Conflict)
    }
    async fn set_messaging_consent(
        &self,
        site_id: &str,
        granted: bool,
        at: &str,
    ) -> Result<(), StoreError> {
        DynamoStore::set_messaging_consent(self, site_id, granted, at).await
    }
    async fn record_uninstall(&self, site_id: &str, at: &str) -> Result<(), StoreError> {
        DynamoStore::record_uninstall(self, site_id, at).await
    }
}

impl OAuthStates for DynamoStore {
    async fn issue_state(&self, state: &OAuthState) -> Result<(), StoreError> {
        self.put_oauth_state(state).await
    }
    async fn take_state(&self, state: &str) -> Result<Option<OAuthState>, StoreError> {
        self.take_oauth_state(state).await
    }
}

/// Over the deletion adapter's `begin_deletion` (one transaction: mark, shred, queue).
impl DeletionStarter for DynamoStore {
    async fn start_deletion(
        &self,
        tenant_id: &str,
        trigger: Trigger,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.begin_deletion(tenant_id, trigger, now_ms)
            .await
            .map(|_| ())
    }
}
