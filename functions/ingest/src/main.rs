//! The ingest Lambda: wiring only. See the library for the handler.

use affinity::config::{self, Needs, Tables};
use affinity::store::dynamo::DynamoStore;
use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    config::init_logging();
    let tables = Tables::from_env(Needs {
        tenants: true,
        events: true,
        profiles: true,
        ..Needs::default()
    })?;
    let deps = ingest::Deps {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&config::aws().await), tables),
        decay: config::decay_from_env()?,
        event_ttl_s: config::event_ttl_s_from_env()?,
        clock: affinity::now_ms,
    };
    run(service_fn(|req| {
        let deps = &deps;
        async move { Ok::<_, std::convert::Infallible>(ingest::handle(deps, req).await) }
    }))
    .await
}
