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
    /// Publish each event to one of this many owners, drawn at random (`owner` is
    /// [`owner_name`]); `None`: events without an owner.
    pub owners: Option<u32>,
}

/// Digits of a bench owner's number: owners are `o0000000` to `o9999999`.
const OWNER_DIGITS: usize = 7;

/// The name of bench owner `index`, fixed-width so a request body is patched in place.
pub fn owner_name(index: u32) -> String {
    format!("o{index:0width$}", width = OWNER_DIGITS)
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
    crate::runtime::install_crypto_provider();
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .no_proxy()
        .build()
        .unwrap_or_default()
}

/// Digits of every event's `sent_us`: Unix microseconds have 16 from 2001 until 2286.
const SENT_US_DIGITS: usize = 16;

/// One event's JSON with `sent_us` as given; padding brings `data` to about `payload_bytes`.
/// `sent_us` comes first so the receiver finds it fast.
fn event_json(event_type: &str, payload_bytes: usize, sent_us: &str) -> String {
    let pad = payload_bytes.saturating_sub(40);
    format!(
        r#"{{"event":"{event_type}","data":{{"sent_us":{sent_us},"pad":"{}"}}}}"#,
        "x".repeat(pad)
    )
}

/// [`event_json`] published to an owner (whose digits a request overwrites).
fn owned_event_json(event_type: &str, payload_bytes: usize, sent_us: &str) -> String {
    let event = event_json(event_type, payload_bytes, sent_us);
    format!(r#"{{"owner":"{}",{}"#, owner_name(0), &event[1..])
}

/// A publisher's request body, built once: each request copies it and writes the publish time
/// into every event's `sent_us` digits. Formatting a fresh body per request (each event
/// formatted and padded, then joined and wrapped: five copies of every byte) cost the bench
/// process ≈ 4% of the machine at full load, CPU that hookd shares.
struct RequestBody {
    template: Vec<u8>,
    /// Where each event's [`SENT_US_DIGITS`] digits start in `template`.
    slots: Vec<usize>,
    /// Where each event's owner digits start, when events go to owners.
    owner_slots: Vec<usize>,
    owners: u32,
    path: &'static str,
}

impl RequestBody {
    fn new(spec: &LoadSpec) -> Self {
        const KEY: &str = r#""sent_us":"#;
        const OWNER_KEY: &str = r#""owner":"o"#;
        let sent_us = "1".repeat(SENT_US_DIGITS);
        let event = match spec.owners {
            Some(_) => owned_event_json(&spec.event_type, spec.payload_bytes, &sent_us),
            None => event_json(&spec.event_type, spec.payload_bytes, &sent_us),
        };
        let in_event = event.find(KEY).unwrap_or_default() + KEY.len();
        let owner_in_event = event.find(OWNER_KEY).map(|at| at + OWNER_KEY.len());
        let mut owner_slots = Vec::new();
        let (count, prefix, suffix, path) = match spec.batch {
            0 | 1 => (1, "", "", "/api/events"),
            n => (n, r#"{"events":["#, "]}", "/api/events/batch"),
        };
        let mut template = String::from(prefix);
        let mut slots = Vec::with_capacity(count);
        for i in 0..count {
            if i > 0 {
                template.push(',');
            }
            slots.push(template.len() + in_event);
            owner_slots.extend(owner_in_event.map(|at| template.len() + at));
            template.push_str(&event);
        }
        template.push_str(suffix);
        Self {
            template: template.into_bytes(),
            slots,
            owner_slots,
            owners: spec.owners.unwrap_or(1).max(1),
            path,
        }
    }

    /// The body with every `sent_us` set to `now_us` (zero-padded or capped to its digits, which
    /// a working clock never needs).
    fn render(&self, now_us: u64) -> Vec<u8> {
        let digits = format!(
            "{:0width$}",
            now_us.min(10u64.pow(SENT_US_DIGITS as u32) - 1),
            width = SENT_US_DIGITS
        );
        let mut body = self.template.clone();
        for &slot in &self.slots {
            body[slot..slot + SENT_US_DIGITS].copy_from_slice(digits.as_bytes());
        }
        // A cheap, uniform-enough draw of each event's owner from the clock and its position.
        let mut draw = now_us ^ 0x9E37_79B9_7F4A_7C15;
        for &slot in &self.owner_slots {
            draw ^= draw << 13;
            draw ^= draw >> 7;
            draw ^= draw << 17;
            let owner = owner_name((draw % u64::from(self.owners)) as u32);
            body[slot..slot + OWNER_DIGITS].copy_from_slice(&owner.as_bytes()[1..]);
        }
        body
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
            let body = RequestBody::new(&spec);
            let url = format!("{base_url}{}", body.path);
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
                let sent = client
                    .post(&url)
                    .bearer_auth(&api_key)
                    .header("content-type", "application/json")
                    .body(body.render(unix_us()))
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
        let spec = |batch, payload_bytes| LoadSpec {
            publishers: 1,
            batch,
            payload_bytes,
            rate: None,
            duration: Duration::from_secs(1),
            max_events: None,
            event_type: "a".into(),
            owners: None,
        };
        let one = RequestBody::new(&spec(1, 1024));
        assert_eq!(one.path, "/api/events");
        let body = one.render(1_765_000_000_123_456);
        assert!((1000..1100).contains(&body.len()), "{}", body.len());
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            parsed["data"]["sent_us"].as_u64(),
            Some(1_765_000_000_123_456)
        );
        assert_eq!(parsed["event"], "a");

        let batch = RequestBody::new(&spec(3, 100));
        assert_eq!(batch.path, "/api/events/batch");
        // Each request carries its own publish time in every event.
        for now in [1_765_000_000_000_001, 1_765_000_009_999_999] {
            let parsed: serde_json::Value = serde_json::from_slice(&batch.render(now)).unwrap();
            let events = parsed["events"].as_array().unwrap();
            assert_eq!(events.len(), 3);
            for event in events {
                assert_eq!(event["data"]["sent_us"].as_u64(), Some(now));
                assert_eq!(event["data"]["pad"].as_str().unwrap().len(), 60);
            }
        }
    }

    #[test]
    fn events_go_to_owners_drawn_across_the_range() {
        let spec = LoadSpec {
            publishers: 1,
            batch: 4,
            payload_bytes: 100,
            rate: None,
            duration: Duration::from_secs(1),
            max_events: None,
            event_type: "a".into(),
            owners: Some(5),
        };
        let body = RequestBody::new(&spec);
        let mut seen = std::collections::BTreeSet::new();
        for now in 1_765_000_000_000_000..1_765_000_000_000_050 {
            let parsed: serde_json::Value = serde_json::from_slice(&body.render(now)).unwrap();
            for event in parsed["events"].as_array().unwrap() {
                assert_eq!(event["data"]["sent_us"].as_u64(), Some(now));
                seen.insert(event["owner"].as_str().unwrap().to_owned());
            }
        }
        let all: std::collections::BTreeSet<String> = (0..5).map(owner_name).collect();
        assert_eq!(seen, all, "every owner drawn, and no other");
    }
}
