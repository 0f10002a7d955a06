//! One HTTP attempt: build the signed request, send it with a timeout, read at most 4 KiB of the
//! answer and a bounded copy of its headers, and classify what happened. No database access here.

use hookd_core::envelope::{Envelope, legacy_signature, signature_header};
use hookd_core::{SigningSecret, time::rfc3339_ms};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use std::time::{Duration, Instant};

use crate::store::{ClaimedDelivery, SubscriptionRow};
use hookd_verify::SigningKeyPair;

/// Most response bytes read and kept; the rest is never read (huge bodies are not buffered).
pub const MAX_EXCERPT_BYTES: usize = 4 * 1024;
/// Most response headers kept per attempt (the rest are dropped, in the order received).
pub const MAX_RESPONSE_HEADERS: usize = 32;
/// Most bytes of response header names and values kept per attempt.
pub const MAX_RESPONSE_HEADER_BYTES: usize = 4 * 1024;
/// Longest header value kept; longer ones are cut (and end in `…`).
pub const MAX_RESPONSE_HEADER_VALUE_BYTES: usize = 256;
/// What a credential-like header's value is replaced with in the attempt log.
pub const REDACTED: &str = "[redacted]";

pub fn user_agent() -> String {
    format!("hookd/{}", env!("CARGO_PKG_VERSION"))
}

/// The request for one attempt: exact body bytes and every header, signatures included.
pub struct PreparedRequest {
    /// The subscription's URL, parsed when its row was read.
    pub url: reqwest::Url,
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
    let schemes = subscription.signature_schemes;
    let current = SigningSecret::parse(&subscription.secret)
        .map_err(|e| format!("stored secret is invalid: {e}"))?;
    let previous = match (
        &subscription.previous_secret,
        subscription.previous_secret_expires_at,
    ) {
        (Some(text), Some(until)) if until > now_ms => SigningSecret::parse(text).ok(),
        _ => None,
    };
    let mut secrets = Vec::with_capacity(2);
    if schemes.v1 {
        secrets.push(&current);
        secrets.extend(previous.as_ref());
    }
    let pairs = match schemes.v1a {
        true => signing_pairs(subscription, now_ms)?,
        false => Vec::new(),
    };
    let pairs: Vec<&SigningKeyPair> = pairs.iter().collect();
    let timestamp = now_ms.div_euclid(1_000);
    let signature = signature_header(&secrets, &pairs, &event.id, timestamp, &body);

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
    // The original specification's header is an HMAC too: sent only with `v1`, so a `v1a`-only
    // subscription's receivers never see anything made with the shared secret.
    if schemes.v1 {
        let legacy = legacy_signature(&current, subscription.legacy_signature, &body)
            .map_err(|e| format!("body cannot be signed: {e}"))?;
        set("x-webhook-signature", legacy);
    }
    Ok(PreparedRequest {
        url: subscription.url.as_url().clone(),
        body,
        headers,
        timestamp,
    })
}

/// The `v1a` key pairs that sign at `now_ms` (the previous one too during its overlap).
fn signing_pairs(
    subscription: &SubscriptionRow,
    now_ms: i64,
) -> Result<Vec<SigningKeyPair>, String> {
    let pairs: Vec<SigningKeyPair> = subscription
        .signing_keys_at(now_ms)
        .into_iter()
        .map(|(entry, _)| SigningKeyPair::parse(&entry.key))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("stored signing key is invalid: {e}"))?;
    match pairs.is_empty() {
        true => Err("v1a is on but the subscription has no signing key".into()),
        false => Ok(pairs),
    }
}

/// What one attempt produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: Option<u16>,
    pub excerpt: Option<String>,
    /// A bounded, redacted copy of the response headers ([`capture_headers`]); `None` without a
    /// response.
    pub headers: Option<Vec<(String, String)>>,
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

