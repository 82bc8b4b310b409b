//! Tenant records beyond the site-id lookup: the `tenant#{tenant_id}` pointer, install and re-install,
//! OAuth states, consent changes and API key rotation. More `impl DynamoStore` methods, over the tenants
//! table (`docs/DESIGN.md`).

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValue, TransactWriteItem, Update,
};
use aws_smithy_types::error::display::DisplayErrorContext;
use serde::{Deserialize, Serialize};

use super::dynamo::{tenant_pk, tenant_to_item, DynamoStore};
use super::{StoreError, TenantLookup};
use crate::tenant::{Tenant, TenantStatus};

/// How long an OAuth state (or another single-use grant) stays valid, in seconds.
pub const STATE_TTL_S: i64 = 600;

type Item = HashMap<String, AttributeValue>;

/// The key of the pointer from a tenant id to its site id.
pub fn tenant_pointer_pk(tenant_id: &str) -> String {
    format!("tenant#{tenant_id}")
}

/// The key of a single-use OAuth state.
pub fn oauth_state_pk(state: &str) -> String {
    format!("oauth-state#{state}")
}

/// A single-use grant stored at `oauth-state#{state}` with a TTL (`expires_at`): an OAuth `state` bound
/// to the shop that asked for it, or a one-time API key rotation bound to a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthState {
    /// The random value (also in the key).
    pub state: String,
    /// What it is for: `shopify` (an install's OAuth state) or `api-key` (a key rotation).
    pub kind: String,
    /// What it is bound to: the shop domain, or the site id.
    pub subject: String,
    /// Epoch seconds after which it is refused (and DynamoDB's TTL removes it).
    pub expires_at: i64,
}

/// Why a single-use state was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateCheck {
    /// Unknown, or already used (a replay).
    Unknown,
    /// Past its `expires_at` (and now used up).
    Expired,
}

/// What an install writes or refreshes.
#[derive(Debug, Clone, PartialEq)]
pub struct Refresh {
    /// The tenant.
    pub tenant_id: String,
    /// Its site.
    pub site_id: String,
    /// Scopes granted now.
    pub scopes: Vec<String>,
    /// When consent was granted (RFC 3339).
    pub consent_granted_at: String,
    /// The new access token's KMS ciphertext.
    pub access_token_ciphertext: Vec<u8>,
    /// A pepper ciphertext, only for a record that has none yet (kept otherwise: the tenant's stored
    /// hashes depend on it).
    pub pii_key_ciphertext: Option<Vec<u8>>,
}

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
        let r = self
            .client()
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(record).build())
            .transact_items(TransactWriteItem::builder().put(pointer).build())
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if cancelled_conditionally(&e) => Err(StoreError::Conflict),
            Err(e) => Err(unavailable(e)),
        }
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
        if let Some(pepper) = &r.pii_key_ciphertext {
            set.push_str(", pii_key_ciphertext = if_not_exists(pii_key_ciphertext, :pepper)");
            update = update.expression_attribute_values(":pepper", b(pepper));
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
        let res = self
            .client()
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(update).build())
            .transact_items(
                TransactWriteItem::builder()
                    .condition_check(pointer)
                    .build(),
            )
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if cancelled_conditionally(&e) => Err(StoreError::TenantInactive),
            Err(e) => Err(unavailable(e)),
        }
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
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Uses up a state: deletes it if it exists (a conditional delete, so two concurrent callbacks with
    /// the same state cannot both succeed) and returns it, unless expired at `now_s` (the TTL sweep may
    /// lag). Its binding (shop, site) is the caller's to check.
    ///
    /// # Errors
    /// `Ok(Err(StateCheck))` for an unknown, replayed or expired state; [`StoreError::Unavailable`],
    /// [`StoreError::Corrupt`].
    pub async fn consume_oauth_state(
        &self,
        state: &str,
        now_s: i64,
    ) -> Result<Result<OAuthState, StateCheck>, StoreError> {
        let r = self
            .client()
            .delete_item()
            .table_name(&self.tables().tenants)
            .key("pk", s(oauth_state_pk(state)))
            .condition_expression("attribute_exists(pk)")
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let old = match r {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                return Ok(Err(StateCheck::Unknown))
            }
            Err(e) => return Err(unavailable(e)),
        };
        let found: OAuthState =
            serde_dynamo::from_item(old).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        if found.expires_at <= now_s {
            return Ok(Err(StateCheck::Expired));
        }
        Ok(Ok(found))
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
        match u.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::TenantInactive)
            }
            Err(e) => Err(unavailable(e)),
        }
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
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::TenantInactive)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Replaces an active tenant's API key hash with `new_sha256`, if the stored hash is still
    /// `expected_sha256` (so two rotations cannot both win). The old key stops working at once (every
    /// reader reads the tenant strongly consistently).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the stored hash changed or the tenant is not active;
    /// [`StoreError::Unavailable`].
    pub async fn rotate_api_key(
        &self,
        site_id: &str,
        expected_sha256: Option<&str>,
        new_sha256: &str,
    ) -> Result<(), StoreError> {
        let u = self
            .client()
            .update_item()
            .table_name(&self.tables().tenants)
            .key("pk", s(tenant_pk(site_id)))
            .update_expression("SET api_key_sha256 = :new")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":new", s(new_sha256))
            .expression_attribute_values(":active", s("active"));
        let u = match expected_sha256 {
            Some(old) => u
                .condition_expression("#st = :active AND api_key_sha256 = :old")
                .expression_attribute_values(":old", s(old)),
            None => {
                u.condition_expression("#st = :active AND attribute_not_exists(api_key_sha256)")
            }
        };
        match u.send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}

/// Whether a tenant can be refreshed by an install (active), must wait (being deleted), or is gone and
/// gets a new site (deleted).
pub fn install_path(t: &Tenant) -> InstallPath {
    match t.status {
        TenantStatus::Active => InstallPath::Refresh,
        TenantStatus::Deleting => InstallPath::Wait,
        TenantStatus::Deleted => InstallPath::Recreate,
    }
}

/// See [`install_path`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallPath {
    /// Refresh consent and token; keep everything else.
    Refresh,
    /// The store's data is being deleted: install again once that finishes.
    Wait,
    /// The store's data was deleted: a new tenant record (new site id, new pepper, new API key).
    Recreate,
}
