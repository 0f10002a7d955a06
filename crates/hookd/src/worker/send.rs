//! One HTTP attempt: build the signed request, send it with a timeout, read at most 4 KiB of the
//! answer, and classify what happened. No database access here.

use hookd_core::envelope::{Envelope, legacy_signature, signature_header};
use hookd_core::{SigningSecret, time::rfc3339_ms};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::time::{Duration, Instant};

use crate::store::ClaimedDelivery;

/// Most response bytes read and kept; the rest is never read (huge bodies are not buffered).
pub const MAX_EXCERPT_BYTES: usize = 4 * 1024;

pub fn user_agent() -> String {
    format!("hookd/{}", env!("CARGO_PKG_VERSION"))
}

/// The request for one attempt: exact body bytes and every header, signatures included.
pub struct PreparedRequest {
    pub url: String,
    pub body: Vec<u8>,
    pub headers: HeaderMap,
    /// The `webhook-timestamp` value (Unix seconds).
    pub timestamp: i64,
}

/// Builds attempt `attempt` of `claimed` at `now_ms`. The body is serialized once and every
/// signature covers exactly those bytes.
pub fn prepare(
    claimed: &ClaimedDelivery,
    attempt: u32,
    now_ms: i64,
) -> Result<PreparedRequest, String> {
    let event = &claimed.event;
    let subscription = &claimed.subscription;
    let timestamp_text = rfc3339_ms(event.created_at);
    let body = Envelope {
        id: &event.id,
        timestamp: &timestamp_text,
        event_type: &event.event_type,
        version: &event.version,
        data_json: &event.data,
        attempt,
        retryable: event.retryable,
    }
    .encode();
    let current = SigningSecret::parse(&subscription.secret)
        .map_err(|e| format!("stored secret is invalid: {e}"))?;
    let previous = match (
        &subscription.previous_secret,
        subscription.previous_secret_expires_at,
    ) {
        (Some(text), Some(until)) if until > now_ms => SigningSecret::parse(text).ok(),
        _ => None,
    };
    let mut secrets = vec![&current];
    secrets.extend(previous.as_ref());
    let timestamp = now_ms.div_euclid(1_000);
    let signature = signature_header(&secrets, &event.id, timestamp, &body);

    let mut headers = HeaderMap::new();
    // Custom headers first: the ones hookd sets below can never be overridden by them.
    for (name, value) in &subscription.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("content-type", "application/json".into());
    set("user-agent", user_agent());
    set("webhook-id", event.id.clone());
    set("webhook-timestamp", timestamp.to_string());
    set("webhook-signature", signature);
    set("x-webhook-id", event.id.clone());
    set("x-webhook-attempt", attempt.to_string());
    set("x-webhook-timestamp", timestamp.to_string());
    set("x-webhook-signature", legacy_signature(&current, &body));
    Ok(PreparedRequest {
        url: subscription.url.clone(),
        body,
        headers,
        timestamp,
    })
}

/// What one attempt produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: Option<u16>,
    pub excerpt: Option<String>,
    pub error: Option<String>,
    /// dns, connect, tls, timeout, http; `None` on a 2xx.
    pub error_class: Option<&'static str>,
    /// The `Retry-After` header, verbatim (only looked at on 429 and 503).
    pub retry_after: Option<String>,
    pub duration: Duration,
}

impl Response {
    pub fn is_success(&self) -> bool {
        matches!(self.status, Some(200..=299))
    }
}

/// Sends the request and reads at most [`MAX_EXCERPT_BYTES`] of the answer within `timeout`.
pub async fn send(
    client: &reqwest::Client,
    request: PreparedRequest,
    timeout: Duration,
) -> Response {
    let started = Instant::now();
    let sent = client
        .post(&request.url)
        .headers(request.headers)
        .body(request.body)
        .timeout(timeout)
        .send()
        .await;
    let mut response = match sent {
        Ok(response) => response,
        Err(error) => {
            return Response {
                status: None,
                excerpt: None,
                error_class: Some(classify(&error)),
                error: Some(describe(&error)),
                retry_after: None,
                duration: started.elapsed(),
            };
        }
    };
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut excerpt = Vec::new();
    // The request timeout also bounds reading the body, so a slow drip cannot hold a slot forever.
    while excerpt.len() < MAX_EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_EXCERPT_BYTES - excerpt.len();
                excerpt.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    let success = (200..300).contains(&status);
    Response {
        status: Some(status),
        excerpt: Some(String::from_utf8_lossy(&excerpt).into_owned()),
        error: (!success).then(|| format!("HTTP {status}")),
        error_class: (!success).then_some("http"),
        retry_after,
        duration: started.elapsed(),
    }
}

fn classify(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        return "timeout";
    }
    let chain = describe(error).to_ascii_lowercase();
    if chain.contains(super::ssrf::BLOCKED) {
        return "blocked";
    }
    if chain.contains("dns error") || chain.contains("failed to lookup") {
        return "dns";
    }
    if chain.contains("certificate") || chain.contains("tls") || chain.contains("handshake") {
        return "tls";
    }
    if error.is_connect() {
        return "connect";
    }
    "http"
}

/// The error with its whole source chain, for the attempt log.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
