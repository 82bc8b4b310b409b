//! One shopper's records: [`ShopperRecords`], by key (profiles) and by the events table's key (a guest
//! id's events).

use std::collections::{BTreeSet, HashMap};

use super::attrs::{key_of, s, unavailable, Item};
use super::profiles::{profiles_from_items, BY_CLAIM, BY_LINK, CLAIM_ATTR, LINK_ATTR};
use super::tenant_items::key_attrs;
use super::{event_from_item, event_pk, profile_pk, DynamoStore};
use crate::deletion::{DataTable, ItemKey, MAX_PAGE_SIZE};
use crate::store::deletion::{ShopperRecords, TenantItems};
use crate::store::{claimants_among, ProfileRecord, StoreError, StoredEvent};

impl DynamoStore {
    /// The event items of `guest_id` (strongly consistent `Query` on the events table's key): all of
    /// them, or only those carrying `customer_id`; only their keys when `keys_only`.
    async fn guest_event_items(
        &self,
        site_id: &str,
        guest_id: &str,
        customer_id: Option<&str>,
        keys_only: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut q = self
                .client()
                .query()
                .table_name(&self.tables().events)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(event_pk(site_id, guest_id)))
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            if keys_only {
                q = q.projection_expression("pk, sk");
            }
            if let Some(c) = customer_id {
                q = q
                    .filter_expression("customer_id = :c")
                    .expression_attribute_values(":c", s(c));
            }
            let r = q.send().await.map_err(unavailable)?;
            out.extend(r.items.unwrap_or_default());
            match r.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}

impl DynamoStore {
    /// Every item of the profiles table's sparse `index` whose partition key `attr` is `value`, all
    /// pages (a GSI: eventually consistent).
    async fn profile_index_items(
        &self,
        index: &str,
        attr: &str,
        value: String,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let r = self
                .client()
                .query()
                .table_name(&self.tables().profiles)
                .index_name(index)
                .key_condition_expression("#k = :v")
                .expression_attribute_names("#k", attr)
                .expression_attribute_values(":v", s(value.clone()))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable)?;
            out.extend(r.items.unwrap_or_default());
            match r.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}

impl ShopperRecords for DynamoStore {
    async fn links_to(
        &self,
        site_id: &str,
        profile_key: &str,
    ) -> Result<HashMap<String, ProfileRecord>, StoreError> {
        let items = self
            .profile_index_items(BY_LINK, LINK_ATTR, profile_pk(site_id, profile_key))
            .await?;
        profiles_from_items(site_id, items)
    }

    async fn claimants(
        &self,
        site_id: &str,
        identity_key: &str,
    ) -> Result<BTreeSet<String>, StoreError> {
        let items = self
            .profile_index_items(BY_CLAIM, CLAIM_ATTR, profile_pk(site_id, identity_key))
            .await?;
        Ok(claimants_among(
            profiles_from_items(site_id, items)?.values(),
        ))
    }

    async fn shopper_events(
        &self,
        site_id: &str,
        guest_id: &str,
        customer_id: Option<&str>,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.guest_event_items(site_id, guest_id, customer_id, false)
            .await?
            .into_iter()
            .map(event_from_item)
            .collect()
    }

    async fn erase_profiles(&self, site_id: &str, keys: &[String]) -> Result<u64, StoreError> {
        let keys: Vec<ItemKey> = keys
            .iter()
            .map(|k| ItemKey([("pk".to_string(), profile_pk(site_id, k))].into()))
            .collect();
        let mut erased = 0;
        for chunk in keys.chunks(MAX_PAGE_SIZE as usize) {
            let live = self.live_items(DataTable::Profiles, chunk.to_vec()).await?;
            erased += live.len() as u64;
            self.delete_items(DataTable::Profiles, &live).await?;
        }
        Ok(erased)
    }

    async fn erase_events(
        &self,
        site_id: &str,
        guest_id: &str,
        customer_id: Option<&str>,
    ) -> Result<u64, StoreError> {
        let attrs = key_attrs(DataTable::Events);
        let keys: Vec<ItemKey> = self
            .guest_event_items(site_id, guest_id, customer_id, true)
            .await?
            .iter()
            .map(|i| key_of(i, attrs))
            .collect::<Result<_, _>>()?;
        self.delete_items(DataTable::Events, &keys).await?;
        Ok(keys.len() as u64)
    }
}
