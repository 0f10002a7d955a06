//! Query plans of the shared statements on SQLite: each filter of the delivery log, the backlog
//! counts and the dead-letter queries are served by the index meant for them, never by a walk of
//! every delivery. (PostgreSQL plans by statistics; its plans were checked by hand, see
//! `sql::decode::delivery_log_sql`.)

use super::{SqliteOptions, SqliteStore, Synchronous};
use crate::store::sql::Backend;
use crate::store::sql::Exec;
use crate::store::sql::decode::RowExt;
use crate::store::sql::ui::{
    BACKLOG, COUNT_RECOVERABLE, COUNT_REDRIVABLE, DEAD_LETTER_GROUPS, log_sql,
};
use crate::store::ui::DeliverySearch;
use crate::store::{Cursor, DeliveryQuery, DeliveryState, Store};
use sqlx::Row;
use sqlx::SqlitePool;
use std::time::Duration;

/// 100,000 deliveries of 20 subscriptions (4 owners) and 50 event types: 1% dead with 503, a
/// few 404s, 0.2% each failed (500), held and in flight, the newest 1,000 pending, the rest
/// delivered with 200.
async fn seeded_store(dir: &std::path::Path) -> (SqlitePool, Store) {
    let store = SqliteStore::open(SqliteOptions {
        path: dir.join("hookd.db"),
        synchronous: Synchronous::Normal,
        max_connections: 2,
        busy_timeout: Duration::from_secs(5),
    })
    .await
    .unwrap();
    for seed in [
        "INSERT INTO subscriptions (id, url, events, secret, active, failure_count, created_at,
                                    updated_at, owner)
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20)
         SELECT 'wh_' || i, 'http://x', '[\"*\"]', 's', 1, 0, 0, 0, 'own' || (i % 4) FROM n",
        "INSERT INTO events (id, event_type, version, data, retryable, created_at)
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
         SELECT printf('evt_%08d', i), 'type.' || (i % 50), '1', '{}', 1, i * 1000 FROM n",
        "INSERT INTO deliveries (id, event_id, subscription_id, state, attempts, created_at,
                                 updated_at, last_status, next_attempt_at, lease_owner,
                                 lease_expires_at)
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000),
         s(i, state) AS (
             SELECT i, CASE WHEN i % 100 = 0 THEN 'dead' WHEN i % 500 = 7 THEN 'failed'
                            WHEN i % 500 = 9 THEN 'held' WHEN i % 500 = 11 THEN 'in_flight'
                            WHEN i > 99000 THEN 'pending' ELSE 'delivered' END FROM n)
         SELECT printf('dlv_%08d', i), printf('evt_%08d', i), 'wh_' || (1 + i % 20), state,
                1, i * 1000, i * 1000 + 5,
                CASE WHEN state = 'dead' THEN 503 WHEN state = 'failed' THEN 500
                     WHEN state != 'delivered' THEN NULL
                     WHEN i % 1000 = 1 THEN 404 ELSE 200 END,
                CASE WHEN state IN ('pending', 'failed') THEN i * 1000 END,
                CASE WHEN state = 'in_flight' THEN 'w' END,
                CASE WHEN state = 'in_flight' THEN 200000000 END
           FROM s",
    ] {
        sqlx::query(seed).execute(&store.pool).await.unwrap();
    }
    (store.pool.clone(), store.into_store())
}

/// The query plan of the log's query for `search`, one line per step.
async fn plan(pool: &SqlitePool, search: &DeliverySearch) -> Vec<String> {
    let mut sql = log_sql::<sqlx::Sqlite>(search);
    sql.text = format!("EXPLAIN QUERY PLAN {}", sql.text).into();
    let mut pool = pool.clone();
    let rows = pool.all(sql).await.unwrap();
    rows.iter().map(|row| row.text("detail")).collect()
}

