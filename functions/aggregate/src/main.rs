//! The aggregate Lambda (DynamoDB stream of the events table): wiring only.

use affinity::config::{self, Needs, Tables};
use affinity::store::dynamo::DynamoStore;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    config::init_logging();
    let tables = Tables::from_env(Needs {
        tenants: true,
        popularity: true,
        ..Needs::default()
    })?;
    let deps = aggregate::Deps {
        store: DynamoStore::new(aws_sdk_dynamodb::Client::new(&config::aws().await), tables),
        decay: config::decay_from_env()?,
    };
    run(service_fn(
        |event: LambdaEvent<aws_lambda_events::event::dynamodb::Event>| {
            let deps = &deps;
            async move {
                aggregate::handle(deps, event.payload)
                    .await
                    .map_err(|e| Error::from(e.to_string()))
            }
        },
    ))
    .await
}
