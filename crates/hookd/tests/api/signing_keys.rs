//! Standard Webhooks `v1a`: Ed25519 key pairs per subscription, their public key set served without
//! an API key, rotation with an overlap that carries both signatures, and the private half sealed at
//! rest and never given out.

use crate::common::*;
use hookd::store::SubscriptionQuery;
use hookd_verify::{SigningKeyPair, Verifier};
use serde_json::{Value, json};

/// The key set at `GET /webhooks/{id}/keys`, fetched as a receiver would: without an API key.
async fn key_set(app: &TestApp, id: &str) -> (u16, Value) {
    let response = reqwest::get(app.url(&format!("/webhooks/{id}/keys")))
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn public_keys(set: &Value) -> Vec<String> {
    set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|key| key["public_key"].as_str().unwrap().to_owned())
        .collect()
}

fn verifies_with_public_key(request: &Received, public_key: &str) -> bool {
    Verifier::from_public_key(public_key)
        .unwrap()
        .verify(&request.header_pairs(), &request.body, now_unix())
        .is_ok()
}

/// The entries of `webhook-signature` of a kind (`v1` or `v1a`).
fn entries<'r>(request: &'r Received, scheme: &str) -> Vec<&'r str> {
    request
        .header("webhook-signature")
        .split(' ')
        .filter(|entry| entry.split_once(',').is_some_and(|(s, _)| s == scheme))
        .collect()
}

#[tokio::test]
async fn a_v1a_only_subscription_signs_with_ed25519_and_sends_no_hmac() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let created = app
        .subscribe_with(json!({"url": receiver.url("/ed"), "events": ["*"],
                               "signature_schemes": ["v1a"]}))
        .await;
    let id = id_of(&created);
    assert_eq!(created["signature_schemes"], json!(["v1a"]));
    assert!(!created.to_string().contains("whsk_"), "{created}");

    let (status, set) = key_set(&app, &id).await;
    assert_eq!(status, 200, "{set}");
    let keys = public_keys(&set);
    assert_eq!(keys.len(), 1);
    assert!(keys[0].starts_with("whpk_"));
    assert!(set["keys"][0]["kid"].as_str().unwrap().starts_with("kid_"));
    assert!(set["keys"][0]["not_after"].is_null());
    assert_eq!(created["public_keys"][0]["public_key"], keys[0].as_str());

    app.publish(json!({"event": "order.created", "data": {"n": 1}}))
        .await;
    let request = receiver.wait_for("/ed", 1).await.remove(0);
    assert_eq!(entries(&request, "v1a").len(), 1);
    assert!(entries(&request, "v1").is_empty(), "no HMAC signature");
    assert_eq!(request.header("x-webhook-signature"), "", "no legacy HMAC");
    assert!(verifies_with_public_key(&request, &keys[0]));
    let secret = created["secret"].as_str().unwrap();
    let hmac = hookd_verify::verify(secret, &request.header_pairs(), &request.body, now_unix());
    assert!(hmac.is_err());
    // A stranger's key does not verify it.
    let stranger = SigningKeyPair::from_seed(&[7; 32]).public_key();
    assert!(!verifies_with_public_key(&request, &stranger));
}

