//! The cold-start baseline: a lambda_runtime binary that builds nothing and answers every event with
//! `null`. Built with the same release profile as the functions.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(|_: LambdaEvent<serde_json::Value>| async {
        Ok::<_, Error>(serde_json::Value::Null)
    }))
    .await
}
