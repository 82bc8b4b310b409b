//! Shopper profiles: [`ProfileStore`].

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnConsumedCapacity, TransactWriteItem};

use super::attrs::{build_err, corrupt, n, s, unavailable, version_of, Item};
use super::batch::keys_of;
use super::{profile_pk, tenant_from_item, tenant_pk, DynamoStore};
use crate::profile::Profile;
use crate::store::{
    split_claimant, ProfileRecord, ProfileStore, ProfileWrite, StoreError, MAX_TRANSACT_ACTIONS,
};
use crate::tenant::Tenant;

/// The profiles table's sparse index of links by the profile they point to: partition key
/// [`LINK_ATTR`], `{site_id}#{profile key}`, on every alias and claim item.
pub const BY_LINK: &str = "by_link";
/// The attribute [`BY_LINK`] is keyed by.
pub const LINK_ATTR: &str = "link_pk";
/// The profiles table's sparse index of claimant items by the identity key they claim: partition key
/// [`CLAIM_ATTR`], `{site_id}#{identity key}`.
pub const BY_CLAIM: &str = "by_claim";
/// The attribute [`BY_CLAIM`] is keyed by.
pub const CLAIM_ATTR: &str = "claim_pk";

pub(super) fn profile_from_item(mut item: Item) -> Result<ProfileRecord, StoreError> {
    let version = version_of(&item)?;
    if let Some(AttributeValue::S(to)) = item.remove("linked_to") {
        // A claim at an identity key says so; a claimant item is one by its `claim_pk`.
        let claim = matches!(item.get("claim"), Some(AttributeValue::Bool(true)))
            || item.contains_key(CLAIM_ATTR);
        return Ok(if claim {
            ProfileRecord::Claim {
                linked_to: to,
                version,
            }
        } else {
            ProfileRecord::Alias {
                linked_to: to,
                version,
            }
        });
    }
    let profile: Profile = serde_dynamo::from_item(item).map_err(corrupt)?;
    Ok(ProfileRecord::Profile {
        profile: Box::new(profile),
        version,
    })
}

/// Profile items read back, keyed by shopper key (the `pk` without its `{site_id}#` prefix).
pub(super) fn profiles_from_items(
    site_id: &str,
    items: impl IntoIterator<Item = Item>,
) -> Result<HashMap<String, ProfileRecord>, StoreError> {
    let prefix = format!("{site_id}#");
    let mut found = HashMap::new();
    for item in items {
        let Some(AttributeValue::S(pk)) = item.get("pk") else {
            return Err(StoreError::Corrupt("profile without pk".into()));
        };
        let key = pk.strip_prefix(&prefix).unwrap_or(pk).to_string();
        found.insert(key, profile_from_item(item)?);
    }
    Ok(found)
}

fn profile_to_item(
    site_id: &str,
    key: &str,
    record: &ProfileRecord,
    version: u64,
) -> Result<Item, StoreError> {
    let link = |linked_to: &str| {
        HashMap::from([
            ("linked_to".to_string(), s(linked_to)),
            (LINK_ATTR.to_string(), s(profile_pk(site_id, linked_to))),
        ])
    };
    let mut item: Item = match record {
        ProfileRecord::Profile { profile, .. } => {
            serde_dynamo::to_item(profile.as_ref()).map_err(corrupt)?
        }
        ProfileRecord::Alias { linked_to, .. } => link(linked_to),
        ProfileRecord::Claim { linked_to, .. } => {
            let mut item = link(linked_to);
            match split_claimant(key) {
                Some((identity, _)) => {
                    item.insert(CLAIM_ATTR.to_string(), s(profile_pk(site_id, identity)))
                }
                None => item.insert("claim".to_string(), AttributeValue::Bool(true)),
            };
            item
        }
    };
    item.insert("pk".into(), s(profile_pk(site_id, key)));
    item.insert("site_id".into(), s(site_id));
    item.insert("version".into(), n(version));
    Ok(item)
}

impl ProfileStore for DynamoStore {
    async fn profiles(
        &self,
        site_id: &str,
        keys: &[String],
    ) -> Result<HashMap<String, ProfileRecord>, StoreError> {
        let mut out = HashMap::new();
        for chunk in keys.chunks(100) {
            let request = HashMap::from([(
                self.tables().profiles.clone(),
                keys_of(chunk.iter().map(|k| profile_pk(site_id, k)))?,
            )]);
            let items = self.batch_get(request).await?;
            out.extend(profiles_from_items(site_id, items.into_values().flatten())?);
        }
        Ok(out)
    }

    async fn tenant_and_profiles(
        &self,
        site_id: &str,
        keys: &[String],
    ) -> Result<(Option<Tenant>, HashMap<String, ProfileRecord>), StoreError> {
        let tables = self.tables();
        let (first, rest) = keys.split_at(keys.len().min(99));
        let mut request = HashMap::from([(tables.tenants.clone(), keys_of([tenant_pk(site_id)])?)]);
        if !first.is_empty() {
            request.insert(
                tables.profiles.clone(),
                keys_of(first.iter().map(|k| profile_pk(site_id, k)))?,
            );
        }
        let mut items = self.batch_get(request).await?;
        let tenant = items
            .remove(&tables.tenants)
            .and_then(|v| v.into_iter().next())
            .map(tenant_from_item)
            .transpose()?;
        let mut found =
            profiles_from_items(site_id, items.remove(&tables.profiles).unwrap_or_default())?;
        if !rest.is_empty() {
            found.extend(self.profiles(site_id, rest).await?);
        }
        Ok((tenant, found))
    }

    async fn save_profiles(
        &self,
        site_id: &str,
        writes: Vec<ProfileWrite>,
    ) -> Result<(), StoreError> {
        if writes.len() > MAX_TRANSACT_ACTIONS {
            // DynamoDB would refuse the transaction whole (a ValidationException); say why here.
            return Err(StoreError::Unavailable(format!(
                "{} profile writes in one transaction; at most {MAX_TRANSACT_ACTIONS}",
                writes.len()
            )));
        }
        let puts: Vec<Put> = writes
            .iter()
            .map(|w| {
                let version = w.expected.filter(|_| !w.overwrite).map_or(1, |v| v + 1);
                let item = profile_to_item(site_id, &w.key, &w.record, version)?;
                let b = Put::builder()
                    .table_name(&self.tables().profiles)
                    .set_item(Some(item));
                let b = match w.expected {
                    _ if w.overwrite => b,
                    None => b.condition_expression("attribute_not_exists(pk)"),
                    Some(v) => b
                        .condition_expression("version = :v")
                        .expression_attribute_values(":v", n(v)),
                };
                b.build().map_err(build_err)
            })
            .collect::<Result<_, _>>()?;
        if puts.len() == 1 {
            let p = puts.into_iter().next().ok_or(StoreError::Conflict)?;
            let r = self
                .client()
                .put_item()
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .table_name(p.table_name())
                .set_item(Some(p.item().clone()))
                .set_condition_expression(p.condition_expression().map(str::to_string))
                .set_expression_attribute_values(p.expression_attribute_values().cloned())
                .send()
                .await;
            return match r {
                Ok(_) => Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    Err(StoreError::Conflict)
                }
                Err(e) => Err(unavailable(e)),
            };
        }
        let items = puts
            .into_iter()
            .map(|p| TransactWriteItem::builder().put(p).build())
            .collect();
        match self
            .client()
            .transact_write_items()
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_transaction_canceled_exception()) =>
            {
                Err(StoreError::Conflict)
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}
