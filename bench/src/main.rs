//! `affinity-bench`: the measuring tools behind `make bench` (see `bench/run.sh` and BENCHMARKS.md).
//! Every subcommand prints one JSON object on stdout.

mod coldstart;
mod direct;
mod floor;
mod load;
mod plan;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use affinity::config::{self, Needs, Tables};
use affinity::store::dynamo::DynamoStore;
use affinity::tenant::{new_api_key, tenant_id_for, Platform, Tenant, TenantStatus};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};

#[derive(Parser)]
#[command(name = "affinity-bench")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create an active demo tenant (no messaging consent) in TENANTS_TABLE; prints site id and API key.
    Tenant {
        #[arg(long)]
        site: String,
    },
    /// Replay the REES46 file through the live ingest route, shaped like the importer's --live.
    Ingest {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        #[arg(long)]
        data: PathBuf,
        /// Send only the first N requests of the plan (warm-up).
        #[arg(long)]
        max_requests: Option<usize>,
    },
    /// GET recommendations of the file's shoppers.
    Recommend {
        #[command(flatten)]
        target: Target,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        #[arg(long)]
        data: PathBuf,
    },
    /// Requests the function answers before any DynamoDB call: the cost of the way in.
    Null {
        #[command(flatten)]
        target: Target,
        /// ingest | recommend
        #[arg(long)]
        kind: String,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        #[arg(long, default_value_t = 1000)]
        requests: usize,
    },
    /// The write floor: the replay's BatchWriteItem + PutItem per request from a bare SDK loop.
    FloorWrites {
        #[arg(long)]
        site: String,
        #[arg(long)]
        events_table: String,
        #[arg(long)]
        profiles_table: String,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        #[arg(long)]
        data: PathBuf,
        /// Write only the first N requests of the plan (warm-up).
        #[arg(long)]
        max_requests: Option<usize>,
        /// Install the functions' SDK interceptor (affinity::observe) on the client.
        #[arg(long)]
        observe: bool,
    },
    /// The read floor: GetItem of a profile, and recommend's BatchGetItem, from a bare SDK loop.
    FloorReads {
        #[arg(long)]
        site: String,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        #[arg(long, default_value_t = 2000)]
        requests: usize,
        #[arg(long)]
        data: PathBuf,
    },
    /// Start-to-first-poll and peak RSS of binaries against a fake runtime API.
    Coldstart {
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// KEY=VALUE given to the binaries (nothing else is inherited).
        #[arg(long = "env")]
        env: Vec<String>,
        bins: Vec<String>,
    },
}

/// Where the requests go: the local HTTP API (`--api`), or a function binary driven through a runtime
/// API in this process (`--direct BIN --instances N --log-dir DIR`).
#[derive(clap::Args)]
struct Target {
    #[arg(long, required_unless_present = "direct")]
    api: Option<String>,
    #[arg(long)]
    site: String,
    #[arg(long, conflicts_with = "api")]
    direct: Option<PathBuf>,
    #[arg(long, default_value_t = 4)]
    instances: usize,
    #[arg(long, default_value = ".")]
    log_dir: PathBuf,
}

impl Target {
    /// Runs `f` against the target; in direct mode, after the instances have started and answered
    /// a few requests that need no DynamoDB call (untimed).
    /// In direct mode, the answer also says what the instances used in all (from their start, warm-up
    /// included): `function_cpu_s` (user + system) and `function_peak_rss_mb` (the largest instance).
    fn with(&self, kind: &str, f: impl FnOnce(&dyn load::Api) -> Value) -> Result<Value, String> {
        match (&self.api, &self.direct) {
            (_, Some(bin)) => {
                let rt = direct::Runtime::start(bin, self.instances.max(1), &self.log_dir)?;
                let api = load::Direct {
                    rt: &rt,
                    site: self.site.clone(),
                };
                let warm =
                    load::null_probe(&api, kind, self.instances.max(1) * 8, self.instances.max(1));
                if warm["first_error"].is_string() {
                    return Err(format!("{bin:?} did not answer: {}", warm["first_error"]));
                }
                let mut v = f(&api);
                let usage = rt.stop();
                v["function_cpu_s"] = json!(usage.cpu_s);
                v["function_peak_rss_mb"] = json!(usage.max_rss_mb);
                Ok(v)
            }
            (Some(api), None) => Ok(f(&load::Http::new(api, &self.site))),
            (None, None) => Err("--api or --direct".into()),
        }
    }
}

