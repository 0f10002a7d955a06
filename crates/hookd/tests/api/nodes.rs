//! When a node dies: its deliveries return to the queue when its heartbeat stops (PostgreSQL, where
//! nodes share the database), or at once when the same node starts again on its data dir (SQLite),
//! instead of waiting for their leases to run out.

use crate::common::receiver::Receiver;
use crate::common::*;
use hookd::config::Role;
use hookd::ids::Clock;
use hookd::store::ClaimRequest;
use serde_json::json;
use std::time::Duration;

/// When the first attempt of `delivery` started (hookd's clock), once it is logged.
async fn first_attempt_at(app: &TestApp, delivery: &str) -> i64 {
    wait::until(Duration::from_secs(10), async || {
        let attempts = app.store.deliveries.list_attempts(delivery).await.unwrap();
        attempts
            .first()
            .map(|a| a.started_at)
            .ok_or_else(|| "no attempt logged yet".to_owned())
    })
    .await
}

/// Ten minutes: a lease that only a heartbeat or a restart can end within a test.
const LONG_LEASE_MS: i64 = 600_000;

/// An API-only node and a receiver; one delivery of a published event, leased by `owner` (a node
/// that will never send it) for [`LONG_LEASE_MS`]. Returns (node, receiver, delivery id).
async fn delivery_leased_by(
    config: &hookd::config::Config,
    owner: &str,
) -> (TestApp, Receiver, String) {
    let mut api_only = config.clone();
    api_only.role = Role::Api;
    let app = spawn_on(api_only).await;
    let receiver = Receiver::start().await;
    app.subscribe(&receiver.url("/dead"), &["*"]).await;
    let event = app
        .publish(json!({"event": "order.created", "data": {}}))
        .await;
    let now = hookd::ids::SystemClock.now_ms();
    let claimed = app
        .store
        .queue
        .claim_due(ClaimRequest {
            owner: owner.into(),
            now,
            limit: 10,
            default_timeout_ms: 1_000,
            lease_margin_ms: LONG_LEASE_MS,
            default_room: None,
            room: Vec::new(),
            bytes: None,
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "event {event}");
    (app, receiver, claimed[0].delivery_id.clone())
}

/// On PostgreSQL several nodes share the database: a node that stops renewing its heartbeat is
/// dead after `node_timeout_ms`, and a live node's rescuer returns its leases then, not before,
/// and not when the lease runs out ten minutes later. Timed on hookd's own clock: the attempt's
/// start against the dead node's last heartbeat.
#[tokio::test]
async fn pg_only_a_dead_nodes_deliveries_return_when_its_heartbeat_stops() {
    if !postgres_or_skip() {
        return;
    }
    let data = TestDir::new();
    let mut config = test_config(data.path());
    config.heartbeat_interval_ms = 100;
    config.node_timeout_ms = 1_000;
    let (_api, receiver, delivery) = delivery_leased_by(&config, "wrk_dead").await;
    let last_beat = hookd::ids::SystemClock.now_ms();
    let live = spawn_on(config.clone()).await;
    live.store
        .nodes
        .heartbeat("wrk_dead", "all", last_beat - 5_000, last_beat)
        .await
        .unwrap();
    receiver.wait_for("/dead", 1).await;
    let started = first_attempt_at(&live, &delivery).await;
    let bound = config.node_timeout_ms as i64 + config.rescue_interval_ms as i64;
    assert!(
        started > last_beat + config.node_timeout_ms as i64,
        "sent {} ms after the last heartbeat, before the node counted as dead",
        started - last_beat
    );
    // The bound plus one rescue interval, and slack for a loaded test machine (the lease would
    // have lasted ten minutes).
    assert!(
        started <= last_beat + bound + 3_000,
        "sent {} ms after the last heartbeat (bound {bound} ms)",
        started - last_beat
    );
    let nodes = live.store.nodes.list_nodes(0).await.unwrap();
    assert!(nodes.iter().any(|n| n.id == "wrk_dead" && n.leased == 0));
    assert!(
        nodes
            .iter()
            .any(|n| n.id != "wrk_dead" && n.stopped_at.is_none())
    );
}

/// On SQLite one worker uses a data dir, and it holds the dir's worker lock: a node starting
/// after a crash (the lock is free again) returns everything still leased at once, long before
/// the leases or the old run's heartbeat would have ended.
#[tokio::test]
async fn sqlite_only_a_restarted_node_returns_its_earlier_runs_leases_at_once() {
    if !sqlite_or_skip() {
        return;
    }
    let data = TestDir::new();
    let config = test_config(data.path());
    let (_api, receiver, delivery) = delivery_leased_by(&config, "wrk_crashed").await;
    let crashed_at = hookd::ids::SystemClock.now_ms();
    // The crashed run beat just now: only the restart can tell it is gone.
    _api.store
        .nodes
        .heartbeat("wrk_crashed", "all", crashed_at - 5_000, crashed_at)
        .await
        .unwrap();
    let restarted = spawn_on(config.clone()).await;
    let arrived = tokio::time::timeout(Duration::from_secs(8), receiver.wait_for("/dead", 1)).await;
    assert!(
        arrived.is_ok(),
        "the earlier run's lease was not returned at once"
    );
    let started = first_attempt_at(&restarted, &delivery).await;
    assert!(
        started - crashed_at < config.node_timeout_ms as i64,
        "sent {} ms after the crash",
        started - crashed_at
    );
}

/// Every worker node shows in the operators' overview and in `/metrics` with the age of its
/// heartbeat and what it leases; a portal viewer sees no nodes.
#[tokio::test]
async fn nodes_show_in_the_overview_and_the_metrics() {
    let app = spawn_app_with(|config| config.heartbeat_interval_ms = 100).await;
    let node = wait::until(Duration::from_secs(10), async || {
        let nodes = app.store.nodes.list_nodes(0).await.unwrap();
        nodes
            .into_iter()
            .find(|n| n.stopped_at.is_none())
            .ok_or_else(|| "no node has beaten yet".to_owned())
    })
    .await;
    let mut browser = crate::common::browser::Browser::operator(&app).await;
    let page = browser.get("/ui").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Worker nodes"), "{}", page.body);
    assert!(page.body.contains(&node.id));
    let metrics = app.get("/metrics").await;
    let text = metrics.body.as_str().unwrap_or_default().to_owned();
    for name in [
        "hookd_node_heartbeat_age_seconds",
        "hookd_node_leased_deliveries",
    ] {
        assert!(
            text.contains(&format!("{name}{{node=\"{}\"}}", node.id)),
            "{name} for {} missing from:\n{text}",
            node.id
        );
    }
    app.subscribe("https://example.com/hook", &["*"]).await;
    let link = crate::common::browser::portal_link(&app, "cus_1", &["read"]).await;
    let mut portal = crate::common::browser::Browser::new(&app);
    let entered = portal.enter(&link).await;
    assert_eq!(entered.status, 200, "{}", entered.body);
    let page = portal.get("/portal").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Backlog"), "{}", page.body);
    assert!(!page.body.contains("Worker nodes"));
}
