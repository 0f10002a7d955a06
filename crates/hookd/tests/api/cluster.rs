//! Several nodes on one PostgreSQL database: two `PgStore`s (or two hookd apps) on the same fresh
//! database stand for two processes. These properties exist only where a database is shared, so
//! every test here is named `pg_only_…` and runs with `HOOKD_TEST_BACKEND=postgres`; on SQLite each
//! one says "skipped: … needs HOOKD_TEST_BACKEND=postgres" on stderr and returns (see
//! [`postgres_or_skip`]).

use crate::common::*;
use hookd::config::{Config, Role};
use hookd::ids::{Clock, SystemClock};
use hookd::store::postgres::PgStore;
use hookd::store::{
    AttemptRow, ClaimRequest, DeliveryOutcome, DeliveryState, NewEvent, Outcome, Store,
    SubscriptionRow,
};
use hookd_core::{EndpointUrl, EventFilter};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// Two stores on one fresh database, as two nodes would open it. Keep the data dir: the database
/// lives as long as it does.
async fn two_nodes() -> (TestDir, Config, Store, Store) {
    let data = TestDir::new();
    let config = test_config(data.path());
    let open = || async {
        PgStore::open(config.postgres_options().unwrap())
            .await
            .unwrap()
            .into_store()
    };
    let (a, b) = (open().await, open().await);
    (data, config, a, b)
}

async fn add_subscription(store: &Store, id: &str) {
    let row = SubscriptionRow::new(
        id.into(),
        EndpointUrl::from_stored("http://127.0.0.1:1/h").unwrap(),
        vec![EventFilter::All],
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        SystemClock.now_ms(),
    );
    store.subscriptions.insert_subscription(&row).await.unwrap();
}

fn event(id: &str, idempotency_key: Option<&str>) -> NewEvent {
    NewEvent {
        id: id.into(),
        event_type: "order.created".into(),
        version: "1".into(),
        data: "{\"n\": 1}".into(),
        retryable: true,
        idempotency_key: idempotency_key.map(str::to_owned),
        created_at: SystemClock.now_ms(),
        only_subscription: None,
        owner: None,
    }
}

