//! The consent Lambda: wiring only. See the library for the handler.

use affinity::config::{self, Needs, Tables};
use affinity::kms::Kms;
use affinity::store::dynamo::DynamoStore;
use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    config::init_logging();
    let tables = Tables::from_env(Needs {
        tenants: true,
        ..Needs::default()
    })?;
    let settings = consent::Config::from_env()?;
    let key_id = config::required("KMS_KEY_ID")?;
    let platform = consent::platform::PlatformClient::new(settings.platform_timeout)
        .map_err(|e| format!("cannot load the system's root certificates: {e}"))?;
    let aws = config::aws().await;
    let calls = affinity::observe::AwsCalls::default();
    let deps = consent::Deps {
        store: DynamoStore::new(affinity::observe::dynamodb_client(&aws, &calls), tables),
        kms: Kms::new(affinity::observe::kms_client(&aws, &calls), key_id),
        platform,
        config: settings,
        clock: affinity::clock::system(),
    };
    run(service_fn(|req| {
        let (deps, calls) = (&deps, &calls);
        async move {
            let resp = consent::handle(deps, req).await;
            calls.log_usage();
            Ok::<_, std::convert::Infallible>(resp)
        }
    }))
    .await
}
