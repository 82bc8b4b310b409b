//! The HTTP side: posting event batches to the ingest API, reading recommendations and exports.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// Most shoppers one lookup request may ask for (the API's limit).
pub const MAX_LOOKUP_SHOPPERS: usize = 100;

/// Which ingest route a batch goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /v1/sites/{site}/events`: events at most 7 days old, as storefronts send them.
    Live,
    /// `POST /v1/sites/{site}/events/import`: history, any past timestamp.
    Import,
}

/// One event the API refused, from a 200 answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Rejection {
    /// Position of the event in the request's `events` array.
    pub index: usize,
    /// The field at fault.
    #[serde(default)]
    pub field: String,
    /// Why it was refused.
    #[serde(default)]
    pub reason: String,
}

/// The counts of an ingest answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct IngestAnswer {
    /// Events stored.
    #[serde(default)]
    pub accepted: u64,
    /// Events already stored before (same event id).
    #[serde(default)]
    pub duplicates: u64,
    /// Events refused, with the reason.
    #[serde(default)]
    pub rejected: Vec<Rejection>,
    /// Personal data fields the API removed before storing.
    #[serde(default)]
    pub pii_dropped: u64,
}

/// What became of a posted batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostAnswer {
    /// 2xx: every event was accepted, a duplicate, or rejected.
    Done(IngestAnswer),
    /// 503: the events at `not_stored` (positions in the request) were not stored and may be
    /// sent again; `None` when the answer did not say which, so all of them. The other events
    /// were stored; `answer` holds whatever counts the 503 body gave.
    Unavailable {
        /// Positions in the request of the events not stored.
        not_stored: Option<Vec<usize>>,
        /// Counts given in the 503 body, if any.
        answer: Option<IngestAnswer>,
        /// The answer's body, for messages.
        body: String,
    },
}

/// A failure that stops the import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// No HTTP answer (connection refused, timeout, bad URL, ...).
    Unreachable(String),
    /// An answer other than 2xx and 503.
    Status {
        /// HTTP status.
        status: u16,
        /// The answer's body.
        body: String,
    },
    /// A 2xx answer whose body is not what the API promises.
    BadAnswer(String),
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Unreachable(e) => write!(f, "API unreachable: {e}"),
            ApiError::Status { status, body } => write!(f, "API answered HTTP {status}: {body}"),
            ApiError::BadAnswer(e) => write!(f, "API answered with an unexpected body: {e}"),
        }
    }
}

impl std::error::Error for ApiError {}

/// A blocking client for one site of the API. Cheap to share between threads by reference.
#[derive(Debug, Clone)]
pub struct ApiClient {
    agent: ureq::Agent,
    base: String,
    site: String,
    api_key: Option<String>,
}

#[derive(Deserialize)]
struct UnavailableBody {
    not_stored: Option<Vec<usize>>,
    accepted: Option<u64>,
    #[serde(default)]
    duplicates: u64,
    #[serde(default)]
    rejected: Vec<Rejection>,
    #[serde(default)]
    pii_dropped: u64,
}