fn claim(owner: &str, now: i64, limit: u32) -> ClaimRequest {
    ClaimRequest {
        owner: owner.into(),
        now,
        limit,
        default_timeout_ms: 10_000,
        lease_margin_ms: 30_000,
        default_room: None,
        room: Vec::new(),
        bytes: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_only_nodes_starting_together_on_an_empty_database_migrate_it_once() {
    if !postgres_or_skip() {
        return;
    }
    let data = TestDir::new();
    let config = test_config(data.path());
    let options = config.postgres_options().unwrap();
    let url = options.url.clone();
    // Three nodes and a `hookd migrate` at once: the migrator's advisory lock serializes them.
    let (a, b, c, migrated) = tokio::join!(
        PgStore::open(options.clone()),
        PgStore::open(options.clone()),
        PgStore::open(options.clone()),
        PgStore::migrate(&url),
    );
    for opened in [a.err(), b.err(), c.err(), migrated.as_ref().err().cloned()] {
        assert!(opened.is_none(), "{opened:?}");
    }
    let expected: Vec<i64> = hookd::store::postgres::MIGRATOR
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(PgStore::migrate(&url).await.unwrap(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_only_two_nodes_claiming_at_once_never_get_the_same_delivery() {
    if !postgres_or_skip() {
        return;
    }
    let (_data, _config, a, b) = two_nodes().await;
    for i in 0..3 {
        add_subscription(&a, &format!("wh_{i}")).await;
    }
    let events: Vec<NewEvent> = (0..200)
        .map(|i| event(&format!("evt_c{i}"), None))
        .collect();
    let published = a.publisher.publish(events).await.unwrap();
    let total: u64 = published.iter().map(|p| p.deliveries).sum();
    assert_eq!(total, 600);

    let now = SystemClock.now_ms() + 1;
    let mut claimers = Vec::new();
    for (n, store) in [&a, &b, &a, &b].into_iter().enumerate() {
        let store = store.clone();
        claimers.push(tokio::spawn(async move {
            let owner = format!("wrk_node{}_{n}", n % 2);
            let mut claimed = Vec::new();
            loop {
                let batch = store.queue.claim_due(claim(&owner, now, 7)).await.unwrap();
                if batch.is_empty() {
                    return claimed;
                }
                claimed.extend(batch.into_iter().map(|d| d.delivery_id));
            }
        }));
    }
    let mut all = Vec::new();
    for claimer in claimers {
        all.extend(claimer.await.unwrap());
    }
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), all.len(), "a delivery was claimed twice");
    assert_eq!(all.len(), 600, "every due delivery is claimed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_only_two_nodes_publishing_the_same_event_at_once_create_it_once() {
    if !postgres_or_skip() {
        return;
    }
    let (_data, _config, a, b) = two_nodes().await;
    add_subscription(&a, "wh_only").await;
    for round in 0..25 {
        // The same id on both nodes, then two ids with the same idempotency key.
        let id = format!("evt_same_{round}");
        let key = format!("key-{round}");
        let (on_a, on_b) = tokio::join!(
            a.publisher.publish(vec![
                event(&id, None),
                event(&format!("evt_ka{round}"), Some(&key))
            ]),
            b.publisher.publish(vec![
                event(&id, None),
                event(&format!("evt_kb{round}"), Some(&key))
            ]),
        );
        let (on_a, on_b) = match (on_a, on_b) {
            (Ok(on_a), Ok(on_b)) => (on_a, on_b),
            // Opposite insertion orders can deadlock; PostgreSQL aborts one side, which answers
            // 503 so that its client retries. Nothing was written twice either way.
            (Err(error), _) | (_, Err(error)) => {
                assert!(
                    matches!(error, hookd::store::StoreError::Unavailable(_)),
                    "{error}"
                );
                continue;
            }
        };
        for i in 0..2 {
            let created = [on_a[i].created, on_b[i].created];
            assert_eq!(
                created.iter().filter(|c| **c).count(),
                1,
                "round {round}, event {i}: {created:?}"
            );
            assert_eq!(on_a[i].event.id, on_b[i].event.id);
            assert_eq!(on_a[i].deliveries, 1);
            assert_eq!(on_b[i].deliveries, 1);
        }
        assert_eq!(
            a.deliveries.deliveries_for_event(&id).await.unwrap().len(),
            1
        );
    }
}

#[tokio::test]
async fn pg_only_a_publish_on_one_node_wakes_the_other_nodes_worker() {
    if !postgres_or_skip() {
        return;
    }
    let (_data, _config, a, b) = two_nodes().await;
    let waker = Arc::new(Notify::new());
    b.queue.listen_for_work(waker.clone()).await.unwrap();
    add_subscription(&a, "wh_1").await;
    let quiet = tokio::time::timeout(Duration::from_millis(300), waker.notified()).await;
    assert!(quiet.is_err(), "woken without any work");

    let published = a
        .publisher
        .publish(vec![event("evt_wake", None)])
        .await
        .unwrap();
    assert_eq!(published[0].deliveries, 1);
    tokio::time::timeout(Duration::from_secs(5), waker.notified())
        .await
        .expect("node B was not woken by node A's publish");

    // Operator re-queues on one node wake the others too.
    let delivery = a
        .deliveries
        .deliveries_for_event("evt_wake")
        .await
        .unwrap()
        .remove(0);
    a.deliveries
        .retry_delivery(&delivery.id, SystemClock.now_ms())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), waker.notified())
        .await
        .expect("node B was not woken by node A's retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_only_rescuers_on_every_node_rescue_each_expired_lease_once() {
    if !postgres_or_skip() {
        return;
    }
    let (_data, _config, a, b) = two_nodes().await;
    add_subscription(&a, "wh_1").await;
    let events: Vec<NewEvent> = (0..50).map(|i| event(&format!("evt_r{i}"), None)).collect();
    a.publisher.publish(events).await.unwrap();
    let now = SystemClock.now_ms() + 1;
    let claimed = a
        .queue
        .claim_due(claim("wrk_dead", now, 100))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 50);

    // The lease (timeout 10 s + margin 30 s) has run out; both nodes' rescuers run at once.
    let later = now + 60_000;
    let (on_a, on_b) = tokio::join!(
        a.queue.rescue_expired_leases(later),
        b.queue.rescue_expired_leases(later)
    );
    assert_eq!(on_a.unwrap() + on_b.unwrap(), 50);
    let again = b
        .queue
        .claim_due(claim("wrk_alive", later, 100))
        .await
        .unwrap();
    assert_eq!(again.len(), 50, "rescued deliveries are due again");
}

#[tokio::test]
async fn pg_only_a_worker_node_delivers_what_an_api_node_accepted_at_once() {
    if !postgres_or_skip() {
        return;
    }
    let data = TestDir::new();
    let config = test_config(data.path());
    let api = spawn_on(Config {
        role: Role::Api,
        ..config.clone()
    })
    .await;
    let receiver = Receiver::start().await;
    api.subscribe(&receiver.url("/h"), &["order.*"]).await;
    // An event accepted before the worker node starts is found by its first claim: once it is
    // delivered and recorded, the worker listens for notifications and has settled into its long
    // sleep.
    api.publish(json!({"event": "order.created", "data": {}, "id": "evt_before"}))
        .await;
    // Its poll would find more work only after a minute: only a notification can wake it in time.
    let worker = spawn_on(Config {
        role: Role::Worker,
        poll_interval_ms: 60_000,
        ..config.clone()
    })
    .await;
    receiver.wait_for("/h", 1).await;
    api.wait_for_delivery_state("evt_before", "delivered").await;

    api.publish(
        json!({"event": "order.created", "data": {"orderId": "ORD-1"}, "id": "evt_cluster"}),
    )
    .await;
    let got = tokio::time::timeout(Duration::from_secs(10), receiver.wait_for("/h", 2))
        .await
        .expect("the worker node did not deliver within 10 s");
    assert_eq!(got[1].header("webhook-id"), "evt_cluster");
    api.wait_for_delivery_state("evt_cluster", "delivered")
        .await;
    drop(worker);
}

#[tokio::test]
async fn pg_only_nodes_recover_by_themselves_when_their_connections_are_killed() {
    if !postgres_or_skip() {
        return;
    }
    let (_data, config, a, b) = two_nodes().await;
    let waker = Arc::new(Notify::new());
    b.queue.listen_for_work(waker.clone()).await.unwrap();
    add_subscription(&a, "wh_1").await;

    // An operator (or a failover) kills every connection to the database, the LISTEN one included.
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(config.database_url.as_deref().unwrap())
        .await
        .unwrap();
    let killed: i64 = sqlx::query_scalar(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(killed >= 3, "killed {killed} connections");
    // B's listener notices, reconnects, and wakes its worker once (notifications may have been lost).
    tokio::time::timeout(Duration::from_secs(10), waker.notified())
        .await
        .expect("the listener did not reconnect");

    // Publishing works again at once (at worst after a 503 the client would retry)...
    let published = wait::until_every(
        Duration::from_secs(5),
        Duration::from_millis(100),
        async || match a
            .publisher
            .publish(vec![event("evt_after_kill", None)])
            .await
        {
            Ok(result) => Ok(result),
            Err(hookd::store::StoreError::Unavailable(error)) => {
                Err(format!("publishing has not recovered: {error}"))
            }
            Err(error) => panic!("{error}"),
        },
    )
    .await;
    assert_eq!(published[0].deliveries, 1);
    // ...and it still wakes the other node.
    tokio::time::timeout(Duration::from_secs(5), waker.notified())
        .await
        .expect("node B was not woken after reconnecting");
}

// ---------------------------------------------------------------------------------------------
// Recording outcomes while a subscription is disabled
// ---------------------------------------------------------------------------------------------

/// Two nodes with subscriptions `wh_a` and `wh_b` (in lock order: a recorder handles `wh_a`'s
/// outcomes first) and two deliveries each, all leased by `wrk_1`: (deliveries of `wh_a`, of `wh_b`).
async fn two_subscriptions_in_flight() -> (TestDir, Config, Store, Store, Vec<String>, Vec<String>)
{
    let (data, config, a, b) = two_nodes().await;
    add_subscription(&a, "wh_a").await;
    add_subscription(&a, "wh_b").await;
    a.publisher
        .publish(vec![event("evt_1", None), event("evt_2", None)])
        .await
        .unwrap();
    let claimed = a
        .queue
        .claim_due(claim("wrk_1", SystemClock.now_ms() + 1, 10))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 4);
    let of = |subscription: &str| -> Vec<String> {
        claimed
            .iter()
            .filter(|c| c.subscription.id == subscription)
            .map(|c| c.delivery_id.clone())
            .collect()
    };
    let (on_a, on_b) = (of("wh_a"), of("wh_b"));
    (data, config, a, b, on_a, on_b)
}

fn outcome(delivery_id: &str, subscription_id: &str, outcome: Outcome) -> DeliveryOutcome {
    let now = SystemClock.now_ms();
    DeliveryOutcome {
        delivery_id: delivery_id.into(),
        subscription_id: subscription_id.into(),
        attempt: AttemptRow {
            id: format!("att_{delivery_id}"),
            delivery_id: delivery_id.into(),
            attempt: 1,
            started_at: now,
            duration_ms: 1,
            request_timestamp: now / 1_000,
            status: Some(500),
            response_excerpt: None,
            error: Some("HTTP 500".into()),
            error_class: Some("http".into()),
            response_headers: None,
        },
        outcome,
    }
}

/// A connection of the test's own holding `FOR UPDATE` on one subscription row until it rolls back:
/// a recorder that needs that row waits there, in the middle of its batch.
async fn hold_row_lock(config: &Config, subscription_id: &str) -> sqlx::PgConnection {
    use sqlx::{Connection, Executor};
    let mut conn = sqlx::PgConnection::connect(config.database_url.as_deref().unwrap())
        .await
        .unwrap();
    conn.execute("BEGIN").await.unwrap();
    sqlx::query("SELECT id FROM subscriptions WHERE id = $1 FOR UPDATE")
        .bind(subscription_id)
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

/// Waits until `waiting` sessions of this database are blocked on a row lock, or `unless` has
/// finished (a transaction that does not wait for a lock).
async fn until_waiting_for_locks(
    conn: &mut sqlx::PgConnection,
    waiting: i64,
    unless: Option<&tokio::task::JoinHandle<()>>,
) {
    // Checked often: the other task is only waiting for this to move on.
    wait::until_every(
        Duration::from_secs(10),
        Duration::from_millis(10),
        async || {
            let blocked: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&mut *conn)
            .await
            .unwrap();
            match blocked >= waiting || unless.is_some_and(|task| task.is_finished()) {
                true => Ok(()),
                false => Err(format!(
                    "{blocked} sessions wait for a lock, expected {waiting}"
                )),
            }
        },
    )
    .await;
}

async fn state_of(store: &Store, delivery_id: &str) -> DeliveryState {
    store
        .deliveries
        .get_delivery(delivery_id)
        .await
        .unwrap()
        .unwrap()
        .state
}

/// A retry recorded while an operator disables its subscription must end `held`, never `failed`:
/// claims skip disabled subscriptions, so a `failed` row would wait forever. The interleaving is
/// forced: the recorder is stopped half-way through its batch (after `wh_a`'s outcome, before
/// `wh_b`'s, whose row this test holds locked) while the disable runs on the other node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_only_a_retry_recorded_while_the_subscription_is_disabled_is_held() {
    if !postgres_or_skip() {
        return;
    }
    let (_data, config, a, b, on_a, on_b) = two_subscriptions_in_flight().await;
    let mut blocker = hold_row_lock(&config, "wh_b").await;
    let at = SystemClock.now_ms() + 60_000;
    let batch = vec![
        outcome(&on_a[0], "wh_a", Outcome::Retry { at }),
        outcome(&on_b[0], "wh_b", Outcome::Dead),
    ];
    let recorder = tokio::spawn({
        let a = a.clone();
        async move {
            let report = a
                .queue
                .record_outcomes("wrk_1", batch, 10, at)
                .await
                .unwrap();
            assert_eq!(report.applied, 2);
        }
    });
    until_waiting_for_locks(&mut blocker, 1, None).await;

    let disable = tokio::spawn({
        let b = b.clone();
        async move {
            let now = SystemClock.now_ms();
            let done = b
                .subscriptions
                .set_subscription_active("wh_a", false, None, false, now);
            assert!(done.await.unwrap().is_some());
        }
    });
    // The disable either waits for the recorder (fixed) or goes through at once (the race).
    until_waiting_for_locks(&mut blocker, 2, Some(&disable)).await;
    {
        use sqlx::Executor;
        blocker.execute("ROLLBACK").await.unwrap();
    }
    recorder.await.unwrap();
    disable.await.unwrap();

    assert_eq!(state_of(&a, &on_a[0]).await, DeliveryState::Held);
    assert_eq!(state_of(&a, &on_b[0]).await, DeliveryState::Dead);
}

/// The same race against another node's recorder disabling the subscription (410 Gone): this node's
/// retry for that subscription, recorded while the other batch is open, ends `held`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_only_a_retry_recorded_while_another_node_disables_on_410_is_held() {
    if !postgres_or_skip() {
        return;
    }
    let (_data, config, a, b, on_a, on_b) = two_subscriptions_in_flight().await;
    let mut blocker = hold_row_lock(&config, "wh_b").await;
    let now = SystemClock.now_ms();
    let gone = vec![
        outcome(&on_a[0], "wh_a", Outcome::Gone),
        outcome(&on_b[0], "wh_b", Outcome::Dead),
    ];
    let disabling = tokio::spawn({
        let b = b.clone();
        async move {
            let report = b
                .queue
                .record_outcomes("wrk_1", gone, 10, now)
                .await
                .unwrap();
            assert_eq!(report.disabled, ["wh_a"]);
        }
    });
    until_waiting_for_locks(&mut blocker, 1, None).await;

    let retry = vec![outcome(
        &on_a[1],
        "wh_a",
        Outcome::Retry { at: now + 60_000 },
    )];
    let recorder = tokio::spawn({
        let a = a.clone();
        async move {
            let report = a
                .queue
                .record_outcomes("wrk_1", retry, 10, now)
                .await
                .unwrap();
            assert_eq!(report.applied, 1);
        }
    });
    until_waiting_for_locks(&mut blocker, 2, Some(&recorder)).await;
    {
        use sqlx::Executor;
        blocker.execute("ROLLBACK").await.unwrap();
    }
    disabling.await.unwrap();
    recorder.await.unwrap();

    assert_eq!(state_of(&a, &on_a[0]).await, DeliveryState::Held);
    assert_eq!(state_of(&a, &on_a[1]).await, DeliveryState::Held);
    assert!(
        !a.subscriptions
            .get_subscription("wh_a")
            .await
            .unwrap()
            .unwrap()
            .active
    );
}

