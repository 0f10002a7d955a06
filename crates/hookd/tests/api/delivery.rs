//! The delivery engine end to end: real HTTP to a real receiver on loopback.

use crate::common::*;
use serde_json::{Value, json};
use std::time::Duration;

fn statuses(delivery: &Value) -> Vec<Value> {
    delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].clone())
        .collect()
}

#[tokio::test]
async fn deliveries_are_signed_and_verify() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let sub = app.subscribe(&receiver.url("/hook"), &["order.*"]).await;
    let secret = sub["secret"].as_str().unwrap();
    let event_id = app
        .publish(json!({"event": "order.created", "data": {"orderId": "ORD-1", "amount": 99.99}}))
        .await;
    let request = receiver.wait_for("/hook", 1).await.remove(0);

    assert_eq!(request.header("content-type"), "application/json");
    assert!(request.header("user-agent").starts_with("hookd/"));
    assert_eq!(request.header("webhook-id"), event_id);
    assert_eq!(request.header("x-webhook-id"), event_id);
    assert_eq!(request.header("x-webhook-attempt"), "1");
    assert_eq!(
        request.header("x-webhook-timestamp"),
        request.header("webhook-timestamp")
    );
    let headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let verified = hookd_verify::verify(secret, &headers, &request.body, now).unwrap();
    assert_eq!(verified.msg_id, event_id);
    hookd_verify::verify_hex(secret, request.header("x-webhook-signature"), &request.body).unwrap();
    assert!(
        hookd_verify::verify(
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            &headers,
            &request.body,
            now
        )
        .is_err()
    );

    let body = request.json();
    assert_eq!(body["id"], event_id.as_str());
    assert_eq!(body["event"], "order.created");
    assert_eq!(body["version"], "1.0");
    assert_eq!(body["attempt"], 1);
    assert_eq!(body["retryable"], true);
    assert_eq!(body["data"], json!({"orderId": "ORD-1", "amount": 99.99}));
    let stored = app.get(&format!("/api/events/{event_id}")).await.body;
    assert_eq!(body["timestamp"], stored["timestamp"]);

    let delivery = app.wait_for_delivery_state(&event_id, "delivered").await;
    assert_eq!(delivery["attempts"].as_array().unwrap().len(), 1);
    let attempt = &delivery["attempts"][0];
    assert_eq!(attempt["status"], 200);
    assert_eq!(attempt["attempt"], 1);
    assert_eq!(attempt["error"], Value::Null);
    assert_eq!(
        attempt["request_timestamp"].as_i64().unwrap().to_string(),
        request.header("webhook-timestamp")
    );
    assert_eq!(delivery["event"]["id"], event_id.as_str());
}

#[tokio::test]
async fn a_failure_is_retried_with_the_next_attempt_number() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    receiver.script("/hook", [Answer::Status(500)]);
    app.subscribe(&receiver.url("/hook"), &["*"]).await;
    let event_id = app
        .publish(json!({"event": "order.created", "data": {"n": 1}}))
        .await;
    let requests = receiver.wait_for("/hook", 2).await;
    assert_eq!(requests[0].header("x-webhook-attempt"), "1");
    assert_eq!(requests[1].header("x-webhook-attempt"), "2");
    assert_eq!(requests[0].json()["attempt"], 1);
    assert_eq!(requests[1].json()["attempt"], 2);
    assert_eq!(
        requests[0].header("webhook-id"),
        requests[1].header("webhook-id")
    );
    let delivery = app.wait_for_delivery_state(&event_id, "delivered").await;
    assert_eq!(statuses(&delivery), [json!(500), json!(200)]);
    assert_eq!(delivery["attempts"][0]["error_class"], "http");
    assert_eq!(delivery["attempts"][0]["error"], "HTTP 500");
    assert_eq!(delivery["attempts"][1]["attempt"], 2);
}

#[tokio::test]
async fn timeouts_count_as_failures() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    receiver.script("/slow", [Answer::Hang(Duration::from_secs(3))]);
    let sub = app
        .subscribe_with(json!({"url": receiver.url("/slow"), "events": ["*"], "timeout_ms": 1000}))
        .await;
    assert_eq!(sub["timeout_ms"], 1000);
    let event_id = app.publish(json!({"event": "a", "data": {}})).await;
    let delivery = app.wait_for_delivery_state(&event_id, "delivered").await;
    let first = &delivery["attempts"][0];
    assert_eq!(first["error_class"], "timeout", "{first}");
    assert_eq!(first["status"], Value::Null);
    assert!(first["duration_ms"].as_i64().unwrap() >= 1000);
    assert!(first["duration_ms"].as_i64().unwrap() < 3000);
    assert_eq!(delivery["attempts"][1]["status"], 200);
}

