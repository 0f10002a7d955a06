//! [`UiStore`] on either backend: sessions, the delivery log and chart samples.
//!
//! Each condition on `state` in these statements is worded as the predicate of the partial index
//! that serves it (`deliveries_by_state_created` and friends): SQLite uses a partial index only
//! then. The SQLite backend's plan tests (`sqlite/plans.rs`) check that each is served by its index.

use super::decode::{
    RowExt, backlog_counts, delivery_columns, delivery_from_row, delivery_log_sql, into_page,
};
use super::deliveries::{redrivable_where, requeue};
use super::{Backend, Exec, Sql, SqlStore, announce_work};
use crate::store::ui::*;
use crate::store::{
    Cursor, DeadLetterFilter, DeliveryRow, DeliveryState, Page, StoreResult, UnixMs,
};
use async_trait::async_trait;

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

/// Deliveries per state but `delivered`; `?1` an owner or NULL.
pub(crate) const BACKLOG: &str = backlog_counts!(owner_scope!("subscription_id", "1"));

/// `?1` an owner or NULL, `?2` the most groups.
pub(crate) const DEAD_LETTER_GROUPS: &str = concat!(
    "SELECT subscription_id, last_status, last_error, COUNT(*) AS n,
            MAX(updated_at) AS last_at
       FROM deliveries WHERE state = 'dead' AND ",
    owner_scope!("subscription_id", "1"),
    " GROUP BY subscription_id, last_status, last_error ORDER BY n DESC LIMIT ?2"
);

/// `?1` subscription, `?2` since.
pub(crate) const COUNT_RECOVERABLE: &str = "SELECT COUNT(*) AS n FROM deliveries
  WHERE subscription_id = ?1 AND state IN ('failed', 'dead') AND updated_at >= ?2";

/// `?1`–`?4`: see `redrivable_where!`.
pub(crate) const COUNT_REDRIVABLE: &str =
    concat!("SELECT COUNT(*) AS n FROM deliveries", redrivable_where!());

/// `?1` since, `?2` a subscription or NULL, `?3` an owner or NULL, `?4` the most rows.
const ATTEMPT_SAMPLES: &str = concat!(
    "SELECT a.started_at, a.duration_ms, a.status, d.subscription_id
       FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
      WHERE a.started_at >= ?1 AND (?2 IS NULL OR d.subscription_id = ?2) AND ",
    owner_scope!("d.subscription_id", "3"),
    " ORDER BY a.started_at DESC LIMIT ?4"
);

/// The delivery log's statement for `search` (see [`delivery_log_sql`]), with its arguments.
pub(crate) fn log_sql<B: Backend>(search: &DeliverySearch) -> Sql {
    Sql::dynamic(delivery_log_sql(search, B::LEASED_HINT))
        .bind(search.subscription_id.clone())
        .bind(search.state.map(DeliveryState::as_str))
        .bind(search.event_type.clone())
        .bind(search.status)
        .bind(search.since)
        .bind(search.until)
        .bind(search.owner.clone())
        .bind(search.after.as_ref().map(|c| c.created_at))
        .bind(search.after.as_ref().map(|c| c.id.clone()))
        .bind(i64::from(search.limit) + 1)
}

