//! The `replay` command: read, shape, send, report.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::cli::{Format, ReplayArgs};
use crate::client::{ApiClient, Route};
use crate::event::{format_epoch_ms, Event};
use crate::guest::guest_id;
use crate::report::{count_by_shopper, top_shoppers, write_counts, write_lookups, Reported};
use crate::send::{send_batches, SendOptions, SendTotals};
use crate::shape::{import_batches, live_batches, shift_to_now, split_large_purchases, Batch};
use crate::source::{InputError, Parsed};

/// Exit status: the import ran.
pub const EXIT_OK: u8 = 0;
/// Exit status: the API was unreachable or answered other than 2xx/503 (or output failed).
pub const EXIT_API: u8 = 1;
/// Exit status: the file could not be read.
pub const EXIT_INPUT: u8 = 2;
/// Exit status: the store already holds the file's events at other times (another shift); refused.
pub const EXIT_OTHER_TIMES: u8 = 3;

/// The half-life of the service's affinities (`AFFINITY_HALF_LIFE_DAYS` of template.yaml), in days.
pub const HALF_LIFE_DAYS: f64 = 30.0;
/// A re-run whose times differ from the stored ones by at most this (ms) is the same import (the
/// shift to now moves on with the clock); more, and it is another shift, refused.
pub const SAME_IMPORT_TOLERANCE_MS: i64 = 3_600_000;

/// How far before now `--shift-to-now` puts the last event.
pub const SHIFT_MARGIN_MS: i64 = 5_000;
/// The live route takes events at most this old.
pub const LIVE_MAX_AGE_MS: i64 = 7 * 86_400_000;
/// Bad-row reason of an event too large for any request.
pub const TOO_LARGE: &str = "event too large for one request (over 1 MiB)";

/// The last line on stdout: what happened to the file's rows and events.
#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    /// Data rows read.
    pub rows: u64,
    /// Events the API answered for.
    pub events_sent: u64,
    /// Events stored.
    pub accepted: u64,
    /// Events the API already had.
    pub duplicates: u64,
    /// Events the API refused, by `field: reason`.
    pub rejected: BTreeMap<String, u64>,
    /// Rows that could not be read, by reason.
    pub bad_rows: BTreeMap<String, u64>,
    /// Rows deliberately not imported, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Distinct shoppers among the events.
    pub shoppers: u64,
    /// Distinct product ids among the events.
    pub products: u64,
    /// Events built from the rows.
    pub events: u64,
    /// Events still not stored after the retries of 503 answers.
    pub failed: u64,
    /// Events never sent because the import stopped on an API error.
    pub not_sent: u64,
    /// Personal data fields the API dropped.
    pub pii_dropped: u64,
    /// Rows imported with an adjustment, by what was done.
    pub notes: BTreeMap<String, u64>,
    /// The route the events were shaped for: `live` or `import`.
    pub mode: String,
    /// True when nothing was sent (`--dry-run`).
    pub dry_run: bool,
}

/// Reads `args.file`, sends its events (unless `--dry-run`) and writes the report: JSON lines
/// on `out`, bad rows, warnings and the summary on `err`. `now_ms` is the current time (for
/// `--shift-to-now` and the live route's age limit). Returns the exit status.
pub fn run(
    args: &ReplayArgs,
    now_ms: i64,
    show_progress: bool,
    out: &mut dyn Write,
    err: &mut (dyn Write + Send),
) -> u8 {
    let err = Mutex::new(err);
    match run_inner(args, now_ms, show_progress, out, &err) {
        Ok(code) => code,
        Err(e) => {
            let mut err = err.lock().unwrap_or_else(|p| p.into_inner());
            // Nothing more can be done if stderr fails too.
            let _ = writeln!(err, "affinity-import: cannot write the report: {e}");
            EXIT_API
        }
    }
}

type Stderr<'a, 'b> = Mutex<&'a mut (dyn Write + Send + 'b)>;

fn say(err: &Stderr<'_, '_>, text: &str) -> io::Result<()> {
    let mut err = err.lock().unwrap_or_else(|p| p.into_inner());
    writeln!(err, "{text}")
}

