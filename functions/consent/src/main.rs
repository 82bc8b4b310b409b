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
    let deps = consent::Deps {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), tables),
        kms: Kms::new(aws_sdk_kms::Client::new(&aws), key_id),
        platform,
        config: settings,
        clock: affinity::now_ms,
    };
    run(service_fn(|req| {
        let deps = &deps;
        async move { Ok::<_, std::convert::Infallible>(consent::handle(deps, req).await) }
    }))
    .await
}
