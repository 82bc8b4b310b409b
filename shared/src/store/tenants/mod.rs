//! The tenant ports: capability-sized traits over the tenants table, and the records they carry.
//!
//! - [`TenantDirectory`]: reads a tenant by site id (through [`TenantLookup`]), by tenant id, by shop;
//! - [`TenantWriter`]: creates a tenant on install, refreshes it on re-install, rotates its API key,
//!   records messaging consent and the platform's uninstall;
//! - [`OAuthStates`]: single-use grants (OAuth `state`s, API key rotation grants), issued and taken once;
//! - [`WebhookReceipts`]: platform webhook delivery ids, so a repeated delivery is processed once;
//! - [`DeletionStarter`]: the one step of a tenant's deletion that the consent function takes.
//!
//! The DynamoDB adapter is [`dynamo`] (more `impl DynamoStore`); the memory doubles are in
//! [`super::memory_tenants`] (feature `test-doubles`). Items are described in `docs/DESIGN.md`.

pub mod dynamo;

use std::future::Future;

use serde::{Deserialize, Serialize};

use super::deletion::Trigger;
use super::{StoreError, TenantLookup};
use crate::tenant::{tenant_id_for, Platform, Tenant};

/// How long an OAuth state (or another single-use grant) stays valid, in seconds.
pub const STATE_TTL_S: i64 = 600;

/// The key of the pointer from a tenant id to its site id.
pub fn tenant_pointer_pk(tenant_id: &str) -> String {
    format!("tenant#{tenant_id}")
}

/// The key of a single-use OAuth state.
pub fn oauth_state_pk(state: &str) -> String {
    format!("oauth-state#{state}")
}

/// What a single-use grant is for. Stored as `shopify` and `api-key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateKind {
    /// The OAuth `state` of a Shopify install, bound to the shop domain.
    #[serde(rename = "shopify")]
    ShopifyInstall,
    /// A one-time API key rotation offered on a re-install's page, bound to the site id.
    #[serde(rename = "api-key")]
    ApiKeyRotation,
}

/// A single-use grant stored at `oauth-state#{state}` with a TTL (`expires_at`): an OAuth `state` bound
/// to the shop that asked for it, or a one-time API key rotation bound to a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthState {
    /// The random value (also in the key).
    pub state: String,
    /// What it is for.
    pub kind: StateKind,
    /// What it is bound to: the shop domain, or the site id.
    pub subject: String,
    /// Epoch seconds after which it is refused (and DynamoDB's TTL removes it).
    pub expires_at: i64,
}

/// An API key rotation ([`TenantWriter::rotate_api_key`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyRotation<'a> {
    /// The tenant's site.
    pub site_id: &'a str,
    /// The API key hash the rotation replaces (SHA-256 hex; `None`: the tenant has none yet).
    pub expected_sha256: Option<&'a str>,
    /// The new API key's SHA-256, hex.
    pub new_sha256: &'a str,
    /// The new identity secret, KMS ciphertext.
    pub identity_secret_ciphertext: &'a [u8],
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
    /// A pepper's KMS ciphertext, only for a record that has none yet (kept otherwise: the tenant's
    /// stored hashes depend on it).
    pub pepper_ciphertext: Option<Vec<u8>>,
    /// The store's country as the platform gave it now (ISO 3166-1 alpha-2), the default region of
    /// national phone numbers; `None` keeps the stored one (the platform did not say).
    pub default_region: Option<String>,
}

/// Reads tenants: by site id ([`TenantLookup::tenant_by_site`]), by tenant id, by shop.
pub trait TenantDirectory: TenantLookup {
    /// The site id of `tenant_id`, from its `tenant#{tenant_id}` pointer (strongly consistent).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`]; [`StoreError::Corrupt`] when the pointer has no `site_id`.
    fn site_id_of_tenant(
        &self,
        tenant_id: &str,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// The tenant of `tenant_id`: its pointer, then its record (two strongly consistent reads).
    /// `None` when either is missing (never installed, or deleted).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    fn tenant_by_tenant_id(
        &self,
        tenant_id: &str,
    ) -> impl Future<Output = Result<Option<Tenant>, StoreError>> + Send {
        async move {
            match self.site_id_of_tenant(tenant_id).await? {
                Some(site_id) => self.tenant_by_site(&site_id).await,
                None => Ok(None),
            }
        }
    }

