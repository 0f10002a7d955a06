//! What a careful user or an attacker runs into: error texts in the API's terms, limits that say
//! what they are, idempotency conflicts, test events on disabled endpoints, the auth scheme's case,
//! portal links that survive link previews, and one shape per key. Both backends.

use crate::common::browser::{Browser, owned_subscription, portal_link};
use crate::common::*;
use serde_json::{Value, json};

/// Words of Rust's type system that must never reach an API client.
const RUST_WORDS: &[&str] = &[
    "struct ",
    "enum ",
    "untagged",
    "variant of",
    " u8",
    " u16",
    " u32",
    " u64",
    " i32",
    " i64",
    "usize",
    "Option<",
    "Vec<",
    "String",
    "RawValue",
];

fn assert_plain(reply: &Reply) {
    let message = reply.body["error"].as_str().unwrap_or_default();
    for word in RUST_WORDS {
        assert!(!message.contains(word), "{word:?} in {}", reply.body);
    }
}

#[tokio::test]
async fn a_wrong_retry_object_is_an_invalid_retry_policy_in_plain_words() {
    let app = spawn_app().await;
    for retry in [
        json!({"max_attempts": 3}),
        json!({"schedule_ms": [100], "preset": "standard_webhooks"}),
        json!({"preset": "fast"}),
        json!({"max_attempts": -1, "base_delay_ms": 10}),
        json!("exponential"),
        json!({"max_attempts": 3, "base_delay_ms": 10, "jitter": true}),
    ] {
        let reply = app
            .post(
                "/api/webhooks",
                json!({"url": "http://127.0.0.1:9/r", "events": ["*"], "retry": retry}),
            )
            .await;
        reply.assert_error(422, "invalid_retry_policy");
        let field = reply.body["field"].as_str().unwrap();
        assert!(field.starts_with("retry"), "{}", reply.body);
        assert_plain(&reply);
    }
}

#[tokio::test]
async fn shape_errors_never_name_rust_types() {
    let app = spawn_app().await;
    let cases = [
        ("/api/events", json!([])),
        ("/api/events", json!({"event": 5, "data": {}})),
        (
            "/api/events",
            json!({"event": "a", "data": {}, "retryable": "yes"}),
        ),
        ("/api/events/batch", json!({"events": {}})),
        ("/api/webhooks", json!("http://x")),
        (
            "/api/webhooks",
            json!({"url": "http://127.0.0.1:9/r", "events": ["*"], "timeout_ms": -5}),
        ),
        ("/api/event-types", json!({"name": ["a"]})),
        (
            "/api/portal/sessions",
            json!({"owner": "o", "capabilities": ["read"], "ttl_seconds": 1.5}),
        ),
    ];
    for (path, body) in cases {
        let reply = app.post(path, body.clone()).await;
        assert_eq!(reply.status, 422, "{path} {body}: {}", reply.body);
        assert_plain(&reply);
    }
}

#[tokio::test]
async fn oversized_headers_get_a_json_431() {
    let app = spawn_app().await;
    let mut request = app.client.get(app.url("/healthz"));
    for n in 0..150 {
        request = request.header(format!("x-padding-{n}"), "1");
    }
    let reply = into_reply(request.send().await.unwrap()).await;
    reply.assert_error(431, "headers_too_large");
    let mut request = app.client.get(app.url("/api/webhooks"));
    request = request
        .bearer_auth(TEST_KEY)
        .header("x-big", "a".repeat(40 * 1024));
    let reply = into_reply(request.send().await.unwrap()).await;
    reply.assert_error(431, "headers_too_large");
    assert!(
        reply.body["error"]
            .as_str()
            .unwrap()
            .contains("32768 bytes")
    );
}

