//! [`DeliveryStore`] on either backend: events and the delivery log as operators see them, and the
//! operator's actions on deliveries (retry, redrive, recover).

use super::decode::{
    RowExt, add_state_count, backlog_counts, dead_letter_from_row, delivery_columns,
    delivery_from_row, event_from_row, into_page,
};
use super::ui::search;
use super::{Backend, Exec, Sql, SqlStore, announce_work};
use crate::store::ui::{DeliverySearch, deliveries_of};
use crate::store::*;

/// The dead letters a redrive filter selects (`?1` subscription, `?2` event type, `?3`/`?4` time
/// range): one text for the redrive and for its count preview, so the preview counts what runs.
macro_rules! redrivable_where {
    () => {
        " WHERE state = 'dead'
            AND (?1 IS NULL OR subscription_id = ?1)
            AND (?2 IS NULL OR event_id IN (SELECT id FROM events WHERE event_type = ?2))
            AND (?3 IS NULL OR updated_at >= ?3)
            AND (?4 IS NULL OR updated_at < ?4)
            AND subscription_id IN (SELECT id FROM subscriptions WHERE active)"
    };
}
pub(crate) use redrivable_where;

/// Runs `sql` (which re-queues deliveries) in a write transaction that announces the work when it
/// re-queued any; returns how many.
pub(crate) async fn requeue<B: Backend>(pool: &B::Pool, sql: Sql) -> StoreResult<u64> {
    let mut tx = B::begin_write(pool).await?;
    let requeued = tx.run(sql).await?;
    if requeued > 0 {
        announce_work::<B>(&mut tx).await?;
    }
    B::commit(tx).await?;
    Ok(requeued)
}

#[async_trait]
impl<B: Backend> DeliveryStore for SqlStore<B> {
    async fn get_event(&self, id: &str) -> StoreResult<Option<EventRow>> {
        let sql = Sql::new(
            "SELECT id, event_type, version, data, retryable, idempotency_key, created_at, owner
               FROM events WHERE id = ?1",
        )
        .bind(id);
        let row = self.db().optional(sql).await?;
        row.map(|row| event_from_row(&row)).transpose()
    }

    async fn list_events(&self, query: EventQuery) -> StoreResult<Page<EventRow>> {
        let sql = Sql::new(
            "SELECT id, event_type, version, data, retryable, idempotency_key, created_at, owner
             FROM events
             WHERE (?1 IS NULL OR event_type = ?1)
               AND (?7 IS NULL OR owner = ?7)
               AND (?2 IS NULL OR created_at >= ?2)
               AND (?3 IS NULL OR created_at < ?3)
               AND (?4 IS NULL OR (created_at, id) < (?4, ?5))
             ORDER BY created_at DESC, id DESC LIMIT ?6",
        )
        .bind(&query.event_type)
        .bind(query.since)
        .bind(query.until)
        .bind(query.after.as_ref().map(|c| c.created_at))
        .bind(query.after.as_ref().map(|c| c.id.clone()))
        .bind(i64::from(query.limit) + 1)
        .bind(&query.owner);
        let rows = self.db().all(sql).await?;
        let items = rows
            .iter()
            .map(event_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(into_page(items, query.limit, |e| Cursor {
            created_at: e.created_at,
            id: e.id.clone(),
        }))
    }

    async fn deliveries_for_event(&self, event_id: &str) -> StoreResult<Vec<DeliveryRow>> {
        let sql = Sql::new(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries WHERE event_id = ?1 ORDER BY id"
        ))
        .bind(event_id);
        let rows = self.db().all(sql).await?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn get_delivery(&self, id: &str) -> StoreResult<Option<DeliveryRow>> {
        let sql = Sql::new(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries WHERE id = ?1"
        ))
        .bind(id);
        let row = self.db().optional(sql).await?;
        row.map(|row| delivery_from_row(&row)).transpose()
    }

    async fn list_attempts(&self, delivery_id: &str) -> StoreResult<Vec<AttemptRow>> {
        let sql = Sql::new(
            "SELECT id, delivery_id, attempt, started_at, duration_ms, request_timestamp, status,
                    response_excerpt, error, error_class, response_headers
               FROM attempts WHERE delivery_id = ?1 ORDER BY started_at, id",
        )
        .bind(delivery_id);
        let rows = self.db().all(sql).await?;
        Ok(rows.iter().map(super::decode::attempt_from_row).collect())
    }

    async fn list_deliveries(&self, query: DeliveryQuery) -> StoreResult<Page<DeliveryRow>> {
        search::<B>(self.db(), DeliverySearch::from_query(query))
            .await
            .map(deliveries_of)
    }

