//! The store contract, checked on the backend itself (`SqliteStore` or `PgStore`, opened directly
//! without the sealing layer or the API): the same cases on both backends, one per role. The API
//! suite checks the same behaviours through HTTP; these pin down what each role promises so that a
//! statement shared by both backends (or one written for one of them) cannot drift unnoticed.

use crate::common::{TestDir, test_config};
use hookd::store::postgres::PgStore;
use hookd::store::sqlite::SqliteStore;
use hookd::store::ui::{DeliverySearch, SessionKind, SessionRow};
use hookd::store::*;
use hookd_core::scopes::Scopes;
use hookd_core::{EndpointUrl, EventFilter};

/// A fresh store of the selected backend, opened directly, and the directory that keeps it alive.
async fn fresh_store() -> (TestDir, Store) {
    let dir = TestDir::new();
    let config = test_config(dir.path());
    let store = match config.postgres_options() {
        Some(options) => PgStore::open(options).await.unwrap().into_store(),
        None => SqliteStore::open(config.sqlite_options())
            .await
            .unwrap()
            .into_store(),
    };
    (dir, store)
}

fn subscription(id: &str, filters: &[&str], created_at: i64) -> SubscriptionRow {
    let events = filters
        .iter()
        .map(|f| EventFilter::parse(f).unwrap())
        .collect();
    SubscriptionRow::new(
        id.into(),
        EndpointUrl::from_stored("https://example.com/hook").unwrap(),
        events,
        "whsec_c2VjcmV0".into(),
        created_at,
    )
}

fn event(id: &str, event_type: &str, at: i64) -> NewEvent {
    NewEvent {
        id: id.into(),
        event_type: event_type.into(),
        version: "1".into(),
        data: r#"{"n":1}"#.into(),
        retryable: true,
        idempotency_key: None,
        created_at: at,
        only_subscription: None,
        owner: None,
    }
}

fn claim(owner: &str, now: i64) -> ClaimRequest {
    ClaimRequest {
        owner: owner.into(),
        now,
        limit: 100,
        default_timeout_ms: 1_000,
        lease_margin_ms: 1_000,
        default_room: None,
        room: Vec::new(),
        bytes: None,
    }
}

fn outcome(claimed: &ClaimedDelivery, outcome: Outcome, at: i64) -> DeliveryOutcome {
    DeliveryOutcome {
        delivery_id: claimed.delivery_id.clone(),
        subscription_id: claimed.subscription.id.clone(),
        outcome,
        attempt: AttemptRow {
            id: format!("att_{}_{at}", claimed.delivery_id),
            delivery_id: claimed.delivery_id.clone(),
            attempt: claimed.attempts + 1,
            started_at: at,
            duration_ms: 7,
            request_timestamp: at / 1000,
            status: Some(match outcome {
                Outcome::Delivered => 200,
                Outcome::Gone => 410,
                _ => 500,
            }),
            response_excerpt: None,
            response_headers: Some(vec![("content-type".into(), "text/plain".into())]),
            error: None,
            error_class: None,
        },
    }
}

/// A fresh store with one catch-all subscription `wh_1` and `events` events of type `a.b`
/// (`evt_0`, `evt_1`, …) published to it.
async fn store_with_events(events: i64) -> (TestDir, Store) {
    let (dir, store) = fresh_store().await;
    let row = subscription("wh_1", &["*"], 1);
    store.subscriptions.insert_subscription(&row).await.unwrap();
    let events = (0..events)
        .map(|i| event(&format!("evt_{i}"), "a.b", 10 + i))
        .collect();
    store.publisher.publish(events).await.unwrap();
    (dir, store)
}

async fn state_of(store: &Store, delivery_id: &str) -> DeliveryState {
    let delivery = store.deliveries.get_delivery(delivery_id).await.unwrap();
    delivery.unwrap().state
}

