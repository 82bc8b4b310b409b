//! Deletion jobs: [`DeletionJobs`], items at `deletion#{tenant_id}` of the tenants table, and the queue
//! item at [`QUEUE_PK`] (a string set of tenant ids).

use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValue, TransactWriteItem, Update,
};

use super::attrs::{build_err, conflict_or_unavailable, corrupt, n, s, unavailable, Item};
use super::{tenant_pk, tenant_to_item, DynamoStore};
use crate::clock::Clock;
use crate::deletion::{Begin, DeletionJob, DeletionSettings, RunOutcome, Trigger};
use crate::store::deletion::{Completion, DeletionJobs, Lease};
use crate::store::tenants::tenant_pointer_pk;
use crate::store::StoreError;

/// The key of the queue item that lists the tenant ids whose deletion is not finished.
pub const QUEUE_PK: &str = "deletion-queue";

/// The key of a tenant's deletion job and, once completed, its tombstone.
pub fn deletion_pk(tenant_id: &str) -> String {
    format!("deletion#{tenant_id}")
}

fn job_to_item(job: &DeletionJob) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(job).map_err(corrupt)?;
    item.insert("pk".into(), s(deletion_pk(&job.tenant_id)));
    Ok(item)
}

fn job_from_item(mut item: Item) -> Result<DeletionJob, StoreError> {
    item.remove("pk");
    serde_dynamo::from_item(item).map_err(corrupt)
}

/// The queue update that adds (`ADD`) or removes (`DELETE`) `tenant_id`.
fn queue_update(action: &str, tenant_id: &str, table: &str) -> Result<Update, StoreError> {
    Update::builder()
        .table_name(table)
        .key("pk", s(QUEUE_PK))
        .update_expression(format!("{action} tenant_ids :t"))
        .expression_attribute_values(":t", AttributeValue::Ss(vec![tenant_id.to_string()]))
        .build()
        .map_err(build_err)
}

impl DeletionJobs for DynamoStore {
    async fn deletion(&self, tenant_id: &str) -> Result<Option<DeletionJob>, StoreError> {
        DynamoStore::deletion(self, tenant_id).await
    }

    async fn pending_deletions(&self) -> Result<Vec<String>, StoreError> {
        let item = self.tenants_item(QUEUE_PK.to_string()).await?;
        let mut ids = match item.as_ref().and_then(|i| i.get("tenant_ids")) {
            Some(AttributeValue::Ss(v)) => v.clone(),
            _ => Vec::new(),
        };
        ids.sort();
        Ok(ids)
    }

