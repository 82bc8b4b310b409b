//! A tiny fake of the Affinity API on 127.0.0.1: records every request and answers with what the
//! test's responder says. One request per connection (`Connection: close`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }

    /// The `events` array of an ingest request.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.json()["events"]
            .as_array()
            .cloned()
            .expect("body has an events array")
    }
}

type Responder = dyn Fn(&Recorded, usize) -> (u16, String) + Send + Sync;

/// The running fake.
pub struct FakeApi {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeApi {
    /// Starts the fake; `respond(request, n)` gets the request and its number among all
    /// requests (0-based) and returns the status and JSON body.
    pub fn start(
        respond: impl Fn(&Recorded, usize) -> (u16, String) + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let respond: Arc<Responder> = Arc::new(respond);
        let recorded = Arc::clone(&requests);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let recorded = Arc::clone(&recorded);
                let respond = Arc::clone(&respond);
                thread::spawn(move || serve(stream, &recorded, &*respond));
            }
        });
        FakeApi { addr, requests }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }
}

fn serve(stream: TcpStream, recorded: &Mutex<Vec<Recorded>>, respond: &Responder) {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(len) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body).expect("body");
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).expect("chunk size");
            let size = usize::from_str_radix(size.trim(), 16).expect("hex size");
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).expect("chunk");
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    let request = Recorded {
        method,
        path,
        headers,
        body,
    };
    let n = {
        let mut all = recorded.lock().expect("lock");
        all.push(request.clone());
        all.len() - 1
    };
    let (status, text) = respond(&request, n);
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        503 => "Service Unavailable",
        _ => "Whatever",
    };
    let mut stream = reader.into_inner();
    let _ = write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
    let _ = stream.flush();
}

/// `data/{name}` of the repository.
pub fn data_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(name)
}

/// A 200 ingest answer accepting every event of the request.
pub fn accept_all(request: &Recorded) -> (u16, String) {
    let n = request.events().len();
    (
        200,
        format!(r#"{{"accepted":{n},"duplicates":0,"rejected":[],"pii_dropped":0}}"#),
    )
}

/// A recommendations answer naming the shopper.
pub fn recommendations_for(path: &str) -> (u16, String) {
    let shopper = path
        .split("/shoppers/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or("?");
    (
        200,
        serde_json::json!({
            "shopper_id": shopper,
            "preferred_categories": [{"name": "electronics.smartphone", "score": 2.5}],
            "preferred_brands": [{"name": "samsung", "score": 1.5}],
            "items": [{"product_id": "1004856", "category": "electronics.smartphone",
                        "brand": "samsung", "score": 0.9, "reason": "category"}],
        })
        .to_string(),
    )
}

/// The fake lookup route (`POST .../recommendations/lookup`): one matched result per shopper asked,
/// in order, each with the answer of [`recommendations_for`].
pub fn lookup_for(request: &Recorded) -> (u16, String) {
    let body = request.json();
    let results: Vec<serde_json::Value> = body["shoppers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let shopper = s["shopper_id"].as_str().unwrap_or("?");
            let (_, one) =
                recommendations_for(&format!("/v1/sites/x/shoppers/{shopper}/recommendations"));
            let mut one: serde_json::Value = serde_json::from_str(&one).unwrap_or_default();
            one["index"] = serde_json::json!(i);
            one["matched"] = serde_json::json!(true);
            one["shopper_id"] = serde_json::json!(format!("g:{shopper}"));
            one
        })
        .collect();
    (200, serde_json::json!({ "results": results }).to_string())
}
