//! The embedded SQLite backend: WAL mode, `synchronous=FULL` by default, forward-only migrations, and a
//! single publisher task that group-commits concurrent publishes (one transaction, one fsync).

use super::*;
use crate::ids::new_id;
use hookd_core::EventFilter;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Connection, Row, SqliteConnection};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Most events one group commit takes before it commits; later publishers wait for the next group.
const MAX_GROUP_EVENTS: usize = 2_000;

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
    pool: SqlitePool,
    /// Feeds the group-commit publisher task.
    publisher: mpsc::Sender<PublishJob>,
    /// Counters kept by the publisher task.
    stats: Arc<PublisherStats>,
}

/// How the group-commit publisher has batched work so far.
#[derive(Debug, Default)]
pub struct PublisherStats {
    /// Transactions committed (each is one fsync at `synchronous=full`).
    pub groups: AtomicU64,
    /// Publish requests answered from those transactions.
    pub requests: AtomicU64,
}

struct PublishJob {
    events: Vec<NewEvent>,
    reply: oneshot::Sender<StoreResult<Vec<Published>>>,
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
        let (publisher, jobs) = mpsc::channel(4_096);
        let stats = Arc::new(PublisherStats::default());
        tokio::spawn(run_publisher(connect, jobs, stats.clone()));
        Ok(Self {
            pool,
            publisher,
            stats,
        })
    }

    /// (group commits, publish requests) so far.
    pub fn publisher_stats(&self) -> (u64, u64) {
        (
            self.stats.groups.load(Ordering::Relaxed),
            self.stats.requests.load(Ordering::Relaxed),
        )
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
fn map_err(error: sqlx::Error) -> StoreError {
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

fn decode_err(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("corrupt {what}: {error}"))
}

// ---------------------------------------------------------------------------------------------
// Group-commit publisher
// ---------------------------------------------------------------------------------------------

/// Owns one write connection. Takes every job waiting in the channel (up to [`MAX_GROUP_EVENTS`]),
/// runs them in one `BEGIN IMMEDIATE` transaction (each job inside its own savepoint, so one bad job
/// cannot sink the others), commits once, then answers every job. If the connection fails it is
/// reopened for the next group, so hookd recovers by itself when the disk or file comes back.
async fn run_publisher(
    connect: SqliteConnectOptions,
    mut jobs: mpsc::Receiver<PublishJob>,
    stats: Arc<PublisherStats>,
) {
    let mut connection: Option<SqliteConnection> = None;
    while let Some(first) = jobs.recv().await {
        let mut group = vec![first];
        let mut event_count = group[0].events.len();
        while event_count < MAX_GROUP_EVENTS {
            match jobs.try_recv() {
                Ok(job) => {
                    event_count += job.events.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        let conn = match connection.as_mut() {
            Some(conn) => conn,
            None => match SqliteConnection::connect_with(&connect).await {
                Ok(conn) => connection.insert(conn),
                Err(error) => {
                    let error = map_err(error);
                    tracing::warn!(%error, "publisher cannot open the database");
                    fail_group(group, &error);
                    continue;
                }
            },
        };
        match commit_group(conn, &group).await {
            Ok(results) => {
                stats.groups.fetch_add(1, Ordering::Relaxed);
                stats
                    .requests
                    .fetch_add(group.len() as u64, Ordering::Relaxed);
                for (job, result) in group.into_iter().zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(error) => {
                tracing::warn!(%error, events = event_count, "group commit failed");
                connection = None;
                fail_group(group, &error);
            }
        }
    }
}

fn fail_group(group: Vec<PublishJob>, error: &StoreError) {
    for job in group {
        let _ = job.reply.send(Err(clone_error(error)));
    }
}

fn clone_error(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
        StoreError::Internal(m) => StoreError::Internal(m.clone()),
    }
}

/// One subscription as publishing sees it.
struct FanoutTarget {
    id: String,
    filters: Vec<EventFilter>,
    active: bool,
}

async fn commit_group(
    conn: &mut SqliteConnection,
    group: &[PublishJob],
) -> StoreResult<Vec<StoreResult<Vec<Published>>>> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
    let targets = load_fanout_targets(&mut tx).await?;
    let mut results = Vec::with_capacity(group.len());
    for job in group {
        let mut savepoint = tx.begin().await.map_err(map_err)?;
        match publish_job(&mut savepoint, &targets, &job.events).await {
            Ok(published) => {
                savepoint.commit().await.map_err(map_err)?;
                results.push(Ok(published));
            }
            Err(error) => {
                savepoint.rollback().await.map_err(map_err)?;
                results.push(Err(error));
            }
        }
    }
    tx.commit().await.map_err(map_err)?;
    Ok(results)
}

async fn load_fanout_targets(conn: &mut SqliteConnection) -> StoreResult<Vec<FanoutTarget>> {
    let rows = sqlx::query("SELECT id, events, active FROM subscriptions")
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    rows.iter()
        .map(|row| {
            let raw: Vec<String> = serde_json::from_str(&row.get::<String, _>("events"))
                .map_err(|e| decode_err("subscription filters", e))?;
            let filters = raw
                .iter()
                .map(|f| EventFilter::parse(f).map_err(|e| decode_err("subscription filter", e)))
                .collect::<StoreResult<_>>()?;
            Ok(FanoutTarget {
                id: row.get("id"),
                filters,
                active: row.get::<i64, _>("active") == 1,
            })
        })
        .collect()
}

async fn publish_job(
    conn: &mut SqliteConnection,
    targets: &[FanoutTarget],
    events: &[NewEvent],
) -> StoreResult<Vec<Published>> {
    let mut published = Vec::with_capacity(events.len());
    for event in events {
        if let Some(existing) = find_existing_event(conn, event).await? {
            let deliveries = count_sendable_deliveries(conn, &existing.id).await?;
            published.push(Published {
                event: existing,
                deliveries,
                created: false,
            });
            continue;
        }
        insert_event(conn, event).await?;
        let mut deliveries = 0;
        for target in targets {
            if !hookd_core::event_type::any_matches(&target.filters, &event.event_type) {
                continue;
            }
            insert_delivery(conn, event, target).await?;
            deliveries += u64::from(target.active);
        }
        published.push(Published {
            event: event_row_from_new(event),
            deliveries,
            created: true,
        });
    }
    Ok(published)
}

async fn find_existing_event(
    conn: &mut SqliteConnection,
    event: &NewEvent,
) -> StoreResult<Option<EventRow>> {
    let by_id = sqlx::query(SELECT_EVENT_BY_ID)
        .bind(&event.id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    if let Some(row) = by_id {
        return event_from_row(&row).map(Some);
    }
    let Some(key) = &event.idempotency_key else {
        return Ok(None);
    };
    sqlx::query(
        "SELECT id, event_type, version, data, retryable, idempotency_key, created_at
         FROM events WHERE idempotency_key = ?",
    )
    .bind(key)
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?
    .map(|row| event_from_row(&row))
    .transpose()
}

async fn count_sendable_deliveries(
    conn: &mut SqliteConnection,
    event_id: &str,
) -> StoreResult<u64> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM deliveries WHERE event_id = ? AND state != 'held'",
    )
    .bind(event_id)
    .fetch_one(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(count as u64)
}

async fn insert_event(conn: &mut SqliteConnection, event: &NewEvent) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO events (id, event_type, version, data, retryable, idempotency_key, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&event.id)
    .bind(&event.event_type)
    .bind(&event.version)
    .bind(&event.data)
    .bind(event.retryable)
    .bind(&event.idempotency_key)
    .bind(event.created_at)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

async fn insert_delivery(
    conn: &mut SqliteConnection,
    event: &NewEvent,
    target: &FanoutTarget,
) -> StoreResult<()> {
    let (state, next_attempt_at) = match target.active {
        true => (DeliveryState::Pending, Some(event.created_at)),
        false => (DeliveryState::Held, None),
    };
    sqlx::query(
        "INSERT INTO deliveries (id, event_id, subscription_id, state, next_attempt_at,
                                 created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(new_id("dlv", event.created_at))
    .bind(&event.id)
    .bind(&target.id)
    .bind(state.as_str())
    .bind(next_attempt_at)
    .bind(event.created_at)
    .bind(event.created_at)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

fn event_row_from_new(event: &NewEvent) -> EventRow {
    EventRow {
        id: event.id.clone(),
        event_type: event.event_type.clone(),
        version: event.version.clone(),
        data: event.data.clone(),
        retryable: event.retryable,
        idempotency_key: event.idempotency_key.clone(),
        created_at: event.created_at,
    }
}

// ---------------------------------------------------------------------------------------------
// Row decoding
// ---------------------------------------------------------------------------------------------

const SUBSCRIPTION_COLUMNS: &str = "id, url, events, description, metadata, secret, active, \
     disabled_reason, failure_count, created_at, updated_at";
const SELECT_SUBSCRIPTION_BY_ID: &str = "SELECT id, url, events, description, metadata, secret, \
     active, disabled_reason, failure_count, created_at, updated_at FROM subscriptions WHERE id = ?";
const SELECT_EVENT_BY_ID: &str = "SELECT id, event_type, version, data, retryable, \
     idempotency_key, created_at FROM events WHERE id = ?";

fn subscription_from_row(row: &SqliteRow) -> StoreResult<SubscriptionRow> {
    let events: Vec<String> = serde_json::from_str(&row.get::<String, _>("events"))
        .map_err(|e| decode_err("subscription events", e))?;
    let metadata = row
        .get::<Option<String>, _>("metadata")
        .map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(|e| decode_err("subscription metadata", e))?;
    Ok(SubscriptionRow {
        id: row.get("id"),
        url: row.get("url"),
        events,
        description: row.get("description"),
        metadata,
        secret: row.get("secret"),
        active: row.get::<i64, _>("active") == 1,
        disabled_reason: row.get("disabled_reason"),
        failure_count: row.get("failure_count"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

fn event_from_row(row: &SqliteRow) -> StoreResult<EventRow> {
    Ok(EventRow {
        id: row.get("id"),
        event_type: row.get("event_type"),
        version: row.get("version"),
        data: row.get("data"),
        retryable: row.get::<i64, _>("retryable") == 1,
        idempotency_key: row.get("idempotency_key"),
        created_at: row.get("created_at"),
    })
}

fn delivery_from_row(row: &SqliteRow) -> StoreResult<DeliveryRow> {
    let state: String = row.get("state");
    Ok(DeliveryRow {
        id: row.get("id"),
        event_id: row.get("event_id"),
        subscription_id: row.get("subscription_id"),
        state: DeliveryState::parse(&state).ok_or_else(|| decode_err("delivery state", &state))?,
        attempts: row.get("attempts"),
        next_attempt_at: row.get("next_attempt_at"),
        last_status: row.get("last_status"),
        last_error: row.get("last_error"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

fn event_type_from_row(row: &SqliteRow) -> EventTypeRow {
    EventTypeRow {
        name: row.get("name"),
        description: row.get("description"),
        created_at: row.get("created_at"),
        archived_at: row.get("archived_at"),
    }
}

fn api_key_from_row(row: &SqliteRow) -> ApiKeyRow {
    ApiKeyRow {
        id: row.get("id"),
        name: row.get("name"),
        prefix: row.get("prefix"),
        created_at: row.get("created_at"),
        revoked_at: row.get("revoked_at"),
    }
}

/// Splits a `limit + 1` fetch into a page and the cursor of its last row.
fn into_page<T>(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> Cursor) -> Page<T> {
    let limit = limit as usize;
    let next = match items.len() > limit {
        true => {
            items.truncate(limit);
            items.last().map(key)
        }
        false => None,
    };
    Page { items, next }
}

fn json_text(value: &serde_json::Value) -> String {
    value.to_string()
}

// ---------------------------------------------------------------------------------------------
// The Store contract
// ---------------------------------------------------------------------------------------------

#[async_trait]
impl Store for SqliteStore {
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
        sqlx::query(
            "INSERT INTO subscriptions (id, url, events, description, metadata, secret, active,
                                        disabled_reason, failure_count, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
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
             ORDER BY created_at DESC, id DESC LIMIT ?4"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(query.active)
            .bind(query.after.as_ref().map(|c| c.created_at))
            .bind(query.after.as_ref().map(|c| c.id.clone()))
            .bind(i64::from(query.limit) + 1)
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
        apply_patch(&mut sub, patch, now);
        sqlx::query(
            "UPDATE subscriptions SET url = ?, events = ?, description = ?, metadata = ?,
                    active = ?, disabled_reason = ?, failure_count = ?, updated_at = ?
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
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
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
        let (reply, answer) = oneshot::channel();
        self.publisher
            .send(PublishJob { events, reply })
            .await
            .map_err(|_| StoreError::Unavailable("publisher stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("publisher stopped".into()))?
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
        let rows = sqlx::query(
            "SELECT id, event_id, subscription_id, state, attempts, next_attempt_at, last_status,
                    last_error, created_at, updated_at
             FROM deliveries WHERE event_id = ? ORDER BY id",
        )
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
}

/// Applies a patch in memory. Re-enabling clears the reason it was disabled and its failure count.
fn apply_patch(sub: &mut SubscriptionRow, patch: SubscriptionPatch, now: UnixMs) {
    if let Some(url) = patch.url {
        sub.url = url;
    }
    if let Some(events) = patch.events {
        sub.events = events;
    }
    if let Some(description) = patch.description {
        sub.description = description;
    }
    if let Some(metadata) = patch.metadata {
        sub.metadata = metadata;
    }
    match patch.active {
        Some(true) if !sub.active => {
            sub.active = true;
            sub.disabled_reason = None;
            sub.failure_count = 0;
        }
        Some(false) if sub.active => {
            sub.active = false;
            sub.disabled_reason = Some("disabled by operator".into());
        }
        _ => {}
    }
    sub.updated_at = now;
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