    async fn retry_delivery(&self, id: &str, now: UnixMs) -> StoreResult<RetryResult> {
        let mut tx = B::begin_write(&self.pool).await?;
        let sql = Sql::new(concat!(
            "UPDATE deliveries SET state = 'pending', attempts_before = attempts_before + attempts, attempts = 0,
                    next_attempt_at = ?2, updated_at = ?2
              WHERE id = ?1 AND state <> 'in_flight'
             RETURNING ",
            delivery_columns!()
        ))
        .bind(id)
        .bind(now);
        let result = match tx.optional(sql).await? {
            Some(row) => {
                announce_work::<B>(&mut tx).await?;
                RetryResult::Requeued(delivery_from_row(&row)?)
            }
            None => {
                let exists = Sql::new("SELECT id FROM deliveries WHERE id = ?1").bind(id);
                match tx.optional(exists).await? {
                    Some(_) => RetryResult::InFlight,
                    None => RetryResult::NotFound,
                }
            }
        };
        B::commit(tx).await?;
        Ok(result)
    }

    async fn list_dead_letters(
        &self,
        filter: DeadLetterFilter,
        after: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Page<DeadLetterRow>> {
        let sql = Sql::new(concat!(
            "SELECT ",
            delivery_columns!("d."),
            ", e.event_type AS event_type
               FROM deliveries d JOIN events e ON e.id = d.event_id
              WHERE d.state = 'dead'
                AND (?1 IS NULL OR d.subscription_id = ?1)
                AND (?2 IS NULL OR e.event_type = ?2)
                AND (?3 IS NULL OR d.updated_at >= ?3)
                AND (?4 IS NULL OR d.updated_at < ?4)
                AND (?5 IS NULL OR (d.updated_at, d.id) < (?5, ?6))
              ORDER BY d.updated_at DESC, d.id DESC LIMIT ?7"
        ))
        .bind(filter.subscription_id)
        .bind(filter.event_type)
        .bind(filter.since)
        .bind(filter.until)
        .bind(after.as_ref().map(|c| c.created_at))
        .bind(after.map(|c| c.id))
        .bind(i64::from(limit) + 1);
        let rows = self.db().all(sql).await?;
        let items = rows
            .iter()
            .map(dead_letter_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        // Dead letters page by when they died, so the cursor carries `updated_at`.
        Ok(into_page(items, limit, |d| Cursor {
            created_at: d.delivery.updated_at,
            id: d.delivery.id.clone(),
        }))
    }

    async fn redrive_dead_letters(
        &self,
        filter: DeadLetterFilter,
        now: UnixMs,
    ) -> StoreResult<u64> {
        let sql = Sql::new(concat!(
            "UPDATE deliveries SET state = 'pending', attempts_before = attempts_before + attempts, attempts = 0,
                    next_attempt_at = ?5, updated_at = ?5",
            redrivable_where!()
        ))
        .bind(filter.subscription_id)
        .bind(filter.event_type)
        .bind(filter.since)
        .bind(filter.until)
        .bind(now);
        requeue::<B>(&self.pool, sql).await
    }

    async fn recover(
        &self,
        subscription_id: &str,
        since: UnixMs,
        until: Option<UnixMs>,
        now: UnixMs,
    ) -> StoreResult<u64> {
        let sql = Sql::new(
            "UPDATE deliveries SET state = 'pending', attempts_before = attempts_before + attempts, attempts = 0,
                    next_attempt_at = ?4, updated_at = ?4
              WHERE subscription_id = ?1 AND state IN ('failed', 'dead')
                AND updated_at >= ?2 AND (?3 IS NULL OR updated_at < ?3)",
        )
        .bind(subscription_id)
        .bind(since)
        .bind(until)
        .bind(now);
        requeue::<B>(&self.pool, sql).await
    }

    async fn delivery_stats(&self, subscription_id: Option<&str>) -> StoreResult<DeliveryStats> {
        // Every row once (on the narrowest index, no sort), then each state but `delivered` through
        // the partial index holding it: no index holds every row by state (each claim and outcome
        // would rewrite it), and SQLite groups by sorting, so a `GROUP BY state` would sort the
        // table. `delivered` is the rest; one statement, so every count sees the same snapshot.
        let counts = Sql::new(concat!(
            "SELECT 'all' AS state, COUNT(*) AS n FROM deliveries
              WHERE (?1 IS NULL OR subscription_id = ?1) UNION ALL ",
            backlog_counts!("(?1 IS NULL OR subscription_id = ?1)")
        ))
        .bind(subscription_id);
        let mut stats = DeliveryStats::default();
        let mut all = 0;
        for row in &self.db().all(counts).await? {
            match row.text("state").as_str() {
                "all" => all = row.int("n"),
                state => add_state_count(&mut stats, state, row.int("n")),
            }
        }
        let delivered = all - stats.total;
        add_state_count(&mut stats, "delivered", delivered);
        // AVG of an integer column is NUMERIC on PostgreSQL; the contract has a float.
        let latency = Sql::new(
            "SELECT CAST(AVG(a.duration_ms) AS DOUBLE PRECISION) AS latency FROM attempts a
              WHERE a.status BETWEEN 200 AND 299
                AND (?1 IS NULL OR a.delivery_id IN
                     (SELECT id FROM deliveries WHERE subscription_id = ?1))",
        )
        .bind(subscription_id);
        stats.average_latency_ms = self.db().one(latency).await?.opt_float("latency");
        Ok(stats)
    }
}
