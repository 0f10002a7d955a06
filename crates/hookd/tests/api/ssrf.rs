//! SSRF protection. At registration (through the real API, outside development mode): a corpus of
//! URL forms naming non-public addresses, in every notation, refused with `invalid_url`, and public
//! ones accepted; `allow_targets` honoured. At connect time: attempts to loopback or private
//! addresses (literal addresses and names that resolve to them alike) are blocked, logged as
//! `blocked`, and count as failures. The resolver's own rules are unit-tested in `worker/ssrf.rs`.

use crate::common::*;
use hookd::store::SubscriptionRow;
use hookd_core::{EndpointUrl, EventFilter};
use serde_json::json;

#[tokio::test]
async fn deliveries_to_non_public_addresses_are_blocked() {
    let app = spawn_app_with(|c| {
        c.dev = false;
        c.retry = Some(hookd_core::RetryPolicy::Exponential {
            max_attempts: 2,
            base_delay_ms: 10,
            max_delay_ms: 10,
        });
    })
    .await;
    let receiver = Receiver::start().await;
    let port = receiver.base.rsplit(':').next().unwrap().to_owned();
    // Rows written straight to the store: registration would refuse these URLs, but the check at
    // connect time must hold on its own (e.g. for a name whose DNS answer changed since).
    let now = hookd::ids::SystemClock.now_ms();
    let targets = [
        ("wh_literal", format!("http://127.0.0.1:{port}/literal")),
        ("wh_decimal", format!("http://2130706433:{port}/decimal")),
        (
            "wh_mapped",
            format!("http://[::ffff:127.0.0.1]:{port}/mapped"),
        ),
        ("wh_name", format!("http://localhost:{port}/name")),
    ];
    for (id, url) in &targets {
        let row = SubscriptionRow::new(
            (*id).into(),
            EndpointUrl::from_stored(url).unwrap(),
            vec![EventFilter::All],
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            now,
        );
        app.store
            .subscriptions
            .insert_subscription(&row)
            .await
            .unwrap();
    }
    let event_id = app.publish(json!({"event": "a", "data": {}})).await;
    let deliveries = app
        .wait_for_deliveries(&event_id, |deliveries| {
            deliveries.len() == 4 && deliveries.iter().all(|d| d["state"] == "dead")
        })
        .await;
    for delivery in &deliveries {
        let detail = app
            .get(&format!(
                "/api/deliveries/{}",
                delivery["id"].as_str().unwrap()
            ))
            .await
            .body;
        let attempts = detail["attempts"].as_array().unwrap();
        assert_eq!(
            attempts.len(),
            2,
            "blocked attempts count as failures: {detail}"
        );
        for attempt in attempts {
            assert_eq!(attempt["error_class"], "blocked", "{attempt}");
            assert!(attempt["error"].as_str().unwrap().contains("target policy"));
        }
    }
    for path in ["/literal", "/decimal", "/mapped", "/name"] {
        assert!(receiver.received(path).is_empty(), "{path} was reached");
    }
}

