//! The function without the local harness: a minimal Lambda runtime API in this process (HTTP/1.1,
//! keep-alive, TCP_NODELAY, each answer written in one piece), N instances of a function's release
//! binary polling it, and the load workers handing it API Gateway HTTP API (payload 2.0) events
//! directly. No gateway.py, no cargo lambda: what is left is the function, its DynamoDB calls and the
//! runtime protocol, as on AWS.
//!
//! Why: under gateway.py and `cargo lambda watch`, a request that the function answers in about a
//! millisecond takes 44 ms at the median (see BENCHMARKS.md, "the harness's own cost"): two 40 ms
//! Nagle/delayed-ACK stalls, one in gateway.py's answer (headers and body written separately on a
//! socket without TCP_NODELAY), one in cargo lambda's runtime API (the `/next` answer's head and body
//! in separate segments).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// Where the function's answer (or its error) goes.
type Reply = mpsc::Sender<Result<Vec<u8>, String>>;

struct Invocation {
    id: String,
    event: Vec<u8>,
    reply: Reply,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<VecDeque<Invocation>>,
    ready: Condvar,
    pending: Mutex<HashMap<String, Reply>>,
    init_errors: Mutex<Vec<String>>,
}

/// The runtime API and the instances polling it.
pub struct Runtime {
    shared: Arc<Shared>,
    children: Vec<Child>,
    next_id: AtomicU64,
}

fn read_request(
    r: &mut BufReader<TcpStream>,
) -> std::io::Result<Option<(String, String, Vec<u8>)>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut length = 0usize;
    let mut chunked = false;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 {
            return Ok(None);
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                length = v.parse().unwrap_or(0);
            } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            if n == 0 {
                // Trailers, up to the empty line.
                loop {
                    let mut t = String::new();
                    if r.read_line(&mut t)? == 0 || t.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + n, 0);
            r.read_exact(&mut body[start..])?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
        }
    } else if length > 0 {
        body.resize(length, 0);
        r.read_exact(&mut body)?;
    }
    Ok(Some((method, path, body)))
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn serve(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    while let Some((method, path, body)) = read_request(&mut r)? {
        let accepted = b"HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n{\"status\":\"OK\"}";
        if method == "GET" && path.ends_with("/runtime/invocation/next") {
            let inv = {
                let mut q = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if let Some(inv) = q.pop_front() {
                        break inv;
                    }
                    q = shared.ready.wait(q).unwrap_or_else(|e| e.into_inner());
                }
            };
            shared
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(inv.id.clone(), inv.reply);
            let mut out = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: {}\r\n\
                 lambda-runtime-deadline-ms: {}\r\nlambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:bench\r\n\
                 lambda-runtime-trace-id: Root=1-00000000-000000000000000000000000;Sampled=0\r\ncontent-length: {}\r\n\r\n",
                inv.id,
                now_ms() + 10_000,
                inv.event.len()
            )
            .into_bytes();
            out.extend_from_slice(&inv.event);
            w.write_all(&out)?;
        } else if method == "POST" && (path.ends_with("/response") || path.ends_with("/error")) {
            let id = path.rsplit('/').nth(1).unwrap_or("").to_string();
            let ok = path.ends_with("/response");
            if let Some(tx) = shared
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id)
            {
                let _ = tx.send(if ok {
                    Ok(body)
                } else {
                    Err(String::from_utf8_lossy(&body).into_owned())
                });
            }
            w.write_all(accepted)?;
        } else if method == "POST" && path.ends_with("/init/error") {
            shared
                .init_errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(String::from_utf8_lossy(&body).into_owned());
            w.write_all(accepted)?;
        } else {
            w.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")?;
        }
    }
    Ok(())
}