fn plan(data: &std::path::Path) -> Result<plan::Plan, String> {
    plan::plan(data, affinity::now_ms())
}

async fn create_tenant(site_id: String) -> Result<Value, Box<dyn std::error::Error>> {
    let tables = Tables::from_env(Needs {
        tenants: true,
        ..Needs::default()
    })?;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config::aws().await), tables);
    let domain = format!("{site_id}.bench.affinity.local");
    let (api_key, api_key_sha256) = new_api_key(&site_id)?;
    let now = affinity::rfc3339(affinity::now_ms());
    let tenant = Tenant {
        tenant_id: tenant_id_for(Platform::Demo, &domain),
        site_id: site_id.clone(),
        platform: Platform::Demo,
        shop_domain: domain,
        status: TenantStatus::Active,
        scopes: vec![],
        consent_granted_at: Some(now.clone()),
        messaging_consent: false,
        messaging_consent_at: None,
        access_token_ciphertext: None,
        pepper_ciphertext: None,
        identity_secret_ciphertext: None,
        api_key_sha256: Some(api_key_sha256),
        default_region: None,
        created_at: now,
    };
    store.put_tenant(&tenant).await?;
    Ok(json!({"site_id": site_id, "tenant_id": tenant.tenant_id, "api_key": api_key}))
}

fn env_table(name: &'static str) -> Result<String, String> {
    config::required(name).map_err(|e| e.to_string())
}

async fn run(cli: Cli) -> Result<Value, String> {
    match cli.cmd {
        Cmd::Tenant { site } => create_tenant(site).await.map_err(|e| e.to_string()),
        Cmd::Ingest {
            target,
            concurrency,
            data,
            max_requests,
        } => {
            let mut p = plan(&data)?;
            if let Some(n) = max_requests {
                p.batches.truncate(n);
            }
            let c = concurrency.max(1);
            let mut v = tokio::task::block_in_place(|| {
                target.with("ingest", |api| load::ingest(api, &p, c))
            })?;
            let events = v["events"].as_f64().unwrap_or(0.0);
            if let Some(cpu) = v["function_cpu_s"].as_f64() {
                v["function_cpu_us_per_event"] = json!(cpu * 1e6 / events.max(1.0));
            }
            v["site"] = json!(target.site);
            Ok(v)
        }
        Cmd::Recommend {
            target,
            concurrency,
            requests,
            data,
        } => {
            let shoppers = plan(&data)?.shoppers();
            let c = concurrency.max(1);
            let mut v = tokio::task::block_in_place(|| {
                target.with("recommend", |api| {
                    load::recommend(api, &shoppers, requests, c)
                })
            })?;
            if let Some(cpu) = v["function_cpu_s"].as_f64() {
                v["function_cpu_us_per_request"] = json!(cpu * 1e6 / requests.max(1) as f64);
            }
            v["site"] = json!(target.site);
            Ok(v)
        }
        Cmd::Null {
            target,
            kind,
            concurrency,
            requests,
        } => {
            let c = concurrency.max(1);
            tokio::task::block_in_place(|| {
                target.with(&kind, |api| load::null_probe(api, &kind, requests, c))
            })
        }
        Cmd::FloorWrites {
            site,
            events_table,
            profiles_table,
            concurrency,
            data,
            max_requests,
            observe,
        } => {
            let mut p = plan(&data)?;
            if let Some(n) = max_requests {
                p.batches.truncate(n);
            }
            floor::writes(
                &p,
                &site,
                &events_table,
                &profiles_table,
                concurrency.max(1),
                observe,
            )
            .await
        }
        Cmd::FloorReads {
            site,
            concurrency,
            requests,
            data,
        } => {
            let shoppers = plan(&data)?.shoppers();
            let (t, p, q) = (
                env_table("TENANTS_TABLE")?,
                env_table("PROFILES_TABLE")?,
                env_table("POPULARITY_TABLE")?,
            );
            floor::reads(&site, &shoppers, (&t, &p, &q), requests, concurrency.max(1)).await
        }
        Cmd::Coldstart { runs, env, bins } => {
            let env: Vec<(String, String)> = env
                .iter()
                .filter_map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                })
                .collect();
            Ok(tokio::task::block_in_place(|| {
                coldstart::measure(&bins, runs, &env)
            }))
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("affinity-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
