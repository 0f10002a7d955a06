//! `Store::claim_due` through the real store (SQLite, or PostgreSQL with
//! `HOOKD_TEST_BACKEND=postgres`): each subscription's room, the default room, oldest first, and no
//! starvation of subscriptions whose rows lie behind another one's backlog.

use crate::common::*;
use hookd::ids::Clock;
use hookd::store::{ClaimRequest, ClaimedDelivery, NewEvent};
use std::collections::BTreeMap;

/// Publishes `count` events to `subscription` only, created (and so due) at `at`, `at + 1`, ...
async fn queue(app: &TestApp, subscription: &str, at: i64, count: usize) {
    let events: Vec<NewEvent> = (0..count)
        .map(|n| NewEvent {
            id: format!("evt_{subscription}_{at}_{n}"),
            event_type: "order.created".into(),
            version: "1".into(),
            data: "{}".into(),
            retryable: true,
            idempotency_key: None,
            created_at: at + n as i64,
            only_subscription: Some(subscription.into()),
            owner: None,
        })
        .collect();
    for chunk in events.chunks(1_000) {
        app.store.publisher.publish(chunk.to_vec()).await.unwrap();
    }
}

async fn subscription(app: &TestApp) -> String {
    let created = app.subscribe("http://127.0.0.1:9/h", &["*"]).await;
    created["id"].as_str().unwrap().to_owned()
}

fn request(now: i64, limit: u32, default_room: Option<u32>, room: &[(&str, u32)]) -> ClaimRequest {
    ClaimRequest {
        owner: "wrk_test".into(),
        now,
        limit,
        default_timeout_ms: 10_000,
        lease_margin_ms: 1_000,
        default_room,
        room: room.iter().map(|(id, n)| (id.to_string(), *n)).collect(),
        bytes: None,
    }
}

/// How many deliveries the claim leased of each subscription.
fn per_subscription(claimed: &[ClaimedDelivery]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for delivery in claimed {
        *counts.entry(delivery.subscription.id.clone()).or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn a_claim_honours_each_subscriptions_room_and_the_default_room() {
    let (app, _worker, clock) = spawn_stepped(|_| {}).await;
    let now = clock.now_ms();
    let (listed, full, unlisted, other) = (
        subscription(&app).await,
        subscription(&app).await,
        subscription(&app).await,
        subscription(&app).await,
    );
    for id in [&listed, &full, &unlisted, &other] {
        queue(&app, id, now - 1_000, 10).await;
    }
    // Not due yet: never claimed, whatever the room.
    queue(&app, &other, now + 60_000, 5).await;

    let claimed = app
        .store
        .queue
        .claim_due(request(now, 100, Some(3), &[(&listed, 2), (&full, 0)]))
        .await
        .unwrap();
    let expected = BTreeMap::from([
        (listed.clone(), 2),
        (unlisted.clone(), 3),
        (other.clone(), 3),
    ]);
    assert_eq!(per_subscription(&claimed), expected);
    // Oldest first within each subscription: the listed one gave its two oldest rows.
    let mut listed_events: Vec<&str> = claimed
        .iter()
        .filter(|d| d.subscription.id == listed)
        .map(|d| d.event.id.as_str())
        .collect();
    listed_events.sort();
    let oldest = [
        format!("evt_{listed}_{}_0", now - 1_000),
        format!("evt_{listed}_{}_1", now - 1_000),
    ];
    assert_eq!(
        listed_events,
        oldest.iter().map(String::as_str).collect::<Vec<_>>()
    );
    // Claimed rows are leased: a second claim with the same rooms takes the next ones.
    let again = app
        .store
        .queue
        .claim_due(request(now, 100, Some(3), &[(&listed, 2), (&full, 0)]))
        .await
        .unwrap();
    assert_eq!(per_subscription(&again), expected);
    let first: Vec<&str> = claimed.iter().map(|d| d.delivery_id.as_str()).collect();
    assert!(
        again
            .iter()
            .all(|d| !first.contains(&d.delivery_id.as_str()))
    );

    // No default room: every due row of an unlisted subscription, up to `limit`, oldest first.
    let unlimited = app
        .store
        .queue
        .claim_due(request(now, 100, None, &[(&full, 0)]))
        .await
        .unwrap();
    let expected = BTreeMap::from([
        (listed.clone(), 6),
        (unlisted.clone(), 4),
        (other.clone(), 4),
    ]);
    assert_eq!(per_subscription(&unlimited), expected);
    let limited = app
        .store
        .queue
        .claim_due(request(now, 4, None, &[]))
        .await
        .unwrap();
    assert_eq!(
        per_subscription(&limited),
        BTreeMap::from([(full.clone(), 4)])
    );
}

/// A claim must not stop at the head of the queue: when the oldest due rows all belong to a
/// subscription without room (a hanging endpoint's backlog), the newer rows of other subscriptions
/// are still claimed, oldest first, up to the limit.
#[tokio::test]
async fn rows_behind_a_full_subscriptions_backlog_are_claimed() {
    let (app, _worker, clock) = spawn_stepped(|_| {}).await;
    let now = clock.now_ms();
    let (hanging, healthy, other) = (
        subscription(&app).await,
        subscription(&app).await,
        subscription(&app).await,
    );
    queue(&app, &hanging, now - 100_000, 20_000).await;
    queue(&app, &healthy, now - 50, 5).await;
    queue(&app, &other, now - 10, 5).await;

    let claimed = app
        .store
        .queue
        .claim_due(request(now, 8, Some(16), &[(&hanging, 0)]))
        .await
        .unwrap();
    assert_eq!(
        per_subscription(&claimed),
        BTreeMap::from([(healthy.clone(), 5), (other.clone(), 3)])
    );
    let ids: Vec<&str> = claimed.iter().map(|d| d.event.id.as_str()).collect();
    assert_eq!(
        ids[..5].iter().filter(|id| id.contains(&healthy)).count(),
        5,
        "oldest first: {ids:?}"
    );
    // With room again, the backlog's oldest rows come first.
    let claimed = app
        .store
        .queue
        .claim_due(request(now, 8, Some(16), &[(&hanging, 2)]))
        .await
        .unwrap();
    assert_eq!(
        per_subscription(&claimed),
        BTreeMap::from([(hanging.clone(), 2), (other.clone(), 2)])
    );
    assert_eq!(
        app.store.queue.next_due_at().await.unwrap(),
        Some(now - 100_000 + 2),
        "the backlog's oldest row still queued"
    );
}

#[tokio::test]
async fn next_due_at_is_the_earliest_queued_row_of_any_subscription() {
    let (app, _worker, clock) = spawn_stepped(|_| {}).await;
    let now = clock.now_ms();
    assert_eq!(app.store.queue.next_due_at().await.unwrap(), None);
    let (a, b) = (subscription(&app).await, subscription(&app).await);
    queue(&app, &a, now + 5_000, 3).await;
    queue(&app, &b, now + 2_000, 3).await;
    assert_eq!(
        app.store.queue.next_due_at().await.unwrap(),
        Some(now + 2_000)
    );
    let claimed = app
        .store
        .queue
        .claim_due(request(now + 3_000, 100, None, &[]))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    assert_eq!(
        app.store.queue.next_due_at().await.unwrap(),
        Some(now + 5_000)
    );
}