/// When the store holds `event` (same event id) at another time than this run gives it, beyond
/// [`SAME_IMPORT_TOLERANCE_MS`]: the message that refuses the import. Asks the shopper's export
/// (`GET .../shoppers/{id}/export`, API key); `None` when the times agree or cannot be compared
/// (no API key, or the event is not in the export).
fn other_times(client: &ApiClient, event: &Event, keep_times: bool) -> Option<String> {
    let export = client.export(&event.shopper_id).ok()?;
    let stored = export["events"]
        .as_array()?
        .iter()
        .find(|e| e["event_id"].as_str() == Some(event.event_id.as_str()))?["ts"]
        .as_i64()?;
    let delta = event.timestamp_ms - stored;
    if delta.abs() <= SAME_IMPORT_TOLERANCE_MS {
        return None;
    }
    let now = if keep_times {
        "with the file's own times (--keep-times)"
    } else {
        "shifted to now"
    };
    Some(format!(
        "this file is already in the store with other timestamps: event {} of shopper {} is stored at {} \
         and this run would send it at {} ({} {}), {now}. Events are de-duplicated by id and keep their \
         first times, so importing again would change nothing. To import with other times, use a new \
         store (a new site id: affinity-admin create-demo-tenant NEW_SITE, or locally make down && make up), \
         or erase its shoppers first.",
        event.event_id,
        event.shopper_id,
        format_epoch_ms(stored).unwrap_or_else(|| stored.to_string()),
        format_epoch_ms(event.timestamp_ms).unwrap_or_else(|| event.timestamp_ms.to_string()),
        human_duration(delta.abs()).trim_start_matches('+'),
        if delta > 0 { "later" } else { "earlier" },
    ))
}

fn parse_file(args: &ReplayArgs) -> Result<Parsed, InputError> {
    let file = File::open(&args.file)?;
    match args.format {
        Format::Rees46 => crate::rees46::parse(file, args.limit_rows),
        Format::Gms => crate::gms::parse(file, args.limit_rows),
        Format::Uci => crate::uci::parse(file, args.limit_rows),
    }
}

