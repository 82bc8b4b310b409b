//! The DynamoDB adapter: items in, records out. No `AttributeValue` map leaves this module.
//!
//! Key layout (see `docs/DESIGN.md`): tenants at `pk = site#{site_id}`; events at
//! `pk = {site_id}#{guest id}`, `sk = event_id`; profiles at `pk = {site_id}#{shopper key}`; popularity at
//! `pk = {site_id}`. Every data item carries `site_id` for the `by_site` index that tenant deletion queries.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, KeysAndAttributes, Put, PutRequest, ReturnConsumedCapacity,
    TransactWriteItem, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use aws_smithy_types::error::display::DisplayErrorContext;

use super::{
    EventSink, PopularityStore, ProfileRecord, ProfileStore, ProfileWrite, RecommendRead,
    RecommendSource, StoreError, StoredEvent, TenantLookup,
};
use crate::config::Tables;
use crate::popularity::Popularity;
use crate::profile::Profile;
use crate::tenant::Tenant;

type Item = HashMap<String, AttributeValue>;

/// Most attempts for a batch whose items DynamoDB left unprocessed (throttling), with exponential
/// backoff from [`BACKOFF_BASE_MS`].
pub const BATCH_ATTEMPTS: u32 = 6;
/// First backoff, in ms (then 2x each attempt, with jitter).
pub const BACKOFF_BASE_MS: u64 = 25;

/// The DynamoDB store. Cheap to clone (the SDK client is reference-counted).
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    tables: Tables,
}

/// The tenant record's key.
pub fn tenant_pk(site_id: &str) -> String {
    format!("site#{site_id}")
}

/// A profile item's key.
pub fn profile_pk(site_id: &str, shopper_key: &str) -> String {
    format!("{site_id}#{shopper_key}")
}

/// An event item's partition key.
pub fn event_pk(site_id: &str, shopper_id: &str) -> String {
    format!("{site_id}#{shopper_id}")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn unavailable<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(DisplayErrorContext(e).to_string())
}

fn corrupt(e: serde_dynamo::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

async fn backoff(attempt: u32) {
    let base = BACKOFF_BASE_MS << attempt.min(8);
    // Jitter from the clock's nanoseconds: enough to spread retries of concurrent requests.
    let jitter = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()),
    ) % (base / 2 + 1);
    tokio::time::sleep(Duration::from_millis(base / 2 + jitter)).await;
}

/// Reads a tenant item.
///
/// # Errors
/// [`StoreError::Corrupt`] when the item does not hold a tenant.
pub fn tenant_from_item(item: Item) -> Result<Tenant, StoreError> {
    serde_dynamo::from_item(item).map_err(corrupt)
}

/// The item of a tenant record.
///
/// # Errors
/// [`StoreError::Corrupt`] when it cannot be serialized (it always can).
pub fn tenant_to_item(t: &Tenant) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(t).map_err(corrupt)?;
    item.insert("pk".into(), s(tenant_pk(&t.site_id)));
    Ok(item)
}

fn profile_from_item(mut item: Item) -> Result<ProfileRecord, StoreError> {
    let version = match item.get("version") {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| StoreError::Corrupt("version".into()))?,
        _ => 0,
    };
    if let Some(AttributeValue::S(to)) = item.remove("linked_to") {
        return Ok(ProfileRecord::Alias {
            linked_to: to,
            version,
        });
    }
    let profile: Profile = serde_dynamo::from_item(item).map_err(corrupt)?;
    Ok(ProfileRecord::Profile {
        profile: Box::new(profile),
        version,
    })
}

/// Profile items read back, keyed by shopper key (the `pk` without its `{site_id}#` prefix).
fn profiles_from_items(
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
    let mut item: Item = match record {
        ProfileRecord::Profile { profile, .. } => {
            serde_dynamo::to_item(profile.as_ref()).map_err(corrupt)?
        }
        ProfileRecord::Alias { linked_to, .. } => {
            HashMap::from([("linked_to".to_string(), s(linked_to.clone()))])
        }
    };
    item.insert("pk".into(), s(profile_pk(site_id, key)));
    item.insert("site_id".into(), s(site_id));
    item.insert("version".into(), n(version));
    Ok(item)
}

