//! What a function asks of AWS, observed on the wire by an SDK interceptor: each request's IAM action and
//! resource, and DynamoDB's consumed capacity.
//!
//! Installed on every client a function builds (see [`dynamodb_client`], [`kms_client`]), it gives:
//! - per-invocation counts for the logs and the benchmarks ([`AwsCalls::take_counts`]): requests, write
//!   requests, write and read capacity units (DynamoDB reports them when asked with
//!   `ReturnConsumedCapacity`, which the adapter does);
//! - the IAM proof: the set of `(action, resource)` a function's code really calls
//!   ([`AwsCalls::actions`]), compared with its policy in `template.yaml` by the tests.
//!
//! IAM actions follow the service authorization reference: a `TransactWriteItems` item is authorized as
//! `PutItem`/`UpdateItem`/`DeleteItem`/`ConditionCheckItem` on its table
//! (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html>), a query
//! of an index on the index's ARN, and KMS calls are told apart by their encryption context's `purpose`.
//! Only names are read from the requests: no key, item or plaintext is kept.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    AfterDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use serde::Serialize;
use serde_json::Value;

/// One authorized action: `dynamodb:PutItem` on `affinity-profiles`, `dynamodb:Query` on
/// `affinity-events/index/by_site`, `kms:Decrypt` with purpose `pii-hash-key`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Action {
    /// `dynamodb:GetItem`, `kms:Decrypt`, ...
    pub action: String,
    /// A table name, `table/index/name`, or `purpose=...` for KMS.
    pub resource: String,
}

/// Counts since the last [`AwsCalls::take_counts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Counts {
    /// HTTP requests to DynamoDB (retries included).
    pub dynamodb_requests: u64,
    /// Of those, writes (`PutItem`, `UpdateItem`, `DeleteItem`, `BatchWriteItem`, `TransactWriteItems`).
    pub dynamodb_write_requests: u64,
    /// Write capacity units DynamoDB reported.
    pub wcu: f64,
    /// Read capacity units DynamoDB reported.
    pub rcu: f64,
    /// HTTP requests to KMS.
    pub kms_requests: u64,
}

#[derive(Debug, Default)]
struct Inner {
    actions: BTreeSet<Action>,
    counts: Counts,
}

/// The shared record of one process's AWS calls. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct AwsCalls {
    inner: Arc<Mutex<Inner>>,
}

impl AwsCalls {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every distinct action seen so far.
    pub fn actions(&self) -> BTreeSet<Action> {
        self.lock().actions.clone()
    }

    /// The counts since the last call, and resets them.
    pub fn take_counts(&self) -> Counts {
        std::mem::take(&mut self.lock().counts)
    }

    /// Logs the counts since the last call (one line per invocation, `"aws usage"`), and resets them.
    pub fn log_usage(&self) {
        let c = self.take_counts();
        tracing::info!(
            dynamodb_requests = c.dynamodb_requests,
            dynamodb_write_requests = c.dynamodb_write_requests,
            wcu = c.wcu,
            rcu = c.rcu,
            kms_requests = c.kms_requests,
            "aws usage"
        );
    }

    /// The interceptor to install on SDK clients.
    pub fn interceptor(&self) -> Recorder {
        Recorder {
            calls: self.clone(),
        }
    }
}

/// Marks, in a request's config bag, that it writes (so its consumed capacity counts as WCU).
#[derive(Debug, Clone, Copy)]
struct WriteRequest;

impl Storable for WriteRequest {
    type Storer = StoreReplace<Self>;
}

/// The SDK interceptor of [`AwsCalls`].
#[derive(Debug, Clone)]
pub struct Recorder {
    calls: AwsCalls,
}