#[tokio::test]
async fn rotation_overlap_carries_both_signatures_and_the_key_set_follows() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let created = app
        .subscribe_with(json!({"url": receiver.url("/both"), "events": ["*"],
                               "signature_schemes": ["v1", "v1a"]}))
        .await;
    let id = id_of(&created);
    let secret = created["secret"].as_str().unwrap().to_owned();
    let first = public_keys(&key_set(&app, &id).await.1).remove(0);

    app.publish(json!({"event": "order.created", "data": {"n": 1}}))
        .await;
    let request = receiver.wait_for("/both", 1).await.remove(0);
    assert_eq!(entries(&request, "v1").len(), 1);
    assert_eq!(entries(&request, "v1a").len(), 1);
    hookd_verify::verify(&secret, &request.header_pairs(), &request.body, now_unix()).unwrap();
    assert!(verifies_with_public_key(&request, &first));
    hookd_verify::verify_hex(
        &secret,
        request.header("x-webhook-signature"),
        &request.body,
    )
    .unwrap();

    // Rotated with an hour of overlap: both keys are listed and both sign.
    let rotated = app
        .post(
            &format!("/api/webhooks/{id}/rotate-signing-key"),
            json!({"overlap_seconds": 3600}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let (_, set) = key_set(&app, &id).await;
    let keys = public_keys(&set);
    assert_eq!(keys.len(), 2, "{set}");
    assert_eq!(keys[1], first, "the old key comes second");
    let second = keys[0].clone();
    assert_ne!(second, first);
    assert!(set["keys"][0]["not_after"].is_null());
    assert!(set["keys"][1]["not_after"].is_string());
    assert_eq!(rotated.body, set);

    app.publish(json!({"event": "order.created", "data": {"n": 2}}))
        .await;
    let request = receiver.wait_for("/both", 2).await.remove(1);
    assert_eq!(entries(&request, "v1a").len(), 2);
    assert!(verifies_with_public_key(&request, &first));
    assert!(verifies_with_public_key(&request, &second));

    // Rotated without overlap: only the newest key is listed and signs.
    let rotated = app
        .post(
            &format!("/api/webhooks/{id}/rotate-signing-key"),
            json!({"overlap_seconds": 0}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let keys = public_keys(&key_set(&app, &id).await.1);
    assert_eq!(keys.len(), 1);
    let third = keys[0].clone();
    app.publish(json!({"event": "order.created", "data": {"n": 3}}))
        .await;
    let request = receiver.wait_for("/both", 3).await.remove(2);
    assert_eq!(entries(&request, "v1a").len(), 1);
    assert!(verifies_with_public_key(&request, &third));
    assert!(!verifies_with_public_key(&request, &second));
    assert!(!verifies_with_public_key(&request, &first));
}

#[tokio::test]
async fn a_key_pair_of_the_clients_choosing_signs_and_turning_v1a_on_makes_one() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let own = SigningKeyPair::from_seed(&[9; 32]);
    let created = app
        .subscribe_with(json!({"url": receiver.url("/own"), "events": ["*"],
                               "signature_schemes": ["v1a"], "signing_key": own.to_text()}))
        .await;
    let id = id_of(&created);
    let (_, set) = key_set(&app, &id).await;
    assert_eq!(public_keys(&set), [own.public_key()]);
    assert_eq!(set["keys"][0]["kid"], own.key_id().as_str());
    app.publish(json!({"event": "order.created", "data": {"n": 1}}))
        .await;
    let request = receiver.wait_for("/own", 1).await.remove(0);
    assert!(verifies_with_public_key(&request, &own.public_key()));

    // A v1-only subscription has no key set until v1a is turned on.
    let plain = app.subscribe(&receiver.url("/plain"), &["*"]).await;
    let plain_id = id_of(&plain);
    assert_eq!(plain["signature_schemes"], json!(["v1"]));
    assert_eq!(key_set(&app, &plain_id).await.0, 404);
    let patched = app
        .patch(
            &format!("/api/webhooks/{plain_id}"),
            json!({"signature_schemes": ["v1", "v1a"]}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let (status, set) = key_set(&app, &plain_id).await;
    assert_eq!(status, 200);
    let generated = public_keys(&set).remove(0);
    // Patching the schemes again keeps the key; giving one replaces it at once.
    app.patch(
        &format!("/api/webhooks/{plain_id}"),
        json!({"signature_schemes": ["v1a"]}),
    )
    .await;
    assert_eq!(public_keys(&key_set(&app, &plain_id).await.1), [generated]);
    let replacement = SigningKeyPair::from_seed(&[10; 32]);
    let patched = app
        .patch(
            &format!("/api/webhooks/{plain_id}"),
            json!({"signing_key": replacement.to_text()}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(
        public_keys(&key_set(&app, &plain_id).await.1),
        [replacement.public_key()]
    );
    assert_eq!(key_set(&app, "wh_unknown").await.0, 404);
}

#[tokio::test]
async fn bad_signing_keys_and_schemes_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let url = "http://127.0.0.1:1/h";
    let pair = SigningKeyPair::from_seed(&[1; 32]);
    let other = SigningKeyPair::from_seed(&[2; 32]);
    // Seed of one pair followed by the public key of another.
    let mismatched = {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::STANDARD;
        let own = engine
            .decode(pair.to_text().trim_start_matches("whsk_"))
            .unwrap();
        let theirs = engine
            .decode(other.to_text().trim_start_matches("whsk_"))
            .unwrap();
        let mut bytes = own[..32].to_vec();
        bytes.extend_from_slice(&theirs[32..]);
        format!("whsk_{}", engine.encode(bytes))
    };
    for (key, why) in [
        ("whsk_c2hvcnQ=".to_owned(), "wrong length"),
        ("whsk_!!!!".to_owned(), "not base64"),
        (pair.public_key(), "a public key"),
        (mismatched, "mismatched halves"),
    ] {
        let reply = app
            .post(
                "/api/webhooks",
                json!({"url": url, "events": ["*"], "signature_schemes": ["v1a"],
                       "signing_key": key.clone()}),
            )
            .await;
        reply.assert_error(422, "invalid_signing_key");
        assert_eq!(reply.body["field"], "signing_key", "{why}");
        assert!(!reply.body.to_string().contains(&key), "{why}: key echoed");
    }
    for schemes in [json!([]), json!(["v2"]), json!(["v1", "v1"])] {
        let reply = app
            .post(
                "/api/webhooks",
                json!({"url": url, "events": ["*"], "signature_schemes": schemes}),
            )
            .await;
        reply.assert_error(422, "invalid_signature_schemes");
        assert_eq!(reply.body["field"], "signature_schemes");
    }
    let sub = app.subscribe(url, &["*"]).await;
    let id = id_of(&sub);
    let reply = app
        .post(
            &format!("/api/webhooks/{id}/rotate-signing-key"),
            json!({"signing_key": "whsk_AAAA"}),
        )
        .await;
    reply.assert_error(422, "invalid_signing_key");
    let reply = app
        .post(
            &format!("/api/webhooks/{id}/rotate-signing-key"),
            json!({"overlap_seconds": -1}),
        )
        .await;
    reply.assert_error(422, "invalid_field");
    assert_eq!(reply.body["field"], "overlap_seconds");
    let reply = app
        .post("/api/webhooks/wh_unknown/rotate-signing-key", json!({}))
        .await;
    assert_eq!(reply.status, 404);
}

#[tokio::test]
async fn signing_keys_are_sealed_at_rest() {
    let app = spawn_app().await;
    let own = SigningKeyPair::from_seed(&[11; 32]);
    let created = app
        .subscribe_with(json!({"url": "http://127.0.0.1:1/h", "events": ["*"],
                               "signature_schemes": ["v1", "v1a"], "signing_key": own.to_text()}))
        .await;
    let id = id_of(&created);
    app.post(
        &format!("/api/webhooks/{id}/rotate-signing-key"),
        json!({"overlap_seconds": 60}),
    )
    .await;
    let (raw, _) = open_store_with_publisher_stats(&app.config).await;
    let page = raw
        .subscriptions
        .list_subscriptions(SubscriptionQuery {
            limit: 10,
            ..SubscriptionQuery::default()
        })
        .await
        .unwrap();
    let row = page.items.into_iter().find(|row| row.id == id).unwrap();
    let seed = own.to_text();
    for stored in [
        row.signing_key.unwrap().key,
        row.previous_signing_key.unwrap().key,
    ] {
        assert!(stored.starts_with("enc:v2:"), "{stored}");
        assert!(!stored.contains(seed.trim_start_matches("whsk_")));
    }
}
