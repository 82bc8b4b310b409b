//! The tenant-delete Lambda: wiring only. One binary serves the HTTP routes (API Gateway) and the
//! EventBridge schedule that continues unfinished deletions; see the library for both.

use affinity::config::{self, Needs, Tables};
use affinity::kms::{Kms, Peppers, PEPPER_TTL};
use affinity::oauth::Secret;
use affinity::store::dynamo::DynamoStore;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    config::init_logging();
    let tables = Tables::from_env(Needs::ALL)?;
    let shopify_secret = Secret::new(config::required("SHOPIFY_CLIENT_SECRET")?);
    let kms_key_id = config::required("KMS_KEY_ID")?;
    let (settings, request_budget_ms) = tenant_delete::settings_from_env()?;
    let (shopify_base_url, platform_timeout) = tenant_delete::platform_from_env()?;
    let platform = affinity::oauth::client::PlatformClient::new(platform_timeout)
        .map_err(|e| format!("cannot load the system's root certificates: {e}"))?;
    let aws = config::aws().await;
    let calls = affinity::observe::AwsCalls::default();
    let deps = tenant_delete::Deps {
        store: DynamoStore::new(affinity::observe::dynamodb_client(&aws, &calls), tables),
        peppers: Peppers::new(
            Kms::new(affinity::observe::kms_client(&aws, &calls), kms_key_id),
            PEPPER_TTL,
        ),
        settings,
        request_budget_ms,
        shopify_secret,
        platform,
        shopify_base_url,
        clock: affinity::clock::system(),
    };
    run(service_fn(|event: LambdaEvent<Value>| {
        let (deps, calls) = (&deps, &calls);
        async move {
            let out = tenant_delete::invoke(deps, event).await;
            calls.log_usage();
            out
        }
    }))
    .await
}