#[tokio::test]
async fn a_413_states_the_limit() {
    let app = spawn_app_with(|c| c.max_payload_bytes = 1024).await;
    let big = json!({"event": "a", "data": {"x": "a".repeat(40 * 1024)}});
    let reply = app.post("/api/events", big).await;
    reply.assert_error(413, "payload_too_large");
    // The route's limit: the payload limit plus 16 KiB for the envelope.
    let limit = 1024 + 16 * 1024;
    assert!(
        reply.body["error"]
            .as_str()
            .unwrap()
            .contains(&format!("{limit} bytes")),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn republishing_an_id_with_other_data_is_a_conflict() {
    let app = spawn_app().await;
    let event = json!({"event": "order.created", "id": "order-1", "data": {"total": 10}});
    assert_eq!(app.post("/api/events", event.clone()).await.status, 202);

    // The same event again (keys in another order) is a duplicate, as before.
    let again = app
        .post(
            "/api/events",
            json!({"data": {"total": 10}, "id": "order-1", "event": "order.created"}),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["duplicate"], true);

    for other in [
        json!({"event": "order.created", "id": "order-1", "data": {"total": 11}}),
        json!({"event": "order.updated", "id": "order-1", "data": {"total": 10}}),
    ] {
        let reply = app.post("/api/events", other).await;
        reply.assert_error(409, "idempotency_conflict");
        assert!(reply.body["error"].as_str().unwrap().contains("order-1"));
    }
    let stored = app.get("/api/events/order-1").await;
    assert_eq!(stored.body["data"], json!({"total": 10}), "nothing changed");

    // The same through Idempotency-Key.
    let keyed = |data: Value| {
        app.client
            .post(app.url("/api/events"))
            .bearer_auth(TEST_KEY)
            .header("idempotency-key", "k-1")
            .json(&json!({"event": "a", "data": data}))
            .send()
    };
    assert_eq!(keyed(json!({"n": 1})).await.unwrap().status(), 202);
    assert_eq!(keyed(json!({"n": 1})).await.unwrap().status(), 200);
    let conflict = into_reply(keyed(json!({"n": 2})).await.unwrap()).await;
    conflict.assert_error(409, "idempotency_conflict");

    // In a batch, the event at fault is named.
    let batch = app
        .post(
            "/api/events/batch",
            json!({"events": [
                {"event": "a", "id": "fresh-1", "data": {}},
                {"event": "order.created", "id": "order-1", "data": {"total": 12}},
            ]}),
        )
        .await;
    batch.assert_error(409, "idempotency_conflict");
    assert!(batch.body["error"].as_str().unwrap().contains("events[1]"));
}

#[tokio::test]
async fn a_test_event_to_a_disabled_webhook_is_refused() {
    let app = spawn_app().await;
    let id = id_of(&app.subscribe("http://127.0.0.1:9/t", &["*"]).await);
    assert_eq!(
        app.post(&format!("/api/webhooks/{id}/disable"), json!({}))
            .await
            .status,
        200
    );
    let reply = app
        .post(&format!("/api/webhooks/{id}/test"), json!({}))
        .await;
    reply.assert_error(409, "subscription_disabled");
    let events = app.get("/api/events").await;
    assert_eq!(events.body["data"], json!([]), "no test event was stored");
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let app = spawn_app().await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let status = app
            .client
            .get(app.url("/api/webhooks"))
            .header("authorization", format!("{scheme} {TEST_KEY}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200, "{scheme}");
    }
    let reply = into_reply(
        app.client
            .get(app.url("/api/webhooks"))
            .header("authorization", format!("Basic {TEST_KEY}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    reply.assert_error(401, "unauthorized");
}

#[tokio::test]
async fn portal_links_survive_previews_and_use_the_requests_scheme() {
    let app = spawn_app().await;
    owned_subscription(&app, "http://127.0.0.1:9/a", "acme").await;
    let created = app
        .post(
            "/api/portal/sessions",
            json!({"owner": "acme", "capabilities": ["read"]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    // Plain HTTP, this request's host: not https, not another host.
    let url = created.body["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("http://{}/portal/enter?token=", app.address)),
        "{url}"
    );

    let path = portal_link(&app, "acme", &["read"]).await;
    // A mail scanner and a chat preview fetch the link: that spends nothing.
    let mut scanner = Browser::new(&app);
    for _ in 0..2 {
        let page = scanner.get(&path).await;
        assert_eq!(page.status, 200);
        assert!(
            page.header("set-cookie").is_empty(),
            "a GET opens no session"
        );
    }
    assert_eq!(scanner.get("/portal/endpoints").await.status, 401);
    // The subscriber continues (the POST spends the link), once.
    let mut subscriber = Browser::new(&app);
    assert_eq!(subscriber.enter(&path).await.status, 200);
    assert_eq!(subscriber.get("/portal/endpoints").await.status, 200);
    assert_eq!(Browser::new(&app).enter(&path).await.status, 401);
}

#[tokio::test]
async fn a_delivery_has_one_shape_per_key() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    app.subscribe(&receiver.url("/ok"), &["*"]).await;
    let event_id = app.publish(json!({"event": "a", "data": {}})).await;
    let delivery = app.wait_for_delivery_state(&event_id, "delivered").await;
    let id = delivery["id"].as_str().unwrap().to_owned();
    let text = app
        .client
        .get(app.url(&format!("/api/deliveries/{id}")))
        .bearer_auth(TEST_KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text.matches("\"attempts\":").count(), 1, "{text}");
    let detail: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(detail["attempt_count"], 1);
    assert_eq!(detail["attempts"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn built_in_event_types_have_a_real_creation_time() {
    let app = spawn_app().await;
    let list = app.get("/api/event-types").await;
    let types = list.body["data"]
        .as_array()
        .or_else(|| list.body.as_array())
        .cloned()
        .unwrap_or_default();
    let test_type = types
        .iter()
        .find(|t| t["name"] == "webhook.test")
        .unwrap_or_else(|| panic!("no webhook.test in {}", list.body));
    let created = test_type["created_at"].as_str().unwrap();
    assert!(!created.starts_with("1970"), "{created}");
}

/// README's list of error codes is the code's: every code the API can answer is listed, and every
/// listed code exists.
#[test]
fn readme_lists_every_error_code() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("../../README.md")).unwrap();
    let start = readme
        .find("Errors are JSON:")
        .expect("README's error section");
    let section = &readme[start..start + readme[start..].find("\n\n").unwrap()];
    let listed: std::collections::BTreeSet<String> = section
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| is_code(word))
        .map(str::to_owned)
        .collect();
    let mut in_code = std::collections::BTreeSet::new();
    // The listener's refusal at the connection cap is written as raw bytes.
    let listener = std::fs::read_to_string(root.join("src/listener.rs")).unwrap();
    for (at, _) in listener.match_indices(r#"\"code\":\""#) {
        let rest = &listener[at + 11..];
        in_code.insert(rest.split('\\').next().unwrap().to_owned());
    }
    for dir in ["src/api", "src/ops"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "rs") {
                codes_in(&std::fs::read_to_string(&path).unwrap(), &mut in_code);
            }
        }
    }
    let missing: Vec<_> = in_code.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&in_code).collect();
    assert!(missing.is_empty(), "codes missing from README: {missing:?}");
    assert!(
        stale.is_empty(),
        "README lists codes the API never answers: {stale:?}"
    );
}

fn is_code(word: &str) -> bool {
    !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
}

/// The codes in one source file: `code: "x"`, `invalid("x"` and `=> "x"` in `ApiError::code`.
fn codes_in(source: &str, codes: &mut std::collections::BTreeSet<String>) {
    let code_fn = source
        .find("pub fn code(&self)")
        .map(|at| &source[at..at + source[at..].find("\n    }\n").unwrap()]);
    let mut candidates: Vec<&str> = Vec::new();
    for marker in ["code: \"", "invalid(\"", "invalid(\n"] {
        for (at, _) in source.match_indices(marker) {
            let rest = &source[at + marker.len()..];
            let rest = rest.trim_start().trim_start_matches('"');
            candidates.push(rest.split('"').next().unwrap_or(""));
        }
    }
    // Codes chosen by the kind of a JSON error (`JsonErrorKind::DuplicateKey => "duplicate_key"`).
    for line in source.lines() {
        let line = line.trim_start();
        if line.starts_with("JsonErrorKind::")
            && let Some((_, rest)) = line.split_once("=> \"")
        {
            candidates.push(rest.split('"').next().unwrap_or(""));
        }
    }
    if let Some(body) = code_fn {
        candidates.extend(
            body.split("=> \"")
                .skip(1)
                .map(|s| s.split('"').next().unwrap()),
        );
    }
    codes.extend(
        candidates
            .into_iter()
            .filter(|c| is_code(c))
            .map(str::to_owned),
    );
}
