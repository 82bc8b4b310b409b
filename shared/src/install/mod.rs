//! The consent function's domain: a merchant connects a store (install, re-install), rotates its API
//! key, grants or withdraws messaging consent, and the platform uninstalls the app. Pure of HTTP: the
//! platforms' token exchanges and the pages are the consent function's; storage, KMS and time are ports
//! ([`InstallStore`], [`SecretSealer`], [`Clock`]), so every rule here is tested against the memory
//! doubles with a clock the tests move.
//!
//! Rules kept here:
//! - an install of a store creates its tenant (new site id, pepper and API key, shown once) or, for a
//!   store installed before, refreshes consent time, scopes and token and keeps site id, pepper, API
//!   key and data; a store whose data is being deleted must wait; one whose data was deleted gets a new
//!   tenant record;
//! - the access token is sealed before anything is written; a pepper is made for a tenant that has none;
//! - single-use grants (OAuth `state`s, rotation grants) expire after [`STATE_TTL_S`], are taken once and
//!   must match their store or site ([`check_state`]);
//! - messaging consent is granted only to a tenant that can hash (one with a pepper);
//! - an uninstall withdraws messaging consent and drops the token at once, then starts the deletion.

mod errors;

pub use errors::{InstallError, StateCheck};

use crate::clock::Clock;
use crate::kms::SecretSealer;
use crate::oauth::Secret;
use crate::store::deletion::Trigger;
use crate::store::tenants::{
    DeletionStarter, KeyRotation, OAuthState, OAuthStates, Refresh, StateKind, TenantDirectory,
    TenantWriter, WebhookReceipts, STATE_TTL_S,
};
use crate::store::StoreError;
use crate::tenant::{
    new_api_key, new_random_token, new_site_id, tenant_id_for, Platform, Tenant, TenantStatus,
};

/// Every storage capability the install flow uses (the receipts record BigCommerce payloads' `jti`s
/// as used).
pub trait InstallStore:
    TenantDirectory + TenantWriter + OAuthStates + DeletionStarter + WebhookReceipts
{
}

impl<T: TenantDirectory + TenantWriter + OAuthStates + DeletionStarter + WebhookReceipts>
    InstallStore for T
{
}

/// How many times an install reads and writes again after losing a race with a concurrent install of
/// the same store.
pub const INSTALL_ATTEMPTS: usize = 3;

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

/// Accepts a grant taken from storage (`found`) for `kind` bound to `subject` at `now_s` (epoch
/// seconds): unknown or replayed (`None`), expired (at or past `expires_at`), or for another subject or
/// purpose, it is refused.
///
/// # Errors
/// The [`StateCheck`] that refused it.
pub fn check_state(
    found: Option<OAuthState>,
    kind: StateKind,
    subject: &str,
    now_s: i64,
) -> Result<OAuthState, StateCheck> {
    let found = found.ok_or(StateCheck::Unknown)?;
    if found.expires_at <= now_s {
        return Err(StateCheck::Expired);
    }
    if found.kind != kind || found.subject != subject {
        return Err(StateCheck::Foreign);
    }
    Ok(found)
}

/// A store result with the refusal that `refusal` recognises read as its [`InstallError`].
fn read_as(
    r: Result<(), StoreError>,
    refusal: impl FnOnce(&StoreError) -> Option<InstallError>,
) -> Result<(), InstallError> {
    r.map_err(|e| refusal(&e).unwrap_or(InstallError::Store(e)))
}

/// The outcome of an install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// The tenant.
    pub tenant_id: String,
    /// Its public site id.
    pub site_id: String,
    /// On a first install: the API key, to show once.
    pub api_key: Option<String>,
    /// With the API key: the identity secret that signs the store's identity tokens
    /// ([`crate::identity`]), to show once (only its KMS ciphertext is stored).
    pub identity_secret: Option<crate::identity::IdentitySecret>,
    /// On a re-install: a single-use grant to issue a new API key.
    pub rotation_grant: Option<String>,
    /// Whether an existing connection was refreshed.
    pub reinstalled: bool,
}

