//! Neighbour lists: [`NeighbourStore`], and the item form the recommendation reads share.
//!
//! One item per product and kind in the profiles table, at `pk = {site_id}#n:{v|b}:{product_id}`
//! (shopper keys start `g:`, `c:`, `e:` or `p:`, so they cannot meet), carrying `site_id` so that
//! tenant deletion's `by_site` query removes them with the tenant's profiles.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};

use super::attrs::{conflict_or_unavailable, corrupt, n, s, version_of, Item};
use super::batch::keys_of;
use super::{profile_pk, DynamoStore};
use crate::recommender::neighbours::{ListKey, ListKind, NeighbourList};
use crate::store::{ListWrite, NeighbourStore, StoreError};

/// The profiles-table key of a list.
pub fn list_pk(site_id: &str, key: &ListKey) -> String {
    profile_pk(site_id, &format!("n:{}:{}", key.kind.tag(), key.product_id))
}

/// The list key of an item's `pk`, if it is a list of `site_id`.
pub(super) fn list_key_of(site_id: &str, pk: &str) -> Option<ListKey> {
    let rest = pk.strip_prefix(site_id)?.strip_prefix("#n:")?;
    let (tag, product_id) = rest.split_once(':')?;
    let kind = match tag {
        "v" => ListKind::Viewed,
        "b" => ListKind::Bought,
        _ => return None,
    };
    Some(ListKey {
        kind,
        product_id: product_id.to_string(),
    })
}

/// Reads a list item: its key, list and version. `None` when the item is not a list of `site_id`.
///
/// # Errors
/// [`StoreError::Corrupt`].
pub(super) fn list_from_item(
    site_id: &str,
    item: Item,
) -> Result<Option<(ListKey, NeighbourList, u64)>, StoreError> {
    let Some(key) = (match item.get("pk") {
        Some(AttributeValue::S(pk)) => list_key_of(site_id, pk),
        _ => None,
    }) else {
        return Ok(None);
    };
    let version = version_of(&item)?;
    let list = serde_dynamo::from_item(item).map_err(corrupt)?;
    Ok(Some((key, list, version)))
}

/// The strongly consistent read of the lists at `keys` (at most 100).
pub(super) fn list_keys(
    site_id: &str,
    keys: &[ListKey],
) -> Result<aws_sdk_dynamodb::types::KeysAndAttributes, StoreError> {
    keys_of(keys.iter().map(|k| list_pk(site_id, k)))
}

impl NeighbourStore for DynamoStore {
    async fn neighbour_lists(
        &self,
        site_id: &str,
        keys: &[ListKey],
    ) -> Result<HashMap<ListKey, (NeighbourList, u64)>, StoreError> {
        let table = &self.tables().profiles;
        let mut out = HashMap::new();
        for chunk in keys.chunks(100) {
            let items = self
                .batch_get(HashMap::from([(table.clone(), list_keys(site_id, chunk)?)]))
                .await?;
            for item in items.into_values().flatten() {
                if let Some((k, l, v)) = list_from_item(site_id, item)? {
                    out.insert(k, (l, v));
                }
            }
        }
        Ok(out)
    }

    async fn save_neighbour_lists(
        &self,
        site_id: &str,
        writes: Vec<ListWrite>,
    ) -> Result<Vec<ListKey>, StoreError> {
        // Conditional writes cannot be batched: one PutItem per list, all in flight at once.
        let handles: Vec<_> = writes
            .into_iter()
            .map(|w| {
                let this = self.clone();
                let site_id = site_id.to_string();
                tokio::spawn(async move {
                    let key = w.key.clone();
                    (key, this.put_list(&site_id, w).await)
                })
            })
            .collect();
        let mut conflicts = Vec::new();
        let mut first_err = None;
        for h in handles {
            match h.await {
                Ok((_, Ok(()))) => {}
                Ok((key, Err(StoreError::Conflict))) => conflicts.push(key),
                Ok((_, Err(e))) => {
                    first_err.get_or_insert(e);
                }
                Err(e) => {
                    first_err.get_or_insert(StoreError::Unavailable(e.to_string()));
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(conflicts),
        }
    }
}

impl DynamoStore {
    async fn put_list(&self, site_id: &str, w: ListWrite) -> Result<(), StoreError> {
        let mut item: Item = serde_dynamo::to_item(&w.list).map_err(corrupt)?;
        item.insert("pk".into(), s(list_pk(site_id, &w.key)));
        item.insert("site_id".into(), s(site_id));
        item.insert("version".into(), n(w.expected + 1));
        let put = self
            .client()
            .put_item()
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .table_name(&self.tables().profiles)
            .set_item(Some(item));
        let put = if w.expected == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :v")
                .expression_attribute_values(":v", n(w.expected))
        };
        put.send().await.map_err(|e| {
            conflict_or_unavailable(e, |e| e.is_conditional_check_failed_exception())
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_keys_round_trip_and_never_meet_shopper_keys() {
        let k = ListKey::bought("sku:1");
        let pk = list_pk("shop1", &k);
        assert_eq!(pk, "shop1#n:b:sku:1");
        assert_eq!(list_key_of("shop1", &pk), Some(k));
        assert_eq!(list_key_of("shop1", "shop1#g:abc"), None);
        assert_eq!(list_key_of("shop2", &pk), None);
    }
}
