//! SSRF protection on the delivery path: outside development mode, attempts to loopback or private
//! addresses are blocked at connect time (literal addresses and names that resolve to them alike),
//! logged as `blocked`, and count as failures.

use crate::common::*;
use hookd::store::SubscriptionRow;
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
    for (id, url) in [
        ("wh_literal", format!("http://127.0.0.1:{port}/literal")),
        ("wh_name", format!("http://localhost:{port}/name")),
    ] {
        let row = SubscriptionRow::new(
            id.into(),
            url,
            vec!["*".into()],
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            now,
        );
        app.store.insert_subscription(&row).await.unwrap();
    }
    let published = app
        .post("/api/events", json!({"event": "a", "data": {}}))
        .await;
    let event_id = published.body["id"].as_str().unwrap().to_owned();
    let event = app
        .eventually(&format!("/api/events/{event_id}"), |b| {
            b["deliveries"]
                .as_array()
                .is_some_and(|d| d.len() == 2 && d.iter().all(|d| d["state"] == "dead"))
        })
        .await;
    for delivery in event["deliveries"].as_array().unwrap() {
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
    assert!(receiver.received("/literal").is_empty());
    assert!(receiver.received("/name").is_empty());
}

use hookd::ids::Clock;