/// Sends the request to `url` (the request's own URL, parsed) and reads at most
/// [`MAX_EXCERPT_BYTES`] of the answer within `timeout`.
pub async fn send(
    client: &reqwest::Client,
    url: reqwest::Url,
    request: PreparedRequest,
    timeout: Duration,
) -> Response {
    let started = Instant::now();
    let sent = client
        .post(url)
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
                headers: None,
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
    let headers = capture_headers(response.headers());
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
        headers: Some(headers),
        error: (!success).then(|| format!("HTTP {status}")),
        error_class: (!success).then_some("http"),
        retry_after,
        duration: started.elapsed(),
    }
}

/// The response headers as the attempt log keeps them: in the order received, at most
/// [`MAX_RESPONSE_HEADERS`] of them and [`MAX_RESPONSE_HEADER_BYTES`] in all, each value cut at
/// [`MAX_RESPONSE_HEADER_VALUE_BYTES`] and decoded lossily. Credential-like headers (cookies,
/// authorization, tokens, secrets) keep their name but never their value: the log is shown in the
/// dashboard and the portal, and a receiver's session cookie has no business there.
pub fn capture_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut kept = Vec::new();
    let mut bytes = 0;
    for (name, value) in headers {
        let name = name.as_str();
        let value = match is_sensitive(name) {
            true => REDACTED.to_owned(),
            false => cut(&String::from_utf8_lossy(value.as_bytes())),
        };
        bytes += name.len() + value.len();
        if kept.len() == MAX_RESPONSE_HEADERS || bytes > MAX_RESPONSE_HEADER_BYTES {
            break;
        }
        kept.push((name.to_owned(), value));
    }
    kept
}

/// Header names whose values are credentials or may carry one.
fn is_sensitive(name: &str) -> bool {
    const EXACT: [&str; 6] = [
        "set-cookie",
        "set-cookie2",
        "cookie",
        "authorization",
        "proxy-authorization",
        "proxy-authenticate",
    ];
    const PARTS: [&str; 7] = [
        "token",
        "secret",
        "password",
        "session",
        "credential",
        "api-key",
        "apikey",
    ];
    EXACT.contains(&name) || PARTS.iter().any(|part| name.contains(part))
}

/// `value` cut to at most [`MAX_RESPONSE_HEADER_VALUE_BYTES`] on a character boundary.
fn cut(value: &str) -> String {
    if value.len() <= MAX_RESPONSE_HEADER_VALUE_BYTES {
        return value.to_owned();
    }
    let mut end = MAX_RESPONSE_HEADER_VALUE_BYTES - '…'.len_utf8();
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &value[..end])
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
    if is_tls(error) || chain.contains("certificate") || chain.contains("handshake") {
        return "tls";
    }
    if error.is_connect() {
        return "connect";
    }
    "http"
}

