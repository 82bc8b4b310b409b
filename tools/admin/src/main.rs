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
//!
//! Arguments are parsed by clap: `--help` on the command or any subcommand prints its usage, and an
//! unknown flag or a missing value is a usage error (exit status 2), never taken as a site id.

use affinity::config::{self, Needs, Tables};
use affinity::install::Install;
use affinity::kms::Kms;
use affinity::store::dynamo::DynamoStore;
use clap::{Parser, Subcommand};

/// Operator commands of Affinity: against the tables and KMS key of the environment (the local
/// stack's `.stack/env`, or AWS).
#[derive(Debug, Parser)]
#[command(name = "affinity-admin", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create (or re-key) a complete demo store: a KMS-sealed pepper, an API key and an identity
    /// secret. Prints {"site_id", "tenant_id", "api_key", "identity_secret"} (shown only here).
    /// Needs the tenants table (TENANTS_TABLE) and KMS_KEY_ID in the environment (.stack/env locally).
    CreateDemoTenant {
        /// The store's site id: 1-128 characters of letters, digits and `_=/+.-`.
        #[arg(default_value = "demo", value_parser = parse_site_id)]
        site_id: String,
    },
    /// Print a signed identity token, as a merchant's server makes one for a logged-in customer
    /// (README, "Identity tokens"). Needs no AWS.
    IdentityToken {
        /// The store's site id.
        #[arg(long)]
        site: String,
        /// The customer id the token vouches for.
        #[arg(long)]
        customer: String,
        /// The store's identity secret (hex), as create-demo-tenant printed it.
        #[arg(long)]
        secret: String,
        /// Seconds until the token expires.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
        /// The customer's email: its SHA-256 (trimmed, lower-cased) goes into the token.
        #[arg(long)]
        email: Option<String>,
        /// The customer's phone (E.164 digits): its SHA-256 goes into the token.
        #[arg(long)]
        phone: Option<String>,
    },
}

/// A site id as the API takes it, else why not.
fn parse_site_id(s: &str) -> Result<String, String> {
    if affinity::event::is_valid_id(s) {
        Ok(s.to_string())
    } else {
        Err("the site id must be 1-128 characters of letters, digits and _=/+.-".into())
    }
}

/// The token for `customer` of `site`, expiring `ttl` seconds from now.
fn identity_token(
    site: &str,
    customer: &str,
    secret: &str,
    ttl: i64,
    email: Option<&str>,
    phone: Option<&str>,
) -> Result<String, Box<dyn std::error::Error>> {
    use affinity::identity::{sha256_hex, sign, Claims, IdentitySecret};
    affinity::ids::CustomerId::parse(customer).map_err(|r| format!("--customer {r}"))?;
    let secret = IdentitySecret::from_text(secret)?;
    let now_s = affinity::now_ms() / 1000;
    Ok(sign(
        &secret,
        site,
        &Claims {
            customer_id: customer.to_string(),
            expires_s: now_s + ttl,
            email_sha256: email.map(|e| sha256_hex(&e.trim().to_lowercase())),
            phone_sha256: phone.map(|p| sha256_hex(p.trim().trim_start_matches('+'))),
        },
    ))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli.command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("affinity-admin: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), Box<dyn std::error::Error>> {
    match command {
        Command::CreateDemoTenant { site_id } => {
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
        Command::IdentityToken {
            site,
            customer,
            secret,
            ttl,
            email,
            phone,
        } => {
            let token = identity_token(
                &site,
                &customer,
                &secret,
                ttl,
                email.as_deref(),
                phone.as_deref(),
            )?;
            println!("{token}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_is_not_a_site_id() {
        let err =
            Cli::try_parse_from(["affinity-admin", "create-demo-tenant", "--help"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
        let err =
            Cli::try_parse_from(["affinity-admin", "create-demo-tenant", "--bogus"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::UnknownArgument);
        let err = Cli::try_parse_from(["affinity-admin", "create-demo-tenant", "a b"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
    }

    #[test]
    fn site_ids_and_defaults() {
        match Cli::try_parse_from(["affinity-admin", "create-demo-tenant"]).map(|c| c.command) {
            Ok(Command::CreateDemoTenant { site_id }) => assert_eq!(site_id, "demo"),
            other => panic!("{other:?}"),
        }
        match Cli::try_parse_from(["affinity-admin", "create-demo-tenant", "shop-2"])
            .map(|c| c.command)
        {
            Ok(Command::CreateDemoTenant { site_id }) => assert_eq!(site_id, "shop-2"),
            other => panic!("{other:?}"),
        }
        let parsed = Cli::try_parse_from([
            "affinity-admin",
            "identity-token",
            "--site",
            "demo",
            "--customer",
            "c1",
            "--secret",
            "00",
        ])
        .map(|c| c.command);
        match parsed {
            Ok(Command::IdentityToken { ttl, email, .. }) => {
                assert_eq!(ttl, 3600);
                assert_eq!(email, None);
            }
            other => panic!("{other:?}"),
        }
        let err = Cli::try_parse_from(["affinity-admin", "identity-token", "--site", "demo"])
            .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }
}
