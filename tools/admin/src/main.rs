//! `affinity-admin`: operator commands against the configured tables and KMS key (local stack or AWS).
//!
//! `affinity-admin create-demo-tenant [SITE_ID]` creates a demo store whose site id is `SITE_ID`
//! (default `demo`), complete as an install makes it: a pepper sealed by KMS (`KMS_KEY_ID`), so that
//! messaging consent and email/phone hashing work, and an API key. Run again on the same site id, it
//! issues a new API key. Prints `{"site_id", "tenant_id", "api_key"}`; the key is shown only here (only
//! its SHA-256 is stored).

use affinity::config::{self, Needs, Tables};
use affinity::install::Install;
use affinity::kms::Kms;
use affinity::store::dynamo::DynamoStore;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("affinity-admin: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("create-demo-tenant") => {
            let site_id = args.get(1).cloned().unwrap_or_else(|| "demo".to_string());
            if !affinity::event::is_valid_id(&site_id) {
                return Err(
                    "the site id must be 1-128 characters of letters, digits and _=/+.-".into(),
                );
            }
            let tables = Tables::from_env(Needs {
                tenants: true,
                ..Needs::default()
            })?;
            let key_id = config::required("KMS_KEY_ID")?;
            let aws = config::aws().await;
            let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), tables);
            let kms = Kms::new(aws_sdk_kms::Client::new(&aws), key_id);
            let clock = affinity::clock::SystemClock;
            let c = Install {
                store: &store,
                sealer: &kms,
                clock: &clock,
            }
            .create_demo(&site_id)
            .await?;
            println!(
                "{}",
                serde_json::json!({"site_id": c.site_id, "tenant_id": c.tenant_id, "api_key": c.api_key})
            );
            Ok(())
        }
        _ => Err("usage: affinity-admin create-demo-tenant [SITE_ID]".into()),
    }
}
