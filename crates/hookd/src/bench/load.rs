//! Load generation: concurrent publishers (fixed rate or as fast as possible), and the limit mode that
//! hits the receiver directly with the same kind of HTTP client.

use super::receiver::unix_us;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub publishers: usize,
    /// Events per request (1: `POST /api/events`; more: `POST /api/events/batch`).
    pub batch: usize,
    pub payload_bytes: usize,
    /// Events per second in total; `None` publishes as fast as the server accepts.
    pub rate: Option<f64>,
    pub duration: Duration,
    /// Stop after this many events even if time remains.
    pub max_events: Option<u64>,
    pub event_type: String,
}

#[derive(Debug, Clone, Default)]
pub struct LoadResult {
    /// Events acknowledged with a 2xx (durable).
    pub accepted: u64,
    /// Events in requests that failed.
    pub rejected: u64,
    pub elapsed: Duration,
}

pub fn http_client() -> reqwest::Client {
    crate::server::install_crypto_provider();
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .no_proxy()
        .build()
        .unwrap_or_default()
}

fn event_json(event_type: &str, payload_bytes: usize) -> String {
    // `sent_us` first so the receiver finds it fast; padding brings `data` to about payload_bytes.
    let pad = payload_bytes.saturating_sub(40);
    format!(
        r#"{{"event":"{event_type}","data":{{"sent_us":{},"pad":"{}"}}}}"#,
        unix_us(),
        "x".repeat(pad)
    )
}

fn request_body(spec: &LoadSpec) -> (String, &'static str) {
    match spec.batch {
        0 | 1 => (
            event_json(&spec.event_type, spec.payload_bytes),
            "/api/events",
        ),
        n => {
            let events: Vec<String> = (0..n)
                .map(|_| event_json(&spec.event_type, spec.payload_bytes))
                .collect();
            (
                format!(r#"{{"events":[{}]}}"#, events.join(",")),
                "/api/events/batch",
            )
        }
    }
}

/// Publishes per `spec` against `base_url` and reports what was acknowledged.
pub async fn publish(base_url: &str, api_key: &str, spec: &LoadSpec) -> LoadResult {
    let client = http_client();
    let accepted = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + spec.duration;
    let per_publisher_rate = spec.rate.map(|r| r / spec.publishers.max(1) as f64);
    let mut tasks = Vec::new();
    for _ in 0..spec.publishers.max(1) {
        let client = client.clone();
        let spec = spec.clone();
        let base_url = base_url.to_owned();
        let api_key = api_key.to_owned();
        let accepted = accepted.clone();
        let rejected = rejected.clone();
        tasks.push(tokio::spawn(async move {
            let batch = spec.batch.max(1) as u64;
            let mut ticker = per_publisher_rate.map(|rate| {
                let period = Duration::from_secs_f64(batch as f64 / rate.max(0.001));
                let mut interval = tokio::time::interval(period);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                interval
            });
            while Instant::now() < deadline {
                if spec
                    .max_events
                    .is_some_and(|max| accepted.load(Ordering::Relaxed) >= max)
                {
                    break;
                }
                if let Some(ticker) = ticker.as_mut() {
                    ticker.tick().await;
                }
                let (body, path) = request_body(&spec);
                let sent = client
                    .post(format!("{base_url}{path}"))
                    .bearer_auth(&api_key)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => {
                        accepted.fetch_add(batch, Ordering::Relaxed);
                    }
                    Ok(_) | Err(_) => {
                        rejected.fetch_add(batch, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    LoadResult {
        accepted: accepted.load(Ordering::Relaxed),
        rejected: rejected.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    }
}

/// Limit mode: `concurrency` loops POSTing `payload_bytes` bodies straight to `url` for `duration`.
/// Returns requests per second: the machine's ceiling for loopback POSTs with this client.
pub async fn limit(url: &str, concurrency: usize, payload_bytes: usize, duration: Duration) -> f64 {
    let client = http_client();
    let done = Arc::new(AtomicU64::new(0));
    let body = "x".repeat(payload_bytes);
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let client = client.clone();
        let url = url.to_owned();
        let body = body.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                let ok = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_requested_size_and_shape() {
        let one = event_json("bench.event", 1024);
        assert!((1000..1100).contains(&one.len()), "{}", one.len());
        let parsed: serde_json::Value = serde_json::from_str(&one).unwrap();
        assert!(parsed["data"]["sent_us"].as_u64().unwrap() > 0);
        let spec = LoadSpec {
            publishers: 1,
            batch: 3,
            payload_bytes: 100,
            rate: None,
            duration: Duration::from_secs(1),
            max_events: None,
            event_type: "a".into(),
        };
        let (body, path) = request_body(&spec);
        assert_eq!(path, "/api/events/batch");
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["events"].as_array().unwrap().len(), 3);
    }
}
