//! Requests signed the way hookd signs them, with the real clock, sent through the router with `oneshot`.

use super::*;
use axum::body::Body;
use axum::http::Request;
use hookd_verify::{decode_secret, sign_v1};
use tower::ServiceExt as _;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

type HeaderList = Vec<(&'static str, String)>;

/// hookd's envelope for attempt `attempt` of one `order.created` event.
fn envelope(attempt: u32) -> String {
    let data = r#"{"orderId":"ORD-1","amount":99.99}"#;
    format!(
        r#"{{"id":"evt_1","timestamp":"2026-01-15T10:30:00.000Z","event":"order.created","version":"1.0","data":{data},"attempt":{attempt},"retryable":true}}"#
    )
}

/// The three Standard Webhooks headers for `body`, signed with `secret` at `timestamp`.
fn signed_headers(secret: &str, id: &str, timestamp: i64, body: &str) -> HeaderList {
    let key = decode_secret(secret).unwrap();
    let signature = sign_v1(&key, id, timestamp, body.as_bytes());
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
    ]
}

fn receiver() -> Router {
    app(AppState::new(Verifier::new(SECRET).unwrap()))
}

/// POSTs `body` with `headers` to `/webhooks` and returns the status and JSON answer.
async fn deliver(
    app: &Router,
    headers: &[(&'static str, String)],
    body: &str,
) -> (StatusCode, Value) {
    let mut request = Request::post("/webhooks").header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request.body(Body::from(body.to_owned())).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn a_signed_webhook_is_processed_once() {
    let app = receiver();
    let first = envelope(1);
    let first_headers = signed_headers(SECRET, "evt_1", now_unix(), &first);
    let answer = deliver(&app, &first_headers, &first).await;
    assert_eq!(answer, (StatusCode::OK, json!({"received": true})));

    // hookd's retry: same `webhook-id`, new timestamp and signature, `attempt` 2 in the body.
    let retry = envelope(2);
    let retry_headers = signed_headers(SECRET, "evt_1", now_unix() + 1, &retry);
    let answer = deliver(&app, &retry_headers, &retry).await;
    let duplicate = json!({"received": true, "duplicate": true});
    assert_eq!(answer, (StatusCode::OK, duplicate));
}

#[tokio::test]
async fn rejections_name_the_failed_check() {
    let app = receiver();
    let now = now_unix();
    let body = envelope(1);
    let tampered = body.replace("99.99", "0.01");
    let valid = signed_headers(SECRET, "evt_1", now, &body);
    let without = |name: &str| -> HeaderList {
        valid
            .iter()
            .filter(|(key, _)| *key != name)
            .cloned()
            .collect()
    };
    let cases = [
        ("tampered body", valid.clone(), &tampered, "no signature"),
        (
            "wrong secret",
            signed_headers(OTHER_SECRET, "evt_1", now, &body),
            &body,
            "no signature",
        ),
        (
            "stale timestamp",
            signed_headers(SECRET, "evt_1", now - 600, &body),
            &body,
            "older than",
        ),
        ("missing id", without("webhook-id"), &body, "`webhook-id`"),
        (
            "missing timestamp",
            without("webhook-timestamp"),
            &body,
            "`webhook-timestamp`",
        ),
        (
            "missing signature",
            without("webhook-signature"),
            &body,
            "`webhook-signature`",
        ),
        (
            "no headers at all",
            vec![],
            &body,
            "missing required header",
        ),
    ];
    for (name, headers, body, check) in cases {
        let (status, answer) = deliver(&app, &headers, body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(check), "{name}: {error}");
    }
    // Rejected requests did not mark `evt_1` as seen, so forged copies cannot suppress the real one.
    let answer = deliver(&app, &valid, &body).await;
    assert_eq!(answer, (StatusCode::OK, json!({"received": true})));
}

#[tokio::test]
async fn a_signed_body_that_is_not_an_envelope_is_a_400() {
    let body = r#"{"hello":"world"}"#;
    let headers = signed_headers(SECRET, "evt_1", now_unix(), body);
    let (status, answer) = deliver(&receiver(), &headers, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"].as_str().unwrap().contains("envelope"),
        "{answer}"
    );
}

#[test]
fn recent_ids_forget_the_oldest_beyond_capacity() {
    let mut ids = RecentIds::new(2);
    let steps = [
        ("a", true),
        ("a", false),
        ("b", true),
        ("c", true),
        ("b", false),
        ("a", true),
    ];
    for (step, (id, expected)) in steps.into_iter().enumerate() {
        assert_eq!(ids.insert(id), expected, "step {step}: {id}");
    }
    assert_eq!(ids.order.len(), 2);
}
