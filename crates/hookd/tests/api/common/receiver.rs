//! A webhook receiver for tests: an axum server on a loopback port that records every request and
//! answers from a per-path script (then a per-path default).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Answer {
    Status(u16),
    /// A status with extra headers (e.g. `Retry-After`, `Location`).
    WithHeaders(u16, Vec<(&'static str, String)>),
    /// A status with a body of this many bytes.
    Body(u16, usize),
    /// Sleep, then answer 200 (a slow or hanging endpoint).
    Hang(Duration),
}

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The current Unix time in seconds, for verifying a delivery's signature timestamp.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl Received {
    /// Every header as `(name, value)`, as a verifier takes them.
    pub fn header_pairs(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
            .collect()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Script {
    queued: HashMap<String, VecDeque<Answer>>,
    defaults: HashMap<String, Answer>,
}

#[derive(Clone)]
pub struct Receiver {
    pub base: String,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Script>>,
    arrived: Arc<Notify>,
    /// TCP connections accepted so far.
    connections: Arc<AtomicUsize>,
}

impl Receiver {
    pub async fn start() -> Self {
        let receiver = Self {
            base: String::new(),
            received: Arc::default(),
            script: Arc::default(),
            arrived: Arc::new(Notify::new()),
            connections: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let connections = receiver.connections.clone();
        let listener = axum::serve::ListenerExt::tap_io(listener, move |_| {
            connections.fetch_add(1, Ordering::Relaxed);
        });
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::any(answer))
            .with_state(receiver.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, ..receiver }
    }

    /// The URL of an endpoint on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// TCP connections accepted so far (keep-alive reuse shows as fewer).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Answers the next requests to `path` with `answers`, in order, then with the default.
    pub fn script(&self, path: &str, answers: impl IntoIterator<Item = Answer>) {
        let mut script = self.script.lock().unwrap();
        script
            .queued
            .entry(normalize(path))
            .or_default()
            .extend(answers);
    }

    /// Answers requests to `path` with `answer` once its script is used up (initially 200).
    pub fn set_default(&self, path: &str, answer: Answer) {
        self.script
            .lock()
            .unwrap()
            .defaults
            .insert(normalize(path), answer);
    }

    pub fn received(&self, path: &str) -> Vec<Received> {
        let path = normalize(path);
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Waits until `path` has received at least `count` requests (at most 20 s).
    pub async fn wait_for(&self, path: &str, count: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let notified = self.arrived.notified();
            let got = self.received(path);
            if got.len() >= count {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("{path}: expected {count} requests, got {}", got.len());
            }
        }
    }
}

fn normalize(path: &str) -> String {
    format!("/{}", path.trim_start_matches('/'))
}

async fn answer(
    State(receiver): State<Receiver>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = normalize(&path);
    let answer = {
        let mut script = receiver.script.lock().unwrap();
        let queued = script.queued.get_mut(&path).and_then(VecDeque::pop_front);
        queued
            .or_else(|| script.defaults.get(&path).cloned())
            .unwrap_or(Answer::Status(200))
    };
    // Recorded on arrival, before any hang, so tests can see what is in flight.
    receiver.received.lock().unwrap().push(Received {
        path,
        headers,
        body,
    });
    receiver.arrived.notify_waiters();
    if let Answer::Hang(duration) = &answer {
        tokio::time::sleep(*duration).await;
    }
    match answer {
        Answer::Status(code) => status(code).into_response(),
        Answer::WithHeaders(code, headers) => {
            let mut response = status(code).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
        Answer::Body(code, size) => (status(code), "x".repeat(size)).into_response(),
        Answer::Hang(_) => StatusCode::OK.into_response(),
    }
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap()
}
