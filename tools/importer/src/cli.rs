//! Command-line interface.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Replays public e-commerce data sets through Affinity's ingest API and shows what the
/// service recommends afterwards.
#[derive(Debug, Parser)]
#[command(name = "affinity-import", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read a data file, send its events to the API, then print the recommendations of its
    /// most active shoppers.
    ///
    /// Every row the file has ends up as an event, a bad row (printed on stderr with its line
    /// number and reason) or a skipped row (counted by reason). Output: one JSON line per
    /// reported shopper on stdout, then one JSON line of totals; a human-readable summary and
    /// a progress bar (on a terminal) on stderr.
    ///
    /// Exit status: 0 when the import ran (bad rows and events the API rejected are expected
    /// and counted); 1 when the API was unreachable or answered other than 2xx/503; 2 for a
    /// usage error or a file that cannot be read (wrong --format: missing columns); 3 when the
    /// store already holds this file's events with other timestamps (another shift, or
    /// --keep-times against a shifted import): refused, nothing changed.
    #[command(after_long_help = "Examples:\n  \
        affinity-import replay --api http://127.0.0.1:9000 --site demo --api-key KEY --format uci data/uci-online-retail-sample.csv\n  \
        affinity-import replay --api http://127.0.0.1:9000 --site demo --live --format rees46 data/rees46-2019-oct-sample.csv\n  \
        affinity-import replay --dry-run --format gms data/google-merch-store-sessions.csv")]
    Replay(ReplayArgs),
}

/// The source formats the importer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// REES46 multi-category store clickstream (event_time,event_type,product_id,...).
    Rees46,
    /// Google Merchandise Store hit-level Google Analytics export (visitId,time,productSKU,...).
    Gms,
    /// UCI Online Retail invoice lines (InvoiceNo,StockCode,...,CustomerID,Country).
    Uci,
}

impl Format {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Rees46 => "rees46",
            Format::Gms => "gms",
            Format::Uci => "uci",
        }
    }
}

/// Options of `replay`.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Base URL of the Affinity API, plain HTTP (e.g. http://127.0.0.1:9000).
    #[arg(long, env = "AFFINITY_API_URL", required_unless_present = "dry_run")]
    pub api: Option<String>,

    /// The site (tenant) id the events belong to.
    #[arg(long, env = "AFFINITY_SITE", required_unless_present = "dry_run")]
    pub site: Option<String>,

    /// API key, sent as `Authorization: Bearer KEY`.
    #[arg(long, env = "AFFINITY_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Format of FILE.
    #[arg(long, value_enum)]
    pub format: Format,

    /// The data file (CSV with a header row).
    pub file: PathBuf,

    /// Send through the live route (events at most 7 days old), shaped like a storefront
    /// sends: one shopper's consecutive events per request, at most 25.
    #[arg(long, conflicts_with = "import")]
    pub live: bool,

    /// Send through the import route (any past time), up to 500 events and 1 MiB per request
    /// across shoppers. The default.
    #[arg(long)]
    pub import: bool,

    /// Move all timestamps so that the last event happens now (minus 5 seconds), keeping order
    /// and spacing. The default: affinities decay with a half-life of 30 days, so years-old
    /// events would count for nearly nothing (see --keep-times).
    #[arg(long, conflicts_with = "keep_times")]
    pub shift_to_now: bool,

    /// Keep the file's own timestamps. Affinities decay with a half-life of 30 days from the time
    /// of each event: events a year old weigh 2^-12 (about 0.0002) of a fresh one, and the tool
    /// warns how much the newest event has decayed.
    #[arg(long)]
    pub keep_times: bool,

    /// Requests in flight at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: u16,

    /// Read only the first N data rows.
    #[arg(long, value_name = "N")]
    pub limit_rows: Option<u64>,

    /// How many of the most active shoppers (most events in the file) to show
    /// recommendations for at the end (0: none).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub report: usize,

    /// A shell command to run after sending and before asking for recommendations, e.g. one that
    /// drains the events stream into the popularity aggregate locally
    /// (`python scripts/stream_pump.py --drain`). The import stops if it fails.
    #[arg(long, value_name = "COMMAND")]
    pub before_report: Option<String>,

    /// Live route: a shopper's request ends when their next event comes more than this many
    /// seconds later (or in another session).
    #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
    pub live_gap: u64,

    /// How many times to send again what a 503 answer says was not stored, or a request that
    /// got no answer, waiting 0.25 s, 0.5 s, 1 s, ... in between.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub retries: u32,

    /// Seconds to wait for one answer of the API.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,

    /// Read and shape the events, print the counts, send nothing.
    #[arg(long)]
    pub dry_run: bool,
}
