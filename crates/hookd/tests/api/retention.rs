//! Retention: finished events expire and go with all their rows, dead letters last their own
//! retention, nothing unfinished is ever removed, old response excerpts are cleared, and the
//! metrics and the dashboard show it. The purge is driven one pass at a time on hookd's manual
//! clock; one test lets the server's own purge loop find the work.

use crate::common::browser::Browser;
use crate::common::*;
use hookd::ids::{DynClock, ManualClock};
use hookd::retention::{PassReport, Purger, RetentionSettings};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn retention(delivered_days: Option<i64>, dead_days: Option<i64>) -> RetentionSettings {
    RetentionSettings {
        delivered_ms: delivered_days.map(|d| (d * DAY) as u64),
        dead_ms: dead_days.map(|d| (d * DAY) as u64),
        excerpts_ms: None,
        interval: Duration::from_secs(60),
    }
}

/// One purge pass at the clock's current time.
async fn purge(app: &TestApp, clock: &ManualClock, settings: RetentionSettings) -> PassReport {
    let clock: DynClock = Arc::new(clock.clone());
    Purger::new(app.store.clone(), clock, settings)
        .run_pass()
        .await
        .unwrap()
}

/// Subscribes `path` of `receiver` to event type `event` (with `extra` fields) and returns its id.
async fn subscribe(app: &TestApp, receiver: &Receiver, event: &str, extra: Value) -> String {
    let mut body = json!({"url": receiver.url(event), "events": [event]});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    id_of(&app.subscribe_with(body).await)
}

async fn event_exists(app: &TestApp, event: &str) -> bool {
    let reply = app.get(&format!("/api/events/{event}")).await;
    match reply.status.as_u16() {
        200 => true,
        404 => false,
        other => panic!("GET /api/events/{event}: {other} {}", reply.body),
    }
}

