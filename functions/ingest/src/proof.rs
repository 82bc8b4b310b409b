//! What an event's identity token proves (issue 10 §1): a customer id, email or phone links a guest
//! to a customer's profile only when a valid token for that customer says so; the import route (API
//! key) is trusted. The token format is `affinity::identity`'s (README, "Identity tokens").

use std::sync::Arc;

use affinity::event::IngestMode;
use affinity::http::ApiError;
use affinity::identity::{self, IdentitySecret, IdentitySecretSource};
use affinity::ids::{ShopperKey, SiteId};
use affinity::kms::KmsError;
use affinity::pii;
use affinity::tenant::Tenant;

use crate::Deps;

/// What an event's identity token proved.
pub(crate) enum Proof {
    /// The import route: the tenant's server says it, with the API key.
    Trusted,
    /// A valid token: this customer, and the contacts it binds.
    Token(identity::Claims),
    /// No token, or one that does not hold.
    None,
}

impl Proof {
    /// What `token` proves for an event of `tenant` on `mode`'s route at `now_ms`. The tenant's
    /// identity secret is read once per request into `secret` (`Some(None)`: the tenant has none, so
    /// no token proves anything there; an older store gets one with its next API key).
    ///
    /// # Errors
    /// The secret could not be opened for a passing reason (KMS unavailable: 503, nothing stored) or
    /// is broken ([`ApiError`] from [`KmsError`]).
    pub(crate) async fn of<S, K: IdentitySecretSource>(
        deps: &Deps<S, K>,
        tenant: &Tenant,
        site_id: &SiteId,
        mode: IngestMode,
        token: Option<String>,
        now_ms: i64,
        secret: &mut Option<Option<Arc<IdentitySecret>>>,
    ) -> Result<Self, ApiError> {
        let token = match (mode, token) {
            (IngestMode::Import, _) => return Ok(Self::Trusted),
            (IngestMode::Live, None) => return Ok(Self::None),
            (IngestMode::Live, Some(token)) => token,
        };
        if secret.is_none() {
            *secret = Some(match deps.peppers.identity_secret(tenant).await {
                Ok(s) => Some(s),
                Err(KmsError::Missing(_)) => {
                    tracing::warn!(site_id = %site_id, "identity token sent to a store without an identity secret");
                    None
                }
                Err(e) => return Err(e.into()),
            });
        }
        let Some(Some(secret)) = secret.as_ref() else {
            return Ok(Self::None);
        };
        Ok(
            match identity::verify(secret, site_id, &token, now_ms.div_euclid(1000)) {
                Ok(claims) => Self::Token(claims),
                Err(why) => {
                    tracing::info!(site_id = %site_id, reason = %why, "identity token refused");
                    Self::None
                }
            },
        )
    }

    /// Splits an event's email/phone identity keys into the proven ones (they link) and the claims
    /// (kept, never linking): on the import route all are proven; with a token, those whose SHA-256 it
    /// binds, and only when the token's customer is the event's.
    pub(crate) fn split(
        &self,
        pepper: &pii::Pepper,
        keys: Vec<String>,
        has_customer: bool,
    ) -> (Vec<String>, Vec<String>) {
        let bound: Vec<String> = match self {
            Self::Trusted => return (keys, Vec::new()),
            Self::Token(c) if has_customer => [
                c.email_sha256
                    .as_deref()
                    .and_then(|h| pii::email_sha256_key(pepper, h).ok())
                    .map(|k| ShopperKey::Email(k.0).to_key()),
                c.phone_sha256
                    .as_deref()
                    .and_then(|h| pii::phone_sha256_key(pepper, h).ok())
                    .map(|k| ShopperKey::Phone(k.0).to_key()),
            ]
            .into_iter()
            .flatten()
            .collect(),
            _ => Vec::new(),
        };
        keys.into_iter().partition(|k| bound.contains(k))
    }
}
