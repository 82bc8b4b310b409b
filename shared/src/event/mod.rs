//! Storefront events: the six shopper behaviours Affinity accepts, and their validation.
//!
//! An ingest body is `{"events": [...]}`. Each element is validated on its own from a
//! [`serde_json::Value`], so one malformed event never takes its neighbours down with it: a bad event
//! becomes a [`Rejection`] naming its index, the field (a path such as `items[2].quantity`) and the
//! reason, and the good events go on.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Most events in one ingest request.
pub const MAX_EVENTS_PER_REQUEST: usize = 500;
/// Largest ingest body, in bytes (1 MiB).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Oldest timestamp the live route accepts, in ms before now (7 days).
pub const MAX_EVENT_AGE_MS: i64 = 7 * 24 * 3600 * 1000;
/// Furthest timestamp ahead of now that any route accepts, in ms (5 minutes of clock skew).
pub const MAX_EVENT_SKEW_MS: i64 = 5 * 60 * 1000;
/// Most items in a purchase or a cart.
pub const MAX_ITEMS: usize = 100;
/// Longest search query kept, in UTF-8 bytes (a longer one is cut at a character boundary).
pub const MAX_QUERY_BYTES: usize = 512;
/// Longest category or brand name kept, in UTF-8 bytes (a longer one is cut at a character boundary):
/// 256 ASCII characters, 64 four-byte ones. DynamoDB sizes strings in UTF-8 bytes, so byte limits are
/// what bound a stored profile.
pub const MAX_NAME_BYTES: usize = 256;
/// Longest personal field (`email`, `phone`, their `_sha256` forms), in UTF-8 bytes; longer ones are
/// refused (the longest email address: a 64-octet local part, `@` and a 255-octet domain, RFC 5321
/// section 4.5.3.1).
pub const MAX_PII_BYTES: usize = 320;
/// Shortest guest id (`shopper_id`) the live route accepts, in characters: a guessable id would let a
/// stranger write into, or read recommendations from, another browser's history. A UUID (36), Shopify's
/// `_shopify_y` cookie or 16 random base64url characters (96 bits) all qualify. The import route (API key,
/// server to server) keeps the merchant's own ids, whatever their length.
pub const MIN_LIVE_GUEST_ID_CHARS: usize = 16;

/// The longest prefix of `s` of at most `max_bytes` UTF-8 bytes that ends at a character boundary.
pub fn cut_to_bytes(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub use affinity_wire::{EventType, Line, Product};

/// Which route the events came through; it sets the timestamp window and the shortest guest id
/// ([`MIN_LIVE_GUEST_ID_CHARS`] on the live route only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestMode {
    /// `POST /v1/sites/{site_id}/events`: storefronts; timestamps within 7 days before and 5 minutes after now,
    /// guest ids of at least [`MIN_LIVE_GUEST_ID_CHARS`] characters.
    Live,
    /// `POST /v1/sites/{site_id}/events/import`: server-to-server history; any past timestamp.
    Import,
}

/// Personal data that rode on an event. It never leaves this crate in the clear: it is either hashed
/// by [`crate::pii`] (with consent) or dropped. Its `Debug` prints nothing of the value.
#[derive(Clone, Default, PartialEq)]
pub struct PiiFields {
    /// `email`, as sent.
    pub email: Option<String>,
    /// `email_sha256`: SHA-256 of the normalized email, 64 hex characters.
    pub email_sha256: Option<String>,
    /// `phone`, as sent.
    pub phone: Option<String>,
    /// `phone_sha256`: SHA-256 of the E.164 phone number, 64 hex characters.
    pub phone_sha256: Option<String>,
}

impl PiiFields {
    /// True when no personal field was sent.
    pub fn is_empty(&self) -> bool {
        self.email.is_none()
            && self.email_sha256.is_none()
            && self.phone.is_none()
            && self.phone_sha256.is_none()
    }
}