/// `(URL, accepted at registration)`, outside development mode and without `allow_targets`.
const CORPUS: &[(&str, bool)] = &[
    // IPv4 loopback in every notation the URL parser knows.
    ("https://127.0.0.1/", false),
    ("https://127.0.0.1:8443/hook?x=1", false),
    ("https://127.1/", false),
    ("https://127.255.255.254/", false),
    ("https://2130706433/", false),
    ("https://0x7f000001/", false),
    ("https://0x7f.0.0.1/", false),
    ("https://0177.0.0.1/", false),
    ("https://017700000001/", false),
    ("https://127.0.0.1./", false),
    ("https://%31%32%37.0.0.1/", false),
    ("https://\u{ff11}\u{ff12}\u{ff17}.0.0.1/", false),
    // "This network", private, link-local and cloud metadata, CGNAT.
    ("https://0/", false),
    ("https://0.0.0.0/", false),
    ("https://0.1.2.3/", false),
    ("https://10.0.0.1/", false),
    ("https://10.255.255.255/", false),
    ("https://172.16.0.1/", false),
    ("https://172.31.255.254/", false),
    ("https://192.168.0.1/", false),
    ("https://0xc0a80001/", false),
    ("https://169.254.169.254/latest/meta-data/", false),
    ("https://2852039166/", false),
    ("https://0xa9fea9fe/", false),
    ("https://0251.0376.0251.0376/", false),
    ("https://100.64.0.1/", false),
    ("https://100.127.255.255/", false),
    // Multicast, broadcast, reserved and documentation ranges.
    ("https://224.0.0.1/", false),
    ("https://239.255.255.250/", false),
    ("https://255.255.255.255/", false),
    ("https://240.0.0.1/", false),
    ("https://192.0.2.1/", false),
    ("https://198.18.0.1/", false),
    // IPv6 loopback, unspecified, unique local, link-local, multicast, documentation.
    ("https://[::1]/", false),
    ("https://[0:0:0:0:0:0:0:1]/", false),
    ("https://[::]/", false),
    ("https://[fc00::1]/", false),
    ("https://[fd12:3456:789a::1]/", false),
    ("https://[fe80::1]/", false),
    ("https://[fec0::1]/", false),
    ("https://[ff02::1]/", false),
    ("https://[2001:db8::1]/", false),
    ("https://[100::1]/", false),
    // IPv4-mapped, -compatible and -translated forms.
    ("https://[::ffff:127.0.0.1]/", false),
    ("https://[::ffff:7f00:1]/", false),
    ("https://[::ffff:169.254.169.254]/", false),
    ("https://[::ffff:10.0.0.1]/", false),
    ("https://[::127.0.0.1]/", false),
    ("https://[::ffff:0:127.0.0.1]/", false),
    // NAT64 and 6to4 forms of blocked IPv4 addresses.
    ("https://[64:ff9b::127.0.0.1]/", false),
    ("https://[64:ff9b::a9fe:a9fe]/", false),
    ("https://[64:ff9b:1::a00:1]/", false),
    ("https://[2002:7f00:1::1]/", false),
    ("https://[2002:c0a8:101::1]/", false),
    ("https://[2002:a9fe:a9fe::]/", false),
    // The localhost names (RFC 6761).
    ("https://localhost/", false),
    ("https://LOCALHOST/", false),
    ("https://localhost./", false),
    ("https://api.localhost/", false),
    ("https://a.b.LocalHost:8443/x", false),
    // Public addresses and names stay accepted (names are checked when they are resolved).
    ("https://example.com/hook", true),
    ("https://93.184.216.34/", true),
    ("https://8.8.8.8/", true),
    ("https://100.128.0.1/", true),
    ("https://172.32.0.1/", true),
    ("https://[2606:4700::1111]/", true),
    ("https://[::ffff:8.8.8.8]/", true),
    ("https://[64:ff9b::808:808]/", true),
    ("https://[2002:808:808::1]/", true),
    ("https://localhost.example.com/", true),
    ("https://notlocalhost/", true),
];

#[tokio::test]
async fn registration_refuses_every_non_public_url_form_of_the_corpus() {
    let app = spawn_app_with(|c| c.dev = false).await;
    assert!(CORPUS.iter().filter(|(_, accepted)| !accepted).count() >= 40);
    let mut unexpected = Vec::new();
    for (url, accepted) in CORPUS {
        let reply = app
            .post("/api/webhooks", json!({"url": url, "events": ["*"]}))
            .await;
        match accepted {
            true if reply.status == 201 => {}
            false if reply.status == 422 && reply.body["code"] == "invalid_url" => {
                assert_eq!(reply.body["field"], "url", "{url}: {}", reply.body);
                let message = reply.body["error"].as_str().unwrap();
                assert!(
                    message.contains("non-public") || message.contains("loopback"),
                    "{url}: unclear error {message}"
                );
            }
            _ => unexpected.push(format!("{url}: {} {}", reply.status, reply.body)),
        }
    }
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    // Changing the URL of an existing subscription is held to the same rules.
    let sub = app.subscribe("https://example.com/hook", &["*"]).await;
    let id = sub["id"].as_str().unwrap();
    for (url, _) in CORPUS.iter().filter(|(_, accepted)| !accepted) {
        app.patch(&format!("/api/webhooks/{id}"), json!({"url": url}))
            .await
            .assert_error(422, "invalid_url");
    }
}

#[tokio::test]
async fn allow_targets_is_honoured_at_registration_and_at_connect_time() {
    let receiver = Receiver::start().await;
    let port = receiver.base.rsplit(':').next().unwrap().to_owned();
    let app = spawn_app_with(|c| {
        c.dev = false;
        c.allow_http = true;
        c.allow_targets = vec!["10.1.0.0/16".into(), "fd00::/8".into(), "127.0.0.1".into()];
    })
    .await;
    for (url, accepted) in [
        ("https://10.1.2.3/", true),
        ("https://[::ffff:10.1.2.3]/", true),
        ("https://[fd00::5]/", true),
        ("https://10.2.0.1/", false),
        ("https://127.0.0.2/", false),
        ("https://192.168.1.1/", false),
        ("https://169.254.169.254/", false),
        ("https://localhost/", false),
    ] {
        let reply = app
            .post("/api/webhooks", json!({"url": url, "events": ["*"]}))
            .await;
        match accepted {
            true => assert_eq!(reply.status, 201, "{url}: {}", reply.body),
            false => reply.assert_error(422, "invalid_url"),
        }
    }
    // An allowed literal address is registered and delivered to.
    let sub = app
        .subscribe(&format!("http://127.0.0.1:{port}/allowed"), &["only.here"])
        .await;
    assert_eq!(sub["url"], format!("http://127.0.0.1:{port}/allowed"));
    app.publish(json!({"event": "only.here", "data": {}})).await;
    receiver.wait_for("/allowed", 1).await;
}

use hookd::ids::Clock;