impl Runtime {
    /// Starts the runtime API and `instances` copies of `bin` (environment inherited, plus the Lambda
    /// variables), each logging to `{log_dir}/direct-{name}-{i}.log`.
    pub fn start(bin: &Path, instances: usize, log_dir: &Path) -> Result<Runtime, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = s.clone();
                thread::spawn(move || serve(stream, s));
            }
        });
        let name = bin
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or("fn")
            .to_string();
        std::fs::create_dir_all(log_dir).map_err(|e| format!("{}: {e}", log_dir.display()))?;
        let mut children = Vec::new();
        for i in 1..=instances {
            let log = File::create(log_dir.join(format!("direct-{name}-{i}.log")))
                .map_err(|e| e.to_string())?;
            let err = log.try_clone().map_err(|e| e.to_string())?;
            let mut cmd = Command::new(bin);
            if std::env::var_os("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").is_none() {
                cmd.env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256");
            }
            let child = cmd
                .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
                .env("AWS_LAMBDA_FUNCTION_NAME", &name)
                .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
                .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("direct-{i}"))
                .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
                .stdin(Stdio::null())
                .stdout(Stdio::from(log))
                .stderr(Stdio::from(err))
                .process_group(0)
                .spawn()
                .map_err(|e| format!("{}: {e}", bin.display()))?;
            children.push(child);
        }
        let rt = Runtime {
            shared,
            children,
            next_id: AtomicU64::new(0),
        };
        Ok(rt)
    }

    /// One invocation: the event in, the function's answer out (as the runtime API received it).
    pub fn invoke(&self, event: Vec<u8>) -> Result<Vec<u8>, String> {
        let (tx, rx) = mpsc::channel();
        let id = format!("bench-{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(Invocation {
                id,
                event,
                reply: tx,
            });
        self.shared.ready.notify_one();
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(r) => r,
            Err(_) => {
                let init = self
                    .shared
                    .init_errors
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone();
                Err(format!("no answer within 60 s; init errors: {init:?}"))
            }
        }
    }
}

/// What the instances used, read from wait4 when they are stopped.
#[derive(Debug, Default, Clone, Copy)]
pub struct Usage {
    /// User + system CPU seconds of all instances, from their start.
    pub cpu_s: f64,
    /// The largest peak RSS of one instance, MiB.
    pub max_rss_mb: f64,
}

impl Runtime {
    /// Stops the instances and returns their CPU time and peak RSS.
    pub fn stop(mut self) -> Usage {
        let mut u = Usage::default();
        for c in self.children.drain(..) {
            let pid = c.id() as libc::pid_t;
            // SAFETY: pid is our child, not yet reaped (std's Child is never waited on).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            let mut status = 0;
            // SAFETY: zeroed rusage is a valid out-parameter.
            let mut r: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: reaps our child.
            if unsafe { libc::wait4(pid, &mut status, 0, &mut r) } == pid {
                let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
                u.cpu_s += secs(r.ru_utime) + secs(r.ru_stime);
                u.max_rss_mb = u.max_rss_mb.max(r.ru_maxrss as f64 / 1024.0);
            }
        }
        u
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// CPU seconds (user + system) this process has used so far, all threads.
pub fn self_cpu_s() -> f64 {
    // SAFETY: zeroed rusage is a valid out-parameter.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    unsafe {
        libc::getrusage(libc::RUSAGE_SELF, &mut r);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(r.ru_utime) + secs(r.ru_stime)
}

/// The API Gateway HTTP API event of a request, as scripts/gateway.py builds it.
pub fn http_event(
    method: &str,
    route_key: &str,
    path: &str,
    query: &str,
    params: Value,
    body: Option<&[u8]>,
) -> Vec<u8> {
    let mut query_params = serde_json::Map::new();
    for kv in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        query_params.insert(k.to_string(), Value::String(v.to_string()));
    }
    let mut ev = json!({
        "version": "2.0",
        "routeKey": format!("{method} {route_key}"),
        "rawPath": path,
        "rawQueryString": query,
        "headers": {
            "host": "127.0.0.1",
            "content-type": "application/json",
            "user-agent": "affinity-bench",
            "x-forwarded-for": "127.0.0.1",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "bench",
            "domainName": "127.0.0.1",
            "domainPrefix": "127",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "affinity-bench"},
            "requestId": "bench",
            "routeKey": format!("{method} {route_key}"),
            "stage": "$default",
            "time": "29/Nov/2026:00:00:00 +0000",
            "timeEpoch": now_ms() as u64,
        },
        "isBase64Encoded": false,
        "pathParameters": params,
    });
    if !query_params.is_empty() {
        ev["queryStringParameters"] = Value::Object(query_params);
    }
    if let Some(b) = body {
        ev["body"] = Value::String(String::from_utf8_lossy(b).into_owned());
    }
    serde_json::to_vec(&ev).unwrap_or_default()
}

/// The status code and the parsed body of a function's answer (API Gateway response format).
pub fn answer(raw: &[u8]) -> (u16, Value) {
    let v: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
    let status = v.get("statusCode").and_then(Value::as_u64).unwrap_or(0) as u16;
    let body = v
        .get("body")
        .and_then(Value::as_str)
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, body)
}
