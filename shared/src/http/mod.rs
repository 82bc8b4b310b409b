//! The HTTP layer every function shares: typed API errors mapped to JSON responses in one place,
//! routing by path segments, and body checks.
//!
//! Error bodies are `{"error": {"status": 404, "code": "unknown_site", "field": "site_id", "message": "..."}}`.
//! Messages never carry a request's personal values or an internal error's `Debug` text.

use lambda_http::http::{header, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Serialize;

mod code;
pub use code::ErrorCode;

/// An expected failure, answered with its status and a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status (the code's, see [`ErrorCode::status`]).
    pub status: StatusCode,
    /// A stable, machine-readable code.
    pub code: ErrorCode,
    /// The request field at fault, when there is one.
    pub field: Option<String>,
    /// What went wrong and, where it helps, what to do.
    pub message: String,
}

impl ApiError {
    /// An error with `code`'s status, naming `field` when there is one.
    pub fn new(code: ErrorCode, field: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            status: code.status(),
            code,
            field: field.map(str::to_string),
            message: message.into(),
        }
    }
    /// 400: the request cannot be used as sent.
    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, Some(field), message)
    }
    /// 401: no valid credentials.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, Some("authorization"), message)
    }
    /// 403: valid credentials, wrong tenant.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, Some("authorization"), message)
    }
    /// 404: no such route or resource.
    pub fn not_found(field: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, field, message)
    }
    /// 404 for a site id that no tenant has.
    pub fn unknown_site() -> Self {
        Self::new(
            ErrorCode::UnknownSite,
            Some("site_id"),
            "no store is connected with this site id",
        )
    }
    /// 405: the route exists with another method.
    pub fn method_not_allowed(allowed: &str) -> Self {
        Self::new(
            ErrorCode::MethodNotAllowed,
            None,
            format!("this route accepts {allowed}"),
        )
    }
    /// 410: the tenant was deleted (or is being deleted); nothing is stored for it any more.
    pub fn site_deleted() -> Self {
        Self::new(
            ErrorCode::SiteDeleted,
            Some("site_id"),
            "this store disconnected from Affinity and its data is deleted; nothing more is stored",
        )
    }
    /// 413: too large.
    pub fn too_large(field: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::TooLarge, Some(field), message)
    }
    /// 415: a content type this route does not read.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(
            ErrorCode::UnsupportedMediaType,
            Some("content-type"),
            message,
        )
    }
    /// 503: storage is unavailable; safe to retry.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, None, message)
    }
    /// 500: a fault of ours. The detail goes to the log, not to the client.
    pub fn internal() -> Self {
        Self::new(
            ErrorCode::Internal,
            None,
            "internal error; it has been logged",
        )
    }

    /// The JSON body of this error.
    pub fn body(&self) -> serde_json::Value {
        let mut e = serde_json::json!({"status": self.status.as_u16(), "code": self.code, "message": self.message});
        if let Some(f) = &self.field {
            e["field"] = serde_json::Value::String(f.clone());
        }
        serde_json::json!({ "error": e })
    }

    /// The response for this error.
    pub fn into_response(self) -> Response<Body> {
        json_response(self.status, &self.body())
    }
}

impl Serialize for ApiError {
    /// The error object: `{"status", "code", "field" (when there is one), "message"}`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut o = s.serialize_struct("ApiError", 4)?;
        o.serialize_field("status", &self.status.as_u16())?;
        o.serialize_field("code", &self.code)?;
        if let Some(f) = &self.field {
            o.serialize_field("field", f)?;
        }
        o.serialize_field("message", &self.message)?;
        o.end()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

// ---- one conversion per failure type ------------------------------------------------------------

impl From<crate::store::StoreError> for ApiError {
    /// Storage failures as clients see them: 503 while storage is unavailable (or a write kept losing
    /// races), 410 when the tenant stopped being active, 500 for an item that cannot be read. The detail
    /// goes to the log only.
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError as E;
        match e {
            E::TenantInactive => Self::site_deleted(),
            E::Conflict | E::Unavailable(_) => {
                tracing::error!(error = %e, "storage failed");
                Self::unavailable("storage is unavailable; nothing was changed, retry later")
            }
            E::Corrupt(_) => {
                tracing::error!(error = %e, "corrupt item");
                Self::internal()
            }
        }
    }
}

