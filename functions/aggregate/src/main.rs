//! The aggregate Lambda (DynamoDB stream of the events table): wiring only.

use affinity::config::{self, Needs, Tables};
use affinity::observe::{self, AwsCalls};
use affinity::store::dynamo::DynamoStore;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    config::init_logging();
    let tables = Tables::from_env(Needs::READ_MODEL)?;
    let calls = AwsCalls::default();
    let deps = aggregate::Deps {
        store: DynamoStore::new(
            observe::dynamodb_client(&config::aws().await, &calls),
            tables,
        ),
        decay: config::decay_from_env()?,
    };
    run(service_fn(
        |event: LambdaEvent<aws_lambda_events::event::dynamodb::Event>| {
            let (deps, calls) = (&deps, &calls);
            async move {
                let report = aggregate::handle(deps, event.payload).await;
                calls.log_usage();
                Ok::<_, Error>(report.response())
            }
        },
    ))
    .await
}