    /// The tenant of the store `shop` on `platform` (its tenant id is [`tenant_id_for`]).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    fn tenant_by_shop(
        &self,
        platform: Platform,
        shop: &str,
    ) -> impl Future<Output = Result<Option<Tenant>, StoreError>> + Send {
        let tenant_id = tenant_id_for(platform, shop);
        async move { self.tenant_by_tenant_id(&tenant_id).await }
    }
}

/// Writes tenant records: install, re-install, API key, messaging consent, uninstall.
pub trait TenantWriter: Send + Sync {
    /// Creates a tenant: its record and its `tenant#` pointer, at once. The record must not exist; the
    /// pointer must not exist, or (a store installed again after its deletion) still point at
    /// `replaces_site`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when another install won the race (read again and refresh);
    /// [`StoreError::Unavailable`].
    fn create_tenant(
        &self,
        tenant: &Tenant,
        replaces_site: Option<&str>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Refreshes an active tenant on re-install: scopes, consent time and the access token's
    /// ciphertext (and a pepper if it had none), while the pointer still names this site. Site id, API
    /// key, pepper, messaging consent and data stay.
    ///
    /// # Errors
    /// [`StoreError::TenantInactive`] when the tenant is no longer active or no longer this site's;
    /// [`StoreError::Unavailable`].
    fn refresh_tenant(
        &self,
        refresh: &Refresh,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Replaces an active tenant's API key hash with `rotation.new_sha256` and its identity secret
    /// with `rotation.identity_secret_ciphertext`, if the stored hash is still
    /// `rotation.expected_sha256` (so two rotations cannot both win). The old key and secret stop
    /// working at once (every reader reads the tenant strongly consistently).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the stored hash changed or the tenant is not active;
    /// [`StoreError::Unavailable`].
    fn rotate_api_key(
        &self,
        rotation: &KeyRotation<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Grants (`true`) or withdraws (`false`) consent to process email and phone (Personalized
    /// Messaging), stamped `at` (RFC 3339). Granting needs an active tenant; withdrawing works in any
    /// state.
    ///
    /// # Errors
    /// [`StoreError::TenantInactive`] when there is no such tenant (or, to grant, it is not active);
    /// [`StoreError::Unavailable`].
    fn set_messaging_consent(
        &self,
        site_id: &str,
        granted: bool,
        at: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The platform uninstalled the app: messaging consent is withdrawn at once (stamped `at`) and the
    /// access token's ciphertext removed (the platform revoked the token).
    ///
    /// # Errors
    /// [`StoreError::TenantInactive`] when there is no such tenant; [`StoreError::Unavailable`].
    fn record_uninstall(
        &self,
        site_id: &str,
        at: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Single-use grants: issued once, taken once.
pub trait OAuthStates: Send + Sync {
    /// Stores a new grant; its value must be new.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] if the value is taken (never, for 256 random bits);
    /// [`StoreError::Unavailable`].
    fn issue_state(
        &self,
        state: &OAuthState,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Takes the grant `state` away and returns it, so that two concurrent requests with the same value
    /// cannot both get it. `None` when unknown or already taken. Expiry and binding are the caller's
    /// to check (the TTL sweep may lag): see [`crate::install::check_state`].
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    fn take_state(
        &self,
        state: &str,
    ) -> impl Future<Output = Result<Option<OAuthState>, StoreError>> + Send;
}

/// Platform webhook delivery ids, remembered for a while so that a repeated delivery is processed once.
pub trait WebhookReceipts: Send + Sync {
    /// Records the delivery `webhook_id` of `topic`, received at `now_ms` (epoch ms). `false` when it
    /// was recorded before (a repeated delivery).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    fn claim_webhook(
        &self,
        webhook_id: &str,
        topic: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Forgets a delivery id, so that the platform's retry is processed (after a failure).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    fn release_webhook(
        &self,
        webhook_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Starts a tenant's deletion (the tenant-delete function does the rest on its schedule).
pub trait DeletionStarter: Send + Sync {
    /// Marks `tenant_id` deleting at `now_ms` (epoch ms), destroys its secrets' ciphertexts and queues
    /// its deletion job; idempotent (a job that exists stays as it is).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`]; [`StoreError::Conflict`] when a concurrent
    /// change made it fail (retry).
    fn start_deletion(
        &self,
        tenant_id: &str,
        trigger: Trigger,
        now_ms: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}