#[tokio::test]
async fn connection_refused_is_a_connect_failure() {
    let app = spawn_app_with(|c| {
        c.retry = Some(hookd_core::RetryPolicy::Schedule {
            schedule_ms: vec![10],
        })
    })
    .await;
    // A port nothing listens on: bind, note the port, close.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    app.subscribe(&format!("http://127.0.0.1:{port}/h"), &["*"])
        .await;
    let event_id = app.publish(json!({"event": "a", "data": {}})).await;
    let delivery = app.wait_for_delivery_state(&event_id, "dead").await;
    let classes: Vec<_> = delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["error_class"].clone())
        .collect();
    assert_eq!(classes, [json!("connect"), json!("connect")]);
}

#[tokio::test]
async fn gone_disables_the_subscription_and_holds_its_deliveries() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    receiver.set_default("/gone", Answer::Status(410));
    let sub = app.subscribe(&receiver.url("/gone"), &["*"]).await;
    let id = sub["id"].as_str().unwrap();
    let event_id = app.publish(json!({"event": "a", "data": {}})).await;
    let delivery = app.wait_for_delivery_state(&event_id, "held").await;
    assert_eq!(statuses(&delivery), [json!(410)], "no retry after 410");
    let webhook = app.get(&format!("/api/webhooks/{id}")).await.body;
    assert_eq!(webhook["active"], false);
    assert_eq!(webhook["disabled_reason"], "the endpoint answered 410 Gone");
    let later = app
        .post("/api/events", json!({"event": "a", "data": {}}))
        .await;
    assert_eq!(later.body["deliveries"], 0);
    let held = app
        .get(&format!(
            "/api/events/{}",
            later.body["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(held.body["deliveries"][0]["state"], "held");
    assert_eq!(receiver.received("/gone").len(), 1);
}

#[tokio::test]
async fn retry_after_is_honoured_up_to_the_policys_max_delay() {
    let (app, worker, clock) = spawn_stepped(|c| {
        c.retry = Some(hookd_core::RetryPolicy::Exponential {
            max_attempts: 5,
            base_delay_ms: 1_000,
            max_delay_ms: 60_000,
        })
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.script(
        "/busy",
        [
            // Longer than any delay the policy's five attempts use (8 s), under its max_delay_ms.
            Answer::WithHeaders(429, vec![("retry-after", "30".into())]),
            Answer::WithHeaders(503, vec![("retry-after", "3600".into())]),
            Answer::WithHeaders(500, vec![("retry-after", "30".into())]),
        ],
    );
    app.subscribe(&receiver.url("/busy"), &["*"]).await;
    let event_id = app.publish(json!({"event": "a", "data": {}})).await;
    let delivery_id = app.get(&format!("/api/events/{event_id}")).await.body["deliveries"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let next_attempt = || async {
        let row = app
            .store
            .deliveries
            .get_delivery(&delivery_id)
            .await
            .unwrap()
            .unwrap();
        (row.state, row.next_attempt_at.unwrap_or(0))
    };

    let report = worker.run_once().await.unwrap();
    assert_eq!(report.retrying, 1);
    let start = clock.now_ms();
    let (state, at) = next_attempt().await;
    assert_eq!(state, hookd::store::DeliveryState::Failed);
    assert_eq!(
        at - start,
        30_000,
        "429 Retry-After: 30 s, honoured in full"
    );

    assert_eq!(worker.run_once().await.unwrap().attempted, 0, "not due yet");
    clock.advance_ms(30_000);
    worker.run_once().await.unwrap();
    let (_, at) = next_attempt().await;
    // Retry-After is clamped to the policy's max_delay_ms (60 s), not to the 8 s its own
    // delays happen to reach.
    assert_eq!(
        at - clock.now_ms(),
        60_000,
        "503 Retry-After: 1 h, clamped to max_delay_ms"
    );

    clock.advance_ms(60_000);
    worker.run_once().await.unwrap();
    let (_, at) = next_attempt().await;
    let delay = at - clock.now_ms();
    assert!(
        (3_200..=4_800).contains(&delay),
        "500 ignores Retry-After: 4 s ± 20%, got {delay}"
    );
    assert_eq!(receiver.received("/busy").len(), 3);
}

use hookd::ids::Clock;

#[tokio::test]
async fn exhausted_attempts_become_a_dead_letter() {
    let app = spawn_app_with(|c| {
        c.retry = Some(hookd_core::RetryPolicy::Exponential {
            max_attempts: 3,
            base_delay_ms: 10,
            max_delay_ms: 20,
        })
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.set_default("/down", Answer::Status(500));
    let sub = app.subscribe(&receiver.url("/down"), &["*"]).await;
    let id = sub["id"].as_str().unwrap();
    let event_id = app
        .publish(json!({"event": "payment.failed", "data": {}}))
        .await;
    let delivery = app.wait_for_delivery_state(&event_id, "dead").await;
    assert_eq!(statuses(&delivery), [json!(500), json!(500), json!(500)]);
    assert_eq!(receiver.received("/down").len(), 3, "exactly max_attempts");
    assert_eq!(delivery["last_error"], "HTTP 500");

    let dead = app.get("/api/dead-letters").await.body;
    let entry = &dead["data"][0];
    assert_eq!(entry["id"], delivery["id"]);
    assert_eq!(entry["event"], "payment.failed");
    assert_eq!(entry["event_id"], event_id.as_str());
    assert_eq!(entry["last_error"], "HTTP 500");
    assert!(entry["failed_at"].as_str().is_some());
    let webhook = app.get(&format!("/api/webhooks/{id}")).await.body;
    assert_eq!(webhook["failure_count"], 1);
    assert_eq!(webhook["active"], true);
}

#[tokio::test]
async fn non_retryable_events_are_attempted_once() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    receiver.set_default("/h", Answer::Status(500));
    app.subscribe(&receiver.url("/h"), &["*"]).await;
    let event_id = app
        .publish(json!({"event": "a", "data": {}, "retryable": false}))
        .await;
    let delivery = app.wait_for_delivery_state(&event_id, "dead").await;
    assert_eq!(statuses(&delivery), [json!(500)]);
    assert_eq!(receiver.received("/h")[0].json()["retryable"], false);
}

#[tokio::test]
async fn ten_dead_deliveries_in_a_row_disable_the_subscription() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    receiver.set_default("/flaky", Answer::Status(500));
    let sub = app.subscribe(&receiver.url("/flaky"), &["*"]).await;
    let path = format!("/api/webhooks/{}", sub["id"].as_str().unwrap());
    let dead_one = |n: usize| {
        let app = &app;
        async move {
            let id = app
                .publish(json!({"event": "a", "data": {"n": n}, "retryable": false}))
                .await;
            app.wait_for_delivery_state(&id, "dead").await;
        }
    };
    for n in 0..5 {
        dead_one(n).await;
    }
    assert_eq!(app.get(&path).await.body["failure_count"], 5);
    // A success resets the count.
    receiver.script("/flaky", [Answer::Status(200)]);
    let ok = app.publish(json!({"event": "a", "data": {}})).await;
    app.wait_for_delivery_state(&ok, "delivered").await;
    assert_eq!(app.get(&path).await.body["failure_count"], 0);
    for n in 0..9 {
        dead_one(n).await;
    }
    assert_eq!(app.get(&path).await.body["active"], true, "9 in a row");
    dead_one(9).await;
    let webhook = app.get(&path).await.body;
    assert_eq!(webhook["active"], false, "10 in a row");
    assert_eq!(webhook["failure_count"], 10);
    assert_eq!(
        webhook["disabled_reason"],
        "auto-disabled after 10 consecutive failed deliveries"
    );
    let held = app
        .post("/api/events", json!({"event": "a", "data": {}}))
        .await;
    assert_eq!(held.body["deliveries"], 0);
}

#[tokio::test]
async fn held_while_disabled_and_replayed_on_enable() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let sub = app.subscribe(&receiver.url("/h"), &["*"]).await;
    let id = sub["id"].as_str().unwrap();
    let disabled = app
        .post(&format!("/api/webhooks/{id}/disable"), json!({}))
        .await;
    assert_eq!(disabled.status, 200);
    assert_eq!(disabled.body["active"], false);
    let mut events = Vec::new();
    for n in 0..3 {
        let reply = app
            .post("/api/events", json!({"event": "a", "data": {"n": n}}))
            .await;
        assert_eq!(reply.body["deliveries"], 0);
        events.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    for event in &events {
        app.wait_for_delivery_state(event, "held").await;
    }
    assert!(receiver.received("/h").is_empty());

    // Enabling without replay keeps them held.
    let enabled = app
        .post(&format!("/api/webhooks/{id}/enable"), json!({}))
        .await;
    assert_eq!(enabled.body["replayed"], 0);
    assert_eq!(enabled.body["webhook"]["active"], true);
    app.post(&format!("/api/webhooks/{id}/disable"), json!({}))
        .await;
    let replayed = app
        .post(
            &format!("/api/webhooks/{id}/enable"),
            json!({"replay": true}),
        )
        .await;
    assert_eq!(replayed.status, 200);
    assert_eq!(replayed.body["replayed"], 3);
    for event in &events {
        app.wait_for_delivery_state(event, "delivered").await;
    }
    assert_eq!(receiver.wait_for("/h", 3).await.len(), 3);
    app.post("/api/webhooks/wh_nope/enable", json!({}))
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn disabling_holds_queued_retries() {
    let app = spawn_app_with(|c| {
        c.retry = Some(hookd_core::RetryPolicy::Schedule {
            schedule_ms: vec![60_000],
        })
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.script("/h", [Answer::Status(500)]);
    let sub = app.subscribe(&receiver.url("/h"), &["*"]).await;
    let id = sub["id"].as_str().unwrap();
    let event_id = app.publish(json!({"event": "a", "data": {}})).await;
    app.wait_for_delivery_state(&event_id, "failed").await;
    let patched = app
        .patch(&format!("/api/webhooks/{id}"), json!({"active": false}))
        .await;
    assert_eq!(patched.status, 200);
    app.wait_for_delivery_state(&event_id, "held").await;
}

/// Subscriptions on one host share its keep-alive connections: rounds of concurrent deliveries to
/// 40 endpoints of one receiver reuse the first round's connections. The pool used to keep only
/// the per-subscription cap (16) of idle connections per host, so every round closed the rest and
/// opened as many new ones (≈ 40 + 4 × 24 here).
#[tokio::test]
async fn subscriptions_on_one_host_reuse_its_connections() {
    const ENDPOINTS: usize = 40;
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    for i in 0..ENDPOINTS {
        let path = format!("/pool/{i}");
        // Slow enough that a round's requests overlap, each on a connection of its own.
        receiver.set_default(&path, Answer::Hang(Duration::from_millis(100)));
        app.subscribe(&receiver.url(&path), &["pool.test"]).await;
    }
    for round in 1..=5 {
        let event_id = app
            .publish(json!({"event": "pool.test", "data": {"round": round}}))
            .await;
        app.wait_for_deliveries(&event_id, |deliveries| {
            deliveries.len() == ENDPOINTS && deliveries.iter().all(|d| d["state"] == "delivered")
        })
        .await;
        if round == 1 {
            // Otherwise the test could not tell the old pool from the new one.
            assert!(
                receiver.connections() > 16,
                "the first round used only {} connections",
                receiver.connections()
            );
        }
    }
    let opened = receiver.connections();
    assert!(
        opened <= ENDPOINTS + 10,
        "{opened} connections for 5 rounds to {ENDPOINTS} endpoints on one host"
    );
}

/// The worker's memory budget bounds what one step claims: each delivery costs its event's data
/// (its request body) and each event once more (its shared copy), so with 3,000-byte events and a
/// 13,000-byte budget a step takes two, not all five.
#[tokio::test]
async fn the_memory_budget_bounds_what_the_worker_claims() {
    let (app, worker, _clock) = spawn_stepped(|c| c.worker_memory_budget_bytes = 13_000).await;
    let receiver = Receiver::start().await;
    app.subscribe(&receiver.url("/big"), &["*"]).await;
    for _ in 0..5 {
        let pad = "x".repeat(3_000 - r#"{"pad":""}"#.len());
        app.publish(json!({"event": "a", "data": {"pad": pad}}))
            .await;
    }
    let mut attempted = Vec::new();
    for _ in 0..3 {
        attempted.push(worker.run_once().await.unwrap().attempted);
    }
    assert_eq!(attempted, [2, 2, 1]);
    assert_eq!(receiver.received("/big").len(), 5);
}

/// An event larger than the whole memory budget is still delivered, alone, when the worker holds
/// nothing else.
#[tokio::test]
async fn an_event_larger_than_the_memory_budget_is_still_delivered() {
    let (app, worker, _clock) = spawn_stepped(|c| c.worker_memory_budget_bytes = 1_000).await;
    let receiver = Receiver::start().await;
    app.subscribe(&receiver.url("/big"), &["*"]).await;
    for _ in 0..2 {
        app.publish(json!({"event": "a", "data": {"pad": "x".repeat(5_000)}}))
            .await;
    }
    for _ in 0..2 {
        let report = worker.run_once().await.unwrap();
        assert_eq!((report.attempted, report.delivered), (1, 1));
    }
    assert_eq!(receiver.received("/big").len(), 2);
}
