//! `affinity-admin`: operator commands against the configured tables and KMS key (local stack or AWS).
//!
//! `affinity-admin create-demo-tenant [SITE_ID]` creates a demo store whose site id is `SITE_ID`
//! (default `demo`), complete as an install makes it: a pepper sealed by KMS (`KMS_KEY_ID`), so that
//! messaging consent and email/phone hashing work, and an API key. Run again on the same site id, it
//! issues a new API key and identity secret. Prints `{"site_id", "tenant_id", "api_key",
//! "identity_secret"}`; both are shown only here (only the key's SHA-256 and the secret's KMS ciphertext
//! are stored).
//!
//! `affinity-admin identity-token --site SITE --customer ID --secret HEX [--ttl SECONDS] [--email E]
//! [--phone DIGITS]` prints a signed identity token for a demo store, as a merchant's server makes
//! one (README, "Identity tokens"). It needs no AWS: the secret is the one `create-demo-tenant` printed.

use affinity::config::{self, Needs, Tables};
use affinity::install::Install;
use affinity::kms::Kms;
use affinity::store::dynamo::DynamoStore;

const USAGE: &str = "usage: affinity-admin create-demo-tenant [SITE_ID]\n       \
affinity-admin identity-token --site SITE --customer ID --secret HEX [--ttl SECONDS] [--email E] [--phone DIGITS]";

/// The token of `identity-token`'s arguments, expiring `--ttl` seconds (default 3600) from now.
fn identity_token(args: &[String]) -> Result<String, Box<dyn std::error::Error>> {
    use affinity::identity::{sha256_hex, sign, Claims, IdentitySecret};
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let site = opt("--site").ok_or(USAGE)?;
    let customer = opt("--customer").ok_or(USAGE)?;
    affinity::ids::CustomerId::parse(&customer).map_err(|r| format!("--customer {r}"))?;
    let secret = IdentitySecret::from_text(&opt("--secret").ok_or(USAGE)?)?;
    let ttl: i64 = opt("--ttl").as_deref().unwrap_or("3600").parse()?;
    let now_s = affinity::now_ms() / 1000;
    Ok(sign(
        &secret,
        &site,
        &Claims {
            customer_id: customer,
            expires_s: now_s + ttl,
            email_sha256: opt("--email").map(|e| sha256_hex(&e.trim().to_lowercase())),
            phone_sha256: opt("--phone").map(|p| sha256_hex(p.trim().trim_start_matches('+'))),
        },
    ))
}

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
                serde_json::json!({"site_id": c.site_id, "tenant_id": c.tenant_id, "api_key": c.api_key,
                    "identity_secret": c.identity_secret.as_ref().map(|s| s.expose())})
            );
            Ok(())
        }
        Some("identity-token") => {
            println!("{}", identity_token(&args[1..])?);
            Ok(())
        }
        _ => Err(USAGE.into()),
    }
}
