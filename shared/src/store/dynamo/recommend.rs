//! The recommendation route's reads: [`RecommendSource`].

use std::collections::HashMap;

use aws_sdk_dynamodb::types::ReturnConsumedCapacity;

use super::attrs::{s, unavailable};
use super::batch::keys_of;
use super::popularity::popularity_from_item;
use super::profiles::{profile_from_item, profiles_from_items};
use super::{profile_pk, tenant_from_item, tenant_pk, DynamoStore};
use crate::popularity::Popularity;
use crate::store::{ProfileRecord, RecommendRead, RecommendSource, StoreError};

impl RecommendSource for DynamoStore {
    async fn recommend_read(
        &self,
        site_id: &str,
        shopper_key: &str,
        with_popularity: bool,
    ) -> Result<RecommendRead, StoreError> {
        let tables = self.tables();
        let mut request = HashMap::from([
            (tables.tenants.clone(), keys_of([tenant_pk(site_id)])?),
            (
                tables.profiles.clone(),
                keys_of([profile_pk(site_id, shopper_key)])?,
            ),
        ]);
        if with_popularity {
            // Popularity may be a little stale: eventually consistent reads cost half.
            let mut pop = keys_of([site_id.to_string()])?;
            pop.consistent_read = Some(false);
            request.insert(tables.popularity.clone(), pop);
        }
        let mut items = self.batch_get(request).await?;
        let mut first = |table: &str| items.remove(table).and_then(|v| v.into_iter().next());
        Ok(RecommendRead {
            tenant: first(&tables.tenants).map(tenant_from_item).transpose()?,
            profile: first(&tables.profiles).map(profile_from_item).transpose()?,
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
}