impl Connection {
    /// A connection of `t` whose API key `api_key` is shown now.
    fn with_key(t: Tenant, keys: NewKeys, reinstalled: bool) -> Self {
        Self {
            tenant_id: t.tenant_id,
            site_id: t.site_id,
            api_key: Some(keys.api_key),
            identity_secret: Some(keys.identity_secret),
            rotation_grant: None,
            reinstalled,
        }
    }
}

/// A tenant's new credentials, shown to the merchant once: the API key (server-to-server routes) and
/// the identity secret (signs identity tokens). They are made, and replaced, together.
#[derive(Debug)]
pub struct NewKeys {
    /// The API key.
    pub api_key: String,
    /// The identity secret.
    pub identity_secret: crate::identity::IdentitySecret,
}

/// What a store's platform granted at install.
#[derive(Debug, Clone)]
pub struct Grant<'a> {
    /// The platform.
    pub platform: Platform,
    /// The verified shop domain or BigCommerce `stores/{hash}`.
    pub shop: &'a str,
    /// The scopes granted.
    pub scopes: Vec<String>,
    /// The access token (sealed before anything is written).
    pub token: &'a Secret,
    /// The store's country from the platform's settings (ISO 3166-1 alpha-2; see
    /// [`crate::oauth::region_of`]): the tenant's `default_region` for national phone numbers. `None`
    /// when the platform did not say (a re-install keeps the stored one).
    pub default_region: Option<String>,
}

/// The install flow over its ports. Cheap: it borrows them.
#[derive(Debug)]
pub struct Install<'a, S, K> {
    /// The tenants table.
    pub store: &'a S,
    /// Seals tokens and makes peppers.
    pub sealer: &'a K,
    /// What time it is.
    pub clock: &'a dyn Clock,
}