fn run_inner(
    args: &ReplayArgs,
    now_ms: i64,
    show_progress: bool,
    out: &mut dyn Write,
    err: &Stderr<'_, '_>,
) -> io::Result<u8> {
    let path = args.file.display().to_string();
    let mut parsed = match parse_file(args) {
        Ok(p) => p,
        Err(e) => {
            say(err, &format!("affinity-import: {path}: {e}"))?;
            return Ok(EXIT_INPUT);
        }
    };
    let (events, split) = split_large_purchases(std::mem::take(&mut parsed.events));
    parsed.events = events;
    for _ in 0..split {
        parsed.note("purchase of more than 100 items sent as several events of the same order");
    }
    for bad in &parsed.bad_rows {
        say(
            err,
            &format!(
                "{path}:{}: bad row: {}: {}",
                bad.line, bad.reason, bad.detail
            ),
        )?;
    }

    let route = if args.live {
        Route::Live
    } else {
        Route::Import
    };
    // The live route's guest ids: each file user id under a long, stable one (crate::guest).
    let mut file_ids: HashMap<String, String> = HashMap::new();
    if route == Route::Live {
        for event in &mut parsed.events {
            let guest = guest_id(args.format.name(), &event.shopper_id);
            file_ids
                .entry(guest.clone())
                .or_insert_with(|| event.shopper_id.clone());
            event.shopper_id = guest;
        }
    }
    if args.keep_times {
        if let Some(newest) = parsed.events.iter().map(|e| e.timestamp_ms).max() {
            let days = (now_ms - newest) as f64 / 86_400_000.0;
            if days > 1.0 {
                say(err, &format!(
                    "warning: --keep-times: the newest event is {days:.0} days old; affinities decay with a \
                     half-life of {HALF_LIFE_DAYS:.0} days, so it now weighs {:.1e} of a fresh event (older ones \
                     less): the shoppers' preferences will read as nearly nothing. Leave --keep-times out to \
                     shift the file to now.",
                    (-days / HALF_LIFE_DAYS).exp2()
                ))?;
            }
        }
    } else {
        let delta = shift_to_now(&mut parsed.events, now_ms, SHIFT_MARGIN_MS);
        say(
            err,
            &format!(
                "shifted every timestamp by {} (the last event is now {} s ago; --keep-times keeps the file's times)",
                human_duration(delta),
                SHIFT_MARGIN_MS / 1000
            ),
        )?;
    }
    if route == Route::Live {
        let too_old = parsed
            .events
            .iter()
            .filter(|e| e.timestamp_ms < now_ms - LIVE_MAX_AGE_MS)
            .count();
        if too_old > 0 {
            let advice = if args.keep_times {
                "leave out --keep-times to shift them to now, or use --import"
            } else {
                "the file spans more than 7 days, so even shifted they are too old: use --import"
            };
            say(
                err,
                &format!(
                    "warning: {too_old} event(s) are more than 7 days old: the live route will reject them ({advice})"
                ),
            )?;
        }
    }

    // Serialize once; the batches and retries reuse the bytes.
    let mut json = Vec::with_capacity(parsed.events.len());
    for event in &parsed.events {
        match serde_json::to_vec(event) {
            Ok(bytes) => json.push(bytes),
            Err(e) => {
                say(
                    err,
                    &format!("affinity-import: cannot serialize {}: {e}", event.event_id),
                )?;
                return Ok(EXIT_INPUT);
            }
        }
    }
    let batches: Vec<Batch> = match route {
        Route::Live => {
            let gap_ms = i64::try_from(args.live_gap.saturating_mul(1000)).unwrap_or(i64::MAX);
            live_batches(&parsed.events, gap_ms)
        }
        Route::Import => {
            let (batches, too_large) = import_batches(&parsed.events, &json);
            for i in too_large {
                let line = parsed.events[i].line;
                let detail = format!("{} is {} bytes", parsed.events[i].event_id, json[i].len());
                say(
                    err,
                    &format!("{path}:{line}: bad row: {TOO_LARGE}: {detail}"),
                )?;
                parsed.bad(line, TOO_LARGE, detail);
            }
            batches
        }
    };
    // (A live request holds at most 25 events, far below 1 MiB for any event this tool builds.)
    let planned_requests = batches.len();

    let shopper_counts = count_by_shopper(&parsed.events);
    let products: HashSet<&str> = parsed.events.iter().flat_map(Event::product_ids).collect();
    let top: Vec<Reported> = top_shoppers(&shopper_counts, args.report)
        .into_iter()
        .map(|(shopper_id, activity)| Reported {
            user_id: file_ids.get(&shopper_id).cloned(),
            shopper_id,
            activity,
        })
        .collect();

    let mut exit = EXIT_OK;
    let mut totals = SendTotals::default();
    let mode = match route {
        Route::Live => "live",
        Route::Import => "import",
    };
    if args.dry_run {
        write_counts(&top, out)?;
    } else {
        let (api, site) = match (&args.api, &args.site) {
            (Some(api), Some(site)) => (api.as_str(), site.as_str()),
            _ => {
                say(
                    err,
                    "affinity-import: --api and --site are needed unless --dry-run",
                )?;
                return Ok(EXIT_INPUT);
            }
        };
        if !api.starts_with("http://") {
            say(
                err,
                &format!("affinity-import: --api {api:?}: only plain http:// URLs are supported (this tool has no TLS)"),
            )?;
            return Ok(EXIT_INPUT);
        }
        let client = ApiClient::new(
            api,
            site,
            args.api_key.clone(),
            Duration::from_secs(args.timeout.max(1)),
        );
        let total: u64 = batches.iter().map(|b| b.events.len() as u64).sum();
        let requests = batches.len();
        let progress = progress_bar(total, show_progress);
        say(
            err,
            &format!(
                "sending {total} events in {requests} requests to {} ({} route, {} at a time)",
                client.events_url(route),
                mode,
                args.concurrency
            ),
        )?;
        let options = SendOptions {
            route,
            concurrency: usize::from(args.concurrency),
            retries: args.retries,
            backoff: Duration::from_millis(250),
        };
        let log = |text: &str| {
            progress.suspend(|| {
                // A warning that cannot be written is not worth stopping the import for.
                let _ = say(err, &format!("warning: {text}"));
            });
        };
        // The first request alone: if the store answers that it holds all of it already, its times
        // tell whether this is the same import again (fine: duplicates) or another shift (refused).
        let mut batches = batches;
        let rest = batches.split_off(batches.len().min(1));
        let probe = batches.first().and_then(|b| b.events.first().copied());
        let (sent, mut error) = send_batches(
            &client,
            &parsed.events,
            &json,
            batches,
            &options,
            &progress,
            &log,
        );
        totals = sent;
        let refused = match probe {
            Some(i) if error.is_none() && totals.accepted == 0 && totals.duplicates > 0 => {
                other_times(&client, &parsed.events[i], args.keep_times)
            }
            _ => None,
        };
        if refused.is_some() {
            totals.not_sent += rest.iter().map(|b| b.events.len() as u64).sum::<u64>();
        } else if !rest.is_empty() {
            let (more, e) = send_batches(
                &client,
                &parsed.events,
                &json,
                rest,
                &options,
                &progress,
                &log,
            );
            totals.merge(more);
            error = e;
        }
        progress.finish_and_clear();
        if let Some(message) = refused {
            say(err, &format!("affinity-import: refused: {message}"))?;
            exit = EXIT_OTHER_TIMES;
        } else if let Some(error) = error {
            say(err, &format!("affinity-import: stopped: {error}"))?;
            exit = EXIT_API;
        } else if let Some(cmd) = args.before_report.as_deref().filter(|_| !top.is_empty()) {
            match std::process::Command::new("sh").arg("-c").arg(cmd).status() {
                Ok(st) if st.success() => exit = report_shoppers(&client, &top, out, err)?,
                Ok(st) => {
                    say(
                        err,
                        &format!("affinity-import: --before-report command failed ({st})"),
                    )?;
                    exit = EXIT_API;
                }
                Err(e) => {
                    say(
                        err,
                        &format!("affinity-import: cannot run --before-report command: {e}"),
                    )?;
                    exit = EXIT_API;
                }
            }
        } else {
            exit = report_shoppers(&client, &top, out, err)?;
        }
    }

    let report = Totals {
        rows: parsed.rows,
        events_sent: totals.events_sent,
        accepted: totals.accepted,
        duplicates: totals.duplicates,
        rejected: totals.rejected.clone(),
        bad_rows: parsed.bad_row_counts(),
        skipped: parsed.skipped.clone(),
        shoppers: shopper_counts.len() as u64,
        products: products.len() as u64,
        events: parsed.events.len() as u64,
        failed: totals.failed,
        not_sent: totals.not_sent,
        pii_dropped: totals.pii_dropped,
        notes: parsed.notes.clone(),
        mode: mode.to_string(),
        dry_run: args.dry_run,
    };
    let line = serde_json::to_string(&report).map_err(io::Error::other)?;
    writeln!(out, "{line}")?;
    out.flush()?;
    say(
        err,
        &summary(&path, args.format, &report, &totals, planned_requests),
    )?;
    Ok(exit)
}

