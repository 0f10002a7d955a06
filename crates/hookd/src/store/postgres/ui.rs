//! [`UiStore`] on PostgreSQL (the same queries as `sqlite/ui.rs` in this dialect): sessions, the delivery log and chart samples.

use super::super::common::{
    RowExt, backlog_counts, delivery_columns, delivery_from_row, delivery_log_sql, into_page,
};
use super::super::ui::*;
use super::super::{
    Cursor, DeadLetterFilter, DeliveryRow, DeliveryState, Page, StoreResult, UnixMs,
};
use super::{PgStore, map_err};
use async_trait::async_trait;
use sqlx::Row;
use sqlx::postgres::PgRow;

/// `$N` is an owner (or NULL): keeps rows of that owner's subscriptions only.
macro_rules! owner_scope {
    ($column:literal, $n:literal) => {
        concat!(
            "($",
            $n,
            "::text IS NULL OR ",
            $column,
            " IN (SELECT id FROM subscriptions WHERE owner = $",
            $n,
            "))"
        )
    };
}

fn session_from_row(row: &PgRow) -> Option<SessionRow> {
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
impl UiStore for PgStore {
    async fn insert_session(&self, session: &SessionRow) -> StoreResult<()> {
        sqlx::query("DELETE FROM ui_sessions WHERE expires_at <= $1")
            .bind(session.created_at)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        sqlx::query(
            "INSERT INTO ui_sessions (token_hash, kind, owner, can_manage, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
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
            "SELECT * FROM ui_sessions WHERE token_hash = $1 AND kind != 'link' AND expires_at > $2",
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
            "DELETE FROM ui_sessions WHERE token_hash = $1 AND kind = 'link' RETURNING *",
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
        sqlx::query("DELETE FROM ui_sessions WHERE token_hash = $1")
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
        let sql = delivery_log_sql(&search, |n, ty| format!("${n}::{ty}"), "");
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
              WHERE a.started_at >= $1 AND ($2::text IS NULL OR d.subscription_id = $2) AND ",
            owner_scope!("d.subscription_id", "3"),
            " ORDER BY a.started_at DESC LIMIT $4"
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
        let rows = sqlx::query(backlog_counts!(owner_scope!("subscription_id", "1")))
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
        let rows = sqlx::query(concat!(
            "SELECT subscription_id, last_status, last_error, COUNT(*) AS n,
                    MAX(updated_at) AS last_at
               FROM deliveries WHERE state = 'dead' AND ",
            owner_scope!("subscription_id", "1"),
            " GROUP BY subscription_id, last_status, last_error ORDER BY n DESC LIMIT $2"
        ))
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
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM deliveries
              WHERE subscription_id = $1 AND state IN ('failed', 'dead') AND updated_at >= $2",
        )
        .bind(subscription_id)
        .bind(since)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(row.int("n"))
    }

    async fn count_redrivable(&self, filter: DeadLetterFilter) -> StoreResult<i64> {
        let row = sqlx::query(concat!(
            "SELECT COUNT(*) AS n FROM deliveries",
            redrivable_where!()
        ))
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
        // The outer conditions repeat the inner ones: a row that a worker claimed between the
        // subquery and the update is rechecked on its new version and left alone. `ARRAY(…)` makes
        // the pick run once (an init plan); as a join or `IN`, a table without statistics yet got
        // a nested loop that re-ran it per row (2.6 s for 1,000 of 5,000 rows).
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let done = sqlx::query(
            "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = $5,
                    updated_at = $5
              WHERE id = ANY(ARRAY(SELECT id FROM deliveries
                                    WHERE subscription_id = $1 AND state IN ('failed', 'dead')
                                      AND updated_at >= $2 AND updated_at < $3
                                    LIMIT $4))
                AND subscription_id = $1 AND state IN ('failed', 'dead')
                AND updated_at >= $2 AND updated_at < $3",
        )
        .bind(subscription_id)
        .bind(since)
        .bind(until)
        .bind(i64::from(limit))
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        if done > 0 {
            super::notify_work(&mut tx).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(done)
    }

    async fn add_delivery(
        &self,
        id: &str,
        event_id: &str,
        subscription_id: &str,
        now: UnixMs,
    ) -> StoreResult<Option<DeliveryRow>> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let row = sqlx::query(concat!(
            "INSERT INTO deliveries (id, event_id, subscription_id, state, next_attempt_at,
                                     created_at, updated_at)
             SELECT $1, e.id, s.id, 'pending', $4, $4, $4
               FROM events e, subscriptions s
              WHERE e.id = $2 AND s.id = $3 AND s.active
             ON CONFLICT (event_id, subscription_id) DO NOTHING
             RETURNING ",
            delivery_columns!()
        ))
        .bind(id)
        .bind(event_id)
        .bind(subscription_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let row = row.as_ref().map(delivery_from_row).transpose()?;
        if row.is_some() {
            super::notify_work(&mut tx).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(row)
    }
}
