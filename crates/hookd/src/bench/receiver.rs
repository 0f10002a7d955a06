//! The benchmark's receiver: minimal, keep-alive, answers fast; records each delivery's arrival, its
//! `webhook-id` per endpoint (for loss and duplicate counts) and its publish→receive latency; verifies
//! a sample of signatures.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How an endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Ok,
    /// Never answers within any delivery timeout.
    Hang,
    /// Fails the first attempt of about half the events with 500.
    FailHalfFirstAttempts,
    /// Answers 200 after this long (a slow receiver: requests pile up in flight).
    Slow(Duration),
}

#[derive(Default)]
struct Log {
    /// (path, webhook-id) → times received with a 2xx answer.
    delivered: HashMap<(String, String), u32>,
    /// Distinct (path, webhook-id) pairs per path, and repeats: kept as deliveries arrive (the
    /// distinct total is `delivered.len()`).
    /// The drain loop asks for them every 50 ms; counting by a scan of `delivered` (once per path)
    /// held the lock every handler needs, and at fan-out 100 the receiver burnt more CPU than
    /// hookd (measured: 0.8 cores against hookd's 1.0 at 6,000 deliveries/s).
    distinct_by_path: HashMap<String, u64>,
    duplicates: u64,
    /// (path, webhook-id) → arrival times (Unix µs), kept only when `keep_arrivals` is on.
    arrivals: HashMap<(String, String), Vec<u64>>,
    /// Publish→receive latencies of 2xx deliveries, in microseconds.
    latencies_us: Vec<u64>,
    /// Arrival of the first and the last 2xx delivery (Unix µs).
    first_us: u64,
    last_us: u64,
}

pub struct Receiver {
    pub address: SocketAddr,
    log: Mutex<Log>,
    behaviours: Mutex<HashMap<String, Behaviour>>,
    /// Secrets by path, for the sampled signature checks.
    secrets: Mutex<HashMap<String, String>>,
    pub received: AtomicU64,
    pub failed_on_purpose: AtomicU64,
    pub signature_checks: AtomicU64,
    pub signature_failures: AtomicU64,
    /// Answers 503 to everything while true (the receiver "stopped").
    pub paused: AtomicBool,
    /// Record every arrival time per delivery (chaos tests), not only counts.
    pub keep_arrivals: AtomicBool,
}

pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl Receiver {
    pub async fn start() -> std::io::Result<Arc<Self>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let receiver = Arc::new(Self {
            address: listener.local_addr()?,
            log: Mutex::default(),
            behaviours: Mutex::default(),
            secrets: Mutex::default(),
            received: AtomicU64::new(0),
            failed_on_purpose: AtomicU64::new(0),
            signature_checks: AtomicU64::new(0),
            signature_failures: AtomicU64::new(0),
            paused: AtomicBool::new(false),
            keep_arrivals: AtomicBool::new(false),
        });
        let app = Router::new()
            .fallback(axum::routing::post(receive))
            .with_state(receiver.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(receiver)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub fn configure(&self, path: &str, behaviour: Behaviour, secret: &str) {
        if let Ok(mut behaviours) = self.behaviours.lock() {
            behaviours.insert(path.to_owned(), behaviour);
        }
        if let Ok(mut secrets) = self.secrets.lock() {
            secrets.insert(path.to_owned(), secret.to_owned());
        }
    }

    /// Distinct deliveries received (path, webhook-id) and how many arrived more than once.
    pub fn delivery_counts(&self) -> (u64, u64) {
        self.log
            .lock()
            .map(|l| (l.delivered.len() as u64, l.duplicates))
            .unwrap_or((0, 0))
    }

    pub fn distinct_for_path(&self, path: &str) -> u64 {
        self.log
            .lock()
            .map(|l| l.distinct_by_path.get(path).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Sorted latencies (µs) and the first/last arrival (Unix µs).
    pub fn take_latencies(&self) -> (Vec<u64>, u64, u64) {
        let Ok(mut log) = self.log.lock() else {
            return (Vec::new(), 0, 0);
        };
        let mut latencies = std::mem::take(&mut log.latencies_us);
        latencies.sort_unstable();
        (latencies, log.first_us, log.last_us)
    }

    /// Every (path, webhook-id) with its arrival times (only with `keep_arrivals`).
    pub fn arrivals(&self) -> HashMap<(String, String), Vec<u64>> {
        self.log
            .lock()
            .map(|l| l.arrivals.clone())
            .unwrap_or_default()
    }

    pub fn reset(&self) {
        if let Ok(mut log) = self.log.lock() {
            *log = Log::default();
        }
        self.received.store(0, Ordering::Relaxed);
        self.failed_on_purpose.store(0, Ordering::Relaxed);
    }
}

impl Log {
    /// Counts one 2xx delivery of `id` to `path`.
    fn count_delivery(&mut self, path: String, id: String) {
        let seen = self.delivered.entry((path.clone(), id)).or_insert(0);
        *seen += 1;
        if *seen > 1 {
            self.duplicates += 1;
            return;
        }
        *self.distinct_by_path.entry(path).or_insert(0) += 1;
    }
}

/// The publish time the load generator put in the event's data (`"sent_us":<digits>`), found without
/// parsing the whole body.
fn sent_us(body: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"sent_us\":";
    let start = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits: Vec<u8> = body[start..]
        .iter()
        .copied()
        .take_while(u8::is_ascii_digit)
        .collect();
    std::str::from_utf8(&digits).ok()?.parse().ok()
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let now = unix_us();
    let path = uri.path().to_owned();
    receiver.received.fetch_add(1, Ordering::Relaxed);
    if receiver.paused.load(Ordering::Relaxed) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let behaviour = receiver
        .behaviours
        .lock()
        .ok()
        .and_then(|b| b.get(&path).copied())
        .unwrap_or(Behaviour::Ok);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let id = header("webhook-id").to_owned();
    match behaviour {
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(120)).await;
            return StatusCode::OK;
        }
        Behaviour::FailHalfFirstAttempts
            if header("x-webhook-attempt") == "1"
                && id.bytes().map(u32::from).sum::<u32>() % 2 == 0 =>
        {
            receiver.failed_on_purpose.fetch_add(1, Ordering::Relaxed);
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
        Behaviour::Slow(delay) => tokio::time::sleep(delay).await,
        _ => {}
    }
    let count = receiver.received.load(Ordering::Relaxed);
    if count % 100 == 0 {
        verify_sample(&receiver, &path, &headers, &body, now);
    }
    let keep_arrivals = receiver.keep_arrivals.load(Ordering::Relaxed);
    if let Ok(mut log) = receiver.log.lock() {
        if keep_arrivals {
            log.arrivals
                .entry((path.clone(), id.clone()))
                .or_default()
                .push(now);
        }
        log.count_delivery(path, id);
        if let Some(sent) = sent_us(&body) {
            log.latencies_us.push(now.saturating_sub(sent));
        }
        if log.first_us == 0 {
            log.first_us = now;
        }
        log.last_us = now;
    }
    StatusCode::OK
}

fn verify_sample(receiver: &Receiver, path: &str, headers: &HeaderMap, body: &[u8], now_us: u64) {
    let secret = receiver
        .secrets
        .lock()
        .ok()
        .and_then(|s| s.get(path).cloned());
    let Some(secret) = secret else {
        return;
    };
    receiver.signature_checks.fetch_add(1, Ordering::Relaxed);
    if hookd_verify::verify(&secret, headers, body, (now_us / 1_000_000) as i64).is_err() {
        receiver.signature_failures.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_distinct_deliveries_per_path_and_repeats() {
        let mut log = Log::default();
        for (path, id) in [
            ("/a", "1"),
            ("/a", "2"),
            ("/b", "1"),
            ("/a", "1"),
            ("/a", "1"),
        ] {
            log.count_delivery(path.into(), id.into());
        }
        assert_eq!((log.delivered.len() as u64, log.duplicates), (3, 2));
        assert_eq!(log.distinct_by_path.get("/a"), Some(&2));
        assert_eq!(log.distinct_by_path.get("/b"), Some(&1));
        assert_eq!(log.delivered.get(&("/a".into(), "1".into())), Some(&3));
    }

    #[test]
    fn finds_the_publish_time() {
        assert_eq!(sent_us(br#"{"data":{"sent_us":123,"pad":"x"}}"#), Some(123));
        assert_eq!(sent_us(br#"{"data":{}}"#), None);
    }
}
