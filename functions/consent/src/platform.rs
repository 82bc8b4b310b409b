//! The HTTP client for the platforms' token endpoints (and the demo installer): hyper with rustls and
//! the system's roots, the stack the AWS SDK already compiles. Every call has a deadline; bodies are
//! capped; nothing here logs a body or a URL's query.

use std::time::Duration;

use affinity::install::InstallError;
use affinity::tenant::Platform;
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
