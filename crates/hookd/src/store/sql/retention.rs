//! [`RetentionStore`] on either backend: the purge of finished, expired events in bounded steps,
//! excerpt trimming, and the database's size and age.
//!
//! A purge step walks a window of events by `(created_at, id)` (the `events_by_time` index), so a
//! step costs the same however many old events are still unfinished: they are looked at once per
//! pass, never skipped over again and again.

use super::decode::RowExt;
use super::{Backend, Exec, Sql, SqlStore};
use crate::store::retention::*;
use crate::store::{StoreResult, UnixMs};
use async_trait::async_trait;
use std::sync::LazyLock;

/// Most events one purge step looks at (and so removes): the length of the id lists below.
pub(crate) const MAX_PURGE_STEP: u32 = 500;

/// The window after `(?1, ?2)`: events created before `?3`, oldest first, at most `?4`.
pub(crate) const WINDOW: &str = "SELECT created_at, id FROM events
      WHERE created_at >= ?1 AND (created_at, id) > (?1, ?2) AND created_at < ?3
      ORDER BY created_at, id LIMIT ?4";

/// The events of the window `((?1, ?2), (?3, ?4)]` that may go: each delivery is `delivered`
/// before `?5` or `dead` before `?6` (0 when that kind never expires, as no row is older); an
/// event without any delivery counts as delivered when it was created. Every other state
/// (pending, in flight, failed, held) keeps the event and all its deliveries.
pub(crate) const REMOVABLE: &str = "SELECT e.id FROM events e
      WHERE e.created_at >= ?1 AND (e.created_at, e.id) > (?1, ?2)
        AND e.created_at <= ?3 AND (e.created_at, e.id) <= (?3, ?4)
        AND NOT EXISTS (
            SELECT 1 FROM deliveries d WHERE d.event_id = e.id
               AND NOT ((d.state = 'delivered' AND d.updated_at < ?5)
                     OR (d.state = 'dead' AND d.updated_at < ?6)))
        AND (e.created_at < ?5 OR EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id))";

/// Locks the window's events and their finished deliveries, in a fixed order (PostgreSQL; SQLite's
/// write lock is taken at `BEGIN`): an operator's re-queue of one of them waits for this step,
/// then finds it gone, or committed first and the step sees it unfinished. A new delivery of a
/// locked event (a replay) waits too, then fails on the missing event. Unfinished deliveries are
/// not locked, so the recorder never waits for a purge: whatever they become meanwhile is either
/// unfinished or finished just now, and keeps the event either way.
const LOCK_EVENTS: &str = "SELECT id FROM events
      WHERE created_at >= ?1 AND (created_at, id) > (?1, ?2)
        AND created_at <= ?3 AND (created_at, id) <= (?3, ?4)
      ORDER BY created_at, id";
const LOCK_DELIVERIES: &str = "SELECT id FROM deliveries
      WHERE (state = 'delivered' OR state = 'dead') AND event_id IN (
          SELECT id FROM events
           WHERE created_at >= ?1 AND (created_at, id) > (?1, ?2)
             AND created_at <= ?3 AND (created_at, id) <= (?3, ?4))
      ORDER BY id";

/// Clears the response of at most `?3` attempts started in `[?1, ?2)` that still have one, oldest
/// first (through `attempts_by_time`), and returns when each started.
pub(crate) const TRIM_EXCERPTS: &str =
    "UPDATE attempts SET response_excerpt = NULL, response_headers = NULL
      WHERE id IN (
          SELECT id FROM attempts
           WHERE started_at >= ?1 AND started_at < ?2
             AND (response_excerpt IS NOT NULL OR response_headers IS NOT NULL)
           ORDER BY started_at LIMIT ?3)
      RETURNING started_at";

/// `?1, ?2, …, ?N` for [`MAX_PURGE_STEP`] ids: one text for every step (a shorter list repeats its
/// last id), so PostgreSQL rewrites and prepares it once.
static ID_LIST: LazyLock<String> = LazyLock::new(|| {
    (1..=MAX_PURGE_STEP)
        .map(|n| format!("?{n}"))
        .collect::<Vec<_>>()
        .join(", ")
});

/// `statement` (with `{ids}` where the list goes) over `ids`, padded to the list's length.
fn over_ids(statement: &str, ids: &[String]) -> Sql {
    let mut sql = Sql::dynamic(statement.replace("{ids}", &ID_LIST));
    let last = ids.last().cloned().unwrap_or_default();
    for n in 0..MAX_PURGE_STEP as usize {
        sql = sql.bind(ids.get(n).unwrap_or(&last).clone());
    }
    sql
}