/// Whether a rustls error is somewhere in the chain. Its messages do not say "TLS" ("received
/// corrupt message of type InvalidContentType" when the endpoint speaks plain HTTP on an https URL),
/// so the type is looked for. An `io::Error` hides what it wraps from `source()` (and the TLS
/// connector wraps rustls's error in two of them), so those are opened.
fn is_tls(error: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let mut inner: &(dyn std::error::Error + 'static) = cause;
        while let Some(wrapped) = inner
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            inner = wrapped;
        }
        if inner.is::<rustls::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn response_headers_are_kept_in_order_with_credentials_redacted() {
        let map = header_map(&[
            ("content-type", "text/plain"),
            ("x-trace", "abc"),
            ("set-cookie", "session=s3cret; HttpOnly"),
            ("set-cookie", "other=s3cret"),
            ("authorization", "Bearer s3cret"),
            ("x-auth-token", "s3cret"),
            ("x-api-key", "s3cret"),
            ("x-client-secret", "s3cret"),
        ]);
        let kept = capture_headers(&map);
        let names: Vec<&str> = kept.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "content-type",
                "x-trace",
                "set-cookie",
                "set-cookie",
                "authorization",
                "x-auth-token",
                "x-api-key",
                "x-client-secret"
            ]
        );
        assert_eq!(kept[1].1, "abc");
        for (name, value) in &kept[2..] {
            assert_eq!(value, REDACTED, "{name}");
        }
        assert!(!format!("{kept:?}").contains("s3cret"));
    }

    #[test]
    fn response_headers_are_bounded() {
        let many: Vec<(String, String)> =
            (0..100).map(|i| (format!("x-h{i}"), "v".into())).collect();
        let pairs: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(
            capture_headers(&header_map(&pairs)).len(),
            MAX_RESPONSE_HEADERS
        );

        let long = "é".repeat(1_000);
        let kept = capture_headers(&header_map(&[("x-long", &long)]));
        let value = &kept[0].1;
        assert!(value.len() <= MAX_RESPONSE_HEADER_VALUE_BYTES && value.ends_with('…'));

        let big: Vec<(String, String)> = (0..30)
            .map(|i| (format!("x-big{i}"), "b".repeat(250)))
            .collect();
        let pairs: Vec<(&str, &str)> = big.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let kept = capture_headers(&header_map(&pairs));
        let bytes: usize = kept.iter().map(|(n, v)| n.len() + v.len()).sum();
        assert!(
            bytes <= MAX_RESPONSE_HEADER_BYTES && kept.len() < 30,
            "{bytes}"
        );
    }

    fn client() -> reqwest::Client {
        let mut config = super::super::WorkerConfig::new("wrk_test".into());
        config.targets.allow_non_public = true;
        config.connect_timeout = Duration::from_secs(2);
        super::super::http_client(&config)
    }

    async fn class_of(url: &str) -> Option<&'static str> {
        let request = PreparedRequest {
            url: url.parse().unwrap(),
            body: b"{}".to_vec(),
            headers: HeaderMap::new(),
            timestamp: 0,
        };
        let url = request.url.clone();
        send(&client(), url, request, Duration::from_millis(500))
            .await
            .error_class
    }

    /// A server that reads a request, writes `answer` (if any) and then holds the connection open.
    async fn raw_server(answer: Option<&'static [u8]>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    let _ = socket.read(&mut buffer).await;
                    if let Some(answer) = answer {
                        let _ = socket.write_all(answer).await;
                    }
                    tokio::time::sleep(Duration::from_secs(5)).await;
                });
            }
        });
        address.to_string()
    }

    /// Each failure the issue names gets its own class: DNS, connect, TLS, timeout, HTTP.
    #[tokio::test]
    async fn every_kind_of_failure_has_its_own_error_class() {
        assert_eq!(
            class_of("http://hookd-no-such-host.invalid/h").await,
            Some("dns")
        );
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert_eq!(
            class_of(&format!("http://{closed}/h")).await,
            Some("connect")
        );
        let plain = raw_server(Some(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")).await;
        assert_eq!(class_of(&format!("https://{plain}/h")).await, Some("tls"));
        let silent = raw_server(None).await;
        assert_eq!(
            class_of(&format!("http://{silent}/h")).await,
            Some("timeout")
        );
        let garbage = raw_server(Some(b"this is not HTTP\r\n\r\n")).await;
        assert_eq!(class_of(&format!("http://{garbage}/h")).await, Some("http"));
        let error = raw_server(Some(
            b"HTTP/1.1 503 Service Unavailable\r\nx-trace: t1\r\ncontent-length: 4\r\n\r\ndown",
        ))
        .await;
        let request = PreparedRequest {
            url: format!("http://{error}/h").parse().unwrap(),
            body: b"{}".to_vec(),
            headers: HeaderMap::new(),
            timestamp: 0,
        };
        let url = request.url.clone();
        let response = send(&client(), url, request, Duration::from_millis(500)).await;
        assert_eq!(response.error_class, Some("http"));
        assert_eq!(response.status, Some(503));
        let headers = response.headers.unwrap();
        assert!(
            headers.contains(&("x-trace".into(), "t1".into())),
            "{headers:?}"
        );
    }
}
