//! The embedded SQLite backend: WAL mode, `synchronous=FULL` by default, forward-only migrations, and
//! one writer thread ([`super::sqlite_writer`]) that group-commits every hot-path write: concurrent
//! publishes, claims and outcomes share one transaction and one fsync.

/// The dead letters a redrive filter selects (`?1` subscription, `?2` event type, `?3`/`?4` time
/// range): one text for the redrive and for its count preview, so the preview counts what runs.
macro_rules! redrivable_where {
    () => {
        " WHERE state = 'dead'
            AND (?1 IS NULL OR subscription_id = ?1)
            AND (?2 IS NULL OR event_id IN (SELECT id FROM events WHERE event_type = ?2))
            AND (?3 IS NULL OR updated_at >= ?3)
            AND (?4 IS NULL OR updated_at < ?4)
            AND subscription_id IN (SELECT id FROM subscriptions WHERE active = 1)"
    };
}

mod ui;

use super::common::queued_subscriptions;
use super::common::{
    PublishJob, RowExt, SUBSCRIPTION_COLUMNS, add_state_count, api_key_from_row, apply_patch,
    attempt_from_row, backlog_counts, check_sealing_key, dead_letter_from_row, decode_err,
    delivery_columns, delivery_from_row, encode_json, event_from_row, event_type_from_row,
    headers_text, into_page, json_text, receipt_from_row, reseal_row, subscription_columns,
    subscription_from_row,
};
use super::sealed;
use super::sqlite_writer::{RecordJob, WriteJob, WriterOptions, spawn_writer, submit};
use super::*;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite's `synchronous` setting: what a committed transaction survives (see RELIABILITY in README).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync at every commit: a 2xx survives power loss. The default.
    #[default]
    Full,
    /// fsync at checkpoints only: a 2xx survives a process crash, not a power loss.
    Normal,
    /// FULL plus a directory sync after journal changes.
    Extra,
}

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// The database file; created if missing.
    pub path: PathBuf,
    pub synchronous: Synchronous,
    /// Reader connections (writes also use them for everything but publishing).
    pub max_connections: u32,
    /// How long a statement waits for a lock held by another connection before giving up (503).
    pub busy_timeout: Duration,
}

pub struct SqliteStore {
    /// Reads, and the API's rare writes (subscriptions, keys, operator actions).
    pool: SqlitePool,
    /// Feeds the writer thread: publishes, claims, outcomes, lease releases and rescues. Groups with
    /// no publish commit with `synchronous=NORMAL`: queue bookkeeping skips its own fsync. It is
    /// crash-safe (WAL), and the next publish commit's fsync makes it durable too. What a power loss
    /// could undo is a claim or an outcome, never an acknowledged event: the delivery is then simply
    /// sent again (at-least-once).
    writer: mpsc::Sender<WriteJob>,
    /// Counters kept by the writer thread (publish groups and requests).
    stats: Arc<PublisherStats>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database, applies pending migrations and starts the publisher.
    pub async fn open(options: SqliteOptions) -> StoreResult<Self> {
        let connect = connect_options(&options);
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(connect.clone())
            .await
            .map_err(map_err)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))?;
        let (writer, jobs) = mpsc::channel(4_096);
        let stats = Arc::new(PublisherStats::default());
        spawn_writer(
            WriterOptions {
                path: options.path.clone(),
                busy_timeout: options.busy_timeout,
                durable: options.synchronous.pragma(),
            },
            jobs,
            stats.clone(),
        )?;
        Ok(Self {
            pool,
            writer,
            stats,
        })
    }

    /// (group commits, publish requests) so far.
    pub fn publisher_stats(&self) -> (u64, u64) {
        self.stats.snapshot()
    }

    /// Applies migrations without starting anything (for `hookd migrate`).
    pub async fn migrate(options: SqliteOptions) -> StoreResult<Vec<i64>> {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(connect_options(&options))
            .await
            .map_err(map_err)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))?;
        let versions = sqlx::query("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .map_err(map_err)?
            .iter()
            .map(|row| row.get::<i64, _>(0))
            .collect();
        pool.close().await;
        Ok(versions)
    }
}

fn connect_options(options: &SqliteOptions) -> SqliteConnectOptions {
    let synchronous = match options.synchronous {
        Synchronous::Full => SqliteSynchronous::Full,
        Synchronous::Normal => SqliteSynchronous::Normal,
        Synchronous::Extra => SqliteSynchronous::Extra,
    };
    SqliteConnectOptions::new()
        .filename(&options.path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous)
        .busy_timeout(options.busy_timeout)
        .foreign_keys(true)
}