/// A cutoff as bound: `None` (kept forever) is 0, before every stored timestamp.
fn cutoff(value: Option<UnixMs>) -> i64 {
    value.unwrap_or(0)
}

#[async_trait]
impl<B: Backend> RetentionStore for SqlStore<B> {
    async fn purge_step(
        &self,
        cutoffs: PurgeCutoffs,
        after: Option<EventPosition>,
        limit: u32,
    ) -> StoreResult<PurgeStep> {
        let Some(latest) = cutoffs.latest() else {
            return Ok(PurgeStep::default());
        };
        let limit = limit.clamp(1, MAX_PURGE_STEP);
        let start = after.unwrap_or(EventPosition {
            created_at: i64::MIN,
            id: String::new(),
        });
        let window = Sql::new(WINDOW)
            .bind(start.created_at)
            .bind(start.id.clone())
            .bind(latest)
            .bind(i64::from(limit));
        let rows = self.db().all(window).await?;
        let Some(last) = rows.last() else {
            return Ok(PurgeStep::default());
        };
        let end = EventPosition {
            created_at: last.int("created_at"),
            id: last.text("id"),
        };
        let in_window = |text: &'static str| {
            Sql::new(text)
                .bind(start.created_at)
                .bind(start.id.clone())
                .bind(end.created_at)
                .bind(end.id.clone())
        };
        let mut tx = B::begin_write(&self.pool).await?;
        if !B::FOR_UPDATE.is_empty() {
            tx.all(in_window(LOCK_EVENTS).lock::<B>()).await?;
            tx.all(in_window(LOCK_DELIVERIES).lock::<B>()).await?;
        }
        let removable = in_window(REMOVABLE)
            .bind(cutoff(cutoffs.delivered_before))
            .bind(cutoff(cutoffs.dead_before));
        let ids: Vec<String> = tx
            .all(removable)
            .await?
            .iter()
            .map(|r| r.text("id"))
            .collect();
        let mut purged = Purged::default();
        if !ids.is_empty() {
            // Attempts first, counted (the cascade from deliveries would remove them uncounted),
            // then deliveries, then the events nothing refers to any more.
            let attempts = "DELETE FROM attempts WHERE delivery_id IN (
                                SELECT id FROM deliveries WHERE event_id IN ({ids}))";
            purged.attempts = tx.run(over_ids(attempts, &ids)).await?;
            let deliveries = "DELETE FROM deliveries WHERE event_id IN ({ids})";
            purged.deliveries = tx.run(over_ids(deliveries, &ids)).await?;
            purged.events = tx
                .run(over_ids("DELETE FROM events WHERE id IN ({ids})", &ids))
                .await?;
        }
        B::commit(tx).await?;
        let next = (rows.len() == limit as usize).then_some(end);
        Ok(PurgeStep { purged, next })
    }

    async fn trim_excerpts_step(
        &self,
        from: UnixMs,
        before: UnixMs,
        limit: u32,
    ) -> StoreResult<TrimStep> {
        let sql = Sql::new(TRIM_EXCERPTS)
            .bind(from)
            .bind(before)
            .bind(i64::from(limit.clamp(1, MAX_PURGE_STEP)));
        let mut tx = B::begin_write(&self.pool).await?;
        let rows = tx.all(sql).await?;
        B::commit(tx).await?;
        Ok(TrimStep {
            trimmed: rows.len() as u64,
            last_started_at: rows.iter().map(|r| r.int("started_at")).max(),
        })
    }

    async fn retry_policies_in_use(&self) -> StoreResult<Vec<String>> {
        let sql = Sql::new(
            "SELECT DISTINCT retry_policy FROM subscriptions WHERE retry_policy IS NOT NULL",
        );
        let rows = self.db().all(sql).await?;
        Ok(rows.iter().map(|r| r.text("retry_policy")).collect())
    }

    async fn retention_stats(&self) -> StoreResult<RetentionStats> {
        let size = self.db().one(Sql::new(B::DATABASE_BYTES)).await?;
        let oldest = Sql::new("SELECT MIN(created_at) AS oldest FROM events");
        let oldest = self.db().one(oldest).await?;
        Ok(RetentionStats {
            database_bytes: size.int("bytes"),
            oldest_event_at: oldest.opt_int("oldest"),
        })
    }
}

impl Sql {
    /// The same statement locking the rows it reads where the backend locks rows.
    fn lock<B: Backend>(self) -> Sql {
        let text = format!("{}{}", self.text, B::FOR_UPDATE);
        Sql {
            text: text.into(),
            args: self.args,
        }
    }
}