/// Writes the report lines of `top` ([`crate::report`]): through the lookup route with the API
/// key, else (no key) only their counts, with a warning. Returns the exit status: 1 when a shopper
/// could not be looked up.
fn report_shoppers(
    client: &ApiClient,
    top: &[Reported],
    out: &mut dyn Write,
    err: &Stderr<'_, '_>,
) -> io::Result<u8> {
    if !client.has_api_key() {
        say(
            err,
            "warning: no --api-key: the shoppers' preferences and recommendations are read through the \
             API-key lookup route, so only their event counts are shown",
        )?;
        write_counts(top, out)?;
        return Ok(EXIT_OK);
    }
    let answered = write_lookups(client, top, out, &|text| say(err, text))?;
    Ok(if answered { EXIT_OK } else { EXIT_API })
}

fn progress_bar(total: u64, visible: bool) -> ProgressBar {
    let target = if visible {
        // Hidden by indicatif itself when stderr is not a terminal.
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{wide_bar}] {pos}/{len} events ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn human_duration(ms: i64) -> String {
    let sign = if ms < 0 { "-" } else { "+" };
    let s = ms.unsigned_abs() / 1000;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    format!("{sign}{d}d {h:02}:{m:02}:{s:02}")
}

fn counts(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = map.iter().map(|(k, v)| format!("{v} {k}")).collect();
    format!(": {}", parts.join("; "))
}

fn summary(
    path: &str,
    format: Format,
    t: &Totals,
    sent: &SendTotals,
    planned_requests: usize,
) -> String {
    let bad: u64 = t.bad_rows.values().sum();
    let skipped: u64 = t.skipped.values().sum();
    let rejected: u64 = t.rejected.values().sum();
    let mut s = format!(
        "\n{path} ({}), {} route{}\n  rows read     {}\n  events built  {} ({} shoppers, {} products)\n  bad rows      {bad}{}\n  skipped rows  {skipped}{}\n",
        format.name(),
        t.mode,
        if t.dry_run { ", dry run: nothing sent" } else { "" },
        t.rows,
        t.events,
        t.shoppers,
        t.products,
        counts(&t.bad_rows),
        counts(&t.skipped),
    );
    s.push_str(&format!("  requests      {planned_requests} planned\n"));
    if !t.notes.is_empty() {
        s.push_str(&format!(
            "  notes         {}\n",
            counts(&t.notes).trim_start_matches(": ")
        ));
    }
    if !t.dry_run {
        s.push_str(&format!(
            "  sent          {} events in {} requests ({} retries)\n  accepted      {}\n  duplicates    {}\n  rejected      {rejected}{}\n  failed        {} (not stored after retries)\n  not sent      {}\n  PII dropped   {}\n",
            t.events_sent,
            sent.requests,
            sent.retries,
            t.accepted,
            t.duplicates,
            counts(&t.rejected),
            t.failed,
            t.not_sent,
            t.pii_dropped,
        ));
        for example in &sent.rejected_examples {
            s.push_str(&format!("    rejected {example}\n"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(human_duration(90_061_000), "+1d 01:01:01");
        assert_eq!(human_duration(-5_000), "-0d 00:00:05");
    }
}