    async fn mark_deleting(
        &self,
        job: &DeletionJob,
        replaces: Option<i64>,
    ) -> Result<(), StoreError> {
        let tenants = &self.tables().tenants;
        let put = Put::builder()
            .table_name(tenants)
            .set_item(Some(job_to_item(job)?));
        let put = match replaces {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(requested_ms) => put
                .condition_expression("#state = :completed AND requested_ms = :old")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":completed", s("completed"))
                .expression_attribute_values(":old", n(requested_ms)),
        };
        let mark = Update::builder()
            .table_name(tenants)
            .key("pk", s(tenant_pk(job.site()?)))
            .update_expression(
                "SET #st = :deleting, messaging_consent = :no \
                 REMOVE access_token_ciphertext, pepper_ciphertext, identity_secret_ciphertext",
            )
            .condition_expression("#st IN (:active, :deleting) AND tenant_id = :tid")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":deleting", s("deleting"))
            .expression_attribute_values(":active", s("active"))
            .expression_attribute_values(":no", AttributeValue::Bool(false))
            .expression_attribute_values(":tid", s(&job.tenant_id))
            .build()
            .map_err(build_err)?;
        self.client()
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .put(put.build().map_err(build_err)?)
                    .build(),
            )
            .transact_items(TransactWriteItem::builder().update(mark).build())
            .transact_items(
                TransactWriteItem::builder()
                    .update(queue_update("ADD", &job.tenant_id, tenants)?)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| conflict_or_unavailable(e, |e| e.is_transaction_canceled_exception()))?;
        Ok(())
    }

    async fn acquire_lease(&self, lease: &Lease<'_>) -> Result<Option<DeletionJob>, StoreError> {
        let &Lease {
            tenant_id,
            run_id,
            now_ms,
            until_ms,
        } = lease;
        let r = self
            .client()
            .update_item()
            .table_name(&self.tables().tenants)
            .key("pk", s(deletion_pk(tenant_id)))
            .update_expression(
                "SET lease_owner = :me, lease_until_ms = :until, runs = if_not_exists(runs, :zero) + :one",
            )
            .condition_expression(
                "#state = :running AND (attribute_not_exists(lease_until_ms) OR lease_until_ms < :now)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":me", s(run_id))
            .expression_attribute_values(":until", n(until_ms))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":running", s("running"))
            .expression_attribute_values(":now", n(now_ms))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match r {
            Ok(out) => out.attributes.map(job_from_item).transpose(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn save_checkpoint(&self, job: &DeletionJob, run_id: &str) -> Result<(), StoreError> {
        self.client()
            .put_item()
            .table_name(&self.tables().tenants)
            .set_item(Some(job_to_item(job)?))
            .condition_expression("lease_owner = :me")
            .expression_attribute_values(":me", s(run_id))
            .send()
            .await
            .map_err(|e| {
                conflict_or_unavailable(e, |e| e.is_conditional_check_failed_exception())
            })?;
        Ok(())
    }

    async fn complete_deletion(&self, c: &Completion<'_>) -> Result<(), StoreError> {
        let tenants = &self.tables().tenants;
        let tenant_id = &c.tombstone.tenant_id;
        let mut items = Vec::new();
        if let Some(site) = c.pointer_site {
            let d = Delete::builder()
                .table_name(tenants)
                .key("pk", s(tenant_pointer_pk(tenant_id)))
                .condition_expression("site_id = :site")
                .expression_attribute_values(":site", s(site))
                .build()
                .map_err(build_err)?;
            items.push(TransactWriteItem::builder().delete(d).build());
        }
        if let Some(stub) = c.site_tombstone {
            let p = Put::builder()
                .table_name(tenants)
                .set_item(Some(tenant_to_item(stub)?))
                .condition_expression("#st = :deleting")
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":deleting", s("deleting"))
                .build()
                .map_err(build_err)?;
            items.push(TransactWriteItem::builder().put(p).build());
        }
        let p = Put::builder()
            .table_name(tenants)
            .set_item(Some(job_to_item(c.tombstone)?))
            .condition_expression("lease_owner = :me")
            .expression_attribute_values(":me", s(c.run_id))
            .build()
            .map_err(build_err)?;
        items.push(TransactWriteItem::builder().put(p).build());
        items.push(
            TransactWriteItem::builder()
                .update(queue_update("DELETE", tenant_id, tenants)?)
                .build(),
        );
        self.client()
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(|e| conflict_or_unavailable(e, |e| e.is_transaction_canceled_exception()))?;
        Ok(())
    }
}

/// A clock that is a plain function (such as [`crate::now_ms`]).
#[derive(Debug, Clone, Copy)]
struct FnClock(fn() -> i64);

impl Clock for FnClock {
    fn now_ms(&self) -> i64 {
        (self.0)()
    }
}

impl DynamoStore {
    /// [`DeletionJobs::deletion`], callable without importing the port.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Corrupt`].
    pub async fn deletion(&self, tenant_id: &str) -> Result<Option<DeletionJob>, StoreError> {
        self.tenants_item(deletion_pk(tenant_id))
            .await?
            .map(job_from_item)
            .transpose()
    }

    /// [`crate::deletion::begin`] on this store, callable without importing the port.
    ///
    /// # Errors
    /// As [`crate::deletion::begin`].
    pub async fn begin_deletion(
        &self,
        tenant_id: &str,
        trigger: Trigger,
        now_ms: i64,
    ) -> Result<Begin, StoreError> {
        crate::deletion::begin(self, tenant_id, trigger, now_ms).await
    }

    /// [`crate::deletion::run`] on this store, with `clock` a plain function of epoch ms.
    ///
    /// # Errors
    /// As [`crate::deletion::run`].
    pub async fn run_deletion(
        &self,
        tenant_id: &str,
        settings: &DeletionSettings,
        clock: fn() -> i64,
        deadline_ms: i64,
    ) -> Result<RunOutcome, StoreError> {
        crate::deletion::run(self, tenant_id, settings, &FnClock(clock), deadline_ms).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tombstone_item_holds_no_site_id_or_keys_once_completed() {
        let mut j = DeletionJob::new("demo-1", "s_1", Trigger::Operator, 1_000_000);
        j.cursor = Some("{}".into());
        j.inflight = Some("{}".into());
        let running = job_to_item(&j).expect("item");
        assert!(running.contains_key("site_id"));
        let j = j.tombstone(1_000_500, 0);
        let item = job_to_item(&j).expect("item");
        let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "clean_passes",
                "completed_at",
                "deleted",
                "passes",
                "pk",
                "requested_at",
                "requested_ms",
                "runs",
                "secrets_destroyed_at",
                "state",
                "step",
                "tenant_id",
                "trigger"
            ]
        );
        assert_eq!(job_from_item(item).expect("back"), j);
    }
}