/// The states of an event's deliveries, sorted.
async fn states_of(app: &TestApp, event: &str) -> Vec<String> {
    let reply = app.get(&format!("/api/events/{event}")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let mut states: Vec<String> = reply.body["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["state"].as_str().unwrap().to_owned())
        .collect();
    states.sort();
    states
}

async fn attempts_of(app: &TestApp, delivery: &str) -> usize {
    app.store
        .deliveries
        .list_attempts(delivery)
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn retention_removes_expired_delivered_events_with_their_deliveries_and_attempts() {
    let (app, worker, clock) = spawn_stepped(|_| {}).await;
    let receiver = Receiver::start().await;
    subscribe(&app, &receiver, "ok", json!({})).await;
    let old = app.publish(json!({"event": "ok", "data": {"n": 1}})).await;
    worker.run_once().await.unwrap();
    let delivery = id_of(&app.wait_for_delivery_state(&old, "delivered").await);
    assert_eq!(attempts_of(&app, &delivery).await, 1);

    clock.advance_ms(DAY / 2);
    let young = app.publish(json!({"event": "ok", "data": {"n": 2}})).await;
    worker.run_once().await.unwrap();
    app.wait_for_delivery_state(&young, "delivered").await;

    clock.advance_ms(DAY / 4);
    let kept = purge(&app, &clock, retention(Some(1), None)).await;
    assert_eq!(kept.purged.total(), 0, "nothing is a day old yet");
    assert!(event_exists(&app, &old).await);

    clock.advance_ms(DAY / 2);
    let report = purge(&app, &clock, retention(Some(1), None)).await;
    assert_eq!(
        (
            report.purged.events,
            report.purged.deliveries,
            report.purged.attempts
        ),
        (1, 1, 1)
    );
    assert!(!event_exists(&app, &old).await);
    app.get(&format!("/api/deliveries/{delivery}"))
        .await
        .assert_error(404, "not_found");
    assert_eq!(attempts_of(&app, &delivery).await, 0);
    assert!(event_exists(&app, &young).await, "the younger event stays");
}

#[tokio::test]
async fn dead_letters_are_kept_until_their_own_retention() {
    let (app, worker, clock) = spawn_stepped(|_| {}).await;
    let receiver = Receiver::start().await;
    receiver.set_default("/dead", Answer::Status(500));
    subscribe(&app, &receiver, "ok", json!({})).await;
    let once = json!({"retry": {"max_attempts": 1, "base_delay_ms": 100}});
    subscribe(&app, &receiver, "dead", once).await;
    let delivered = app.publish(json!({"event": "ok", "data": {}})).await;
    let dead = app.publish(json!({"event": "dead", "data": {}})).await;
    worker.run_once().await.unwrap();
    app.wait_for_delivery_state(&delivered, "delivered").await;
    app.wait_for_delivery_state(&dead, "dead").await;

    clock.advance_ms(2 * DAY);
    let report = purge(&app, &clock, retention(Some(1), Some(3))).await;
    assert_eq!(report.purged.events, 1);
    assert!(!event_exists(&app, &delivered).await);
    assert_eq!(
        states_of(&app, &dead).await,
        ["dead"],
        "dead letters last longer"
    );

    let forever = purge(&app, &clock, retention(Some(1), None)).await;
    assert_eq!(
        forever.purged.total(),
        0,
        "unset: dead letters are kept forever"
    );

    clock.advance_ms(2 * DAY);
    let report = purge(&app, &clock, retention(Some(1), Some(3))).await;
    assert_eq!(
        (
            report.purged.events,
            report.purged.deliveries,
            report.purged.attempts
        ),
        (1, 1, 1)
    );
    assert!(!event_exists(&app, &dead).await);
}

/// The guarantee of RELIABILITY.md: whatever its age, a pending, in-flight, failed (awaiting a
/// retry) or held delivery is never purged, nor its event, nor the finished deliveries beside it.
#[tokio::test]
async fn nothing_unfinished_is_ever_purged_however_old() {
    let (app, worker, clock) = spawn_stepped(|_| {}).await;
    let receiver = Receiver::start().await;
    receiver.set_default("/failed", Answer::Status(500));
    receiver.set_default("/hang", Answer::Hang(Duration::from_secs(60)));
    let hourly = json!({"retry": {"schedule_ms": [3_600_000]}});
    subscribe(&app, &receiver, "ok", json!({})).await;
    subscribe(&app, &receiver, "failed", hourly.clone()).await;
    // One event to a healthy and a failing endpoint: delivered once, failed once.
    let mixed_ok = json!({"url": receiver.url("ok"), "events": ["mixed"]});
    app.subscribe_with(mixed_ok).await;
    let mut mixed_failing = json!({"url": receiver.url("failed"), "events": ["mixed"]});
    mixed_failing["retry"] = hourly["retry"].clone();
    app.subscribe_with(mixed_failing).await;
    let held_subscription = subscribe(&app, &receiver, "held", json!({})).await;
    subscribe(&app, &receiver, "hang", json!({})).await;
    subscribe(&app, &receiver, "pending", json!({})).await;

    let finished = app.publish(json!({"event": "ok", "data": {}})).await;
    let failed = app.publish(json!({"event": "failed", "data": {}})).await;
    let mixed = app.publish(json!({"event": "mixed", "data": {}})).await;
    worker.run_once().await.unwrap();
    assert_eq!(states_of(&app, &failed).await, ["failed"]);
    assert_eq!(states_of(&app, &mixed).await, ["delivered", "failed"]);

    let disabled = app
        .post(
            &format!("/api/webhooks/{held_subscription}/disable"),
            json!({}),
        )
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    let held = app.publish(json!({"event": "held", "data": {}})).await;
    let in_flight = app.publish(json!({"event": "hang", "data": {}})).await;
    let sending = tokio::spawn({
        let worker = worker.clone();
        async move { worker.run_once().await }
    });
    receiver.wait_for("/hang", 1).await;
    let pending = app.publish(json!({"event": "pending", "data": {}})).await;
    for (event, state) in [
        (&held, "held"),
        (&in_flight, "in_flight"),
        (&pending, "pending"),
    ] {
        assert_eq!(states_of(&app, event).await, [state]);
    }
    let mixed_attempts = app.get(&format!("/api/events/{mixed}")).await.body["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect::<Vec<_>>();

    clock.advance_ms(400 * DAY);
    let report = purge(&app, &clock, retention(Some(1), Some(1))).await;
    assert_eq!(report.purged.events, 1, "only the finished event goes");
    assert!(!event_exists(&app, &finished).await);
    for (event, states) in [
        (&failed, vec!["failed"]),
        (&mixed, vec!["delivered", "failed"]),
        (&held, vec!["held"]),
        (&in_flight, vec!["in_flight"]),
        (&pending, vec!["pending"]),
    ] {
        assert_eq!(states_of(&app, event).await, states, "event {event}");
    }
    for delivery in &mixed_attempts {
        assert_eq!(
            attempts_of(&app, delivery).await,
            1,
            "attempts of {delivery} kept"
        );
    }
    sending.abort();
}

#[tokio::test]
async fn response_excerpts_and_headers_are_cleared_after_their_retention() {
    let (app, worker, clock) = spawn_stepped(|_| {}).await;
    let receiver = Receiver::start().await;
    receiver.set_default("/ok", Answer::Body(200, 64));
    subscribe(&app, &receiver, "ok", json!({})).await;
    let event = app.publish(json!({"event": "ok", "data": {}})).await;
    worker.run_once().await.unwrap();
    let delivery = id_of(&app.wait_for_delivery_state(&event, "delivered").await);
    let settings = RetentionSettings {
        excerpts_ms: Some(HOUR as u64),
        ..retention(None, None)
    };
    let attempt =
        async || app.get(&format!("/api/deliveries/{delivery}")).await.body["attempts"][0].clone();
    assert_eq!(attempt().await["response_excerpt"], "x".repeat(64));
    assert!(attempt().await["response_headers"].is_array());

    clock.advance_ms(HOUR / 2);
    assert_eq!(
        purge(&app, &clock, settings.clone()).await.excerpts_trimmed,
        0
    );
    assert_eq!(attempt().await["response_excerpt"], "x".repeat(64));

    clock.advance_ms(HOUR);
    let report = purge(&app, &clock, settings.clone()).await;
    assert_eq!(report.excerpts_trimmed, 1);
    assert_eq!(report.purged.total(), 0, "the attempt itself stays");
    let trimmed = attempt().await;
    assert_eq!(trimmed["response_excerpt"], Value::Null);
    assert_eq!(trimmed["response_headers"], Value::Null);
    assert_eq!(trimmed["status"], 200);
    assert_eq!(purge(&app, &clock, settings).await.excerpts_trimmed, 0);
}

/// The value of the Prometheus sample `name` (with its labels) in `text`, if present.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

async fn metrics_text(app: &TestApp) -> String {
    let reply = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    reply.text().await.unwrap()
}

#[tokio::test]
async fn metrics_count_purged_rows_and_show_the_database_size_and_age() {
    let (app, worker, clock) = spawn_stepped(|_| {}).await;
    let receiver = Receiver::start().await;
    subscribe(&app, &receiver, "ok", json!({})).await;
    let old = app.publish(json!({"event": "ok", "data": {}})).await;
    let also_old = app.publish(json!({"event": "ok", "data": {}})).await;
    worker.run_once().await.unwrap();
    app.wait_for_delivery_state(&old, "delivered").await;
    app.wait_for_delivery_state(&also_old, "delivered").await;
    clock.advance_ms(2 * DAY);
    let young = app.publish(json!({"event": "ok", "data": {}})).await;

    let events = "hookd_retention_purged_rows_total{table=\"events\"}";
    let before = sample(&metrics_text(&app).await, events).unwrap_or(0.0);
    let age = sample(&metrics_text(&app).await, "hookd_oldest_event_age_seconds").unwrap();
    assert!(
        age >= (2 * DAY / 1000) as f64,
        "oldest event is two days old: {age}"
    );
    purge(&app, &clock, retention(Some(1), None)).await;

    let text = metrics_text(&app).await;
    // The counter is the process's, shared with other tests' purges: at least this test's rows.
    let after = sample(&text, events).unwrap();
    assert!(after >= before + 2.0, "{before} → {after}:\n{text}");
    assert!(
        sample(
            &text,
            "hookd_retention_purged_rows_total{table=\"attempts\"}"
        )
        .unwrap()
            >= 2.0
    );
    assert!(
        sample(&text, "hookd_database_size_bytes").unwrap() > 0.0,
        "{text}"
    );
    let age = sample(&text, "hookd_oldest_event_age_seconds").unwrap();
    assert!(age < 60.0, "the oldest event left is the young one: {age}");
    assert!(event_exists(&app, &young).await);
}

#[tokio::test]
async fn the_servers_purge_removes_expired_events_on_its_own() {
    let app = spawn_app_with(|c| {
        c.retention_delivered_ms = Some(1_000);
        c.retention_interval_ms = 100;
    })
    .await;
    let receiver = Receiver::start().await;
    app.subscribe(&receiver.url("/ok"), &["*"]).await;
    let event = app.publish(json!({"event": "ok", "data": {}})).await;
    app.wait_for_delivery_state(&event, "delivered").await;
    wait::until(wait::DEFAULT_LIMIT, async || {
        match event_exists(&app, &event).await {
            false => Ok(()),
            true => Err(format!("event {event} still stored")),
        }
    })
    .await;
}

#[tokio::test]
async fn a_retry_policy_longer_than_the_retention_is_refused() {
    let app = spawn_app_with(|c| c.retention_dead_ms = Some(HOUR as u64)).await;
    let long = json!({"schedule_ms": [3_600_000]});
    let refused = app
        .post(
            "/api/webhooks",
            json!({"url": "http://127.0.0.1:9/h", "events": ["*"], "retry": long}),
        )
        .await;
    refused.assert_error(422, "invalid_retry_policy");
    let message = refused.body["error"].as_str().unwrap();
    assert!(
        message.contains("retention_dead_ms (3600000 ms") && message.contains("4320000 ms"),
        "{message}"
    );
    let fits = json!({"schedule_ms": [60_000]});
    let id = id_of(
        &app.subscribe_with(json!({"url": "http://127.0.0.1:9/h", "events": ["*"], "retry": fits}))
            .await,
    );
    app.patch(&format!("/api/webhooks/{id}"), json!({"retry": long}))
        .await
        .assert_error(422, "invalid_retry_policy");
}

#[tokio::test]
async fn a_subscription_retrying_longer_than_the_retention_refuses_the_start() {
    let app = spawn_app().await;
    let long = json!({"schedule_ms": [7_200_000]});
    app.subscribe_with(json!({"url": "http://127.0.0.1:9/h", "events": ["*"], "retry": long}))
        .await;
    let mut config = app.config.clone();
    config.retention_delivered_ms = Some(HOUR as u64);
    let error = hookd::server::check_retention(&config, &app.store)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("retention_delivered_ms (3600000 ms, 1 hour)")
            && error.contains("8640000 ms")
            && error.contains("7200000"),
        "{error}"
    );
    config.retention_delivered_ms = Some(3 * HOUR as u64);
    hookd::server::check_retention(&config, &app.store)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_overview_shows_the_retention_in_force() {
    let app = spawn_app_with(|c| {
        c.retention_delivered_ms = Some(7 * DAY as u64);
        c.retention_excerpts_ms = Some(HOUR as u64);
    })
    .await;
    let mut browser = Browser::operator(&app).await;
    let page = browser.get("/ui").await;
    assert_eq!(page.status, 200);
    let section = &page.body[page
        .body
        .find("id=\"retention\"")
        .expect("retention section")..];
    for shown in [
        "Delivered events</dt><dd>kept 7 days",
        "Dead letters</dt><dd>kept forever",
        "Response excerpts</dt><dd>kept 1 hour",
    ] {
        assert!(section.contains(shown), "{shown} missing from:\n{section}");
    }
}
