//! The adapter's one set of attribute helpers: building values, reading them back, keys and cursors,
//! and SDK errors as [`StoreError`]s.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_types::error::display::DisplayErrorContext;

use crate::deletion::ItemKey;
use crate::store::StoreError;

/// A DynamoDB item, as the SDK carries it (never outside the adapter).
pub(crate) type Item = HashMap<String, AttributeValue>;

/// A string attribute.
pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A number attribute.
pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// An SDK failure, with its whole error chain (for the logs).
pub(crate) fn unavailable<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(DisplayErrorContext(e).to_string())
}

/// A request the SDK's builder refused (a missing required field: a bug, reported as unavailable).
pub(crate) fn build_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// An item or a value that does not read as its record.
pub(crate) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// [`StoreError::Conflict`] when the service error is the failed condition `is_condition` names,
/// else [`unavailable`].
pub(crate) fn conflict_or_unavailable<E, R>(
    e: SdkError<E, R>,
    is_condition: impl Fn(&E) -> bool,
) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if e.as_service_error().is_some_and(is_condition) {
        StoreError::Conflict
    } else {
        unavailable(e)
    }
}

/// The item's `version` (0 when absent).
pub(crate) fn version_of(item: &Item) -> Result<u64, StoreError> {
    match item.get("version") {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| corrupt("version")),
        _ => Ok(0),
    }
}

/// The string attribute `name` of `item`.
pub(crate) fn string_attr(item: &Item, name: &str) -> Result<String, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(corrupt(format!("item without {name}"))),
    }
}

/// The key (the string attributes `attrs`) of `item`.
pub(crate) fn key_of(item: &Item, attrs: &[&str]) -> Result<ItemKey, StoreError> {
    attrs
        .iter()
        .map(|a| string_attr(item, a).map(|v| ((*a).to_string(), v)))
        .collect::<Result<BTreeMap<_, _>, _>>()
        .map(ItemKey)
}

/// The item of a key.
pub(crate) fn item_of(key: &ItemKey) -> Item {
    key.0
        .iter()
        .map(|(k, v)| (k.clone(), s(v.clone())))
        .collect()
}

/// A `LastEvaluatedKey` as an opaque cursor (JSON of its string attributes).
pub(crate) fn encode_cursor(key: &Item) -> Result<String, StoreError> {
    let names: Vec<&str> = key.keys().map(String::as_str).collect();
    let key = key_of(key, &names).map_err(|_| corrupt("non-string key in cursor"))?;
    serde_json::to_string(&key).map_err(corrupt)
}

/// The `ExclusiveStartKey` of a cursor.
pub(crate) fn decode_cursor(c: &str) -> Result<Item, StoreError> {
    let key: ItemKey = serde_json::from_str(c).map_err(corrupt)?;
    Ok(item_of(&key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let k: Item = HashMap::from([
            ("pk".to_string(), s("s#g")),
            ("sk".to_string(), s("e1")),
            ("site_id".to_string(), s("s")),
        ]);
        assert_eq!(
            decode_cursor(&encode_cursor(&k).expect("enc")).expect("dec"),
            k
        );
        let bad: Item = HashMap::from([("pk".to_string(), n(1))]);
        assert!(matches!(encode_cursor(&bad), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn versions_read_as_numbers_and_default_to_zero() {
        assert_eq!(version_of(&HashMap::new()).expect("none"), 0);
        let item: Item = HashMap::from([("version".to_string(), n(7))]);
        assert_eq!(version_of(&item).expect("seven"), 7);
        let item: Item = HashMap::from([("version".to_string(), n("x"))]);
        assert!(version_of(&item).is_err());
    }
}
