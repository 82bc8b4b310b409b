//! A tenant's items, table by table: [`TenantItems`], over the `by_site` indexes.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::KeysAndAttributes;

use super::attrs::{build_err, decode_cursor, encode_cursor, item_of, key_of, s, unavailable};
use super::batch::delete_request;
use super::DynamoStore;
use crate::deletion::{DataTable, ItemKey, MAX_PAGE_SIZE};
use crate::store::deletion::{ItemPage, TenantItems};
use crate::store::StoreError;

/// The key attributes of `table`'s items.
pub(super) fn key_attrs(table: DataTable) -> &'static [&'static str] {
    match table {
        DataTable::Events => &["pk", "sk"],
        DataTable::Profiles | DataTable::Popularity => &["pk"],
    }
}

impl DynamoStore {
    fn data_table(&self, table: DataTable) -> &str {
        match table {
            DataTable::Events => &self.tables().events,
            DataTable::Profiles => &self.tables().profiles,
            DataTable::Popularity => &self.tables().popularity,
        }
    }
}

impl TenantItems for DynamoStore {
    async fn item_page(
        &self,
        table: DataTable,
        site_id: &str,
        cursor: Option<&str>,
        page_size: i32,
    ) -> Result<ItemPage, StoreError> {
        if table == DataTable::Popularity {
            let key = ItemKey([("pk".to_string(), site_id.to_string())].into());
            return Ok(ItemPage {
                keys: vec![key],
                next: None,
            });
        }
        let r = self
            .client()
            .query()
            .table_name(self.data_table(table))
            .index_name("by_site")
            .key_condition_expression("site_id = :s")
            .expression_attribute_values(":s", s(site_id))
            .limit(page_size.clamp(1, MAX_PAGE_SIZE))
            .set_exclusive_start_key(cursor.map(decode_cursor).transpose()?)
            .send()
            .await
            .map_err(unavailable)?;
        let attrs = key_attrs(table);
        let keys = r
            .items
            .unwrap_or_default()
            .iter()
            .map(|i| key_of(i, attrs))
            .collect::<Result<_, _>>()?;
        let next = r.last_evaluated_key.filter(|k| !k.is_empty());
        Ok(ItemPage {
            keys,
            next: next.as_ref().map(encode_cursor).transpose()?,
        })
    }

    async fn live_items(
        &self,
        table: DataTable,
        keys: Vec<ItemKey>,
    ) -> Result<Vec<ItemKey>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let attrs = key_attrs(table);
        let name = self.data_table(table).to_string();
        let projection: Vec<String> = attrs.iter().map(|a| format!("#{a}")).collect();
        let mut ka = KeysAndAttributes::builder()
            .set_keys(Some(keys.iter().map(item_of).collect()))
            .consistent_read(true)
            .projection_expression(projection.join(", "));
        for a in attrs {
            ka = ka.expression_attribute_names(format!("#{a}"), *a);
        }
        let request = HashMap::from([(name.clone(), ka.build().map_err(build_err)?)]);
        let mut live = self
            .batch_get(request)
            .await?
            .remove(&name)
            .unwrap_or_default()
            .iter()
            .map(|i| key_of(i, attrs))
            .collect::<Result<Vec<_>, _>>()?;
        live.sort();
        Ok(live)
    }

    async fn delete_items(&self, table: DataTable, keys: &[ItemKey]) -> Result<(), StoreError> {
        let requests = keys
            .iter()
            .map(|k| delete_request(item_of(k)))
            .collect::<Result<Vec<_>, _>>()?;
        self.write_all(self.data_table(table), requests).await
    }
}
