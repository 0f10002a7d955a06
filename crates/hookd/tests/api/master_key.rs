//! Master-key rotation (`hookd master-key rotate`) on the configured backend: every secret is
//! re-encrypted with the new key in one transaction, the old key opens nothing, deliveries and the
//! inbound endpoint still verify, a running node follows by itself, and a crash between any two
//! steps loses nothing.

use crate::common::*;
use hookd::config::Config;
use hookd::master_key::{Installed, Rotation, rotate};
use hookd::store::sealed::{KEY_FILE, MasterKey, NEXT_KEY_FILE, key_id_of, read_key_file};
use hookd::store::{StoreError, SubscriptionQuery};
use serde_json::json;
use std::collections::HashMap;

/// A subscription's secrets as the API gave them out: the test's ground truth.
#[derive(Debug, Clone)]
struct Secrets {
    id: String,
    path: String,
    current: String,
    previous: Option<String>,
    /// For a subscription that also signs `v1a`: its public key (the private half is sealed).
    public_key: Option<String>,
}

/// Two subscriptions on `receiver`, one of them mid-way through a secret rotation (two secrets).
async fn subscribe_two(app: &TestApp, receiver: &Receiver) -> Vec<Secrets> {
    let mut all = Vec::new();
    for path in ["/a", "/b"] {
        let sub = app.subscribe(&receiver.url(path), &["*"]).await;
        all.push(Secrets {
            id: sub["id"].as_str().unwrap().to_owned(),
            path: path.to_owned(),
            current: sub["secret"].as_str().unwrap().to_owned(),
            previous: None,
            public_key: None,
        });
    }
    // The second one also signs `v1a`: its key pair is sealed like a secret.
    let patched = app
        .patch(
            &format!("/api/webhooks/{}", all[1].id),
            json!({"signature_schemes": ["v1", "v1a"]}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    all[1].public_key = patched.body["public_keys"][0]["public_key"]
        .as_str()
        .map(str::to_owned);
    assert!(all[1].public_key.is_some());
    let rotated = app
        .post(
            &format!("/api/webhooks/{}/rotate-secret", all[0].id),
            json!({"overlap_seconds": 3600}),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    all[0].previous = Some(std::mem::replace(
        &mut all[0].current,
        rotated.body["secret"].as_str().unwrap().to_owned(),
    ));
    all
}

/// A data dir and database with two subscriptions, and no node running.
async fn stopped_fixture(
    tweak: impl FnOnce(&mut Config),
) -> (TestDir, Config, Receiver, Vec<Secrets>) {
    let data = TestDir::new();
    let mut config = test_config(data.path());
    tweak(&mut config);
    let app = spawn_on(config.clone()).await;
    let receiver = Receiver::start().await;
    let secrets = subscribe_two(&app, &receiver).await;
    app.stop().await;
    (data, config, receiver, secrets)
}

fn key_file(config: &Config, name: &str) -> Option<MasterKey> {
    read_key_file(&config.data_dir.join(name)).unwrap()
}

/// The sealed values as stored, by subscription id: `(secret, previous_secret, signing_key)`.
async fn stored(config: &Config) -> HashMap<String, (String, Option<String>, Option<String>)> {
    let (raw, _) = open_store_with_publisher_stats(config).await;
    let page = raw
        .subscriptions
        .list_subscriptions(SubscriptionQuery {
            limit: 250,
            ..SubscriptionQuery::default()
        })
        .await
        .unwrap();
    page.items
        .into_iter()
        .map(|row| {
            let key = row.signing_key.map(|entry| entry.key);
            (row.id, (row.secret, row.previous_secret, key))
        })
        .collect()
}

/// Every stored secret is sealed with `key` (and names it), opens to what the API gave out, and
/// cannot be opened with `old`.
async fn assert_sealed_with(
    config: &Config,
    key: &MasterKey,
    old: &MasterKey,
    secrets: &[Secrets],
) {
    let stored = stored(config).await;
    for expected in secrets {
        let (secret, previous, signing_key) = &stored[&expected.id];
        assert_eq!(signing_key.is_some(), expected.public_key.is_some());
        if let (Some(value), Some(public_key)) = (signing_key, &expected.public_key) {
            assert_eq!(key_id_of(value), Some(key.id().as_str()), "{value}");
            let opened = key.open(&expected.id, value).unwrap();
            let pair = hookd_verify::SigningKeyPair::parse(&opened).unwrap();
            assert_eq!(&pair.public_key(), public_key);
            assert!(old.open(&expected.id, value).is_err());
        }
        let pairs = [
            (Some(secret), Some(&expected.current)),
            (previous.as_ref(), expected.previous.as_ref()),
        ];
        for (value, plaintext) in pairs {
            let (Some(value), Some(plaintext)) = (value, plaintext) else {
                assert_eq!(value.is_some(), plaintext.is_some(), "{}", expected.id);
                continue;
            };
            assert!(
                !value.contains(plaintext.as_str()),
                "stored in clear: {value}"
            );
            assert_eq!(key_id_of(value), Some(key.id().as_str()), "{value}");
            assert_eq!(&key.open(&expected.id, value).unwrap(), plaintext);
            assert!(
                old.open(&expected.id, value).is_err(),
                "the old key still opens {value}"
            );
        }
    }
}

/// Starts a node on `config` and proves every secret works: the API hands it out, a delivery is
/// signed with it (and with the previous secret during the overlap), and the inbound endpoint
/// accepts a webhook signed with it.
async fn assert_secrets_work(config: &Config, receiver: &Receiver, secrets: &[Secrets]) {
    let app = spawn_on(config.clone()).await;
    let before: Vec<usize> = secrets
        .iter()
        .map(|expected| receiver.received(&expected.path).len())
        .collect();
    for expected in secrets {
        let reply = app
            .get(&format!("/api/webhooks/{}/secret", expected.id))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["secret"], expected.current.as_str());
    }
    app.publish(json!({"event": "a", "data": {}})).await;
    for (expected, before) in secrets.iter().zip(before) {
        let request = receiver
            .wait_for(&expected.path, before + 1)
            .await
            .remove(before);
        let ts: i64 = request.header("webhook-timestamp").parse().unwrap();
        let headers = [
            ("webhook-id", request.header("webhook-id")),
            ("webhook-timestamp", request.header("webhook-timestamp")),
            ("webhook-signature", request.header("webhook-signature")),
        ];
        for secret in std::iter::once(&expected.current).chain(&expected.previous) {
            hookd_verify::verify(secret, &headers, &request.body, ts)
                .unwrap_or_else(|e| panic!("{}: {e:?}", expected.id));
        }
        if let Some(public_key) = &expected.public_key {
            hookd_verify::Verifier::from_public_key(public_key)
                .unwrap()
                .verify(&headers, &request.body, ts)
                .unwrap_or_else(|e| panic!("v1a of {}: {e:?}", expected.id));
        }
        assert_inbound_accepts(&app, &expected.id, &expected.current).await;
    }
    app.stop().await;
}

async fn assert_inbound_accepts(app: &TestApp, id: &str, secret: &str) {
    let body = r#"{"event":"a","data":{}}"#;
    let ts = hookd::ids::SystemClock.now_ms() / 1000;
    let msg_id = format!("msg_{}", hookd::ids::SystemClock.now_ms());
    let key = hookd_verify::decode_secret(secret).unwrap();
    let signature = hookd_verify::sign_v1(&key, &msg_id, ts, body.as_bytes());
    let reply = app
        .client
        .post(app.url(&format!("/webhooks/{id}")))
        .header("content-type", "application/json")
        .header("webhook-id", &msg_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200, "inbound endpoint of {id}");
}

#[tokio::test]
async fn rotation_reencrypts_every_secret_and_deliveries_still_verify() {
    let (_data, config, receiver, secrets) = stopped_fixture(|_| {}).await;
    let old = key_file(&config, KEY_FILE).expect("created at first start");
    assert_sealed_with(&config, &old, &MasterKey::generate(), &secrets).await;

    let rotated = rotate(&config, None).await.unwrap();
    assert_eq!(
        rotated.resealed, 4,
        "two current secrets, one previous and one signing key"
    );
    assert!(!rotated.resumed);
    assert_eq!(rotated.old_key_id, old.id());
    let key_path = config.data_dir.join(KEY_FILE);
    assert_eq!(rotated.installed, Installed::KeyFile(key_path.clone()));
    let new = key_file(&config, KEY_FILE).unwrap();
    assert_eq!(new, rotated.new_key);
    assert_ne!(new, old);
    assert!(key_file(&config, NEXT_KEY_FILE).is_none());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let (raw, _) = open_store_with_publisher_stats(&config).await;
    assert_eq!(raw.secrets.sealing_key_id().await.unwrap(), Some(new.id()));

    assert_sealed_with(&config, &new, &old, &secrets).await;
    assert_secrets_work(&config, &receiver, &secrets).await;
}

#[tokio::test]
async fn a_crash_between_the_steps_loses_nothing() {
    let (_data, config, receiver, mut secrets) = stopped_fixture(|_| {}).await;
    let old = key_file(&config, KEY_FILE).unwrap();

    // Crash after step 1: the new key is on disk, nothing is re-encrypted yet.
    let rotation = Rotation::prepare(&config, None).await.unwrap();
    let new = rotation.new_key().clone();
    drop(rotation);
    assert_eq!(key_file(&config, NEXT_KEY_FILE), Some(new.clone()));
    assert_eq!(key_file(&config, KEY_FILE), Some(old.clone()));
    assert_sealed_with(&config, &old, &new, &secrets).await;
    assert_secrets_work(&config, &receiver, &secrets).await;

    // Crash after step 2: re-encrypted and committed, the key files not swapped yet. Running again
    // resumes the same rotation; nodes starting meanwhile hold both keys and seal with the new one.
    let rotation = Rotation::prepare(&config, None).await.unwrap();
    assert!(rotation.resumed());
    assert_eq!(rotation.new_key(), &new);
    assert_eq!(rotation.reseal().await.unwrap(), 4);
    drop(rotation);
    assert_eq!(key_file(&config, KEY_FILE), Some(old.clone()));
    assert_sealed_with(&config, &new, &old, &secrets).await;
    assert_secrets_work(&config, &receiver, &secrets).await;
    let app = spawn_on(config.clone()).await;
    let added = app.subscribe(&receiver.url("/c"), &["*"]).await;
    app.stop().await;
    secrets.push(Secrets {
        id: added["id"].as_str().unwrap().to_owned(),
        path: "/c".into(),
        current: added["secret"].as_str().unwrap().to_owned(),
        previous: None,
        public_key: None,
    });
    assert_sealed_with(&config, &new, &old, &secrets).await;

    // Finishing: the same key is installed; nothing is left under the old one.
    let rotated = rotate(&config, None).await.unwrap();
    assert!(rotated.resumed);
    assert_eq!(rotated.new_key, new);
    assert_eq!(rotated.resealed, 5);
    assert_eq!(key_file(&config, KEY_FILE), Some(new.clone()));
    assert!(key_file(&config, NEXT_KEY_FILE).is_none());
    assert_sealed_with(&config, &new, &old, &secrets).await;
    assert_secrets_work(&config, &receiver, &secrets).await;
}

#[tokio::test]
async fn running_nodes_follow_a_rotation_by_themselves() {
    let data = TestDir::new();
    let config = test_config(data.path());
    // Two nodes loaded the old key: one meets the rotation on a write, the other on a read.
    let writer = spawn_on(config.clone()).await;
    let reader = spawn_on(config.clone()).await;
    let receiver = Receiver::start().await;
    let mut secrets = subscribe_two(&writer, &receiver).await;
    let old = key_file(&config, KEY_FILE).unwrap();

    let rotated = rotate(&config, None).await.unwrap();
    let new = rotated.new_key;

    // Writing: the database refuses a secret sealed with the retired key; the node loads its key
    // file again, seals with the new key and writes.
    let added = writer.subscribe(&receiver.url("/c"), &["*"]).await;
    secrets.push(Secrets {
        id: added["id"].as_str().unwrap().to_owned(),
        path: "/c".into(),
        current: added["secret"].as_str().unwrap().to_owned(),
        previous: None,
        public_key: None,
    });
    // Reading: the node meets values sealed with a key it lacks and loads its key file again.
    for expected in &secrets {
        let reply = reader
            .get(&format!("/api/webhooks/{}/secret", expected.id))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["secret"], expected.current.as_str());
    }
    writer.stop().await;
    // Delivering: the reader's worker opens the new secrets too.
    reader.publish(json!({"event": "a", "data": {}})).await;
    for expected in &secrets {
        let request = receiver.wait_for(&expected.path, 1).await.remove(0);
        let ts: i64 = request.header("webhook-timestamp").parse().unwrap();
        let headers = [
            ("webhook-id", request.header("webhook-id")),
            ("webhook-timestamp", request.header("webhook-timestamp")),
            ("webhook-signature", request.header("webhook-signature")),
        ];
        hookd_verify::verify(&expected.current, &headers, &request.body, ts).unwrap();
    }
    reader.stop().await;
    assert_sealed_with(&config, &new, &old, &secrets).await;
}

#[tokio::test]
async fn a_configured_key_is_rotated_and_the_new_one_printed_for_the_operator() {
    let old = MasterKey::generate();
    let (_data, config, receiver, secrets) =
        stopped_fixture(|c| c.master_key = Some(old.to_base64())).await;
    assert!(
        key_file(&config, KEY_FILE).is_none(),
        "no key file when configured"
    );

    let rotated = rotate(&config, None).await.unwrap();
    let new = rotated.new_key.clone();
    let copy = config.data_dir.join(NEXT_KEY_FILE);
    assert_eq!(
        rotated.installed,
        Installed::Configured {
            saved_at: Some(copy.clone())
        }
    );
    assert_eq!(key_file(&config, NEXT_KEY_FILE), Some(new.clone()));
    assert_sealed_with(&config, &new, &old, &secrets).await;
    // Until the operator installs the key, a node on this data dir finds the copy.
    assert_secrets_work(&config, &receiver, &secrets).await;

    // The operator installs the new key and deletes the copy.
    std::fs::remove_file(&copy).unwrap();
    let error = hookd::server::open_store(&config).await.err().unwrap();
    let message = format!("{error:#}");
    assert!(
        message.contains(&new.id()) && message.contains("does not have"),
        "a node without the new key refuses to start, naming it: {message}"
    );
    let mut installed = config.clone();
    installed.master_key = Some(new.to_base64());
    assert_secrets_work(&installed, &receiver, &secrets).await;

    // A key the operator brings is not written anywhere once the rotation is over.
    let theirs = MasterKey::generate();
    let rotated = rotate(&installed, Some(theirs.clone())).await.unwrap();
    assert_eq!(rotated.installed, Installed::Configured { saved_at: None });
    assert!(key_file(&config, NEXT_KEY_FILE).is_none());
    assert_sealed_with(&config, &theirs, &new, &secrets).await;
    installed.master_key = Some(theirs.to_base64());
    assert_secrets_work(&installed, &receiver, &secrets).await;
}

#[tokio::test]
async fn a_rotation_refuses_the_current_key_and_a_second_new_key_while_one_is_pending() {
    let (_data, config, _receiver, _secrets) = stopped_fixture(|_| {}).await;
    let current = key_file(&config, KEY_FILE).unwrap();
    let error = rotate(&config, Some(current)).await.err().unwrap();
    assert!(
        format!("{error:#}").contains("is the current one"),
        "{error:#}"
    );

    let pending = Rotation::prepare(&config, None).await.unwrap();
    let other = MasterKey::generate();
    let error = rotate(&config, Some(other)).await.err().unwrap();
    assert!(
        format!("{error:#}").contains("was interrupted"),
        "{error:#}"
    );
    // The pending key itself is fine: that finishes the interrupted rotation.
    let rotated = rotate(&config, Some(pending.new_key().clone()))
        .await
        .unwrap();
    assert!(rotated.resumed);
}

#[tokio::test]
async fn a_secret_sealed_with_a_retired_key_is_refused_by_the_store() {
    let (_data, config, _receiver, secrets) = stopped_fixture(|_| {}).await;
    let old = key_file(&config, KEY_FILE).unwrap();
    rotate(&config, None).await.unwrap();
    let (raw, _) = open_store_with_publisher_stats(&config).await;
    let now = hookd::ids::SystemClock.now_ms();
    let mut row = hookd::store::SubscriptionRow::new(
        "wh_stale".into(),
        hookd_core::EndpointUrl::from_stored("https://example.com/").unwrap(),
        vec![hookd_core::EventFilter::All],
        old.seal("wh_stale", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap(),
        now,
    );
    let new_id = raw.secrets.sealing_key_id().await.unwrap().unwrap();
    assert!(matches!(
        raw.subscriptions.insert_subscription(&row).await,
        Err(StoreError::SealingKeyChanged(id)) if id == new_id
    ));
    let stale = old
        .seal(&secrets[1].id, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .unwrap();
    assert!(matches!(
        raw.subscriptions
            .rotate_secret(&secrets[1].id, &stale, None, now)
            .await,
        Err(StoreError::SealingKeyChanged(_))
    ));
    assert!(
        raw.subscriptions
            .get_subscription("wh_stale")
            .await
            .unwrap()
            .is_none()
    );
    // Not found stays not found; values without a key id (legacy) are not checked.
    assert!(matches!(
        raw.subscriptions
            .rotate_secret("wh_missing", "whsec_x", None, now)
            .await,
        Ok(None)
    ));
    row.secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into();
    raw.subscriptions.insert_subscription(&row).await.unwrap();
}

use hookd::ids::Clock;
