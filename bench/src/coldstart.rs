//! Cold start: time from process start to the first poll of the Lambda runtime API, and peak RSS.
//!
//! For each run: a fresh fake runtime API on 127.0.0.1 (a TCP listener that reads request heads), the
//! binary spawned with the environment a function gets (table names, KMS key, region, dummy
//! credentials, AWS endpoints on a closed loopback port so nothing can reach AWS). The clock starts
//! just before the spawn and stops when `GET /2018-06-01/runtime/invocation/next` arrives; the process
//! is then killed and reaped with wait4, whose rusage gives the peak RSS (ru_maxrss).

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::stats::summary_ms;

/// What the fake runtime API saw first.
enum First {
    Next(Instant),
    Other(String),
}

fn serve(listener: TcpListener, tx: mpsc::Sender<First>) {
    // One connection is enough: the runtime client polls /next first.
    if let Ok((mut sock, _)) = listener.accept() {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match sock.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
        let at = Instant::now();
        let head = String::from_utf8_lossy(&buf);
        let line = head.lines().next().unwrap_or("").to_string();
        let first =
            if line.starts_with("GET ") && line.contains("/2018-06-01/runtime/invocation/next") {
                First::Next(at)
            } else {
                First::Other(line)
            };
        let _ = tx.send(first);
        // Keep the socket open (a long poll) until the process is killed.
        std::mem::forget(sock);
    }
}

struct Run {
    first_poll_ms: f64,
    max_rss_kb: i64,
}

fn one(bin: &Path, env: &[(String, String)]) -> Result<Run, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || serve(listener, tx));
    let name = bin
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("fn")
        .to_string();
    let mut cmd = Command::new(bin);
    cmd.env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", &name)
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // Its own process group, so nothing it starts outlives the kill.
    cmd.process_group(0);
    let t0 = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", bin.display()))?;
    let pid = child.id() as libc::pid_t;
    let got = rx.recv_timeout(Duration::from_secs(10));
    // SAFETY: pid is our child, not yet reaped.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: reaps our child; std's Child is never waited on after this.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    if r != pid {
        return Err(format!("wait4 failed for {}", bin.display()));
    }
    match got {
        Ok(First::Next(at)) => Ok(Run {
            first_poll_ms: at.duration_since(t0).as_secs_f64() * 1000.0,
            max_rss_kb: usage.ru_maxrss,
        }),
        Ok(First::Other(line)) => Err(format!(
            "{}: first request was {line:?}, not a poll; stderr: {}",
            bin.display(),
            stderr.trim()
        )),
        Err(_) => Err(format!(
            "{}: no poll within 10 s; stderr: {}",
            bin.display(),
            stderr.trim()
        )),
    }
}

/// `runs` cold starts of each binary (after one untimed start that warms the page cache).
pub fn measure(bins: &[String], runs: usize, env: &[(String, String)]) -> Value {
    let mut out = serde_json::Map::new();
    for bin in bins {
        let path = Path::new(bin);
        let name = path
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or(bin)
            .to_string();
        let mut polls = Vec::new();
        let mut rss = Vec::new();
        let mut error = None;
        for i in 0..=runs {
            match one(path, env) {
                Ok(r) if i > 0 => {
                    polls.push(r.first_poll_ms);
                    rss.push(r.max_rss_kb as f64 / 1024.0);
                }
                Ok(_) => {}
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        out.insert(
            name,
            json!({
                "binary": bin,
                "binary_bytes": size,
                "first_poll_ms": summary_ms(&mut polls),
                "peak_rss_mb": summary_ms(&mut rss),
                "error": error,
            }),
        );
    }
    Value::Object(out)
}
