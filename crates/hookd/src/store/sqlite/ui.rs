//! [`UiStore`] on SQLite: sessions, the delivery log and chart samples.

use super::super::common::{
    RowExt, backlog_counts, delivery_columns, delivery_from_row, delivery_log_sql, into_page,
};
use super::super::ui::*;
use super::super::{
    Cursor, DeadLetterFilter, DeliveryRow, DeliveryState, Page, StoreResult, UnixMs,
};
use super::{SqliteStore, map_err};
use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

/// `?N` is an owner (or NULL): keeps rows of that owner's subscriptions only.
macro_rules! owner_scope {
    ($column:literal, $n:literal) => {
        concat!(
            "(?",
            $n,
            " IS NULL OR ",
            $column,
            " IN (SELECT id FROM subscriptions WHERE owner = ?",
            $n,
            "))"
        )
    };
}

// Each condition on `state` in these statements is worded as the predicate of the partial index
// that serves it (migration 0009): SQLite uses a partial index only then.
// `tests::backlog_and_dead_letter_queries_read_partial_indexes` checks their plans.

/// Deliveries per state but `delivered`; `?1` an owner or NULL.
const BACKLOG: &str = backlog_counts!(owner_scope!("subscription_id", "1"));

/// `?1` an owner or NULL, `?2` the most groups.
const DEAD_LETTER_GROUPS: &str = concat!(
    "SELECT subscription_id, last_status, last_error, COUNT(*) AS n,
            MAX(updated_at) AS last_at
       FROM deliveries WHERE state = 'dead' AND ",
    owner_scope!("subscription_id", "1"),
    " GROUP BY subscription_id, last_status, last_error ORDER BY n DESC LIMIT ?2"
);

/// `?1` subscription, `?2` since.
const COUNT_RECOVERABLE: &str = "SELECT COUNT(*) AS n FROM deliveries
  WHERE subscription_id = ?1 AND state IN ('failed', 'dead') AND updated_at >= ?2";

/// `?1`–`?4`: see `redrivable_where!`.
const COUNT_REDRIVABLE: &str = concat!("SELECT COUNT(*) AS n FROM deliveries", redrivable_where!());

/// `?1` subscription, `?2`/`?3` the time range, `?4` the most rows, `?5` now. The outer conditions
/// repeat the inner ones: what is updated is what still qualifies.
const RECOVER_SOME: &str =
    "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?5,
        updated_at = ?5
  WHERE id IN (SELECT id FROM deliveries
                WHERE subscription_id = ?1 AND state IN ('failed', 'dead')
                  AND updated_at >= ?2 AND updated_at < ?3
                LIMIT ?4)
    AND subscription_id = ?1 AND state IN ('failed', 'dead')
    AND updated_at >= ?2 AND updated_at < ?3";

/// The delivery log's query (see [`delivery_log_sql`]). The `in_flight` filter names its index: left
/// alone, SQLite walks `deliveries_by_time` for the order, through the whole log when few rows are
/// in flight, where the leased rows (as many as the leases) are quickly sorted.
fn log_sql(search: &DeliverySearch) -> String {
    delivery_log_sql(
        search,
        |n, _| format!("?{n}"),
        "INDEXED BY deliveries_leased",
    )
}

fn session_from_row(row: &SqliteRow) -> Option<SessionRow> {
    Some(SessionRow {
        token_hash: row.get("token_hash"),
        kind: SessionKind::parse(&row.text("kind"))?,
        owner: row.opt_text("owner"),
        can_manage: row.flag("can_manage"),
        created_at: row.int("created_at"),
        expires_at: row.int("expires_at"),
    })
}

