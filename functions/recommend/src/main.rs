//! The recommendation Lambda: wiring only. See the library for the handler.

use affinity::config::{self, Needs, Tables};
use affinity::identity::TenantKeys;
use affinity::kms::{Kms, PEPPER_TTL};
use affinity::observe::{self, AwsCalls};
use affinity::store::dynamo::DynamoStore;
use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    config::init_logging();
    let tables = Tables::from_env(Needs::READ_MODEL)?;
    let kms_key_id = config::required("KMS_KEY_ID")?;
    let aws = config::aws().await;
    let calls = AwsCalls::default();
    let deps = recommend::Deps {
        popularity: recommend::cache::PopularityCache::default(),
        store: DynamoStore::new(observe::dynamodb_client(&aws, &calls), tables),
        peppers: TenantKeys::new(
            Kms::new(observe::kms_client(&aws, &calls), kms_key_id),
            PEPPER_TTL,
        ),
        decay: config::decay_from_env()?,
        clock: affinity::clock::system(),
    };
    run(service_fn(|req| {
        let (deps, calls) = (&deps, &calls);
        async move {
            let resp = recommend::handle(deps, req).await;
            calls.log_usage();
            Ok::<_, std::convert::Infallible>(resp)
        }
    }))
    .await
}