impl std::fmt::Debug for PiiFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiiFields")
            .field("email", &self.email.as_ref().map(|_| "<redacted>"))
            .field(
                "email_sha256",
                &self.email_sha256.as_ref().map(|_| "<redacted>"),
            )
            .field("phone", &self.phone.as_ref().map(|_| "<redacted>"))
            .field(
                "phone_sha256",
                &self.phone_sha256.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// A validated event. Timestamps are epoch milliseconds (UTC).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The behaviour.
    pub kind: EventType,
    /// The guest id from the storefront cookie.
    pub shopper_id: String,
    /// The logged-in shopper's customer id, when known.
    pub customer_id: Option<String>,
    /// The storefront session.
    pub session_id: Option<String>,
    /// The client's id, or one derived from the event's content (so a retried batch keeps its ids).
    pub event_id: String,
    /// When it happened, epoch ms; the time of receipt when the client sent none.
    pub timestamp_ms: i64,
    /// Search terms (search events).
    pub query: Option<String>,
    /// The product (view, click, cart_add, cart_remove).
    pub product: Option<Product>,
    /// Ordered lines (purchase).
    pub items: Vec<Line>,
    /// Order id (purchase).
    pub order_id: Option<String>,
    /// ISO 4217 currency code (purchase).
    pub currency: Option<String>,
    /// The full cart after this event, when the storefront sent it.
    pub cart: Option<Vec<Line>>,
    /// The `recommendation_id` of the recommendation answer this event came from (a click or
    /// impression on a widget), so click-through can be attributed.
    pub recommendation_id: Option<String>,
    /// `country`: the shopper's country as an ISO 3166-1 alpha-2 code, uppercase (`GB`), when the
    /// storefront knows it (a checkout's address). It reads a national phone number of this event before
    /// the tenant's [`crate::tenant::Tenant::default_region`] does.
    pub country: Option<String>,
    /// Personal data, if any was sent (see [`PiiFields`]). Emptied before anything is stored.
    pub pii: PiiFields,
    /// Proven identity keys (`e:{hex}` for an email, `p:{hex}` for a phone) made from `pii` by
    /// [`crate::pii::identities`] under the tenant's messaging consent: every key on the import route,
    /// on the live route only those an identity token binds ([`crate::identity`]). They link profiles.
    pub identities: Vec<String>,
    /// Claimed identity keys: made like `identities` from an email or phone that the live route got
    /// without proof (typed into a form). Kept on the guest's own profile for the messaging lookup and
    /// erasure, never used to link one profile to another.
    pub claims: Vec<String>,
    /// The signed identity token sent with the event (live route), checked by the ingest function and
    /// then emptied: it is never stored.
    pub identity_token: Option<String>,
}

/// Why one event was refused: `{"index", "field", "reason"}` in the ingest answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Position of the event in the request's `events` array, from 0.
    pub index: usize,
    /// The offending field, as a path (`product.id`, `items[1].quantity`), or `event` for the whole.
    pub field: String,
    /// What is wrong, in words; it never repeats the value (which may be personal data).
    pub reason: String,
}

mod fields;

use fields::{err, guest_id_ok, id_field, lines_from, product_from, text_field, FieldResult};
pub use fields::{is_valid_id, parse_timestamp, MAX_PRICE};

/// The event id used when the client sends none: the first 128 bits of SHA-256 over the event's JSON
/// text, hex. A retried batch carries the same bytes, so it gets the same ids and is de-duplicated.
///
/// The personal fields (`email`, `email_sha256`, `phone`, `phone_sha256`) are left out of the digest,
/// so a stored event id is never an unkeyed digest of an email or phone; so is `identity_token` (a
/// refreshed token does not make a retried event new).
pub fn derived_event_id(value: &Value) -> String {
    let digest = match value {
        Value::Object(obj) => {
            let mut rest = obj.clone();
            for f in PII_FIELD_NAMES {
                rest.remove(f);
            }
            rest.remove("identity_token");
            Sha256::digest(Value::Object(rest).to_string().as_bytes())
        }
        v => Sha256::digest(v.to_string().as_bytes()),
    };
    format!("d-{}", hex::encode(&digest[..16]))
}

/// The event fields that carry personal data.
pub const PII_FIELD_NAMES: [&str; 4] = ["email", "email_sha256", "phone", "phone_sha256"];

/// Validates one event of a request.
///
/// `now_ms` is the time of receipt (epoch ms); `mode` sets the timestamp window.
///
/// # Errors
/// The first problem found, as a [`Rejection`] for `index`.
pub fn validate(
    value: &Value,
    index: usize,
    now_ms: i64,
    mode: IngestMode,
) -> Result<Event, Rejection> {
    validate_inner(value, now_ms, mode).map_err(|(field, reason)| Rejection {
        index,
        field,
        reason,
    })
}

