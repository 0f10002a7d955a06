//! Signatures every receiver verifies: secrets of the subscriber's choosing and both forms of the
//! original specification's `X-Webhook-Signature`.

use crate::common::*;
use base64::Engine as _;
use serde_json::json;

#[tokio::test]
async fn a_secret_of_the_subscribers_choosing_keys_both_signatures_with_its_utf8_bytes() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    // The original specification's default secret: 64 hex characters (randomBytes(32)).
    let secret = "3f1c2b9a8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170615ab";
    let spaced = "a secret with spaces and ünïcode ✓";
    for (path, secret) in [("/hex", secret), ("/text", spaced)] {
        let created = app
            .subscribe_with(json!({"url": receiver.url(path), "events": ["*"], "secret": secret}))
            .await;
        assert_eq!(created["secret"], secret);
    }
    app.publish(json!({"event": "order.created", "data": {"name": "Zoë", "amount": 1.5}}))
        .await;
    for (path, secret) in [("/hex", secret), ("/text", spaced)] {
        let request = receiver.wait_for(path, 1).await.remove(0);
        // Legacy: hex HMAC-SHA256 keyed with the secret string's UTF-8 bytes, over the body.
        hookd_verify::verify_hex(secret, request.header("x-webhook-signature"), &request.body)
            .unwrap();
        // Standard Webhooks: a library is given `whsec_` + base64 of the secret's UTF-8 bytes.
        let for_library = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(secret.as_bytes())
        );
        let headers = request.header_pairs();
        hookd_verify::verify(&for_library, &headers, &request.body, now_unix()).unwrap();
        // The bare string is not base64 of the key: that verification must fail.
        let bare = hookd_verify::verify(secret, &headers, &request.body, now_unix());
        assert!(bare.is_err(), "{path}");
    }
}

#[tokio::test]
async fn legacy_signature_form_is_chosen_per_subscription() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let secret = "python-receiver-secret";
    let sorted = app
        .subscribe_with(json!({
            "url": receiver.url("/python"), "events": ["*"], "secret": secret,
            "legacy_signature": "python_sorted",
        }))
        .await;
    assert_eq!(sorted["legacy_signature"], "python_sorted");
    let plain = app
        .subscribe_with(json!({"url": receiver.url("/node"), "events": ["*"], "secret": secret}))
        .await;
    assert_eq!(plain["legacy_signature"], "body");

    let raw = br#"{"event": "order.created", "data": {"name": "Zo\u00e9", "b": 1.0, "a": [1e2, {"2": 0, "1": null}]}}"#;
    let reply = app
        .post_raw("/api/events", "application/json", raw.to_vec())
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);

    let python = receiver.wait_for("/python", 1).await.remove(0);
    let node = receiver.wait_for("/node", 1).await.remove(0);
    assert_eq!(python.body, node.body);
    let body = std::str::from_utf8(&python.body).unwrap();
    // What Python's `json.dumps(request.json, sort_keys=True)` gives for this body (checked
    // against Python itself in CI, .ci/spec_receivers.sh).
    let dumped = hookd_core::canonical::python_sorted(body).unwrap();
    assert!(
        dumped.contains(r#""data": {"a": [100, {"1": null, "2": 0}], "b": 1, "name": "Zo\u00e9"}"#),
        "{dumped}"
    );
    hookd_verify::verify_hex(
        secret,
        python.header("x-webhook-signature"),
        dumped.as_bytes(),
    )
    .unwrap();
    hookd_verify::verify_hex(secret, node.header("x-webhook-signature"), &node.body).unwrap();
    assert_ne!(
        python.header("x-webhook-signature"),
        node.header("x-webhook-signature")
    );
    // The Standard Webhooks signature always covers the body as sent.
    hookd_verify::verify(
        &format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(secret)
        ),
        &python.header_pairs(),
        &python.body,
        now_unix(),
    )
    .unwrap();

    // Patched back to the body form, the next delivery signs the body.
    let id = id_of(&sorted);
    let patched = app
        .patch(
            &format!("/api/webhooks/{id}"),
            json!({"legacy_signature": "body"}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["legacy_signature"], "body");
    assert_eq!(
        app.get(&format!("/api/webhooks/{id}")).await.body["legacy_signature"],
        "body"
    );
    app.publish(json!({"event": "order.created", "data": {"n": 2}}))
        .await;
    let second = receiver.wait_for("/python", 2).await.remove(1);
    hookd_verify::verify_hex(secret, second.header("x-webhook-signature"), &second.body).unwrap();
}

#[tokio::test]
async fn an_unknown_legacy_signature_form_is_refused() {
    let app = spawn_app().await;
    let reply = app
        .post(
            "/api/webhooks",
            json!({"url": "http://127.0.0.1:1/h", "events": ["*"], "legacy_signature": "sorted"}),
        )
        .await;
    reply.assert_error(422, "invalid_legacy_signature");
    assert_eq!(reply.body["field"], "legacy_signature");
    let created = app.subscribe("http://127.0.0.1:1/h", &["*"]).await;
    let reply = app
        .patch(
            &format!("/api/webhooks/{}", id_of(&created)),
            json!({"legacy_signature": "Body"}),
        )
        .await;
    reply.assert_error(422, "invalid_legacy_signature");
}

#[tokio::test]
async fn the_inbound_endpoint_verifies_with_a_secret_of_the_subscribers_choosing() {
    let app = spawn_app().await;
    let secret = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let sub = app
        .subscribe_with(json!({"url": "http://127.0.0.1:1/h", "events": ["*"], "secret": secret}))
        .await;
    let id = id_of(&sub);
    let own_url = app.url(&format!("/webhooks/{id}"));
    let patched = app
        .patch(&format!("/api/webhooks/{id}"), json!({"url": own_url}))
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let event_id = app
        .publish(json!({"event": "order.created", "data": {"n": 1}}))
        .await;
    app.wait_for_delivery_state(&event_id, "delivered").await;
    let received = app.get(&format!("/api/webhooks/{id}/received")).await;
    assert_eq!(received.body["data"][0]["message_id"], event_id.as_str());
}