impl ApiClient {
    /// A client for `base` (e.g. `http://127.0.0.1:9000`, plain HTTP) and `site`, sending
    /// `Authorization: Bearer {api_key}` when a key is given.
    pub fn new(base: &str, site: &str, api_key: Option<String>, timeout: Duration) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .user_agent(concat!("affinity-import/", env!("CARGO_PKG_VERSION")))
            .build();
        ApiClient {
            agent: config.into(),
            base: base.trim_end_matches('/').to_string(),
            site: site.to_string(),
            api_key: api_key.filter(|k| !k.is_empty()),
        }
    }

    /// The URL of an ingest route.
    pub fn events_url(&self, route: Route) -> String {
        let suffix = match route {
            Route::Live => "",
            Route::Import => "/import",
        };
        format!(
            "{}/v1/sites/{}/events{suffix}",
            self.base,
            encode_segment(&self.site)
        )
    }

    /// The URL of a shopper's recommendations.
    pub fn recommendations_url(&self, shopper_id: &str, limit: u32) -> String {
        format!(
            "{}/v1/sites/{}/shoppers/{}/recommendations?limit={limit}",
            self.base,
            encode_segment(&self.site),
            encode_segment(shopper_id)
        )
    }

    /// The URL of a shopper's export (`GET .../shoppers/{id}/export`, API key): their stored events.
    pub fn export_url(&self, shopper_id: &str) -> String {
        format!(
            "{}/v1/sites/{}/shoppers/{}/export",
            self.base,
            encode_segment(&self.site),
            encode_segment(shopper_id)
        )
    }

    /// The URL of the lookup route (`POST .../recommendations/lookup`, API key): known shoppers'
    /// preferences and recommendations.
    pub fn lookup_url(&self) -> String {
        format!(
            "{}/v1/sites/{}/recommendations/lookup",
            self.base,
            encode_segment(&self.site)
        )
    }

    /// Posts one request body (`{"events": [...]}`) to `route`.
    pub fn post_events(&self, route: Route, body: &[u8]) -> Result<PostAnswer, ApiError> {
        let mut request = self
            .agent
            .post(self.events_url(route))
            .header("Content-Type", "application/json");
        if let Some(key) = &self.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let (status, text) = read_answer(request.send(body))?;
        match status {
            200..=299 => serde_json::from_str::<IngestAnswer>(&text)
                .map(PostAnswer::Done)
                .map_err(|e| ApiError::BadAnswer(format!("{e}: {text}"))),
            503 => {
                let parsed = serde_json::from_str::<UnavailableBody>(&text).ok();
                let (not_stored, answer) = match parsed {
                    Some(b) => (
                        b.not_stored,
                        b.accepted.map(|accepted| IngestAnswer {
                            accepted,
                            duplicates: b.duplicates,
                            rejected: b.rejected,
                            pii_dropped: b.pii_dropped,
                        }),
                    ),
                    None => (None, None),
                };
                Ok(PostAnswer::Unavailable {
                    not_stored,
                    answer,
                    body: text,
                })
            }
            _ => Err(ApiError::Status { status, body: text }),
        }
    }

    /// Reads a shopper's recommendations (the API's JSON answer).
    pub fn recommendations(
        &self,
        shopper_id: &str,
        limit: u32,
    ) -> Result<serde_json::Value, ApiError> {
        self.get_json(&self.recommendations_url(shopper_id, limit))
    }

    /// Reads a shopper's export (the API's JSON answer; needs the API key).
    pub fn export(&self, shopper_id: &str) -> Result<serde_json::Value, ApiError> {
        self.get_json(&self.export_url(shopper_id))
    }

    /// Asks the lookup route for the guest ids `shopper_ids` (at most [`MAX_LOOKUP_SHOPPERS`]),
    /// `limit` recommendations each: the API's JSON answer, `{"results": [...]}` in the order
    /// asked (each `{"index", "matched", "shopper_id", "preferred_categories", "preferred_brands",
    /// "items"}` or `{"index", "error"}`). Needs the API key.
    pub fn lookup(&self, shopper_ids: &[&str], limit: u32) -> Result<serde_json::Value, ApiError> {
        let shoppers: Vec<_> = shopper_ids
            .iter()
            .map(|id| serde_json::json!({ "shopper_id": id }))
            .collect();
        let body = serde_json::json!({"shoppers": shoppers, "limit": limit}).to_string();
        let mut request = self
            .agent
            .post(self.lookup_url())
            .header("Content-Type", "application/json");
        if let Some(key) = &self.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        json_answer(read_answer(request.send(body.as_bytes()))?)
    }

    /// Whether requests carry an API key.
    pub fn has_api_key(&self) -> bool {
        self.api_key.is_some()
    }

    /// GETs `url` with the API key; a 2xx JSON answer, else the error.
    fn get_json(&self, url: &str) -> Result<serde_json::Value, ApiError> {
        let mut request = self.agent.get(url);
        if let Some(key) = &self.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        json_answer(read_answer(request.call())?)
    }
}

/// The JSON of a 2xx answer, else the error.
fn json_answer((status, text): (u16, String)) -> Result<serde_json::Value, ApiError> {
    if !(200..=299).contains(&status) {
        return Err(ApiError::Status { status, body: text });
    }
    serde_json::from_str(&text).map_err(|e| ApiError::BadAnswer(format!("{e}: {text}")))
}

/// The status and body text of a sent request, or why there is none.
fn read_answer(
    sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<(u16, String), ApiError> {
    let mut response = sent.map_err(|e| ApiError::Unreachable(e.to_string()))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| ApiError::Unreachable(format!("reading the answer: {e}")))?;
    Ok((status, text))
}

/// Percent-encodes one URL path segment (everything but `A-Z a-z 0-9 - . _ ~`).
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let client = ApiClient::new(
            "http://127.0.0.1:9/",
            "demo-shop",
            None,
            Duration::from_secs(1),
        );
        assert_eq!(
            client.events_url(Route::Live),
            "http://127.0.0.1:9/v1/sites/demo-shop/events"
        );
        assert_eq!(
            client.events_url(Route::Import),
            "http://127.0.0.1:9/v1/sites/demo-shop/events/import"
        );
        assert_eq!(
            client.recommendations_url("a/b+c=", 10),
            "http://127.0.0.1:9/v1/sites/demo-shop/shoppers/a%2Fb%2Bc%3D/recommendations?limit=10"
        );
    }
}
