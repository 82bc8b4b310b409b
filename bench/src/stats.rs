//! Percentiles (nearest rank) of latency samples, in milliseconds.

use serde_json::{json, Value};
use std::time::Duration;

/// `{n, mean, min, p50, p90, p99, max}` of `samples`, in ms (3 decimals).
pub fn summary(samples: &[Duration]) -> Value {
    let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    summary_ms(&mut ms)
}

/// The same for values already in ms (or any unit).
pub fn summary_ms(v: &mut [f64]) -> Value {
    if v.is_empty() {
        return json!({"n": 0});
    }
    v.sort_by(f64::total_cmp);
    let r = |x: f64| (x * 1000.0).round() / 1000.0;
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    json!({
        "n": v.len(),
        "mean": r(mean),
        "min": r(v[0]),
        "p50": r(pct(v, 50.0)),
        "p90": r(pct(v, 90.0)),
        "p99": r(pct(v, 99.0)),
        "max": r(v[v.len() - 1]),
    })
}

/// Nearest-rank percentile of sorted values.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