impl<S: InstallStore, K: SecretSealer> Install<'_, S, K> {
    fn now_s(&self) -> i64 {
        self.clock.now_ms() / 1000
    }

    fn now_rfc3339(&self) -> String {
        crate::rfc3339(self.clock.now_ms())
    }

    async fn issue(&self, kind: StateKind, subject: &str) -> Result<String, InstallError> {
        let state = OAuthState {
            state: new_random_token()?,
            kind,
            subject: subject.to_string(),
            expires_at: self.now_s() + STATE_TTL_S,
        };
        self.store.issue_state(&state).await?;
        Ok(state.state)
    }

    /// Starts a Shopify install of the verified `shop`: a new OAuth `state` bound to it, valid for
    /// [`STATE_TTL_S`].
    ///
    /// # Errors
    /// [`InstallError::Store`], [`InstallError::Random`].
    pub async fn begin_shopify(&self, shop: &str) -> Result<String, InstallError> {
        self.issue(StateKind::ShopifyInstall, shop).await
    }

    /// Uses up the OAuth `state` of a Shopify callback for the verified `shop`.
    ///
    /// # Errors
    /// [`InstallError::State`] for an unknown, replayed, expired or foreign state;
    /// [`InstallError::Store`].
    pub async fn take_shopify_state(&self, state: &str, shop: &str) -> Result<(), InstallError> {
        let found = self.store.take_state(state).await?;
        check_state(found, StateKind::ShopifyInstall, shop, self.now_s())
            .map(|_| ())
            .map_err(InstallError::State)
    }

    /// Connects the store of `grant`: creates its tenant, or refreshes it when it exists (same tenant
    /// id, site id, pepper, API key and data; new consent time, scopes and token).
    ///
    /// # Errors
    /// [`InstallError::DeletionInProgress`]; [`InstallError::Kms`], [`InstallError::Store`] (also when
    /// concurrent installs kept winning), [`InstallError::Random`].
    pub async fn connect(&self, grant: &Grant<'_>) -> Result<Connection, InstallError> {
        let tenant_id = tenant_id_for(grant.platform, grant.shop);
        let sealed = self
            .sealer
            .seal_access_token(&tenant_id, grant.token)
            .await?;
        for _ in 0..INSTALL_ATTEMPTS {
            let pointer = self.store.site_id_of_tenant(&tenant_id).await?;
            let existing = match &pointer {
                Some(site) => self.store.tenant_by_site(site).await?,
                None => None,
            };
            let outcome = match existing {
                Some(t) if install_path(&t) == InstallPath::Refresh => {
                    self.refresh(t, grant, &sealed).await
                }
                Some(t) if install_path(&t) == InstallPath::Wait => {
                    return Err(InstallError::DeletionInProgress)
                }
                _ => self.create(grant, &sealed, pointer.as_deref()).await,
            };
            match outcome {
                Err(InstallError::Store(StoreError::Conflict | StoreError::TenantInactive)) => {}
                done => return done,
            }
        }
        Err(StoreError::Conflict.into())
    }

    async fn refresh(
        &self,
        t: Tenant,
        grant: &Grant<'_>,
        sealed: &[u8],
    ) -> Result<Connection, InstallError> {
        let pepper = match t.pepper_ciphertext {
            Some(_) => None,
            None => Some(self.sealer.new_pepper(&t.tenant_id).await?),
        };
        self.store
            .refresh_tenant(&Refresh {
                tenant_id: t.tenant_id.clone(),
                site_id: t.site_id.clone(),
                scopes: grant.scopes.clone(),
                consent_granted_at: self.now_rfc3339(),
                access_token_ciphertext: sealed.to_vec(),
                pepper_ciphertext: pepper,
                default_region: grant.default_region.clone(),
            })
            .await?;
        let rotation_grant = self.issue(StateKind::ApiKeyRotation, &t.site_id).await?;
        tracing::info!(platform = %grant.platform, tenant_id = %t.tenant_id, site_id = %t.site_id, "re-installed: consent and token refreshed");
        Ok(Connection {
            tenant_id: t.tenant_id,
            site_id: t.site_id,
            api_key: None,
            identity_secret: None,
            rotation_grant: Some(rotation_grant),
            reinstalled: true,
        })
    }

    async fn create(
        &self,
        grant: &Grant<'_>,
        sealed: &[u8],
        replaces_site: Option<&str>,
    ) -> Result<Connection, InstallError> {
        let (mut t, keys) = self
            .new_tenant(grant.platform, grant.shop, new_site_id()?)
            .await?;
        t.scopes.clone_from(&grant.scopes);
        t.access_token_ciphertext = Some(sealed.to_vec());
        t.default_region.clone_from(&grant.default_region);
        self.store.create_tenant(&t, replaces_site).await?;
        tracing::info!(platform = %grant.platform, tenant_id = %t.tenant_id, site_id = %t.site_id, "installed: tenant created");
        Ok(Connection::with_key(t, keys, false))
    }

    /// A new active tenant record consented now, with a new pepper and API key (returned, to show
    /// once); not stored yet.
    async fn new_tenant(
        &self,
        platform: Platform,
        shop: &str,
        site_id: String,
    ) -> Result<(Tenant, NewKeys), InstallError> {
        let now = self.now_rfc3339();
        let mut t = Tenant::new(platform, shop, &site_id, &now);
        let (api_key, hash) = new_api_key(&t.site_id)?;
        t.consent_granted_at = Some(now);
        t.pepper_ciphertext = Some(self.sealer.new_pepper(&t.tenant_id).await?);
        let (sealed, identity_secret) = self.sealer.new_identity_secret(&t.tenant_id).await?;
        t.identity_secret_ciphertext = Some(sealed);
        t.api_key_sha256 = Some(hash);
        Ok((
            t,
            NewKeys {
                api_key,
                identity_secret,
            },
        ))
    }

    /// Creates a local demo store with the site id `site_id` (shop `{site_id}.demo.affinity.local`),
    /// complete as an install makes it (pepper and API key; no platform token). A demo store that
    /// exists and is active gets a new API key instead.
    ///
    /// # Errors
    /// [`InstallError::SiteDeleted`] when the site id belongs to a disconnected store;
    /// [`InstallError::Misconfigured`] when it belongs to a store of a platform, or one without a
    /// pepper; [`InstallError::Store`] (also on a lost race), [`InstallError::Kms`],
    /// [`InstallError::Random`].
    pub async fn create_demo(&self, site_id: &str) -> Result<Connection, InstallError> {
        if let Some(t) = self.store.tenant_by_site(site_id).await? {
            if t.status != TenantStatus::Active {
                return Err(InstallError::SiteDeleted);
            }
            if t.platform != Platform::Demo || t.pepper_ciphertext.is_none() {
                return Err(InstallError::Misconfigured(
                    "this site id belongs to a store that is not a complete demo store; choose another site id",
                ));
            }
            let keys = self.rotate_api_key(&t).await?;
            return Ok(Connection::with_key(t, keys, true));
        }
        let shop = format!("{site_id}.demo.affinity.local");
        let (t, keys) = self
            .new_tenant(Platform::Demo, &shop, site_id.to_string())
            .await?;
        let pointer = self.store.site_id_of_tenant(&t.tenant_id).await?;
        self.store.create_tenant(&t, pointer.as_deref()).await?;
        Ok(Connection::with_key(t, keys, false))
    }

    /// Uses up a rotation `grant` for the site of `t`.
    ///
    /// # Errors
    /// [`InstallError::Grant`] for an unknown, used, expired or foreign grant; [`InstallError::Store`].
    pub async fn take_rotation_grant(&self, t: &Tenant, grant: &str) -> Result<(), InstallError> {
        let found = self.store.take_state(grant).await?;
        check_state(found, StateKind::ApiKeyRotation, &t.site_id, self.now_s())
            .map(|_| ())
            .map_err(InstallError::Grant)
    }

    /// A new API key and identity secret for `t` (whose owner was authorized); the old ones stop
    /// working at once. Returns both, shown once (only the key's hash and the secret's KMS ciphertext
    /// are stored).
    ///
    /// # Errors
    /// [`InstallError::KeyChanged`] when another rotation won; [`InstallError::Store`],
    /// [`InstallError::Kms`], [`InstallError::Random`].
    pub async fn rotate_api_key(&self, t: &Tenant) -> Result<NewKeys, InstallError> {
        let (api_key, hash) = new_api_key(&t.site_id)?;
        let (sealed, identity_secret) = self.sealer.new_identity_secret(&t.tenant_id).await?;
        let r = self
            .store
            .rotate_api_key(&KeyRotation {
                site_id: &t.site_id,
                expected_sha256: t.api_key_sha256.as_deref(),
                new_sha256: &hash,
                identity_secret_ciphertext: &sealed,
            })
            .await;
        read_as(r, |e| {
            matches!(e, StoreError::Conflict).then_some(InstallError::KeyChanged)
        })?;
        Ok(NewKeys {
            api_key,
            identity_secret,
        })
    }

    /// Grants or withdraws `t`'s messaging consent now. Returns when (RFC 3339).
    ///
    /// # Errors
    /// [`InstallError::Misconfigured`] to grant it to a tenant without a pepper (its hashes could not be
    /// made: install the app again); [`InstallError::SiteDeleted`]; [`InstallError::Store`].
    pub async fn set_messaging_consent(
        &self,
        t: &Tenant,
        granted: bool,
    ) -> Result<String, InstallError> {
        if granted && t.pepper_ciphertext.is_none() {
            return Err(InstallError::Misconfigured(
                "this store has no pepper, so email and phone cannot be hashed; install the app again to make one",
            ));
        }
        let at = self.now_rfc3339();
        let r = self
            .store
            .set_messaging_consent(&t.site_id, granted, &at)
            .await;
        read_as(r, |e| {
            matches!(e, StoreError::TenantInactive).then_some(InstallError::SiteDeleted)
        })?;
        Ok(at)
    }

    /// Uses up the `jti` of a verified BigCommerce `signed_payload_jwt` of `callback` (`load`,
    /// `uninstall`, `remove_user`): recorded by a conditional put, so of two requests with the same
    /// payload exactly one goes on.
    ///
    /// # Errors
    /// [`InstallError::Replayed`] when it was used before; [`InstallError::Store`].
    pub async fn use_payload_once(&self, jti: &str, callback: &str) -> Result<(), InstallError> {
        let id = crate::oauth::bigcommerce::jti_receipt_id(jti);
        let topic = format!("bigcommerce/{callback}");
        if self
            .store
            .claim_webhook(&id, &topic, self.clock.now_ms())
            .await?
        {
            Ok(())
        } else {
            tracing::warn!(
                callback,
                "replayed BigCommerce payload refused (jti used before)"
            );
            Err(InstallError::Replayed)
        }
    }

    /// The connected tenant of the store `shop` on `platform` (in any state).
    ///
    /// # Errors
    /// [`InstallError::NotConnected`], [`InstallError::Store`].
    pub async fn tenant_of_shop(
        &self,
        platform: Platform,
        shop: &str,
    ) -> Result<Tenant, InstallError> {
        self.store
            .tenant_by_shop(platform, shop)
            .await?
            .ok_or(InstallError::NotConnected)
    }

    /// The platform uninstalled the app from `t`'s store: messaging consent withdrawn and the token
    /// dropped at once, then the deletion of every record of the store started (`trigger`). Returns when
    /// consent was withdrawn (RFC 3339).
    ///
    /// # Errors
    /// [`InstallError::UnknownSite`] when the record is gone; [`InstallError::Store`].
    pub async fn uninstall(&self, t: &Tenant, trigger: Trigger) -> Result<String, InstallError> {
        let at = self.now_rfc3339();
        let r = self.store.record_uninstall(&t.site_id, &at).await;
        read_as(r, |e| {
            matches!(e, StoreError::TenantInactive).then_some(InstallError::UnknownSite)
        })?;
        self.store
            .start_deletion(&t.tenant_id, trigger, self.clock.now_ms())
            .await?;
        tracing::info!(platform = %t.platform, tenant_id = %t.tenant_id, "uninstalled: consent withdrawn, token dropped, deletion started");
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(kind: StateKind, subject: &str, expires_at: i64) -> OAuthState {
        OAuthState {
            state: "v".into(),
            kind,
            subject: subject.into(),
            expires_at,
        }
    }

    #[test]
    fn a_state_is_accepted_only_before_it_expires_for_its_own_subject_and_purpose() {
        let shop = StateKind::ShopifyInstall;
        let ok = state(shop, "a.myshopify.com", 1_000);
        assert_eq!(
            check_state(Some(ok.clone()), shop, "a.myshopify.com", 999),
            Ok(ok.clone())
        );
        assert_eq!(
            check_state(Some(ok.clone()), shop, "a.myshopify.com", 1_000),
            Err(StateCheck::Expired)
        );
        assert_eq!(
            check_state(Some(ok.clone()), shop, "b.myshopify.com", 999),
            Err(StateCheck::Foreign)
        );
        assert_eq!(
            check_state(Some(ok), StateKind::ApiKeyRotation, "a.myshopify.com", 999),
            Err(StateCheck::Foreign)
        );
        assert_eq!(
            check_state(None, shop, "a.myshopify.com", 0),
            Err(StateCheck::Unknown)
        );
    }

    #[test]
    fn an_install_refreshes_an_active_tenant_waits_for_a_deletion_and_recreates_a_deleted_one() {
        let mut t = Tenant::new(Platform::Demo, "d.example", "s_1", "2026-12-01T00:00:00Z");
        assert_eq!(install_path(&t), InstallPath::Refresh);
        t.status = TenantStatus::Deleting;
        assert_eq!(install_path(&t), InstallPath::Wait);
        t.status = TenantStatus::Deleted;
        assert_eq!(install_path(&t), InstallPath::Recreate);
    }
}