impl From<crate::kms::KmsError> for ApiError {
    /// KMS failures: 503 while KMS is unavailable (safe to retry), 500 `misconfigured` when the tenant's
    /// key material is missing or refused (retrying cannot help), 500 for an unexpected answer.
    fn from(e: crate::kms::KmsError) -> Self {
        use crate::kms::KmsError as E;
        tracing::error!(error = %e, "KMS failed");
        match e {
            E::Unavailable(_) => {
                Self::unavailable("encryption is unavailable; nothing was changed, retry later")
            }
            E::Refused(_) | E::Missing(_) => Self::new(
                ErrorCode::Misconfigured,
                None,
                "this store's encryption keys cannot be used; reconnect the store (retrying will not help)",
            ),
            E::Malformed(_) => Self::internal(),
        }
    }
}

/// A JSON response with `cache-control: no-store`.
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response<Body> {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "{}".to_string());
    let mut resp = Response::new(Body::Text(text));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

/// Lets storefront JavaScript on any merchant domain read this answer (`Access-Control-Allow-Origin: *`).
///
/// Only the storefront routes call this; server-to-server routes (import, lookup, key rotation) answer
/// without CORS headers, so browsers cannot read them. Storefront requests need no preflight: the
/// beacon's `text/plain` POST and the recommendation GET are CORS "simple requests"
/// (<https://fetch.spec.whatwg.org/#cors-safelisted-request-header>). No cookies are used, so no
/// credentials are allowed.
pub fn allow_any_origin(mut resp: Response<Body>) -> Response<Body> {
    resp.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        header::HeaderValue::from_static("*"),
    );
    resp
}

/// The percent-decoded path segments after `/v1/`, wherever the path starts (API Gateway stages and
/// function URLs put different prefixes before it). `None` when the path has no `/v1/`.
pub fn v1_segments(path: &str) -> Option<Vec<String>> {
    let start = path.find("/v1/")?;
    Some(
        path[start + 4..]
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect(),
    )
}

/// The request body's bytes. API Gateway's base64 bodies arrive already decoded by `lambda_http`.
pub fn body_bytes(req: &Request) -> &[u8] {
    match req.body() {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

/// Checks that the body is JSON: `application/json` or `text/plain` (what `navigator.sendBeacon` sends
/// for a string), with any parameters. A missing content type is read as JSON.
///
/// # Errors
/// 415 for any other type.
pub fn require_json_content(req: &Request) -> Result<(), ApiError> {
    let Some(v) = req.headers().get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = v
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match ct.as_str() {
        "application/json" | "text/plain" | "" => Ok(()),
        _ => Err(ApiError::unsupported_media_type(
            "send the body as application/json or text/plain (navigator.sendBeacon)",
        )),
    }
}

/// Reads a JSON body into `T`: the content type must be JSON or `text/plain` (415), the body at most
/// `max_bytes` bytes (413) and valid JSON of `T`'s shape (400, naming the position and, for a wrong
/// or missing value, serde's description of it without echoing the value).
///
/// # Errors
/// The [`ApiError`] to answer with.
pub fn read_json<T: serde::de::DeserializeOwned>(
    req: &Request,
    max_bytes: usize,
) -> Result<T, ApiError> {
    require_json_content(req)?;
    let bytes = body_bytes(req);
    if bytes.len() > max_bytes {
        return Err(ApiError::too_large(
            "body",
            format!(
                "the body is {} bytes; at most {max_bytes} are accepted",
                bytes.len()
            ),
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Eof => "the body ends too early",
            serde_json::error::Category::Syntax => "the body is not JSON",
            serde_json::error::Category::Data => "the body has a wrong or missing value",
            serde_json::error::Category::Io => "the body cannot be read",
        };
        ApiError::bad_request(
            "body",
            format!("{what} (line {}, column {})", e.line(), e.column()),
        )
    })
}

/// The token of an `Authorization: Bearer ...` header.
pub fn bearer_token(req: &Request) -> Option<&str> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The value of a query-string parameter (the first, when repeated).
pub fn query_param(req: &Request, name: &str) -> Option<String> {
    use lambda_http::RequestExt;
    req.query_string_parameters_ref()
        .and_then(|q| q.first(name).map(str::to_string))
        .or_else(|| {
            // Events without parsed parameters (function URLs under some emulators): read the raw query.
            req.uri().query().and_then(|q| {
                q.split('&').find_map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (k == name).then(|| {
                        percent_encoding::percent_decode_str(v)
                            .decode_utf8_lossy()
                            .into_owned()
                    })
                })
            })
        })
}

#[cfg(test)]
mod tests;
