//! The HTTP client for the platforms (token exchanges, the store's settings at install, the proofs that
//! an access token was revoked; also the demo installer): hyper with rustls and the system's roots, the
//! stack the AWS SDK already compiles. Every call has a deadline; bodies are capped; nothing here logs
//! a body, a token or a URL's query. Feature `platform-http` (the consent and tenant-delete functions).

use std::time::Duration;

use crate::http::{ApiError, ErrorCode};
use crate::install::InstallError;
use crate::kms::KmsError;
use crate::oauth::{AccessTokenOpener, Secret, TokenState};
use crate::tenant::{Platform, Tenant};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_TYPE};
use hyper::{Method, Request};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Largest response body read from a platform.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// A failed call to a platform. The text is for logs (it never holds a body or a secret).
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// No answer within the deadline.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Connection or protocol failure.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The URL could not be used.
    #[error("bad URL")]
    BadUrl,
}

/// A platform's answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// Body (at most [`MAX_RESPONSE_BYTES`]).
    pub body: Bytes,
}

/// Why a destructive request was not confirmed with the platform; nothing was deleted.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    /// The platform still accepts the store's access token: the app is still installed.
    #[error("{} still accepts this store's access token, so the app is still installed; nothing was deleted", .0.display_name())]
    StillWorks(Platform),
    /// No access token is stored, so there is nothing to ask the platform with.
    #[error("no access token is stored for this store, so its uninstall cannot be confirmed with {}; nothing was deleted", .0.display_name())]
    NoToken(Platform),
    /// The platform failed, did not answer in time, or answered neither 401 nor 2xx.
    #[error("{} did not confirm that this store's access token was revoked (it failed or did not answer in time); nothing was deleted", .0.display_name())]
    Unconfirmed(Platform),
    /// The token could not be opened.
    #[error(transparent)]
    Kms(#[from] KmsError),
}

/// `token_not_revoked` (409) when the platform says (or cannot be asked whether) the app is still
/// installed; `platform_error` (502) when it did not answer usefully (retry); KMS as KMS.
impl From<RevocationError> for ApiError {
    fn from(e: RevocationError) -> Self {
        let msg = e.to_string();
        match e {
            RevocationError::StillWorks(_) | RevocationError::NoToken(_) => {
                ApiError::new(ErrorCode::TokenNotRevoked, None, msg)
            }
            RevocationError::Unconfirmed(_) => ApiError::new(ErrorCode::PlatformError, None, msg),
            RevocationError::Kms(k) => k.into(),
        }
    }
}