#[async_trait]
impl UiStore for SqliteStore {
    async fn insert_session(&self, session: &SessionRow) -> StoreResult<()> {
        sqlx::query("DELETE FROM ui_sessions WHERE expires_at <= ?")
            .bind(session.created_at)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        sqlx::query(
            "INSERT INTO ui_sessions (token_hash, kind, owner, can_manage, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&session.token_hash)
        .bind(session.kind.as_str())
        .bind(&session.owner)
        .bind(session.can_manage)
        .bind(session.created_at)
        .bind(session.expires_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn session_by_hash(&self, hash: &[u8], now: UnixMs) -> StoreResult<Option<SessionRow>> {
        let row = sqlx::query(
            "SELECT * FROM ui_sessions WHERE token_hash = ? AND kind != 'link' AND expires_at > ?",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(row.as_ref().and_then(session_from_row))
    }

    async fn take_link(&self, hash: &[u8], now: UnixMs) -> StoreResult<Option<SessionRow>> {
        let row = sqlx::query(
            "DELETE FROM ui_sessions WHERE token_hash = ? AND kind = 'link' RETURNING *",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(row
            .as_ref()
            .and_then(session_from_row)
            .filter(|link| link.expires_at > now))
    }

    async fn delete_session(&self, hash: &[u8]) -> StoreResult<()> {
        sqlx::query("DELETE FROM ui_sessions WHERE token_hash = ?")
            .bind(hash)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn search_deliveries(
        &self,
        search: DeliverySearch,
    ) -> StoreResult<Page<DeliveryListRow>> {
        let sql = log_sql(&search);
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&search.subscription_id)
            .bind(search.state.map(DeliveryState::as_str))
            .bind(&search.event_type)
            .bind(search.status)
            .bind(search.since)
            .bind(search.until)
            .bind(&search.owner)
            .bind(search.after.as_ref().map(|c| c.created_at))
            .bind(search.after.as_ref().map(|c| c.id.clone()))
            .bind(i64::from(search.limit) + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let items = rows
            .iter()
            .map(|row| {
                Ok(DeliveryListRow {
                    delivery: delivery_from_row(row)?,
                    event_type: row.text("event_type"),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(into_page(items, search.limit, |d| Cursor {
            created_at: d.delivery.created_at,
            id: d.delivery.id.clone(),
        }))
    }

    async fn attempt_samples(
        &self,
        since: UnixMs,
        owner: Option<&str>,
        subscription_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<AttemptSample>> {
        let rows = sqlx::query(concat!(
            "SELECT a.started_at, a.duration_ms, a.status, d.subscription_id
               FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
              WHERE a.started_at >= ?1 AND (?2 IS NULL OR d.subscription_id = ?2) AND ",
            owner_scope!("d.subscription_id", "3"),
            " ORDER BY a.started_at DESC LIMIT ?4"
        ))
        .bind(since)
        .bind(subscription_id)
        .bind(owner)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(rows
            .iter()
            .map(|row| AttemptSample {
                started_at: row.int("started_at"),
                duration_ms: row.int("duration_ms"),
                ok: row
                    .opt_int("status")
                    .is_some_and(|s| (200..300).contains(&s)),
                subscription_id: row.text("subscription_id"),
            })
            .collect())
    }

    async fn backlog(&self, owner: Option<&str>) -> StoreResult<Vec<(String, i64)>> {
        let rows = sqlx::query(BACKLOG)
            .bind(owner)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(rows
            .iter()
            .map(|row| (row.text("state"), row.int("n")))
            .collect())
    }

    async fn dead_letter_groups(
        &self,
        owner: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<DeadLetterGroup>> {
        let rows = sqlx::query(DEAD_LETTER_GROUPS)
            .bind(owner)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(rows
            .iter()
            .map(|row| DeadLetterGroup {
                subscription_id: row.text("subscription_id"),
                last_status: row.opt_int("last_status"),
                last_error: row.opt_text("last_error"),
                count: row.int("n"),
                last_failed_at: row.int("last_at"),
            })
            .collect())
    }

    async fn count_recoverable(&self, subscription_id: &str, since: UnixMs) -> StoreResult<i64> {
        let row = sqlx::query(COUNT_RECOVERABLE)
            .bind(subscription_id)
            .bind(since)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(row.int("n"))
    }

    async fn count_redrivable(&self, filter: DeadLetterFilter) -> StoreResult<i64> {
        let row = sqlx::query(COUNT_REDRIVABLE)
            .bind(&filter.subscription_id)
            .bind(&filter.event_type)
            .bind(filter.since)
            .bind(filter.until)
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(row.int("n"))
    }

    async fn recover_some(
        &self,
        subscription_id: &str,
        since: UnixMs,
        until: UnixMs,
        limit: u32,
        now: UnixMs,
    ) -> StoreResult<u64> {
        let done = sqlx::query(RECOVER_SOME)
            .bind(subscription_id)
            .bind(since)
            .bind(until)
            .bind(i64::from(limit))
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn add_delivery(
        &self,
        id: &str,
        event_id: &str,
        subscription_id: &str,
        now: UnixMs,
    ) -> StoreResult<Option<DeliveryRow>> {
        let row = sqlx::query(concat!(
            "INSERT INTO deliveries (id, event_id, subscription_id, state, next_attempt_at,
                                     created_at, updated_at)
             SELECT ?1, e.id, s.id, 'pending', ?4, ?4, ?4
               FROM events e, subscriptions s
              WHERE e.id = ?2 AND s.id = ?3 AND s.active = 1
             ON CONFLICT (event_id, subscription_id) DO NOTHING
             RETURNING ",
            delivery_columns!()
        ))
        .bind(id)
        .bind(event_id)
        .bind(subscription_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref().map(delivery_from_row).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{SqliteOptions, Synchronous};
    use super::*;
    use crate::store::{DeliveryQuery, Store};
    use std::time::Duration;

    /// 100,000 deliveries of 20 subscriptions (4 owners) and 50 event types: 1% dead with 503, a
    /// few 404s, 0.2% each failed (500), held and in flight, the newest 1,000 pending, the rest
    /// delivered with 200.
    async fn seeded_store(dir: &std::path::Path) -> SqliteStore {
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
        store
    }

    /// The query plan of the log's query for `search`, one line per step.
    async fn plan(store: &SqliteStore, search: &DeliverySearch) -> Vec<String> {
        let sql = format!("EXPLAIN QUERY PLAN {}", log_sql(search));
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&search.subscription_id)
            .bind(search.state.map(DeliveryState::as_str))
            .bind(&search.event_type)
            .bind(search.status)
            .bind(search.since)
            .bind(search.until)
            .bind(&search.owner)
            .bind(search.after.as_ref().map(|c| c.created_at))
            .bind(search.after.as_ref().map(|c| c.id.clone()))
            .bind(i64::from(search.limit) + 1)
            .fetch_all(&store.pool)
            .await
            .unwrap();
        rows.iter()
            .map(|row| row.get::<String, _>("detail"))
            .collect()
    }

    /// With 100,000 deliveries, no filter of the log reads a table without an index: each one
    /// searches or walks the index named here (newest first, stopping after a page), and only the
    /// event type, portal owner and `in_flight` filters sort, the rows of that type, owner or
    /// lease (found by index).
    #[tokio::test]
    async fn every_log_filter_is_served_by_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = seeded_store(dir.path()).await;
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
            let listed = store.list_deliveries(query).await.unwrap();
            let searched = store.search_deliveries(search.clone()).await.unwrap();
            assert_eq!(listed.next, searched.next, "{name}");
            let searched: Vec<_> = searched.items.into_iter().map(|r| r.delivery).collect();
            assert_eq!(listed.items, searched, "{name}");
            cases.push((name, search, expected));
        }
        for (name, search, expected) in cases {
            let started = std::time::Instant::now();
            let page = store.search_deliveries(search.clone()).await.unwrap();
            let took = started.elapsed();
            let plan = plan(&store, &search).await;
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
    async fn plan_of(store: &SqliteStore, sql: &str, params: usize) -> Vec<String> {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(explain));
        for _ in 0..params {
            query = query.bind(None::<String>);
        }
        let rows = query.fetch_all(&store.pool).await.unwrap();
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
        let store = seeded_store(dir.path()).await;
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
                RECOVER_SOME,
                5,
                vec![
                    "SEARCH deliveries USING INDEX deliveries_failing \
                     (subscription_id=? AND updated_at>? AND updated_at<?)",
                ],
            ),
        ];
        for (name, sql, params, expected) in cases {
            let plan = plan_of(&store, sql, params).await;
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
}