/// With 100,000 deliveries, no filter of the log reads a table without an index: each one
/// searches or walks the index named here (newest first, stopping after a page), and only the
/// event type, portal owner and `in_flight` filters sort, the rows of that type, owner or
/// lease (found by index).
#[tokio::test]
async fn every_log_filter_is_served_by_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let (pool, store) = seeded_store(dir.path()).await;
    let base = DeliverySearch {
        limit: 50,
        ..Default::default()
    };
    let cursor = |n: i64| {
        Some(Cursor {
            created_at: n * 1000,
            id: format!("dlv_{n:08}"),
        })
    };
    let mut cases: Vec<(&str, DeliverySearch, &str)> = vec![
        (
            "none",
            base.clone(),
            "SCAN d USING INDEX deliveries_by_time",
        ),
        (
            "endpoint",
            DeliverySearch {
                subscription_id: Some("wh_3".into()),
                ..base.clone()
            },
            "SEARCH d USING INDEX deliveries_by_subscription (subscription_id=?)",
        ),
        (
            "event type",
            DeliverySearch {
                event_type: Some("type.7".into()),
                ..base.clone()
            },
            "SEARCH e USING COVERING INDEX events_by_type_time (event_type=?)",
        ),
        (
            "failure status",
            DeliverySearch {
                status: Some(503),
                ..base.clone()
            },
            "SEARCH d USING INDEX deliveries_by_failure_status (last_status=?)",
        ),
        (
            "2xx status",
            DeliverySearch {
                status: Some(200),
                ..base.clone()
            },
            "SCAN d USING INDEX deliveries_by_time",
        ),
        (
            "since",
            DeliverySearch {
                since: Some(90_000_000),
                ..base.clone()
            },
            "SEARCH d USING INDEX deliveries_by_time (created_at>?)",
        ),
        (
            "until",
            DeliverySearch {
                until: Some(10_000_000),
                ..base.clone()
            },
            "SEARCH d USING INDEX deliveries_by_time (created_at<?)",
        ),
        (
            "deep cursor",
            DeliverySearch {
                after: cursor(5_000),
                ..base.clone()
            },
            "SEARCH d USING INDEX deliveries_by_time ((created_at,id)<(?,?))",
        ),
        (
            "owner",
            DeliverySearch {
                owner: Some("own1".into()),
                ..base.clone()
            },
            "SEARCH d USING INDEX deliveries_by_subscription (subscription_id=?)",
        ),
        (
            "owner, failure status, cursor",
            DeliverySearch {
                owner: Some("own1".into()),
                status: Some(503),
                after: cursor(50_000),
                ..base.clone()
            },
            "SEARCH d USING INDEX deliveries_by_failure_status \
             (last_status=? AND (created_at,id)<(?,?))",
        ),
    ];
    // The states of the queue and the dead letters are in partial indexes: `in_flight` rows
    // (as many as the leases) are sorted, `delivered` ones are the dense majority.
    let by_state = "SEARCH d USING INDEX deliveries_by_state_created (state=?)";
    for (state, expected) in [
        (DeliveryState::Pending, by_state),
        (
            DeliveryState::InFlight,
            "SCAN d USING INDEX deliveries_leased",
        ),
        (DeliveryState::Failed, by_state),
        (DeliveryState::Dead, by_state),
        (DeliveryState::Held, by_state),
        (
            DeliveryState::Delivered,
            "SCAN d USING INDEX deliveries_by_time",
        ),
    ] {
        let search = DeliverySearch {
            state: Some(state),
            ..base.clone()
        };
        cases.push((state.as_str(), search, expected));
    }
    // The API's delivery list (`GET /api/deliveries`) is the same search, page for page.
    for (name, query, expected) in [
        (
            "list: endpoint",
            DeliveryQuery {
                subscription_id: Some("wh_3".into()),
                limit: 50,
                ..Default::default()
            },
            "SEARCH d USING INDEX deliveries_by_subscription (subscription_id=?)",
        ),
        (
            "list: dead, deep cursor",
            DeliveryQuery {
                state: Some(DeliveryState::Dead),
                after: cursor(90_000),
                limit: 50,
                ..Default::default()
            },
            "SEARCH d USING INDEX deliveries_by_state_created (state=? AND (created_at,id)<(?,?))",
        ),
    ] {
        let search = DeliverySearch::from_query(query.clone());
        let listed = store.deliveries.list_deliveries(query).await.unwrap();
        let searched = store.ui.search_deliveries(search.clone()).await.unwrap();
        assert_eq!(listed.next, searched.next, "{name}");
        let searched: Vec<_> = searched.items.into_iter().map(|r| r.delivery).collect();
        assert_eq!(listed.items, searched, "{name}");
        cases.push((name, search, expected));
    }
    for (name, search, expected) in cases {
        let started = std::time::Instant::now();
        let page = store.ui.search_deliveries(search.clone()).await.unwrap();
        let took = started.elapsed();
        let plan = plan(&pool, &search).await;
        // Shown with --nocapture: what each filter costs on this machine (debug build).
        eprintln!("{name}: {} rows in {took:?}: {plan:?}", page.items.len());
        assert_eq!(page.items.len(), 50, "{name}");
        assert!(plan.iter().any(|step| step == expected), "{name}: {plan:?}");
        for step in &plan {
            let bare_scan = step.starts_with("SCAN") && !step.contains("USING");
            assert!(
                !bare_scan,
                "{name} reads a table without an index: {plan:?}"
            );
        }
        let sorts = plan.iter().any(|step| step.contains("TEMP B-TREE"));
        assert_eq!(
            sorts,
            search.event_type.is_some()
                || (search.owner.is_some() && search.status.is_none())
                || search.state == Some(DeliveryState::InFlight),
            "{name}: {plan:?}"
        );
    }
}

