//! The operations against a real SQLite store: the worker is woken when, and only when, work became due.

use super::*;
use crate::ids::ManualClock;
use crate::store::sqlite::{SqliteOptions, SqliteStore, Synchronous};
use futures_util::FutureExt;
use hookd_core::TargetPolicy;
use std::time::Duration;

struct Fixture {
    ops: Ops,
    waker: Arc<Notify>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(SqliteOptions {
            path: dir.path().join("hookd.db"),
            synchronous: Synchronous::Normal,
            max_connections: 2,
            busy_timeout: Duration::from_secs(5),
        })
        .await
        .unwrap();
        let settings = OpsSettings {
            url_policy: UrlPolicy {
                allow_http: true,
                targets: TargetPolicy {
                    allow_non_public: true,
                    allowed_networks: Vec::new(),
                },
            },
            max_payload_bytes: 1024,
            strict_event_types: false,
            retention: Default::default(),
        };
        let waker = Arc::new(Notify::new());
        let clock: DynClock = Arc::new(ManualClock::new(1_700_000_000_000));
        let ops = Ops::new(store.into_store(), clock, settings, waker.clone());
        Self {
            ops,
            waker,
            _dir: dir,
        }
    }

    /// Whether the worker was woken since the last call (a stored permit is taken).
    fn woken(&self) -> bool {
        self.waker.notified().now_or_never().is_some()
    }

    async fn subscription(&self, events: &[&str]) -> String {
        let draft = SubscriptionDraft {
            url: "http://127.0.0.1:9/hook".into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            ..Default::default()
        };
        self.ops.create_subscription(draft).await.unwrap().id
    }

    async fn publish(&self, event_type: &str) -> crate::store::Published {
        let draft = EventDraft {
            event_type: event_type.into(),
            data: "{}".into(),
            id: None,
            version: None,
            retryable: None,
            idempotency_key: None,
            owner: None,
        };
        let now = self.ops.clock.now_ms();
        let event = self.ops.prepare_event(draft, "", now).await.unwrap();
        self.ops.publish(vec![event]).await.unwrap().remove(0)
    }
}

#[tokio::test]
async fn publishing_wakes_the_worker_only_when_a_delivery_was_queued() {
    let fixture = Fixture::new().await;
    fixture.subscription(&["order.*"]).await;
    assert!(
        !fixture.woken(),
        "creating a subscription makes nothing due"
    );

    let unmatched = fixture.publish("user.created").await;
    assert_eq!(unmatched.deliveries, 0);
    assert!(!fixture.woken());

    let matched = fixture.publish("order.created").await;
    assert_eq!(matched.deliveries, 1);
    assert!(fixture.woken());
}

#[tokio::test]
async fn enabling_with_replay_wakes_the_worker_for_the_held_deliveries() {
    let fixture = Fixture::new().await;
    let id = fixture.subscription(&["*"]).await;
    fixture.ops.disable_subscription(&id).await.unwrap();
    fixture.publish("order.created").await;
    assert!(
        !fixture.woken(),
        "a disabled subscription's delivery is held, not due"
    );

    let (_, replayed) = fixture.ops.enable_subscription(&id, true).await.unwrap();
    assert_eq!(replayed, 1);
    assert!(fixture.woken());
}

#[tokio::test]
async fn a_retry_wakes_the_worker_and_a_missing_delivery_does_not() {
    let fixture = Fixture::new().await;
    let id = fixture.subscription(&["*"]).await;
    let event = fixture.publish("order.created").await;
    assert!(fixture.woken());
    let deliveries = fixture
        .ops
        .store
        .deliveries
        .deliveries_for_event(&event.event.id)
        .await;
    let delivery = deliveries.unwrap().remove(0);
    assert_eq!(delivery.subscription_id, id);

    let missing = fixture.ops.retry_delivery("dlv_missing").await.unwrap();
    assert!(matches!(missing, crate::store::RetryResult::NotFound));
    assert!(!fixture.woken());

    let retried = fixture.ops.retry_delivery(&delivery.id).await.unwrap();
    assert!(matches!(retried, crate::store::RetryResult::Requeued(_)));
    assert!(fixture.woken());
}

#[tokio::test]
async fn operations_refuse_unknown_subscriptions_and_invalid_input() {
    let fixture = Fixture::new().await;
    let unknown = fixture.ops.enable_subscription("wh_missing", true).await;
    assert!(matches!(unknown, Err(OpsError::NotFound("webhook"))));
    let test = fixture
        .ops
        .send_test_event("wh_missing", TestPayload::Standard)
        .await;
    assert!(matches!(test, Err(OpsError::NotFound("webhook"))));
    let id = fixture.subscription(&["*"]).await;
    let rotated = fixture.ops.rotate_secret(&id, Some(-1)).await;
    assert!(matches!(
        rotated,
        Err(OpsError::Invalid {
            field,
            ..
        }) if field == "overlap_seconds"
    ));
    assert!(!fixture.woken());
}