/// One page of the delivery log.
pub(crate) async fn search<B: Backend>(
    mut db: B::Pool,
    search: DeliverySearch,
) -> StoreResult<Page<DeliveryListRow>> {
    let rows = db.all(log_sql::<B>(&search)).await?;
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

fn session_from_row(row: &impl RowExt) -> Option<SessionRow> {
    Some(SessionRow {
        token_hash: row.bytes("token_hash"),
        kind: SessionKind::parse(&row.text("kind"))?,
        owner: row.opt_text("owner"),
        can_manage: row.flag("can_manage"),
        created_at: row.int("created_at"),
        expires_at: row.int("expires_at"),
    })
}

const SESSION_COLUMNS: &str = "token_hash, kind, owner, can_manage, created_at, expires_at";

#[async_trait]
impl<B: Backend> UiStore for SqlStore<B> {
    async fn insert_session(&self, session: &SessionRow) -> StoreResult<()> {
        let mut db = self.db();
        db.run(Sql::new("DELETE FROM ui_sessions WHERE expires_at <= ?1").bind(session.created_at))
            .await?;
        let insert = Sql::new(
            "INSERT INTO ui_sessions (token_hash, kind, owner, can_manage, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(&session.token_hash)
        .bind(session.kind.as_str())
        .bind(&session.owner)
        .bind(session.can_manage)
        .bind(session.created_at)
        .bind(session.expires_at);
        db.run(insert).await.map(drop)
    }

    async fn session_by_hash(&self, hash: &[u8], now: UnixMs) -> StoreResult<Option<SessionRow>> {
        let sql = Sql::dynamic(format!(
            "SELECT {SESSION_COLUMNS} FROM ui_sessions
              WHERE token_hash = ?1 AND kind <> 'link' AND expires_at > ?2"
        ))
        .bind(hash)
        .bind(now);
        let row = self.db().optional(sql).await?;
        Ok(row.as_ref().and_then(session_from_row))
    }

    async fn take_link(&self, hash: &[u8], now: UnixMs) -> StoreResult<Option<SessionRow>> {
        let sql = Sql::dynamic(format!(
            "DELETE FROM ui_sessions WHERE token_hash = ?1 AND kind = 'link'
             RETURNING {SESSION_COLUMNS}"
        ))
        .bind(hash);
        let row = self.db().optional(sql).await?;
        Ok(row
            .as_ref()
            .and_then(session_from_row)
            .filter(|link| link.expires_at > now))
    }

    async fn delete_session(&self, hash: &[u8]) -> StoreResult<()> {
        let sql = Sql::new("DELETE FROM ui_sessions WHERE token_hash = ?1").bind(hash);
        self.db().run(sql).await.map(drop)
    }

    async fn search_deliveries(
        &self,
        search_for: DeliverySearch,
    ) -> StoreResult<Page<DeliveryListRow>> {
        search::<B>(self.db(), search_for).await
    }

    async fn attempt_samples(
        &self,
        since: UnixMs,
        owner: Option<&str>,
        subscription_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<AttemptSample>> {
        let sql = Sql::new(ATTEMPT_SAMPLES)
            .bind(since)
            .bind(subscription_id)
            .bind(owner)
            .bind(i64::from(limit));
        let rows = self.db().all(sql).await?;
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
        let rows = self.db().all(Sql::new(BACKLOG).bind(owner)).await?;
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
        let sql = Sql::new(DEAD_LETTER_GROUPS)
            .bind(owner)
            .bind(i64::from(limit));
        let rows = self.db().all(sql).await?;
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
        let sql = Sql::new(COUNT_RECOVERABLE)
            .bind(subscription_id)
            .bind(since);
        Ok(self.db().one(sql).await?.int("n"))
    }

    async fn count_redrivable(&self, filter: DeadLetterFilter) -> StoreResult<i64> {
        let sql = Sql::new(COUNT_REDRIVABLE)
            .bind(filter.subscription_id)
            .bind(filter.event_type)
            .bind(filter.since)
            .bind(filter.until);
        Ok(self.db().one(sql).await?.int("n"))
    }

    async fn recover_some(
        &self,
        subscription_id: &str,
        since: UnixMs,
        until: UnixMs,
        limit: u32,
        now: UnixMs,
    ) -> StoreResult<u64> {
        let sql = Sql::new(B::RECOVER_SOME)
            .bind(subscription_id)
            .bind(since)
            .bind(until)
            .bind(i64::from(limit))
            .bind(now);
        requeue::<B>(&self.pool, sql).await
    }

    async fn add_delivery(
        &self,
        id: &str,
        event_id: &str,
        subscription_id: &str,
        now: UnixMs,
    ) -> StoreResult<Option<DeliveryRow>> {
        let mut tx = B::begin_write(&self.pool).await?;
        let sql = Sql::new(concat!(
            "INSERT INTO deliveries (id, event_id, subscription_id, state, next_attempt_at,
                                     created_at, updated_at)
             SELECT ?1, e.id, s.id, 'pending', ?4, ?4, ?4
               FROM events e, subscriptions s
              WHERE e.id = ?2 AND s.id = ?3 AND s.active
             ON CONFLICT (event_id, subscription_id) DO NOTHING
             RETURNING ",
            delivery_columns!()
        ))
        .bind(id)
        .bind(event_id)
        .bind(subscription_id)
        .bind(now);
        let row = tx.optional(sql).await?;
        let row = row.as_ref().map(delivery_from_row).transpose()?;
        if row.is_some() {
            announce_work::<B>(&mut tx).await?;
        }
        B::commit(tx).await?;
        Ok(row)
    }
}
