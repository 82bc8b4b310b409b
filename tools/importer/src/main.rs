//! `affinity-import`: see `affinity-import --help` and `tools/importer/README.md`.

use std::io;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use affinity_importer::cli::{Cli, Command};
use affinity_importer::replay;
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    match cli.command {
        Command::Replay(args) => {
            let stdout = io::stdout();
            let mut out = stdout.lock();
            let mut err = io::stderr();
            ExitCode::from(replay::run(&args, now_ms, true, &mut out, &mut err))
        }
    }
}