/// Reads an event item (also from a stream record's new image).
///
/// # Errors
/// [`StoreError::Corrupt`] when the item is not an event.
pub fn event_from_item(item: Item) -> Result<StoredEvent, StoreError> {
    serde_dynamo::from_item(item).map_err(corrupt)
}

/// The item of a stored event.
///
/// # Errors
/// [`StoreError::Corrupt`] when it cannot be serialized (it always can).
pub fn event_to_item(e: &StoredEvent) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(e).map_err(corrupt)?;
    item.insert("pk".into(), s(event_pk(&e.site_id, &e.shopper_id)));
    item.insert("sk".into(), s(e.event_id.clone()));
    Ok(item)
}

fn popularity_from_item(item: Item) -> Result<(Popularity, u64), StoreError> {
    let version = match item.get("version") {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| StoreError::Corrupt("version".into()))?,
        _ => 0,
    };
    Ok((serde_dynamo::from_item(item).map_err(corrupt)?, version))
}

impl DynamoStore {
    /// A store over `client` and the tables a function uses.
    pub fn new(client: Client, tables: Tables) -> Self {
        Self { client, tables }
    }

    /// The SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table names.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Creates or replaces a tenant record.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`].
    pub async fn put_tenant(&self, t: &Tenant) -> Result<(), StoreError> {
        self.client
            .put_item()
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .table_name(&self.tables.tenants)
            .set_item(Some(tenant_to_item(t)?))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// `BatchGetItem` with `UnprocessedKeys` retried; returns the items per table.
    async fn batch_get(
        &self,
        mut request: HashMap<String, KeysAndAttributes>,
    ) -> Result<HashMap<String, Vec<Item>>, StoreError> {
        let mut out: HashMap<String, Vec<Item>> = HashMap::new();
        for attempt in 0..BATCH_ATTEMPTS {
            let resp = self
                .client
                .batch_get_item()
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .set_request_items(Some(request))
                .send()
                .await
                .map_err(unavailable)?;
            for (table, items) in resp.responses.unwrap_or_default() {
                out.entry(table).or_default().extend(items);
            }
            match resp.unprocessed_keys {
                Some(rest) if !rest.is_empty() => {
                    request = rest;
                    backoff(attempt).await;
                }
                _ => return Ok(out),
            }
        }
        Err(StoreError::Unavailable(
            "BatchGetItem left keys unprocessed after retries".into(),
        ))
    }

    fn keys_of(pks: impl IntoIterator<Item = String>) -> Result<KeysAndAttributes, StoreError> {
        KeysAndAttributes::builder()
            .set_keys(Some(
                pks.into_iter()
                    .map(|pk| HashMap::from([("pk".to_string(), s(pk))]))
                    .collect(),
            ))
            .consistent_read(true)
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    async fn write_batch(&self, table: &str, items: Vec<Item>) -> Result<(), StoreError> {
        let mut requests: Vec<WriteRequest> = items
            .into_iter()
            .map(|item| {
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
                    .map_err(|e| StoreError::Unavailable(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        for attempt in 0..BATCH_ATTEMPTS {
            let resp = self
                .client
                .batch_write_item()
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .request_items(table, requests)
                .send()
                .await
                .map_err(unavailable)?;
            match resp.unprocessed_items.and_then(|mut m| m.remove(table)) {
                Some(rest) if !rest.is_empty() => {
                    requests = rest;
                    backoff(attempt).await;
                }
                _ => return Ok(()),
            }
        }
        Err(StoreError::Unavailable(
            "BatchWriteItem left items unprocessed after retries".into(),
        ))
    }
}

impl TenantLookup for DynamoStore {
    async fn tenant_by_site(&self, site_id: &str) -> Result<Option<Tenant>, StoreError> {
        let resp = self
            .client
            .get_item()
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .table_name(&self.tables.tenants)
            .key("pk", s(tenant_pk(site_id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        resp.item.map(tenant_from_item).transpose()
    }
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
                self.tables.profiles.clone(),
                Self::keys_of(chunk.iter().map(|k| profile_pk(site_id, k)))?,
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
        let (first, rest) = keys.split_at(keys.len().min(99));
        let mut request = HashMap::from([(
            self.tables.tenants.clone(),
            Self::keys_of([tenant_pk(site_id)])?,
        )]);
        if !first.is_empty() {
            request.insert(
                self.tables.profiles.clone(),
                Self::keys_of(first.iter().map(|k| profile_pk(site_id, k)))?,
            );
        }
        let mut items = self.batch_get(request).await?;
        let tenant = items
            .remove(&self.tables.tenants)
            .and_then(|v| v.into_iter().next())
            .map(tenant_from_item)
            .transpose()?;
        let mut found = profiles_from_items(
            site_id,
            items.remove(&self.tables.profiles).unwrap_or_default(),
        )?;
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
        let puts: Vec<Put> = writes
            .iter()
            .map(|w| {
                let version = w.expected.map_or(1, |v| v + 1);
                let item = profile_to_item(site_id, &w.key, &w.record, version)?;
                let b = Put::builder()
                    .table_name(&self.tables.profiles)
                    .set_item(Some(item));
                let b = match w.expected {
                    None => b.condition_expression("attribute_not_exists(pk)"),
                    Some(v) => b
                        .condition_expression("version = :v")
                        .expression_attribute_values(":v", n(v)),
                };
                b.build()
                    .map_err(|e| StoreError::Unavailable(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        if puts.len() == 1 {
            let p = puts.into_iter().next().ok_or(StoreError::Conflict)?;
            let r = self
                .client
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
            .client
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

impl EventSink for DynamoStore {
    async fn put_events(&self, events: Vec<StoredEvent>) -> Vec<usize> {
        let mut failed = Vec::new();
        let mut tasks = tokio::task::JoinSet::new();
        for (chunk_no, chunk) in events.chunks(25).enumerate() {
            let start = chunk_no * 25;
            let len = chunk.len();
            let items: Result<Vec<Item>, StoreError> = chunk.iter().map(event_to_item).collect();
            let this = self.clone();
            tasks.spawn(async move {
                let r = match items {
                    Ok(items) => this.write_batch(&this.tables.events, items).await,
                    Err(e) => Err(e),
                };
                (start, len, r)
            });
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((_, _, Ok(()))) => {}
                Ok((start, len, Err(e))) => {
                    tracing::error!(error = %e, events = len, "event batch not stored");
                    failed.extend(start..start + len);
                }
                Err(e) => {
                    tracing::error!(error = %e, "event batch task failed");
                    // The chunk is unknown here: report every event not otherwise accounted as failed.
                    return (0..events.len()).collect();
                }
            }
        }
        failed.sort_unstable();
        failed
    }
}

impl RecommendSource for DynamoStore {
    async fn recommend_read(
        &self,
        site_id: &str,
        shopper_key: &str,
        with_popularity: bool,
    ) -> Result<RecommendRead, StoreError> {
        let mut request = HashMap::from([
            (
                self.tables.tenants.clone(),
                Self::keys_of([tenant_pk(site_id)])?,
            ),
            (
                self.tables.profiles.clone(),
                Self::keys_of([profile_pk(site_id, shopper_key)])?,
            ),
        ]);
        if with_popularity {
            // Popularity may be a little stale: eventually consistent reads cost half.
            let mut pop = Self::keys_of([site_id.to_string()])?;
            pop.consistent_read = Some(false);
            request.insert(self.tables.popularity.clone(), pop);
        }
        let mut items = self.batch_get(request).await?;
        let mut first = |table: &str| items.remove(table).and_then(|v| v.into_iter().next());
        Ok(RecommendRead {
            tenant: first(&self.tables.tenants)
                .map(tenant_from_item)
                .transpose()?,
            profile: first(&self.tables.profiles)
                .map(profile_from_item)
                .transpose()?,
            popularity: first(&self.tables.popularity)
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
        let mut request = HashMap::new();
        if !keys.is_empty() {
            let mut k = Self::keys_of(keys.iter().map(|k| profile_pk(site_id, k)))?;
            // Eventually consistent: a campaign lookup may miss a link made a second ago, at half the cost.
            k.consistent_read = Some(false);
            request.insert(self.tables.profiles.clone(), k);
        }
        if with_popularity {
            let mut pop = Self::keys_of([site_id.to_string()])?;
            pop.consistent_read = Some(false);
            request.insert(self.tables.popularity.clone(), pop);
        }
        if request.is_empty() {
            return Ok((HashMap::new(), None));
        }
        let mut items = self.batch_get(request).await?;
        let found = profiles_from_items(
            site_id,
            items.remove(&self.tables.profiles).unwrap_or_default(),
        )?;
        let pop = items
            .remove(&self.tables.popularity)
            .and_then(|v| v.into_iter().next())
            .map(popularity_from_item)
            .transpose()?
            .map(|(p, _)| p);
        Ok((found, pop))
    }

    async fn profile(&self, site_id: &str, key: &str) -> Result<Option<ProfileRecord>, StoreError> {
        let resp = self
            .client
            .get_item()
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .table_name(&self.tables.profiles)
            .key("pk", s(profile_pk(site_id, key)))
            .send()
            .await
            .map_err(unavailable)?;
        resp.item.map(profile_from_item).transpose()
    }
}

impl PopularityStore for DynamoStore {
    async fn popularity(&self, site_id: &str) -> Result<(Popularity, u64), StoreError> {
        let resp = self
            .client
            .get_item()
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .table_name(&self.tables.popularity)
            .key("pk", s(site_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        match resp.item {
            Some(item) => popularity_from_item(item),
            None => Ok((Popularity::default(), 0)),
        }
    }

    async fn save_popularity(
        &self,
        site_id: &str,
        popularity: &Popularity,
        expected: u64,
    ) -> Result<(), StoreError> {
        let mut item: Item = serde_dynamo::to_item(popularity).map_err(corrupt)?;
        item.insert("pk".into(), s(site_id));
        item.insert("site_id".into(), s(site_id));
        item.insert("version".into(), n(expected + 1));
        let put = Put::builder()
            .table_name(&self.tables.popularity)
            .set_item(Some(item));
        let put = if expected == 0 {
            put.condition_expression("attribute_not_exists(pk)")
        } else {
            put.condition_expression("version = :v")
                .expression_attribute_values(":v", n(expected))
        }
        .build()
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let check = ConditionCheck::builder()
            .table_name(&self.tables.tenants)
            .key("pk", s(tenant_pk(site_id)))
            .condition_expression("#st = :active")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":active", s("active"))
            .build()
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let r = self
            .client
            .transact_write_items()
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) => {
                let reasons: Vec<String> = e
                    .as_service_error()
                    .and_then(|se| match se {
                        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(t) => {
                            Some(t.cancellation_reasons().iter().map(|r| r.code().unwrap_or("").to_string()).collect())
                        }
                        _ => None,
                    })
                    .unwrap_or_default();
                match reasons.as_slice() {
                    [first, ..] if first == "ConditionalCheckFailed" => {
                        Err(StoreError::TenantInactive)
                    }
                    [_, second] if second == "ConditionalCheckFailed" => Err(StoreError::Conflict),
                    _ => Err(unavailable(e)),
                }
            }
        }
    }
}