fn validate_inner(value: &Value, now_ms: i64, mode: IngestMode) -> FieldResult<Event> {
    let Value::Object(obj) = value else {
        return err("event", "must be a JSON object");
    };
    let kind = match obj.get("type") {
        None | Some(Value::Null) => return err("type", "is required"),
        Some(Value::String(s)) => match EventType::parse(s) {
            Some(k) => k,
            None => return err(
                "type",
                "must be one of search, view, click, cart_add, cart_remove, purchase, impression",
            ),
        },
        Some(_) => return err("type", "must be a string"),
    };
    let shopper_id = match obj.get("shopper_id") {
        None | Some(Value::Null) => return err("shopper_id", "is required"),
        Some(Value::String(s)) if !guest_id_ok(s) => {
            return err(
                "shopper_id",
                "must be 1-128 characters of letters, digits and _=/+.-",
            )
        }
        Some(Value::String(s)) if mode == IngestMode::Live && s.len() < MIN_LIVE_GUEST_ID_CHARS => {
            return err(
                "shopper_id",
                "must be at least 16 characters: an unguessable id such as a UUID",
            )
        }
        Some(Value::String(s)) => s.clone(),
        Some(_) => return err("shopper_id", "must be a string"),
    };
    let customer_id = id_field(obj, "customer_id", "customer_id")?;
    let session_id = id_field(obj, "session_id", "session_id")?;
    let event_id = match id_field(obj, "event_id", "event_id")? {
        Some(id) => id,
        None => derived_event_id(value),
    };
    let timestamp_ms = match obj.get("timestamp") {
        None | Some(Value::Null) => now_ms,
        Some(v) => {
            let ts = parse_timestamp(v).or_else(|r| err("timestamp", r))?;
            if ts > now_ms + MAX_EVENT_SKEW_MS {
                return err("timestamp", "is more than 5 minutes in the future");
            }
            if mode == IngestMode::Live && ts < now_ms - MAX_EVENT_AGE_MS {
                return err(
                    "timestamp",
                    "is more than 7 days old; send history to /events/import",
                );
            }
            ts
        }
    };
    let query = text_field(obj, "query", "query", MAX_QUERY_BYTES)?;
    if kind == EventType::Search && query.is_none() {
        return err("query", "is required for search events");
    }
    let product = match obj.get("product") {
        None | Some(Value::Null) => None,
        Some(v) => Some(product_from(v, "product")?),
    };
    if matches!(
        kind,
        EventType::View
            | EventType::Click
            | EventType::CartAdd
            | EventType::CartRemove
            | EventType::Impression
    ) && product.is_none()
    {
        return err(
            "product",
            format!("is required for {} events", kind.as_str()),
        );
    }
    let items = match obj.get("items") {
        None | Some(Value::Null) => Vec::new(),
        Some(v) => lines_from(v, "items")?,
    };
    if kind == EventType::Purchase && items.is_empty() {
        return err("items", "must list at least one item for purchase events");
    }
    let order_id = id_field(obj, "order_id", "order_id")?;
    let currency = match obj.get("currency") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() == 3 && s.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Some(s.to_ascii_uppercase())
        }
        Some(_) => return err("currency", "must be a 3-letter ISO 4217 code"),
    };
    let cart = match obj.get("cart") {
        None | Some(Value::Null) => None,
        Some(v) => Some(lines_from(v, "cart")?),
    };
    let recommendation_id = match obj.get("recommendation_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if recommendation_id_ok(s) => Some(s.clone()),
        Some(_) => {
            return err(
                "recommendation_id",
                "must be 1-64 characters of letters, digits, _ and -",
            )
        }
    };
    if kind == EventType::Impression && recommendation_id.is_none() {
        return err(
            "recommendation_id",
            "is required for impression events (the recommendation answer's id)",
        );
    }
    let identity_token = match obj.get("identity_token") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.len() <= crate::identity::MAX_TOKEN_BYTES => Some(s.clone()),
        Some(Value::String(_)) => return err("identity_token", "is too long"),
        Some(_) => return err("identity_token", "must be a string"),
    };
    let country = match obj.get("country") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match crate::pii::region(s) {
            Some(r) => Some(r),
            None => {
                return err(
                    "country",
                    "must be an ISO 3166-1 alpha-2 country code such as GB or US",
                )
            }
        },
        Some(_) => return err("country", "must be a string (ISO 3166-1 alpha-2)"),
    };
    let pii = PiiFields {
        email: pii_text(obj, "email")?,
        email_sha256: pii_text(obj, "email_sha256")?,
        phone: pii_text(obj, "phone")?,
        phone_sha256: pii_text(obj, "phone_sha256")?,
    };
    Ok(Event {
        kind,
        shopper_id,
        customer_id,
        session_id,
        event_id,
        timestamp_ms,
        query,
        product,
        items,
        order_id,
        currency,
        cart,
        recommendation_id,
        country,
        pii,
        identities: Vec::new(),
        claims: Vec::new(),
        identity_token,
    })
}

fn recommendation_id_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Reads a personal field without ever putting its value in an error.
fn pii_text(obj: &Map<String, Value>, name: &str) -> FieldResult<Option<String>> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) if s.len() <= MAX_PII_BYTES => Ok(Some(s.clone())),
        Some(Value::String(_)) => err(name, "is too long"),
        Some(_) => err(name, "must be a string"),
    }
}

impl Event {
    /// The region that reads this event's national phone numbers: its own `country`, else the tenant's
    /// default region (`tenant_region`), else none.
    pub fn phone_region<'a>(&'a self, tenant_region: Option<&'a str>) -> Option<&'a str> {
        self.country.as_deref().or(tenant_region)
    }

    /// The products this event is about: the product, or the purchased items.
    pub fn products(&self) -> impl Iterator<Item = &Product> {
        self.product
            .iter()
            .chain(self.items.iter().map(|l| &l.product))
    }
}

#[cfg(test)]
mod tests;