/// The plan steps of `sql` with its `params` parameters bound to NULL.
async fn plan_of(pool: &SqlitePool, sql: &str, params: usize) -> Vec<String> {
    let explain = format!("EXPLAIN QUERY PLAN {sql}");
    let mut query = sqlx::query(sqlx::AssertSqlSafe(explain));
    for _ in 0..params {
        query = query.bind(None::<String>);
    }
    let rows = query.fetch_all(pool).await.unwrap();
    rows.iter()
        .map(|row| row.get::<String, _>("detail"))
        .collect()
}

/// The backlog counts, the dead-letter groups and the recovery of failed deliveries read the
/// partial indexes that hold their states (migration 0009), never every delivery: their
/// conditions on `state` must stay worded as those indexes' predicates.
#[tokio::test]
async fn backlog_and_dead_letter_queries_read_partial_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let (pool, _store) = seeded_store(dir.path()).await;
    let cases = [
        (
            "backlog",
            BACKLOG,
            1,
            vec![
                "SEARCH deliveries USING INDEX deliveries_by_state_created (state=?)",
                "SCAN deliveries USING INDEX deliveries_leased",
            ],
        ),
        (
            "dead-letter groups",
            DEAD_LETTER_GROUPS,
            2,
            vec!["SEARCH deliveries USING INDEX deliveries_dead (state=?)"],
        ),
        (
            "redrive count",
            COUNT_REDRIVABLE,
            4,
            vec!["SEARCH deliveries USING INDEX deliveries_dead (state=?)"],
        ),
        (
            "recover count",
            COUNT_RECOVERABLE,
            2,
            vec![
                "SEARCH deliveries USING INDEX deliveries_failing \
                 (subscription_id=? AND updated_at>?)",
            ],
        ),
        (
            "recover step",
            <sqlx::Sqlite as Backend>::RECOVER_SOME,
            5,
            vec![
                "SEARCH deliveries USING INDEX deliveries_failing \
                 (subscription_id=? AND updated_at>? AND updated_at<?)",
            ],
        ),
    ];
    for (name, sql, params, expected) in cases {
        let plan = plan_of(&pool, sql, params).await;
        for step in expected {
            assert!(plan.iter().any(|s| s == step), "{name}: {plan:?}");
        }
        let reads_deliveries = |s: &&String| s.contains(" deliveries ");
        for step in plan.iter().filter(reads_deliveries) {
            assert!(
                step.contains("deliveries_by_state_created")
                    || step.contains("deliveries_leased")
                    || step.contains("deliveries_dead")
                    || step.contains("deliveries_failing"),
                "{name} reads deliveries otherwise: {plan:?}"
            );
        }
    }
}

/// The purge walks events through `events_by_time` and reads each one's deliveries through the
/// `(event_id, subscription_id)` index, and excerpt trimming walks `attempts_by_time`: a step
/// costs the same however large the tables are.
#[tokio::test]
async fn purge_steps_walk_events_by_time() {
    use crate::store::sql::retention::{REMOVABLE, TRIM_EXCERPTS, WINDOW};
    let dir = tempfile::tempdir().unwrap();
    let (pool, _store) = seeded_store(dir.path()).await;
    for (name, sql, params, index) in [
        ("window", WINDOW, 4, "INDEX events_by_time"),
        ("removable", REMOVABLE, 6, "INDEX events_by_time"),
        ("excerpts", TRIM_EXCERPTS, 3, "INDEX attempts_by_time"),
    ] {
        let plan = plan_of(&pool, sql, params).await;
        assert!(
            plan.iter()
                .any(|s| s.starts_with("SEARCH") && s.contains(index)),
            "{name}: {plan:?}"
        );
        assert!(
            plan.iter().all(|s| !s.starts_with("SCAN")),
            "{name} walks a table: {plan:?}"
        );
    }
}