#[tokio::test]
async fn subscriptions_page_patch_and_delete() {
    let (_dir, store) = fresh_store().await;
    for (i, id) in ["wh_a", "wh_b", "wh_c"].iter().enumerate() {
        let mut row = subscription(id, &["order.*"], 1_000 + i as i64);
        row.owner = (i < 2).then(|| "cus_1".to_owned());
        store.subscriptions.insert_subscription(&row).await.unwrap();
    }
    let first = store
        .subscriptions
        .list_subscriptions(SubscriptionQuery {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<_> = first.items.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["wh_c", "wh_b"]);
    let rest = store
        .subscriptions
        .list_subscriptions(SubscriptionQuery {
            limit: 2,
            after: first.next,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert!(rest.next.is_none());
    let owned = store
        .subscriptions
        .list_subscriptions(SubscriptionQuery {
            owner: Some("cus_1".into()),
            active: Some(true),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(owned.items.len(), 2);

    let patch = SubscriptionPatch {
        description: Some(Some("orders".into())),
        active: Some(false),
        ..Default::default()
    };
    let patched = store
        .subscriptions
        .update_subscription("wh_a", patch, 5_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(patched.description.as_deref(), Some("orders"));
    assert!(!patched.active);
    assert_eq!(
        store.subscriptions.get_subscription("wh_a").await.unwrap(),
        Some(patched)
    );
    let missing = store
        .subscriptions
        .update_subscription("wh_x", SubscriptionPatch::default(), 5_000)
        .await
        .unwrap();
    assert!(missing.is_none());
    assert!(
        store
            .subscriptions
            .delete_subscription("wh_c")
            .await
            .unwrap()
    );
    assert!(
        !store
            .subscriptions
            .delete_subscription("wh_c")
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn publishing_fans_out_by_filter_holds_for_disabled_and_is_idempotent() {
    let (_dir, store) = fresh_store().await;
    let subs = [
        ("wh_orders", "order.*"),
        ("wh_all", "*"),
        ("wh_pay", "payment.failed"),
    ];
    for (id, filter) in subs {
        let row = subscription(id, &[filter], 1);
        store.subscriptions.insert_subscription(&row).await.unwrap();
    }
    store
        .subscriptions
        .set_subscription_active("wh_all", false, Some("paused".into()), false, 2)
        .await
        .unwrap();
    let published = store
        .publisher
        .publish(vec![event("evt_1", "order.created", 10)])
        .await
        .unwrap();
    assert!(published[0].created);
    // One pending (orders), one held (the disabled catch-all), none for payments.
    assert_eq!(published[0].deliveries, 1);
    let mut states: Vec<_> = store
        .deliveries
        .deliveries_for_event("evt_1")
        .await
        .unwrap()
        .into_iter()
        .map(|d| (d.subscription_id, d.state))
        .collect();
    states.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        states,
        [
            ("wh_all".to_owned(), DeliveryState::Held),
            ("wh_orders".to_owned(), DeliveryState::Pending)
        ]
    );
    let again = store
        .publisher
        .publish(vec![event("evt_1", "order.created", 11)])
        .await
        .unwrap();
    assert!(!again[0].created);
    assert_eq!(again[0].event.created_at, 10);
    assert_eq!(again[0].deliveries, 1);
    // A test event goes to its one subscription whatever the filters say.
    let mut test = event("evt_test", "hookd.test", 12);
    test.only_subscription = Some("wh_pay".into());
    store.publisher.publish(vec![test]).await.unwrap();
    let to: Vec<_> = store
        .deliveries
        .deliveries_for_event("evt_test")
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.subscription_id)
        .collect();
    assert_eq!(to, ["wh_pay"]);
    let page = store
        .deliveries
        .list_events(EventQuery {
            event_type: Some("order.created".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
}

#[tokio::test]
async fn outcomes_count_failures_and_disable_at_the_threshold() {
    let (_dir, store) = store_with_events(4).await;
    let claimed = store.queue.claim_due(claim("wrk", 100)).await.unwrap();
    assert_eq!(claimed.len(), 4);
    assert_eq!(
        state_of(&store, &claimed[0].delivery_id).await,
        DeliveryState::InFlight
    );
    // Another worker finds nothing to claim while the leases hold.
    assert!(
        store
            .queue
            .claim_due(claim("other", 100))
            .await
            .unwrap()
            .is_empty()
    );

    let batch = vec![
        outcome(&claimed[0], Outcome::Delivered, 200),
        outcome(&claimed[1], Outcome::Retry { at: 5_000 }, 200),
        outcome(&claimed[2], Outcome::Dead, 200),
    ];
    let report = store
        .queue
        .record_outcomes("wrk", batch, 2, 200)
        .await
        .unwrap();
    assert_eq!((report.applied, report.stale), (3, 0));
    assert!(report.disabled.is_empty());
    assert_eq!(
        state_of(&store, &claimed[0].delivery_id).await,
        DeliveryState::Delivered
    );
    assert_eq!(
        state_of(&store, &claimed[1].delivery_id).await,
        DeliveryState::Failed
    );
    assert_eq!(store.queue.next_due_at().await.unwrap(), Some(5_000));
    let attempts = store
        .deliveries
        .list_attempts(&claimed[2].delivery_id)
        .await
        .unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].status, Some(500));
    // An outcome from a worker that no longer holds the lease only logs its attempt.
    let stale = vec![outcome(&claimed[3], Outcome::Delivered, 300)];
    let report = store
        .queue
        .record_outcomes("other", stale, 2, 300)
        .await
        .unwrap();
    assert_eq!((report.applied, report.stale), (0, 1));
    // The second dead delivery in a row disables the subscription and holds its queue.
    let dead = vec![outcome(&claimed[3], Outcome::Dead, 400)];
    let report = store
        .queue
        .record_outcomes("wrk", dead, 2, 400)
        .await
        .unwrap();
    assert_eq!(report.disabled, ["wh_1"]);
    let sub = store
        .subscriptions
        .get_subscription("wh_1")
        .await
        .unwrap()
        .unwrap();
    assert!(!sub.active);
    assert_eq!(sub.failure_count, 2);
    assert_eq!(
        state_of(&store, &claimed[1].delivery_id).await,
        DeliveryState::Held
    );
    let stats = store.deliveries.delivery_stats(Some("wh_1")).await.unwrap();
    assert_eq!(
        (stats.total, stats.delivered, stats.dead, stats.held),
        (4, 1, 2, 1)
    );
    assert_eq!(stats.average_latency_ms, Some(7.0));
    // Enabling with replay re-queues the held delivery and resets the count.
    let (sub, replayed) = store
        .subscriptions
        .set_subscription_active("wh_1", true, None, true, 500)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((sub.active, sub.failure_count, replayed), (true, 0, 1));
}

#[tokio::test]
async fn leases_are_released_and_rescued() {
    let (_dir, store) = store_with_events(2).await;
    let claimed = store.queue.claim_due(claim("wrk", 100)).await.unwrap();
    let ids: Vec<String> = claimed.iter().map(|c| c.delivery_id.clone()).collect();
    assert_eq!(
        store.queue.release_leases("someone", &ids).await.unwrap(),
        0
    );
    assert_eq!(
        store.queue.release_leases("wrk", &ids[..1]).await.unwrap(),
        1
    );
    assert_eq!(state_of(&store, &ids[0]).await, DeliveryState::Pending);
    // The lease lasts the timeout plus the margin: nothing expired before, the rest after.
    assert_eq!(store.queue.rescue_expired_leases(2_000).await.unwrap(), 0);
    assert_eq!(store.queue.rescue_expired_leases(2_101).await.unwrap(), 1);
    assert_eq!(state_of(&store, &ids[1]).await, DeliveryState::Pending);
}

#[tokio::test]
async fn operator_actions_requeue_what_they_select() {
    let (_dir, store) = fresh_store().await;
    for id in ["wh_1", "wh_2"] {
        let row = subscription(id, &["*"], 1);
        store.subscriptions.insert_subscription(&row).await.unwrap();
    }
    store
        .publisher
        .publish(vec![event("evt_1", "a.b", 10), event("evt_2", "c.d", 11)])
        .await
        .unwrap();
    let claimed = store.queue.claim_due(claim("wrk", 100)).await.unwrap();
    assert_eq!(
        store
            .deliveries
            .retry_delivery(&claimed[0].delivery_id, 150)
            .await
            .unwrap(),
        RetryResult::InFlight
    );
    assert_eq!(
        store
            .deliveries
            .retry_delivery("dlv_none", 150)
            .await
            .unwrap(),
        RetryResult::NotFound
    );
    let all_dead = claimed
        .iter()
        .map(|c| outcome(c, Outcome::Dead, 200))
        .collect();
    store
        .queue
        .record_outcomes("wrk", all_dead, 100, 200)
        .await
        .unwrap();
    let filter = DeadLetterFilter {
        event_type: Some("a.b".into()),
        ..Default::default()
    };
    let dead = store
        .deliveries
        .list_dead_letters(filter.clone(), None, 10)
        .await
        .unwrap();
    assert_eq!(dead.items.len(), 2);
    assert!(dead.items.iter().all(|d| d.event_type == "a.b"));
    // The redrive preview counts exactly what the redrive takes.
    assert_eq!(store.ui.count_redrivable(filter.clone()).await.unwrap(), 2);
    assert_eq!(
        store
            .deliveries
            .redrive_dead_letters(filter, 300)
            .await
            .unwrap(),
        2
    );
    assert_eq!(store.ui.count_recoverable("wh_1", 0).await.unwrap(), 1);
    assert_eq!(
        store
            .deliveries
            .recover("wh_1", 0, None, 400)
            .await
            .unwrap(),
        1
    );
    // What is still dead: wh_2's delivery of the other type; a retry takes it alone.
    let left = store
        .deliveries
        .list_dead_letters(DeadLetterFilter::default(), None, 10)
        .await
        .unwrap();
    assert_eq!(left.items.len(), 1);
    let last = &left.items[0].delivery;
    assert_eq!(
        (last.subscription_id.as_str(), last.event_id.as_str()),
        ("wh_2", "evt_2")
    );
    match store
        .deliveries
        .retry_delivery(&last.id, 500)
        .await
        .unwrap()
    {
        RetryResult::Requeued(row) => {
            assert_eq!((row.state, row.attempts), (DeliveryState::Pending, 0))
        }
        other => panic!("{other:?}"),
    }
    let backlog: i64 = store
        .ui
        .backlog(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|(state, _)| state == "pending")
        .map(|(_, n)| n)
        .sum();
    assert_eq!(backlog, 4);
    let log = store
        .ui
        .search_deliveries(DeliverySearch {
            subscription_id: Some("wh_2".into()),
            state: Some(DeliveryState::Pending),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(log.items.len(), 2);
}

#[tokio::test]
async fn catalog_keys_receipts_and_sessions() {
    let (_dir, store) = fresh_store().await;
    let type_row = EventTypeRow {
        name: "order.shipped".into(),
        description: "shipped".into(),
        created_at: 1,
        archived_at: None,
        schemas: Some(r#"{"*":{"type":"object"}}"#.into()),
        examples: Some(r#"[{"a":1}]"#.into()),
        validate: "warn".into(),
        updated_at: 1,
    };
    store.admin.add_event_type(type_row.clone()).await.unwrap();
    let again = store.admin.add_event_type(type_row.clone()).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))));
    assert!(
        store
            .admin
            .archive_event_type("order.shipped", 2)
            .await
            .unwrap()
    );
    assert!(
        !store
            .admin
            .event_type_exists("order.shipped")
            .await
            .unwrap()
    );
    let revived = store.admin.add_event_type(type_row.clone()).await.unwrap();
    assert!(
        store
            .admin
            .event_type_exists("order.shipped")
            .await
            .unwrap()
    );
    assert!(
        revived.updated_at > 1,
        "bringing a type back changes its version"
    );
    assert_eq!(revived.schemas, type_row.schemas);

    // A change applies only over the version it was read at.
    let mut changed = revived.clone();
    changed.validate = "enforce".into();
    changed.schemas = None;
    changed.updated_at = revived.updated_at + 5;
    assert!(
        !store
            .admin
            .update_event_type(&changed, revived.updated_at - 1)
            .await
            .unwrap()
    );
    assert!(
        store
            .admin
            .update_event_type(&changed, revived.updated_at)
            .await
            .unwrap()
    );
    let stored = store.admin.get_event_type("order.shipped").await.unwrap();
    assert_eq!(stored, Some(changed));
    assert_eq!(store.admin.get_event_type("nope").await.unwrap(), None);

    let key = NewApiKey {
        id: "key_1".into(),
        name: "ci".into(),
        prefix: "hookd_ab".into(),
        hash: vec![1, 2, 3],
        scopes: Scopes::parse(&["publish", "read"]).unwrap(),
        owner: Some("cus_1".into()),
        created_at: 5,
    };
    store.admin.insert_api_key(key).await.unwrap();
    let found = store.admin.api_key_by_hash(&[1, 2, 3]).await.unwrap();
    let found = found.expect("the stored key is found by its hash");
    assert_eq!(found.scopes.names(), ["publish", "read"]);
    assert_eq!(found.owner.as_deref(), Some("cus_1"));
    assert_eq!(store.admin.list_api_keys().await.unwrap(), vec![found]);
    assert!(store.admin.revoke_api_key("key_1", 6).await.unwrap());
    assert!(
        store
            .admin
            .api_key_by_hash(&[1, 2, 3])
            .await
            .unwrap()
            .is_none()
    );

    let row = subscription("wh_1", &["*"], 1);
    store.subscriptions.insert_subscription(&row).await.unwrap();
    for (id, webhook_id) in [("rcv_1", "msg_1"), ("rcv_2", "msg_1"), ("rcv_3", "msg_2")] {
        let receipt = ReceiptRow {
            id: id.into(),
            subscription_id: "wh_1".into(),
            webhook_id: webhook_id.into(),
            event_type: None,
            received_at: 10,
        };
        let fresh = store.admin.record_receipt(receipt).await.unwrap();
        assert_eq!(fresh, id != "rcv_2", "{id}");
    }
    let page = store.admin.list_receipts("wh_1", None, 1).await.unwrap();
    let next = store
        .admin
        .list_receipts("wh_1", page.next, 1)
        .await
        .unwrap();
    assert_eq!(
        (page.items[0].id.as_str(), next.items[0].id.as_str()),
        ("rcv_3", "rcv_1")
    );

    let link = SessionRow {
        token_hash: vec![9; 32],
        kind: SessionKind::Link,
        owner: Some("cus_1".into()),
        can_manage: true,
        created_at: 100,
        expires_at: 1_000,
    };
    store.ui.insert_session(&link).await.unwrap();
    assert!(
        store
            .ui
            .session_by_hash(&link.token_hash, 200)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.ui.take_link(&link.token_hash, 200).await.unwrap(),
        Some(link.clone())
    );
    assert_eq!(
        store.ui.take_link(&link.token_hash, 200).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn secrets_sealed_with_another_key_are_refused_after_a_rotation() {
    let (_dir, store) = fresh_store().await;
    let row = subscription("wh_1", &["*"], 1);
    store.subscriptions.insert_subscription(&row).await.unwrap();
    let resealed = store
        .secrets
        .reseal_secrets("k2", &|_, stored| Ok(format!("{stored}!")), 5)
        .await
        .unwrap();
    assert_eq!(resealed, 1);
    assert_eq!(
        store.secrets.sealing_key_id().await.unwrap().as_deref(),
        Some("k2")
    );
    let sub = store
        .subscriptions
        .get_subscription("wh_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub.secret, "whsec_c2VjcmV0!");
    let mut stale = subscription("wh_2", &["*"], 1);
    stale.secret = "enc:v2:k1:AAAA".into();
    let refused = store.subscriptions.insert_subscription(&stale).await;
    assert!(matches!(refused, Err(StoreError::SealingKeyChanged(k)) if k == "k2"));
    let rotated = store
        .subscriptions
        .rotate_secret("wh_1", "enc:v2:k1:BBBB", Some(50), 6)
        .await;
    assert!(matches!(rotated, Err(StoreError::SealingKeyChanged(_))));
    let rotated = store
        .subscriptions
        .rotate_secret("wh_1", "enc:v2:k2:CCCC", Some(50), 6)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.previous_secret.as_deref(), Some("whsec_c2VjcmV0!"));
    assert!(
        store
            .subscriptions
            .get_subscription("wh_2")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn the_leases_of_a_node_whose_heartbeat_stopped_return_to_the_queue() {
    let (_dir, store) = store_with_events(2).await;
    store
        .nodes
        .heartbeat("wrk_dead", "all", 50, 100)
        .await
        .unwrap();
    store
        .nodes
        .heartbeat("wrk_live", "worker", 60, 900)
        .await
        .unwrap();
    // Leases that last long past the test: only a heartbeat can end them early.
    let long = |owner: &str| ClaimRequest {
        limit: 1,
        lease_margin_ms: 1_000_000,
        ..claim(owner, 200)
    };
    let dead = store.queue.claim_due(long("wrk_dead")).await.unwrap();
    let live = store.queue.claim_due(long("wrk_live")).await.unwrap();
    assert_eq!((dead.len(), live.len()), (1, 1));
    let nodes = store.nodes.list_nodes(0).await.unwrap();
    let leased: Vec<_> = nodes.iter().map(|n| (n.id.as_str(), n.leased)).collect();
    assert_eq!(leased, [("wrk_live", 1), ("wrk_dead", 1)]);
    assert_eq!(nodes[0].role, "worker");

    let rescue = |dead_before: i64, rescuer: Option<&str>| Rescue {
        now: 1_000,
        expired_before: 1_000,
        dead_before,
        rescuer: rescuer.map(str::to_owned),
    };
    // A rescuer never takes itself for dead, whatever its clock says.
    assert_eq!(
        store
            .queue
            .rescue_leases(rescue(500, Some("wrk_dead")))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .queue
            .rescue_leases(rescue(500, Some("wrk_live")))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        state_of(&store, &dead[0].delivery_id).await,
        DeliveryState::Pending
    );
    assert_eq!(
        state_of(&store, &live[0].delivery_id).await,
        DeliveryState::InFlight
    );
    // No heartbeat is older than this: nothing more is rescued.
    assert_eq!(
        store.queue.rescue_leases(rescue(100, None)).await.unwrap(),
        0
    );
    // A node that knows it is the only worker returns every lease.
    let everything = Rescue {
        expired_before: i64::MAX,
        ..Rescue::expired(1_000)
    };
    assert_eq!(store.queue.rescue_leases(everything).await.unwrap(), 1);

    store.nodes.stop_node("wrk_live", 1_100).await.unwrap();
    assert_eq!(store.nodes.list_nodes(1_050).await.unwrap().len(), 1);
    assert_eq!(store.nodes.forget_nodes(1_000).await.unwrap(), 1);
    let left: Vec<_> = store
        .nodes
        .list_nodes(0)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(left, ["wrk_live"]);
}

/// A claim with a byte room takes the longest prefix, in claim order, whose cost fits: each row
/// its event's `data` size, and each event once more (its deliveries share one copy). The first
/// row is taken regardless only when asked (the worker holds nothing), and the rows of one event
/// share one decoded copy.
#[tokio::test]
async fn a_claim_takes_no_more_bytes_than_its_room() {
    let (_dir, store) = fresh_store().await;
    for id in ["wh_1", "wh_2"] {
        let row = subscription(id, &["*"], 1);
        store.subscriptions.insert_subscription(&row).await.unwrap();
    }
    let data = format!(r#"{{"p":"{}"}}"#, "x".repeat(992));
    assert_eq!(data.len(), 1_000);
    let events = (0..5)
        .map(|i| NewEvent {
            data: data.clone(),
            ..event(&format!("evt_{i}"), "a.b", 10 + i)
        })
        .collect();
    store.publisher.publish(events).await.unwrap();
    let with_room = |now: i64, bytes: u64, first_regardless: bool| ClaimRequest {
        bytes: Some(ByteRoom {
            bytes,
            first_regardless,
        }),
        ..claim("wrk_1", now)
    };

    // Each event's two rows cost 2,000 + 1,000: two events fit in 7,000, a third's first row not.
    let claimed = store
        .queue
        .claim_due(with_room(100, 7_000, false))
        .await
        .unwrap();
    let mut events: Vec<&str> = claimed.iter().map(|c| c.event.id.as_str()).collect();
    events.sort_unstable();
    assert_eq!(events, ["evt_0", "evt_0", "evt_1", "evt_1"]);
    for pair in claimed.windows(2) {
        if pair[0].event.id == pair[1].event.id {
            assert!(std::sync::Arc::ptr_eq(&pair[0].event, &pair[1].event));
        }
    }
    assert!(claimed.iter().all(|c| c.event.data == data));

    // Less room than one row: nothing, unless the first row is taken regardless.
    let none = store
        .queue
        .claim_due(with_room(100, 1_999, false))
        .await
        .unwrap();
    assert!(none.is_empty());
    let one = store
        .queue
        .claim_due(with_room(100, 10, true))
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].event.id, "evt_2");

    // No byte room: the rest.
    let rest = store.queue.claim_due(claim("wrk_1", 100)).await.unwrap();
    assert_eq!(rest.len(), 5);
}
