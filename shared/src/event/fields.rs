//! The field readers behind [`super::validate`]: ids, free text, prices, products and lines,
//! timestamps. Each returns the offending field's path and the reason, never the value.

use super::{cut_to_bytes, Line, Product, MAX_ITEMS, MAX_NAME_BYTES};
use serde_json::{Map, Value};

pub(super) type FieldResult<T> = Result<T, (String, String)>;

pub(super) fn err<T>(field: impl Into<String>, reason: impl Into<String>) -> FieldResult<T> {
    Err((field.into(), reason.into()))
}

/// True for a non-empty identifier of at most 128 characters of `[A-Za-z0-9_=/+.-]`: the guest id rule,
/// also used for customer, session, event and order ids. `#` is excluded on purpose: it separates the
/// parts of storage keys.
pub fn is_valid_id(s: &str) -> bool {
    crate::ids::id_chars_ok(s, true)
}

pub(super) fn guest_id_ok(s: &str) -> bool {
    crate::ids::id_chars_ok(s, false)
}

pub(super) fn id_field(
    obj: &Map<String, Value>,
    name: &str,
    path: &str,
) -> FieldResult<Option<String>> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if is_valid_id(s) => Ok(Some(s.clone())),
        Some(Value::String(_)) => err(
            path,
            "must be 1-128 characters of letters, digits and _=/+.-:",
        ),
        // Platforms often send numeric ids (Shopify customer ids): accept integers as their decimal text.
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(Some(n.to_string())),
        Some(_) => err(path, "must be a string"),
    }
}

/// A free-text field (query, category, brand): trimmed, without control characters, and cut to
/// `max_bytes` UTF-8 bytes at a character boundary (a long category path costs its tail, not the event).
pub(super) fn text_field(
    obj: &Map<String, Value>,
    name: &str,
    path: &str,
    max_bytes: usize,
) -> FieldResult<Option<String>> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let t = s.trim();
            if t.is_empty() {
                Ok(None)
            } else if t.chars().any(char::is_control) {
                err(path, "must not contain control characters")
            } else {
                Ok(Some(cut_to_bytes(t, max_bytes).trim_end().to_string()))
            }
        }
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => err(path, "must be a string"),
    }
}

/// The largest price accepted, in major units.
pub const MAX_PRICE: f64 = 1e12;

/// A price: a non-negative number (or numeric string) up to [`MAX_PRICE`], rounded to 6 decimal places
/// so that every accepted value is a number DynamoDB can store (its range is about 1e-130 to 1e126).
fn price_field(obj: &Map<String, Value>, path: &str) -> FieldResult<Option<f64>> {
    let p = match obj.get("price") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match p {
        Some(p) if p.is_finite() && (0.0..=MAX_PRICE).contains(&p) => {
            Ok(Some((p * 1e6).round() / 1e6))
        }
        _ => err(
            path,
            "must be a non-negative number of at most 1000000000000 (major units)",
        ),
    }
}

pub(super) fn product_from(value: &Value, path: &str) -> FieldResult<Product> {
    let Value::Object(obj) = value else {
        return err(path, "must be an object with an id");
    };
    let id = match obj.get("id") {
        None | Some(Value::Null) => return err(format!("{path}.id"), "is required"),
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 128 && !s.contains('#') => {
            s.trim().to_string()
        }
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
        Some(_) => {
            return err(
                format!("{path}.id"),
                "must be a string of 1-128 characters without '#', or an integer",
            )
        }
    };
    Ok(Product {
        id,
        category: text_field(obj, "category", &format!("{path}.category"), MAX_NAME_BYTES)?,
        brand: text_field(obj, "brand", &format!("{path}.brand"), MAX_NAME_BYTES)?,
        price: price_field(obj, &format!("{path}.price"))?,
    })
}

pub(super) fn lines_from(value: &Value, path: &str) -> FieldResult<Vec<Line>> {
    let Value::Array(arr) = value else {
        return err(path, "must be an array of items");
    };
    if arr.len() > MAX_ITEMS {
        return err(path, format!("must hold at most {MAX_ITEMS} items"));
    }
    let mut lines = Vec::with_capacity(arr.len());
    for (i, v) in arr.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let product = product_from(v, &p)?;
        let quantity = match v.get("quantity") {
            None | Some(Value::Null) => 1,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(q) if (1..=100_000).contains(&q) => q as u32,
                _ => {
                    return err(
                        format!("{p}.quantity"),
                        "must be an integer from 1 to 100000",
                    )
                }
            },
            Some(_) => {
                return err(
                    format!("{p}.quantity"),
                    "must be an integer from 1 to 100000",
                )
            }
        };
        lines.push(Line { product, quantity });
    }
    Ok(lines)
}

/// Parses an RFC 3339 string or an epoch-milliseconds number into epoch ms.
///
/// # Errors
/// A reason when the value is neither.
pub fn parse_timestamp(value: &Value) -> Result<i64, &'static str> {
    match value {
        Value::Number(n) => match n.as_i64() {
            Some(ms) if ms > 0 => Ok(ms),
            _ => Err("must be an RFC 3339 string or positive epoch milliseconds"),
        },
        Value::String(s) => {
            let t = time::OffsetDateTime::parse(
                s.trim(),
                &time::format_description::well_known::Rfc3339,
            )
            .map_err(|_| {
                "must be an RFC 3339 date-time such as 2026-11-29T16:00:00Z, or epoch milliseconds"
            })?;
            Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
        }
        _ => Err("must be an RFC 3339 string or epoch milliseconds"),
    }
}