/// An HTTPS (and, for loopback fakes, HTTP) client with a per-call deadline. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PlatformClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl PlatformClient {
    /// A client that gives up on a call after `timeout`.
    ///
    /// # Errors
    /// When the system's root certificates cannot be loaded.
    pub fn new(timeout: Duration) -> Result<Self, std::io::Error> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(https),
            timeout,
        })
    }

    /// The deadline of each call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// POSTs `body` as JSON to `url`.
    ///
    /// # Errors
    /// [`PlatformError`].
    pub async fn post_json(
        &self,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<Answer, PlatformError> {
        self.send(
            Method::POST,
            url,
            &[("content-type", "application/json")],
            Bytes::from(body.to_string()),
        )
        .await
    }

    /// POSTs a token request of an install to `platform`'s `url` for `store`: the answer's body when it
    /// is 200. Failures and refusals are logged (status and error, never a body).
    ///
    /// # Errors
    /// [`InstallError::PlatformFailed`].
    pub async fn exchange_token(
        &self,
        platform: Platform,
        store: &str,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<Bytes, InstallError> {
        match self.post_json(url, body).await {
            Ok(a) if a.status == 200 => Ok(a.body),
            Ok(a) => {
                tracing::warn!(%platform, store, status = a.status, "token exchange refused");
                Err(InstallError::PlatformFailed(platform))
            }
            Err(e) => {
                tracing::warn!(%platform, store, error = %e, "token exchange failed");
                Err(InstallError::PlatformFailed(platform))
            }
        }
    }

    /// GETs `url` authenticated with `token` in the header `token_header` (e.g. Shopify's
    /// `X-Shopify-Access-Token`, BigCommerce's `X-Auth-Token`).
    ///
    /// # Errors
    /// [`PlatformError`].
    pub async fn get_with_token(
        &self,
        url: &str,
        token_header: &str,
        token: &Secret,
    ) -> Result<Answer, PlatformError> {
        self.send(
            Method::GET,
            url,
            &[(token_header, token.expose())],
            Bytes::new(),
        )
        .await
    }

    /// The JSON answer of an authenticated GET (see [`Self::get_with_token`]) when it is 200 and
    /// reads as `T`; `None` otherwise, logged (status or error, never a body).
    pub async fn read_with_token<T: serde::de::DeserializeOwned>(
        &self,
        platform: Platform,
        store: &str,
        url: &str,
        token_header: &str,
        token: &Secret,
    ) -> Option<T> {
        match self.get_with_token(url, token_header, token).await {
            Ok(a) if a.status == 200 => serde_json::from_slice(&a.body)
                .map_err(|_| tracing::warn!(%platform, store, "settings answer unreadable"))
                .ok(),
            Ok(a) => {
                tracing::warn!(%platform, store, status = a.status, "settings read refused");
                None
            }
            Err(e) => {
                tracing::warn!(%platform, store, error = %e, "settings read failed");
                None
            }
        }
    }

    /// Confirms with the platform that `tenant`'s stored access token was revoked (the app was
    /// uninstalled): the token is opened with `opener` and `url` read with it in `token_header`;
    /// only a 401 confirms ([`TokenState`]). Every refusal is logged.
    ///
    /// # Errors
    /// [`RevocationError`]: the token still works, none is stored, the platform did not say, or KMS
    /// failed.
    pub async fn confirm_revoked<O: AccessTokenOpener>(
        &self,
        opener: &O,
        tenant: &Tenant,
        url: &str,
        token_header: &str,
    ) -> Result<(), RevocationError> {
        let platform = tenant.platform;
        let tenant_id = tenant.tenant_id.as_str();
        let Some(sealed) = tenant.access_token_ciphertext.as_deref() else {
            tracing::warn!(%platform, tenant_id, "uninstall refused: no access token to confirm it with");
            return Err(RevocationError::NoToken(platform));
        };
        let token = opener.open_access_token(tenant_id, sealed).await?;
        let state = self
            .get_with_token(url, token_header, &token)
            .await
            .map(|a| TokenState::of_status(a.status));
        match state {
            Ok(TokenState::Revoked) => Ok(()),
            Ok(TokenState::Live) => {
                tracing::warn!(%platform, tenant_id, "uninstall refused: the platform still accepts the access token");
                Err(RevocationError::StillWorks(platform))
            }
            Ok(TokenState::Unproven(status)) => {
                tracing::warn!(%platform, tenant_id, status, "uninstall refused: the platform neither refused nor accepted the token");
                Err(RevocationError::Unconfirmed(platform))
            }
            Err(e) => {
                tracing::warn!(%platform, tenant_id, error = %e, "uninstall refused: the platform did not answer");
                Err(RevocationError::Unconfirmed(platform))
            }
        }
    }

    /// Sends one request (redirects are not followed).
    ///
    /// # Errors
    /// [`PlatformError`].
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Answer, PlatformError> {
        let mut req = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut req = req
            .body(Full::new(body))
            .map_err(|_| PlatformError::BadUrl)?;
        if !req.headers().contains_key(ACCEPT) {
            req.headers_mut()
                .insert(ACCEPT, HeaderValue::from_static("application/json"));
        }
        if req.headers().get(CONTENT_TYPE).is_none() && req.method() == Method::POST {
            req.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
        }
        let call = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| PlatformError::Unreachable(error_chain(&e)))?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| PlatformError::Unreachable(e.to_string()))?
                .to_bytes();
            Ok(Answer {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| PlatformError::Timeout(self.timeout))?
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
