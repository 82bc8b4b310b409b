//! The recommendation route's reads: [`RecommendSource`].

use std::collections::HashMap;

use aws_sdk_dynamodb::types::ReturnConsumedCapacity;

use super::attrs::Item;
use super::attrs::{s, unavailable};
use super::batch::keys_of;
use super::neighbours::list_from_item;
use super::popularity::popularity_from_item;
use super::profiles::{profile_from_item, profiles_from_items};
use super::{profile_pk, tenant_from_item, tenant_pk, DynamoStore};
use crate::popularity::Popularity;
use crate::recommender::neighbours::{ListKey, NeighbourList};
use crate::store::{
    ProfileRecord, RecommendQuery, RecommendRead, RecommendSource, StoreError, MAX_LISTS_PER_READ,
};

/// The profile item at `key` and the lists among `items` (one profiles-table answer).
fn split_profiles_table(
    site_id: &str,
    items: Vec<Item>,
    profile_key: Option<&str>,
) -> Result<(Option<ProfileRecord>, HashMap<ListKey, NeighbourList>), StoreError> {
    let want = profile_key.map(|k| profile_pk(site_id, k));
    let mut profile = None;
    let mut lists = HashMap::new();
    for item in items {
        let is_profile = matches!(
            (item.get("pk"), &want),
            (Some(aws_sdk_dynamodb::types::AttributeValue::S(pk)), Some(w)) if pk == w
        );
        if is_profile {
            profile = Some(profile_from_item(item)?);
        } else if let Some((k, l, _)) = list_from_item(site_id, item)? {
            lists.insert(k, l);
        }
    }
    Ok((profile, lists))
}

/// The profiles-table keys of a profile (when given) and lists, eventually consistent for the lists'
/// sake (a list a second old is as good; half the read cost) unless `consistent`.
fn profiles_table_keys(
    site_id: &str,
    profile_key: Option<&str>,
    lists: &[ListKey],
    consistent: bool,
) -> Result<aws_sdk_dynamodb::types::KeysAndAttributes, StoreError> {
    let pks = profile_key
        .map(|k| profile_pk(site_id, k))
        .into_iter()
        .chain(
            lists
                .iter()
                .take(MAX_LISTS_PER_READ)
                .map(|k| super::neighbours::list_pk(site_id, k)),
        );
    let mut keys = keys_of(pks)?;
    keys.consistent_read = Some(consistent);
    Ok(keys)
}

impl RecommendSource for DynamoStore {
    async fn recommend_read(
        &self,
        query: &RecommendQuery<'_>,
    ) -> Result<RecommendRead, StoreError> {
        let &RecommendQuery {
            site_id,
            shopper_key,
            with_popularity,
            lists,
        } = query;
        let tables = self.tables();
        // The profile is read strongly consistent (a shopper's own last event counts); lists with it.
        let mut request = HashMap::from([
            (tables.tenants.clone(), keys_of([tenant_pk(site_id)])?),
            (
                tables.profiles.clone(),
                profiles_table_keys(site_id, Some(shopper_key), lists, true)?,
            ),
        ]);
        if with_popularity {
            // Popularity may be a little stale: eventually consistent reads cost half.
            let mut pop = keys_of([site_id.to_string()])?;
            pop.consistent_read = Some(false);
            request.insert(tables.popularity.clone(), pop);
        }
        let mut items = self.batch_get(request).await?;
        let (profile, lists) = split_profiles_table(
            site_id,
            items.remove(&tables.profiles).unwrap_or_default(),
            Some(shopper_key),
        )?;
        let mut first = |table: &str| items.remove(table).and_then(|v| v.into_iter().next());
        Ok(RecommendRead {
            lists,
            profile,
            tenant: first(&tables.tenants).map(tenant_from_item).transpose()?,
            popularity: first(&tables.popularity)
                .map(popularity_from_item)
                .transpose()?
                .map(|(p, _)| p),
        })
    }

    async fn lookup_read(
        &self,
        site_id: &str,
        keys: &[String],
        with_popularity: bool,
    ) -> Result<(HashMap<String, ProfileRecord>, Option<Popularity>), StoreError> {
        if keys.len() + usize::from(with_popularity) > 100 {
            return Err(StoreError::Unavailable(
                "BatchGetItem takes at most 100 keys".into(),
            ));
        }
        let tables = self.tables();
        let mut request = HashMap::new();
        if !keys.is_empty() {
            let mut k = keys_of(keys.iter().map(|k| profile_pk(site_id, k)))?;
            // Eventually consistent: a campaign lookup may miss a link made a second ago, at half the cost.
            k.consistent_read = Some(false);
            request.insert(tables.profiles.clone(), k);
        }
        if with_popularity {
            let mut pop = keys_of([site_id.to_string()])?;
            pop.consistent_read = Some(false);
            request.insert(tables.popularity.clone(), pop);
        }
        if request.is_empty() {
            return Ok((HashMap::new(), None));
        }
        let mut items = self.batch_get(request).await?;
        let found =
            profiles_from_items(site_id, items.remove(&tables.profiles).unwrap_or_default())?;
        let pop = items
            .remove(&tables.popularity)
            .and_then(|v| v.into_iter().next())
            .map(popularity_from_item)
            .transpose()?
            .map(|(p, _)| p);
        Ok((found, pop))
    }

    async fn profile(&self, site_id: &str, key: &str) -> Result<Option<ProfileRecord>, StoreError> {
        let resp = self
            .client()
            .get_item()
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .table_name(&self.tables().profiles)
            .key("pk", s(profile_pk(site_id, key)))
            .send()
            .await
            .map_err(unavailable)?;
        resp.item.map(profile_from_item).transpose()
    }

    async fn profile_and_lists(
        &self,
        site_id: &str,
        key: Option<&str>,
        lists: &[ListKey],
    ) -> Result<(Option<ProfileRecord>, HashMap<ListKey, NeighbourList>), StoreError> {
        if key.is_none() && lists.is_empty() {
            return Ok((None, HashMap::new()));
        }
        let table = self.tables().profiles.clone();
        let keys = profiles_table_keys(site_id, key, lists, key.is_some())?;
        let mut items = self
            .batch_get(HashMap::from([(table.clone(), keys)]))
            .await?;
        split_profiles_table(site_id, items.remove(&table).unwrap_or_default(), key)
    }
}