/// Maps driver errors onto the store's three kinds. SQLite primary result codes: 5 BUSY, 6 LOCKED,
/// 8 READONLY, 10 IOERR, 13 FULL, 14 CANTOPEN mean "cannot write now", i.e. unavailable.
pub(super) fn map_err(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_owned())
        }
        sqlx::Error::Database(db) => {
            let primary = db
                .code()
                .and_then(|code| code.parse::<i64>().ok())
                .map(|code| code & 0xff);
            match primary {
                Some(5 | 6 | 8 | 10 | 13 | 14) => StoreError::Unavailable(db.message().to_owned()),
                _ => StoreError::Internal(db.message().to_owned()),
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
        _ => StoreError::Internal(error.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// Shared queries and row access
// ---------------------------------------------------------------------------------------------

const SELECT_SUBSCRIPTION_BY_ID: &str = concat!(
    "SELECT ",
    subscription_columns!(),
    " FROM subscriptions WHERE id = ?"
);
const SELECT_EVENT_BY_ID: &str = "SELECT id, event_type, version, data, retryable, \
     idempotency_key, created_at FROM events WHERE id = ?";

impl RowExt for SqliteRow {
    fn text(&self, column: &str) -> String {
        self.get(column)
    }
    fn opt_text(&self, column: &str) -> Option<String> {
        self.get(column)
    }
    fn int(&self, column: &str) -> i64 {
        self.get(column)
    }
    fn opt_int(&self, column: &str) -> Option<i64> {
        self.get(column)
    }
    fn flag(&self, column: &str) -> bool {
        self.get::<i64, _>(column) == 1
    }
}

// ---------------------------------------------------------------------------------------------
// The Store contract
// ---------------------------------------------------------------------------------------------

#[async_trait]
impl Store for SqliteStore {
    fn ui(&self) -> &dyn super::ui::UiStore {
        self
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn insert_api_key(&self, key: NewApiKey) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, name, prefix, hash, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(&key.hash)
        .bind(key.created_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRow>> {
        let rows = sqlx::query(
            "SELECT id, name, prefix, created_at, revoked_at FROM api_keys ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(rows.iter().map(api_key_from_row).collect())
    }

    async fn revoke_api_key(&self, id: &str, now: UnixMs) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(now)
                .bind(id)
                .execute(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn api_key_by_hash(&self, hash: &[u8]) -> StoreResult<Option<ApiKeyRow>> {
        let row = sqlx::query(
            "SELECT id, name, prefix, created_at, revoked_at FROM api_keys
             WHERE hash = ? AND revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(row.as_ref().map(api_key_from_row))
    }

    async fn insert_subscription(&self, row: &SubscriptionRow) -> StoreResult<()> {
        let done = sqlx::query(
            "INSERT INTO subscriptions (id, url, events, description, metadata, secret, active,
                                        disabled_reason, failure_count, created_at, updated_at,
                                        retry_policy, timeout_ms, headers, owner)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15
              WHERE ?16 IS NULL OR NOT EXISTS (
                    SELECT 1 FROM sealing_key WHERE key_id IS NOT NULL AND key_id <> ?16)",
        )
        .bind(&row.id)
        .bind(&row.url)
        .bind(serde_json::to_string(&row.events).map_err(|e| decode_err("events", e))?)
        .bind(&row.description)
        .bind(row.metadata.as_ref().map(json_text))
        .bind(&row.secret)
        .bind(row.active)
        .bind(&row.disabled_reason)
        .bind(row.failure_count)
        .bind(row.created_at)
        .bind(row.updated_at)
        .bind(row.retry_policy.as_ref().map(encode_json).transpose()?)
        .bind(row.timeout_ms)
        .bind(headers_text(&row.headers)?)
        .bind(&row.owner)
        .bind(sealed::key_id_of(&row.secret))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        if done.rows_affected() == 0 {
            // Only the sealing-key condition can make the insert write nothing.
            let sealing = self.sealing_key_id().await?;
            check_sealing_key(sealing.as_deref(), sealed::key_id_of(&row.secret))?;
            return Err(StoreError::Internal(
                "the subscription was not written".into(),
            ));
        }
        Ok(())
    }

    async fn get_subscription(&self, id: &str) -> StoreResult<Option<SubscriptionRow>> {
        sqlx::query(SELECT_SUBSCRIPTION_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(|row| subscription_from_row(&row))
            .transpose()
    }

    async fn list_subscriptions(
        &self,
        query: SubscriptionQuery,
    ) -> StoreResult<Page<SubscriptionRow>> {
        let sql = format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions
             WHERE (?1 IS NULL OR active = ?1)
               AND (?2 IS NULL OR (created_at, id) < (?2, ?3))
               AND (?5 IS NULL OR owner = ?5)
             ORDER BY created_at DESC, id DESC LIMIT ?4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(query.active)
            .bind(query.after.as_ref().map(|c| c.created_at))
            .bind(query.after.as_ref().map(|c| c.id.clone()))
            .bind(i64::from(query.limit) + 1)
            .bind(&query.owner)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let items = rows
            .iter()
            .map(subscription_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(into_page(items, query.limit, |s| Cursor {
            created_at: s.created_at,
            id: s.id.clone(),
        }))
    }

    async fn update_subscription(
        &self,
        id: &str,
        patch: SubscriptionPatch,
        now: UnixMs,
    ) -> StoreResult<Option<SubscriptionRow>> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        let Some(row) = sqlx::query(SELECT_SUBSCRIPTION_BY_ID)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(map_err)?
        else {
            return Ok(None);
        };
        let mut sub = subscription_from_row(&row)?;
        let was_active = sub.active;
        apply_patch(&mut sub, patch, now);
        sqlx::query(
            "UPDATE subscriptions SET url = ?, events = ?, description = ?, metadata = ?,
                    active = ?, disabled_reason = ?, failure_count = ?, updated_at = ?,
                    retry_policy = ?, timeout_ms = ?, headers = ?, owner = ?
             WHERE id = ?",
        )
        .bind(&sub.url)
        .bind(serde_json::to_string(&sub.events).map_err(|e| decode_err("events", e))?)
        .bind(&sub.description)
        .bind(sub.metadata.as_ref().map(json_text))
        .bind(sub.active)
        .bind(&sub.disabled_reason)
        .bind(sub.failure_count)
        .bind(sub.updated_at)
        .bind(sub.retry_policy.as_ref().map(encode_json).transpose()?)
        .bind(sub.timeout_ms)
        .bind(headers_text(&sub.headers)?)
        .bind(&sub.owner)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if was_active && !sub.active {
            hold_queued(&mut tx, id, now).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(Some(sub))
    }

    async fn delete_subscription(&self, id: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM subscriptions WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn publish(&self, events: Vec<NewEvent>) -> StoreResult<Vec<Published>> {
        submit(&self.writer, |reply| {
            WriteJob::Publish(PublishJob { events, reply })
        })
        .await
    }

    async fn get_event(&self, id: &str) -> StoreResult<Option<EventRow>> {
        sqlx::query(SELECT_EVENT_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(|row| event_from_row(&row))
            .transpose()
    }

    async fn list_events(&self, query: EventQuery) -> StoreResult<Page<EventRow>> {
        let rows = sqlx::query(
            "SELECT id, event_type, version, data, retryable, idempotency_key, created_at
             FROM events
             WHERE (?1 IS NULL OR event_type = ?1)
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
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
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
        let rows = sqlx::query(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries WHERE event_id = ? ORDER BY id"
        ))
        .bind(event_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(delivery_from_row).collect()
    }

    async fn list_event_types(&self, include_archived: bool) -> StoreResult<Vec<EventTypeRow>> {
        let rows = sqlx::query(
            "SELECT name, description, created_at, archived_at FROM event_types
             WHERE ?1 OR archived_at IS NULL ORDER BY name",
        )
        .bind(include_archived)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(rows.iter().map(event_type_from_row).collect())
    }

    async fn add_event_type(&self, row: EventTypeRow) -> StoreResult<EventTypeRow> {
        let stored = sqlx::query(
            "INSERT INTO event_types (name, description, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (name) DO UPDATE
                SET description = excluded.description, archived_at = NULL,
                    created_at = excluded.created_at
                WHERE event_types.archived_at IS NOT NULL
             RETURNING name, description, created_at, archived_at",
        )
        .bind(&row.name)
        .bind(&row.description)
        .bind(row.created_at)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        match stored {
            Some(stored) => Ok(event_type_from_row(&stored)),
            None => Err(StoreError::Conflict(format!(
                "event type {:?} already exists",
                row.name
            ))),
        }
    }

    async fn archive_event_type(&self, name: &str, now: UnixMs) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE event_types SET archived_at = ? WHERE name = ? AND archived_at IS NULL",
        )
        .bind(now)
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn event_type_exists(&self, name: &str) -> StoreResult<bool> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM event_types WHERE name = ? AND archived_at IS NULL")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(found.is_some())
    }

    async fn claim_due(&self, request: ClaimRequest) -> StoreResult<Vec<ClaimedDelivery>> {
        submit(&self.writer, |reply| WriteJob::Claim(request, reply)).await
    }

    async fn record_outcomes(
        &self,
        owner: &str,
        outcomes: Vec<DeliveryOutcome>,
        disable_after_failures: i64,
        now: UnixMs,
    ) -> StoreResult<RecordReport> {
        let job = RecordJob {
            owner: owner.to_owned(),
            outcomes,
            disable_after_failures,
            now,
        };
        submit(&self.writer, |reply| WriteJob::Record(job, reply)).await
    }

    async fn release_leases(&self, owner: &str, delivery_ids: &[String]) -> StoreResult<u64> {
        let (owner, ids) = (owner.to_owned(), delivery_ids.to_vec());
        submit(&self.writer, |reply| WriteJob::Release {
            owner,
            ids,
            reply,
        })
        .await
    }

    async fn rescue_expired_leases(&self, now: UnixMs) -> StoreResult<u64> {
        submit(&self.writer, |reply| WriteJob::Rescue { now, reply }).await
    }

    /// The first due row of each subscription with queued work, found as the claim finds them (a
    /// skip scan over `deliveries_queued_by_subscription`; `INDEXED BY`: see the claim in
    /// `sqlite_writer`): O(subscriptions with queued work).
    async fn next_due_at(&self) -> StoreResult<Option<UnixMs>> {
        sqlx::query_scalar(concat!(
            "WITH RECURSIVE ",
            queued_subscriptions!("INDEXED BY deliveries_queued_by_subscription"),
            " SELECT MIN((SELECT d.next_attempt_at
                           FROM deliveries d INDEXED BY deliveries_queued_by_subscription
                          WHERE d.subscription_id = queued.subscription_id
                            AND d.state IN ('pending', 'failed')
                            AND d.next_attempt_at IS NOT NULL
                          ORDER BY d.next_attempt_at LIMIT 1))
               FROM queued WHERE queued.subscription_id IS NOT NULL",
        ))
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn get_delivery(&self, id: &str) -> StoreResult<Option<DeliveryRow>> {
        sqlx::query(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .map(|row| delivery_from_row(&row))
        .transpose()
    }

    async fn list_attempts(&self, delivery_id: &str) -> StoreResult<Vec<AttemptRow>> {
        let rows = sqlx::query(
            "SELECT id, delivery_id, attempt, started_at, duration_ms, request_timestamp, status,
                    response_excerpt, error, error_class, response_headers
               FROM attempts WHERE delivery_id = ? ORDER BY started_at, id",
        )
        .bind(delivery_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(rows.iter().map(attempt_from_row).collect())
    }

    async fn list_deliveries(&self, query: DeliveryQuery) -> StoreResult<Page<DeliveryRow>> {
        use super::ui::{DeliverySearch, UiStore, deliveries_of};
        self.search_deliveries(DeliverySearch::from_query(query))
            .await
            .map(deliveries_of)
    }

    async fn retry_delivery(&self, id: &str, now: UnixMs) -> StoreResult<RetryResult> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        let requeued = sqlx::query(concat!(
            "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?2,
                    updated_at = ?2
              WHERE id = ?1 AND state != 'in_flight'
             RETURNING ",
            delivery_columns!()
        ))
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let result = match requeued {
            Some(row) => RetryResult::Requeued(delivery_from_row(&row)?),
            None => {
                let exists: Option<i64> =
                    sqlx::query_scalar("SELECT 1 FROM deliveries WHERE id = ?")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err(map_err)?;
                match exists {
                    Some(_) => RetryResult::InFlight,
                    None => RetryResult::NotFound,
                }
            }
        };
        tx.commit().await.map_err(map_err)?;
        Ok(result)
    }

    async fn list_dead_letters(
        &self,
        filter: DeadLetterFilter,
        after: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Page<DeadLetterRow>> {
        let rows = sqlx::query(concat!(
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
        .bind(&filter.subscription_id)
        .bind(&filter.event_type)
        .bind(filter.since)
        .bind(filter.until)
        .bind(after.as_ref().map(|c| c.created_at))
        .bind(after.as_ref().map(|c| c.id.clone()))
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
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
        let done = sqlx::query(concat!(
            "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?5,
                    updated_at = ?5",
            redrivable_where!()
        ))
        .bind(&filter.subscription_id)
        .bind(&filter.event_type)
        .bind(filter.since)
        .bind(filter.until)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn recover(
        &self,
        subscription_id: &str,
        since: UnixMs,
        until: Option<UnixMs>,
        now: UnixMs,
    ) -> StoreResult<u64> {
        let done = sqlx::query(
            "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?4,
                    updated_at = ?4
              WHERE subscription_id = ?1 AND state IN ('failed', 'dead')
                AND updated_at >= ?2 AND (?3 IS NULL OR updated_at < ?3)",
        )
        .bind(subscription_id)
        .bind(since)
        .bind(until)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn set_subscription_active(
        &self,
        id: &str,
        active: bool,
        reason: Option<String>,
        replay: bool,
        now: UnixMs,
    ) -> StoreResult<Option<(SubscriptionRow, u64)>> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        let updated = sqlx::query(
            "UPDATE subscriptions
                SET active = ?2, updated_at = ?3,
                    disabled_reason = CASE WHEN ?2 THEN NULL ELSE COALESCE(?4, disabled_reason) END,
                    failure_count = CASE WHEN ?2 THEN 0 ELSE failure_count END
              WHERE id = ?1",
        )
        .bind(id)
        .bind(active)
        .bind(now)
        .bind(reason)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        if updated.rows_affected() == 0 {
            return Ok(None);
        }
        let mut replayed = 0;
        if active && replay {
            replayed = sqlx::query(
                "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?2,
                        updated_at = ?2
                  WHERE subscription_id = ?1 AND state = 'held'",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        }
        if !active {
            hold_queued(&mut tx, id, now).await?;
        }
        let row = sqlx::query(SELECT_SUBSCRIPTION_BY_ID)
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        Ok(Some((subscription_from_row(&row)?, replayed)))
    }

    async fn rotate_secret(
        &self,
        id: &str,
        new_secret: &str,
        previous_expires_at: Option<UnixMs>,
        now: UnixMs,
    ) -> StoreResult<Option<SubscriptionRow>> {
        let key_id = sealed::key_id_of(new_secret);
        let row = sqlx::query(concat!(
            "UPDATE subscriptions
                SET previous_secret = CASE WHEN ?3 IS NULL THEN NULL ELSE secret END,
                    previous_secret_expires_at = ?3,
                    secret = ?2, updated_at = ?4
              WHERE id = ?1
                AND (?5 IS NULL OR NOT EXISTS (
                     SELECT 1 FROM sealing_key WHERE key_id IS NOT NULL AND key_id <> ?5))
             RETURNING ",
            subscription_columns!()
        ))
        .bind(id)
        .bind(new_secret)
        .bind(previous_expires_at)
        .bind(now)
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        let Some(row) = row else {
            // No such subscription, or refused by the sealing-key condition.
            let sealing = self.sealing_key_id().await?;
            check_sealing_key(sealing.as_deref(), key_id)?;
            return Ok(None);
        };
        subscription_from_row(&row).map(Some)
    }

    async fn sealing_key_id(&self) -> StoreResult<Option<String>> {
        sqlx::query_scalar("SELECT key_id FROM sealing_key WHERE id = 1")
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
            .map(Option::flatten)
    }

    async fn reseal_secrets(
        &self,
        key_id: &str,
        reseal: &ResealFn<'_>,
        now: UnixMs,
    ) -> StoreResult<u64> {
        // BEGIN IMMEDIATE takes the write lock first: no secret can be written meanwhile.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        sqlx::query("UPDATE sealing_key SET key_id = ?1, rotated_at = ?2 WHERE id = 1")
            .bind(key_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let rows = sqlx::query("SELECT id, secret, previous_secret FROM subscriptions")
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        let mut resealed = 0;
        for row in rows {
            let (id, secret, previous) = reseal_row(&row, reseal)?;
            resealed += 1 + u64::from(previous.is_some());
            sqlx::query("UPDATE subscriptions SET secret = ?2, previous_secret = ?3 WHERE id = ?1")
                .bind(id)
                .bind(secret)
                .bind(previous)
                .execute(&mut *tx)
                .await
                .map_err(map_err)?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(resealed)
    }

    async fn delivery_stats(&self, subscription_id: Option<&str>) -> StoreResult<DeliveryStats> {
        // Every row once (on the narrowest index, no sort), then each state but `delivered` through
        // the partial index holding it: no index holds every row by state (migration 0009), and
        // SQLite groups by sorting, so a `GROUP BY state` would sort the table. `delivered` is the
        // rest; one statement, so every count sees the same snapshot.
        let counts = sqlx::query(concat!(
            "SELECT 'all' AS state, COUNT(*) AS n FROM deliveries
              WHERE (?1 IS NULL OR subscription_id = ?1) UNION ALL ",
            backlog_counts!("(?1 IS NULL OR subscription_id = ?1)")
        ))
        .bind(subscription_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let mut stats = DeliveryStats::default();
        let mut all = 0;
        for row in &counts {
            match row.text("state").as_str() {
                "all" => all = row.int("n"),
                state => add_state_count(&mut stats, state, row.int("n")),
            }
        }
        let delivered = all - stats.total;
        add_state_count(&mut stats, "delivered", delivered);
        stats.average_latency_ms = sqlx::query_scalar(
            "SELECT AVG(a.duration_ms) FROM attempts a
              WHERE a.status BETWEEN 200 AND 299
                AND (?1 IS NULL OR a.delivery_id IN
                     (SELECT id FROM deliveries WHERE subscription_id = ?1))",
        )
        .bind(subscription_id)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(stats)
    }

    async fn record_receipt(&self, receipt: ReceiptRow) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO received (id, subscription_id, webhook_id, event_type, received_at)
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (subscription_id, webhook_id) DO NOTHING",
        )
        .bind(&receipt.id)
        .bind(&receipt.subscription_id)
        .bind(&receipt.webhook_id)
        .bind(&receipt.event_type)
        .bind(receipt.received_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_receipts(
        &self,
        subscription_id: &str,
        after: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Page<ReceiptRow>> {
        let rows = sqlx::query(
            "SELECT id, subscription_id, webhook_id, event_type, received_at FROM received
              WHERE subscription_id = ?1 AND (?2 IS NULL OR (received_at, id) < (?2, ?3))
              ORDER BY received_at DESC, id DESC LIMIT ?4",
        )
        .bind(subscription_id)
        .bind(after.as_ref().map(|c| c.created_at))
        .bind(after.as_ref().map(|c| c.id.clone()))
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let items = rows.iter().map(receipt_from_row).collect();
        Ok(into_page(items, limit, |r: &ReceiptRow| Cursor {
            created_at: r.received_at,
            id: r.id.clone(),
        }))
    }
}

/// Moves a subscription's queued (pending or failed) deliveries to `held` (`?1` subscription, `?2`
/// now). Shared with the writer, which runs it when an outcome disables a subscription.
pub(super) const HOLD_QUEUED: &str =
    "UPDATE deliveries SET state = 'held', next_attempt_at = NULL, updated_at = ?2
      WHERE subscription_id = ?1 AND state IN ('pending', 'failed')";

/// Disables an active subscription (`?1` id, `?2` reason, `?3` now); changes no row if it was not
/// active. The writer runs it when outcomes disable a subscription, then [`HOLD_QUEUED`].
pub(super) const DISABLE_SUBSCRIPTION: &str =
    "UPDATE subscriptions SET active = 0, disabled_reason = ?2, updated_at = ?3
      WHERE id = ?1 AND active = 1";

async fn hold_queued(
    conn: &mut SqliteConnection,
    subscription_id: &str,
    now: UnixMs,
) -> StoreResult<u64> {
    let done = sqlx::query(HOLD_QUEUED)
        .bind(subscription_id)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(done.rows_affected())
}

impl Synchronous {
    /// The level as `PRAGMA synchronous` spells it.
    pub fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
            Self::Extra => "EXTRA",
        }
    }
}

impl FromStr for Synchronous {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        match raw.to_ascii_lowercase().as_str() {
            "full" => Ok(Self::Full),
            "normal" => Ok(Self::Normal),
            "extra" => Ok(Self::Extra),
            other => Err(format!(
                "unknown synchronous level {other:?} (full, normal, extra)"
            )),
        }
    }
}
