//! A webhook receiver for hookd: verifies each delivery's Standard Webhooks signature with
//! `hookd-verify`, drops redeliveries by `webhook-id`, and logs what arrived. See README.md.

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use hookd_verify::Verifier;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

const DEFAULT_LISTEN: &str = "127.0.0.1:9000";

/// How many recent `webhook-id`s are remembered; hookd's retries of one event arrive well within this.
const REMEMBERED_IDS: usize = 10_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let listen = std::env::var("RECEIVER_LISTEN").unwrap_or_else(|_| DEFAULT_LISTEN.into());
    let secret = std::env::var("WEBHOOK_SECRET").context(
        "WEBHOOK_SECRET is not set: export the subscription's signing secret (whsec_...)",
    )?;
    let verifier =
        Verifier::new(&secret).context("WEBHOOK_SECRET is not a valid signing secret")?;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!("receiving webhooks on http://{listen}/webhooks");
    axum::serve(listener, app(AppState::new(verifier)))
        .with_graceful_shutdown(async { _ = tokio::signal::ctrl_c().await })
        .await
        .context("server failed")
}

fn app(state: AppState) -> Router {
    Router::new()
        .route("/webhooks", post(receive_webhook))
        .with_state(state)
}

#[derive(Clone)]
struct AppState {
    /// Holds the decoded secret; checks signatures and the timestamp (default 5-minute tolerance).
    verifier: Arc<Verifier>,
    /// Ids of webhooks already processed. In memory, so a restart forgets them: production receivers
    /// record the id in their database, in the same transaction as the work the webhook triggers.
    processed: Arc<Mutex<RecentIds>>,
}

impl AppState {
    fn new(verifier: Verifier) -> Self {
        let verifier = Arc::new(verifier);
        let processed = Arc::new(Mutex::new(RecentIds::new(REMEMBERED_IDS)));
        Self {
            verifier,
            processed,
        }
    }
}

/// A set of strings that forgets the oldest one when full.
struct RecentIds {
    /// Never more than this many ids.
    capacity: usize,
    /// The same ids as `ids`, oldest first, to know which to forget.
    order: VecDeque<String>,
    ids: HashSet<String>,
}

impl RecentIds {
    fn new(capacity: usize) -> Self {
        let order = VecDeque::with_capacity(capacity);
        let ids = HashSet::with_capacity(capacity);
        Self {
            capacity,
            order,
            ids,
        }
    }

    /// Adds `id`; false if it was already there.
    fn insert(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        if self.order.len() == self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.order.push_back(id.to_owned());
        self.ids.insert(id.to_owned())
    }
}

/// The fields of hookd's envelope that this receiver reads. hookd also sends `id`, `timestamp`,
/// `version`, `retryable` and the event's `data`, which is where a real handler would look next.
#[derive(Deserialize)]
struct Envelope {
    /// The event type, e.g. `order.created`.
    event: String,
    /// 1 for the first delivery, then 2, 3, ... for retries.
    attempt: u32,
}

/// `body` is the exact bytes hookd signed: parsing and re-serializing first would break the signature.
async fn receive_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let verified = match state.verifier.verify(&headers, &body, now_unix()) {
        Ok(verified) => verified,
        Err(error) => {
            tracing::warn!("rejected a webhook: {error}");
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": error.to_string()})),
            );
        }
    };
    let envelope: Envelope = match serde_json::from_slice(&body) {
        Ok(envelope) => envelope,
        Err(error) => {
            tracing::warn!(
                "webhook {} is not a hookd envelope: {error}",
                verified.msg_id
            );
            let message = format!("body is not a hookd envelope: {error}");
            return (StatusCode::BAD_REQUEST, Json(json!({"error": message})));
        }
    };
    let id = verified.msg_id;
    let attempt = envelope.attempt;
    // Checked and recorded under one lock, so two concurrent copies cannot both be processed.
    let is_new = state
        .processed
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(&id);
    if !is_new {
        tracing::info!(
            "duplicate {} {id} attempt {attempt}, already processed",
            envelope.event
        );
        return (
            StatusCode::OK,
            Json(json!({"received": true, "duplicate": true})),
        );
    }
    process(&id, &envelope);
    (StatusCode::OK, Json(json!({"received": true})))
}

/// Where the real work would go. Only the event type and id are logged: payloads may hold personal
/// data, and the secret must never reach a log.
fn process(id: &str, envelope: &Envelope) {
    tracing::info!(
        "received {} {id} attempt {}",
        envelope.event,
        envelope.attempt
    );
}

fn now_unix() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