/// Publishes one event (to `owner`) through `store` and returns how many deliveries it queued.
async fn fan_out(store: &Store, id: &str, owner: Option<&str>) -> u64 {
    let mut new = event(id, None);
    new.owner = owner.map(str::to_owned);
    let published = store.publisher.publish(vec![new]).await.unwrap();
    published[0].deliveries
}

#[tokio::test]
async fn pg_only_a_subscription_change_on_one_node_reaches_the_other_nodes_fan_out() {
    if !postgres_or_skip() {
        return;
    }
    let (_data, _config, a, b) = two_nodes().await;
    add_subscription(&a, "wh_first").await;
    // Node a's publisher reads the subscriptions once and keeps them.
    assert_eq!(fan_out(&a, "evt_1", None).await, 1);
    assert_eq!(fan_out(&a, "evt_2", None).await, 1);
    // Created on node b: node a's next publish fans out to it.
    add_subscription(&b, "wh_second").await;
    assert_eq!(fan_out(&a, "evt_3", None).await, 2);
    // Moved to an owner on node b: node a routes by the new owner.
    let patch = hookd::store::SubscriptionPatch {
        owner: Some(Some("acme".into())),
        ..Default::default()
    };
    b.subscriptions
        .update_subscription("wh_second", patch, SystemClock.now_ms())
        .await
        .unwrap();
    assert_eq!(fan_out(&a, "evt_4", None).await, 1);
    assert_eq!(fan_out(&a, "evt_5", Some("acme")).await, 1);
    b.subscriptions
        .delete_subscription("wh_first")
        .await
        .unwrap();
    assert_eq!(fan_out(&a, "evt_6", None).await, 0);
}