fn dynamodb_actions(op: &str, body: &Value) -> Vec<Action> {
    let act = |a: &str, r: &str| Action {
        action: format!("dynamodb:{a}"),
        resource: r.to_string(),
    };
    let table = body.get("TableName").and_then(Value::as_str).unwrap_or("?");
    let transact = |kinds: &[(&str, &str)]| -> Vec<Action> {
        let of_item = |i: &Value| {
            kinds.iter().find_map(|(kind, a)| {
                i.get(kind)
                    .and_then(|x| x.get("TableName"))
                    .and_then(Value::as_str)
                    .map(|t| act(a, t))
            })
        };
        body.get("TransactItems")
            .and_then(Value::as_array)
            .map(|items| items.iter().filter_map(of_item).collect())
            .unwrap_or_default()
    };
    match op {
        "BatchGetItem" | "BatchWriteItem" => body
            .get("RequestItems")
            .and_then(Value::as_object)
            .map(|m| m.keys().map(|t| act(op, t)).collect())
            .unwrap_or_default(),
        // Each transaction item names its table under its kind (`{"Put": {"TableName": ...}}`).
        "TransactWriteItems" => transact(&[
            ("Put", "PutItem"),
            ("Update", "UpdateItem"),
            ("Delete", "DeleteItem"),
            ("ConditionCheck", "ConditionCheckItem"),
        ]),
        "TransactGetItems" => transact(&[("Get", "GetItem")]),
        "Query" | "Scan" => match body.get("IndexName").and_then(Value::as_str) {
            Some(ix) => vec![act(op, &format!("{table}/index/{ix}"))],
            None => vec![act(op, table)],
        },
        _ => vec![act(op, table)],
    }
}

fn capacity(v: &Value, key: &str) -> f64 {
    let one = |c: &Value| c.get(key).and_then(Value::as_f64).unwrap_or(0.0);
    match v.get("ConsumedCapacity") {
        Some(Value::Array(a)) => a.iter().map(one).sum(),
        Some(c @ Value::Object(_)) => one(c),
        _ => 0.0,
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "AffinityAwsCalls"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let req = context.request();
        let Some(target) = req.headers().get("x-amz-target") else {
            return Ok(());
        };
        let (service, op) = target.split_once('.').unwrap_or(("", target));
        let body: Value = req
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let mut inner = self.calls.lock();
        if service.starts_with("DynamoDB") {
            inner.counts.dynamodb_requests += 1;
            if matches!(
                op,
                "PutItem" | "UpdateItem" | "DeleteItem" | "BatchWriteItem" | "TransactWriteItems"
            ) {
                inner.counts.dynamodb_write_requests += 1;
                cfg.interceptor_state().store_put(WriteRequest);
            }
            inner.actions.extend(dynamodb_actions(op, &body));
        } else if service.starts_with("TrentService") {
            inner.counts.kms_requests += 1;
            let purpose = body
                .get("EncryptionContext")
                .and_then(|c| c.get("purpose"))
                .and_then(Value::as_str)
                .unwrap_or("none");
            inner.actions.insert(Action {
                action: format!("kms:{op}"),
                resource: format!("purpose={purpose}"),
            });
        }
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(bytes) = context.response().body().bytes() else {
            return Ok(());
        };
        if !bytes.windows(16).any(|w| w == b"ConsumedCapacity") {
            return Ok(());
        }
        if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
            // Answers give the total (`CapacityUnits`); whether it was spent writing or reading is what
            // the request did.
            let units = capacity(&v, "CapacityUnits");
            let write = cfg.load::<WriteRequest>().is_some();
            let mut inner = self.calls.lock();
            if write {
                inner.counts.wcu += units;
            } else {
                inner.counts.rcu += units;
            }
        }
        Ok(())
    }
}

/// A DynamoDB client for `aws`, recording into `calls`.
pub fn dynamodb_client(aws: &aws_config::SdkConfig, calls: &AwsCalls) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(aws)
            .interceptor(calls.interceptor())
            .build(),
    )
}

/// A KMS client for `aws`, recording into `calls`.
pub fn kms_client(aws: &aws_config::SdkConfig, calls: &AwsCalls) -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::config::Builder::from(aws)
            .interceptor(calls.interceptor())
            .build(),
    )
}
