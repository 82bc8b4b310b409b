//! `affinity-admin`: operator commands against the configured tables (local stack or AWS).
//!
//! `affinity-admin create-demo-tenant [SITE_ID]` creates (or re-activates) a demo tenant whose site id
//! is `SITE_ID` (default `demo`), with a fresh API key, and prints `{"site_id", "tenant_id", "api_key"}`.
//! The key is shown only here; only its SHA-256 is stored.

use affinity::config::{self, Needs, Tables};
use affinity::store::dynamo::DynamoStore;
use affinity::tenant::{new_api_key, tenant_id_for, Tenant, TenantStatus};

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
            let store =
                DynamoStore::new(aws_sdk_dynamodb::Client::new(&config::aws().await), tables);
            let domain = format!("{site_id}.demo.affinity.local");
            let (api_key, api_key_sha256) = new_api_key(&site_id)?;
            let now = affinity::rfc3339(affinity::now_ms());
            let tenant = Tenant {
                tenant_id: tenant_id_for("demo", &domain),
                site_id: site_id.clone(),
                platform: "demo".into(),
                shop_domain: domain,
                status: TenantStatus::Active,
                scopes: vec![],
                consent_granted_at: Some(now.clone()),
                messaging_consent: false,
                messaging_consent_at: None,
                access_token_ciphertext: None,
                pii_key_ciphertext: None,
                api_key_sha256: Some(api_key_sha256),
                default_region: None,
                created_at: now,
            };
            store.put_tenant(&tenant).await?;
            println!(
                "{}",
                serde_json::json!({"site_id": site_id, "tenant_id": tenant.tenant_id, "api_key": api_key})
            );
            Ok(())
        }
        _ => Err("usage: affinity-admin create-demo-tenant [SITE_ID]".into()),
    }
}
