//! The PostgreSQL backend, for several hookd nodes sharing one database: a connection pool per node,
//! forward-only migrations applied under an advisory lock, a group-commit publisher task per node,
//! claims with `FOR UPDATE SKIP LOCKED`, and `LISTEN/NOTIFY` so that work published on one node wakes
//! the workers of all of them.
//!
//! It behaves like the SQLite backend method for method (the same integration tests run against both;
//! see `HOOKD_TEST_BACKEND`). What differs is how concurrent writers are kept apart: SQLite has one
//! writer at a time, while here several nodes write at once, so rows are locked where it matters
//! (`FOR UPDATE`, `SKIP LOCKED`) and idempotency rests on unique indexes (`ON CONFLICT DO NOTHING`).

/// The dead letters a redrive filter selects (`$1` subscription, `$2` event type, `$3`/`$4` time
/// range): one text for the redrive and for its count preview, so the preview counts what runs.
macro_rules! redrivable_where {
    () => {
        " WHERE state = 'dead'
            AND ($1::text IS NULL OR subscription_id = $1)
            AND ($2::text IS NULL OR event_id IN (SELECT id FROM events WHERE event_type = $2))
            AND ($3::bigint IS NULL OR updated_at >= $3)
            AND ($4::bigint IS NULL OR updated_at < $4)
            AND subscription_id IN (SELECT id FROM subscriptions WHERE active)"
    };
}

mod ui;

use super::sqlite_writer::FailureEffects;
use std::collections::{HashMap, HashSet};

use super::common::queued_subscriptions;
use super::common::{
    ClaimDecoder, FanoutTarget, PublishJob, RowExt, add_state_count, answer_group,
    api_key_from_row, apply_patch, attempt_from_row, check_sealing_key, dead_letter_from_row,
    delivery_columns, delivery_from_row, encode_json, event_from_row, event_row_from_new,
    event_type_from_row, fail_group, group_event_count, headers_text, into_page, json_text,
    next_group, prefixed_subscription_columns, receipt_from_row, reseal_row, response_headers_text,
    submit, subscription_columns, subscription_from_row,
};
use super::sealed;
use super::*;
use crate::ids::new_id;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, PgConnection, Row};
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The `NOTIFY` channel on which every write that makes deliveries due announces it.
pub const WORK_CHANNEL: &str = "hookd_work";

/// Waits between attempts to re-establish the `LISTEN` connection: doubling from the first to the
/// longest.
const LISTEN_RETRY_FIRST: Duration = Duration::from_millis(200);
const LISTEN_RETRY_LONGEST: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `postgres://` or `postgresql://` URL: user, password, host, port, database, and any libpq-style
    /// parameters sqlx understands (`sslmode`, `options=-c lock_timeout=5s`, ...).
    pub url: String,
    /// Pool size of this node: API requests, the publisher and the worker share it (the `LISTEN`
    /// connection is extra).
    pub max_connections: u32,
}

pub struct PgStore {
    pool: PgPool,
    /// Kept to open the `LISTEN` connection with the same settings.
    connect: PgConnectOptions,
    /// Feeds the group-commit publisher task.
    publisher: mpsc::Sender<PublishJob>,
    /// Counters kept by the publisher task.
    stats: Arc<PublisherStats>,
    /// Never sent on; dropped with the store, which stops the `LISTEN` tasks.
    closed: watch::Sender<()>,
}

impl PgStore {
    /// Connects, applies pending migrations and starts the publisher.
    pub async fn open(options: PgOptions) -> StoreResult<Self> {
        let connect = connect_options(&options.url)?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(connect.clone())
            .await
            .map_err(map_err)?;
        run_migrations(&pool).await?;
        let (publisher, jobs) = mpsc::channel(4_096);
        let stats = Arc::new(PublisherStats::default());
        tokio::spawn(run_publisher(pool.clone(), jobs, stats.clone()));
        Ok(Self {
            pool,
            connect,
            publisher,
            stats,
            closed: watch::Sender::new(()),
        })
    }

    /// (group commits, publish requests) so far, on this node.
    pub fn publisher_stats(&self) -> (u64, u64) {
        self.stats.snapshot()
    }

    /// Applies migrations without starting anything (for `hookd migrate`); returns the versions
    /// applied so far, oldest first.
    pub async fn migrate(url: &str) -> StoreResult<Vec<i64>> {
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(connect_options(url)?)
            .await
            .map_err(map_err)?;
        run_migrations(&pool).await?;
        let versions = sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .map_err(map_err)?;
        pool.close().await;
        Ok(versions)
    }
}

fn connect_options(url: &str) -> StoreResult<PgConnectOptions> {
    PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::Internal(format!("invalid PostgreSQL URL: {e}")))
}

/// Applies pending migrations. sqlx's migrator holds a PostgreSQL advisory lock
/// (`pg_advisory_lock`, keyed by the database name) for the whole run (its default `locking: true`,
/// which we keep): nodes starting together, or `hookd migrate` racing a starting node, apply each
/// migration exactly once; the others wait for the lock and then find nothing left to do.
async fn run_migrations(pool: &PgPool) -> StoreResult<()> {
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))
}

/// Maps driver errors onto the store's three kinds: a unique violation is a conflict; whatever means
/// "cannot serve this now, try again" is unavailable (503); the rest is internal.
fn map_err(error: sqlx::Error) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_owned())
        }
        sqlx::Error::Database(db) => match db.code() {
            Some(code) if is_unavailable(&code) => StoreError::Unavailable(db.message().to_owned()),
            _ => StoreError::Internal(db.message().to_owned()),
        },
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
        _ => StoreError::Internal(error.to_string()),
    }
}

/// SQLSTATEs after which the same request may well succeed a moment later. Besides the classes of
/// connection trouble, these are PostgreSQL's counterparts of what the SQLite backend treats as
/// unavailable (BUSY/LOCKED, READONLY, IOERR, FULL).
fn is_unavailable(sqlstate: &str) -> bool {
    sqlstate.starts_with("08") // connection exception
        || sqlstate.starts_with("53") // insufficient resources: disk full, out of memory, too many connections
        || sqlstate.starts_with("57P") // operator intervention: shutdown, crash recovery, cannot connect now
        || matches!(
            sqlstate,
            "40001" // serialization failure: retryable
                | "40P01" // deadlock detected: one side is rolled back, retryable
                | "55P03" // lock not available: `lock_timeout` expired (SQLite's BUSY)
                | "57014" // query canceled: `statement_timeout` expired or a cancel request
                | "25006" // read-only transaction: a standby after a failover (SQLite's READONLY)
                | "58030" // I/O error (SQLite's IOERR)
        )
}

/// Tells every listening node (this one included) that deliveries became due. Delivered at commit,
/// so it runs inside the transaction that queued the work; a rolled-back transaction notifies nobody.
async fn notify_work(conn: &mut PgConnection) -> StoreResult<()> {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(WORK_CHANNEL)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Group-commit publisher
// ---------------------------------------------------------------------------------------------

/// Takes every job waiting in the channel (up to `MAX_GROUP_EVENTS` events), runs them in one
/// transaction on a pooled connection (each job inside its own savepoint, so one bad job cannot sink
/// the others), commits once, then answers every job. A failed group fails its jobs only: the pool
/// replaces broken connections, so hookd recovers by itself when the database comes back.
async fn run_publisher(
    pool: PgPool,
    mut jobs: mpsc::Receiver<PublishJob>,
    stats: Arc<PublisherStats>,
) {
    while let Some(group) = next_group(&mut jobs).await {
        match commit_group(&pool, &group).await {
            Ok(results) => answer_group(group, results, &stats),
            Err(error) => {
                let events = group_event_count(&group);
                tracing::warn!(%error, events, "group commit failed");
                fail_group(group, &error);
            }
        }
    }
}

async fn commit_group(
    pool: &PgPool,
    group: &[PublishJob],
) -> StoreResult<Vec<StoreResult<Vec<Published>>>> {
    let mut tx = pool.begin().await.map_err(map_err)?;
    let targets = load_fanout_targets(&mut tx).await?;
    let mut results = Vec::with_capacity(group.len());
    let mut queued_work = false;
    for job in group {
        let mut savepoint = tx.begin().await.map_err(map_err)?;
        match publish_job(&mut savepoint, &targets, &job.events).await {
            Ok(published) => {
                savepoint.commit().await.map_err(map_err)?;
                queued_work |= published.iter().any(|p| p.created && p.deliveries > 0);
                results.push(Ok(published));
            }
            Err(error) => {
                savepoint.rollback().await.map_err(map_err)?;
                results.push(Err(error));
            }
        }
    }
    if queued_work {
        notify_work(&mut tx).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(results)
}

async fn load_fanout_targets(conn: &mut PgConnection) -> StoreResult<Vec<FanoutTarget>> {
    let rows = sqlx::query("SELECT id, events, active FROM subscriptions")
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    rows.iter()
        .map(|row| FanoutTarget::parse(row.text("id"), &row.text("events"), row.flag("active")))
        .collect()
}

/// Publishes a request's events with a fixed number of statements: one multi-row insert of the
/// events (`UNNEST`), one of all their deliveries, and per event that already existed (a repeated
/// id or idempotency key, rare) a lookup of the stored one. Per-event statements cost a round trip
/// each and bounded a publisher to ≈ 3,000 events/s (BENCHMARKS.md).
async fn publish_job(
    conn: &mut PgConnection,
    targets: &[FanoutTarget],
    events: &[NewEvent],
) -> StoreResult<Vec<Published>> {
    let inserted = insert_events(conn, events).await?;
    // An id can appear twice in one request: only its first occurrence was inserted.
    let mut fresh = HashSet::with_capacity(inserted.len());
    let mut rows = DeliveryRows::default();
    let mut created = Vec::with_capacity(events.len());
    for event in events {
        let new = inserted.contains(event.id.as_str()) && fresh.insert(event.id.as_str());
        if new {
            for target in targets.iter().filter(|target| target.selects(event)) {
                rows.push(event, &target.id);
            }
        }
        created.push(new);
    }
    let pending = rows.insert(conn).await?;
    let mut published = Vec::with_capacity(events.len());
    for (event, created) in events.iter().zip(created) {
        if created {
            published.push(Published {
                event: event_row_from_new(event),
                deliveries: pending.get(event.id.as_str()).copied().unwrap_or(0),
                created: true,
            });
            continue;
        }
        let existing = find_existing_event(conn, event).await?.ok_or_else(|| {
            StoreError::Internal(format!(
                "event {} conflicts with no visible event",
                event.id
            ))
        })?;
        let deliveries = count_sendable_deliveries(conn, &existing.id).await?;
        published.push(Published {
            event: existing,
            deliveries,
            created: false,
        });
    }
    Ok(published)
}

/// Inserts the events whose id and idempotency key are free, in one statement; returns the ids it
/// inserted. If another node is inserting the same id or key at this moment, this waits for its
/// transaction: after its commit the row is skipped (and the caller finds that event), after its
/// rollback it is inserted.
async fn insert_events(
    conn: &mut PgConnection,
    events: &[NewEvent],
) -> StoreResult<HashSet<String>> {
    let column = |f: fn(&NewEvent) -> String| events.iter().map(f).collect::<Vec<String>>();
    let inserted: Vec<String> = sqlx::query_scalar(
        "INSERT INTO events (id, event_type, version, data, retryable, idempotency_key, created_at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[],
                              $6::text[], $7::int8[])
         ON CONFLICT DO NOTHING
         RETURNING id",
    )
    .bind(column(|e| e.id.clone()))
    .bind(column(|e| e.event_type.clone()))
    .bind(column(|e| e.version.clone()))
    .bind(column(|e| e.data.clone()))
    .bind(events.iter().map(|e| e.retryable).collect::<Vec<bool>>())
    .bind(
        events
            .iter()
            .map(|e| e.idempotency_key.clone())
            .collect::<Vec<Option<String>>>(),
    )
    .bind(events.iter().map(|e| e.created_at).collect::<Vec<i64>>())
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(inserted.into_iter().collect())
}

/// The deliveries of a publish request, inserted in one statement.
#[derive(Default)]
struct DeliveryRows {
    ids: Vec<String>,
    event_ids: Vec<String>,
    subscription_ids: Vec<String>,
    created_at: Vec<i64>,
}

impl DeliveryRows {
    fn push(&mut self, event: &NewEvent, subscription_id: &str) {
        self.ids.push(new_id("dlv", event.created_at));
        self.event_ids.push(event.id.clone());
        self.subscription_ids.push(subscription_id.to_owned());
        self.created_at.push(event.created_at);
    }

    /// One statement for the whole fan-out: a delivery per selected subscription, `pending` (due
    /// now) if it is active and `held` if not. The state is read from the subscription row as the
    /// statement runs, and a subscription deleted since the group began is skipped rather than
    /// failing the foreign key. Returns how many deliveries are pending, per event.
    async fn insert(self, conn: &mut PgConnection) -> StoreResult<HashMap<String, u64>> {
        let mut pending = HashMap::new();
        if self.ids.is_empty() {
            return Ok(pending);
        }
        let rows: Vec<(String, String)> = sqlx::query_as(
            "INSERT INTO deliveries (id, event_id, subscription_id, state, next_attempt_at,
                                     created_at, updated_at)
             SELECT t.id, t.event_id, s.id,
                    CASE WHEN s.active THEN 'pending' ELSE 'held' END,
                    CASE WHEN s.active THEN t.created_at END,
                    t.created_at, t.created_at
               FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[])
                    AS t (id, event_id, subscription_id, created_at)
               JOIN subscriptions s ON s.id = t.subscription_id
             RETURNING event_id, state",
        )
        .bind(&self.ids)
        .bind(&self.event_ids)
        .bind(&self.subscription_ids)
        .bind(&self.created_at)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
        for (event_id, state) in rows {
            let count = pending.entry(event_id).or_insert(0);
            if state == "pending" {
                *count += 1;
            }
        }
        Ok(pending)
    }
}

/// The stored event with this id, else the one with this idempotency key (as SQLite checks them).
async fn find_existing_event(
    conn: &mut PgConnection,
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
         FROM events WHERE idempotency_key = $1",
    )
    .bind(key)
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?
    .map(|row| event_from_row(&row))
    .transpose()
}

async fn count_sendable_deliveries(conn: &mut PgConnection, event_id: &str) -> StoreResult<u64> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM deliveries WHERE event_id = $1 AND state <> 'held'",
    )
    .bind(event_id)
    .fetch_one(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(count as u64)
}

// ---------------------------------------------------------------------------------------------
// Wake-ups across nodes
// ---------------------------------------------------------------------------------------------

/// Opens a dedicated connection (outside the pool) and `LISTEN`s on [`WORK_CHANNEL`].
async fn connect_listener(connect: &PgConnectOptions) -> Result<PgListener, sqlx::Error> {
    // A pool of one connection that never expires: PgListener only uses it to reconnect.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(connect.clone())
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(WORK_CHANNEL).await?;
    Ok(listener)
}

/// Relays notifications to `waker` for as long as it runs, reconnecting with backoff whenever the
/// connection fails. After every reconnection it wakes the worker once: notifications sent while the
/// connection was down are lost (the worker's poll is the safety net either way).
async fn relay_work_notifications(
    connect: PgConnectOptions,
    mut listener: Option<PgListener>,
    waker: Arc<Notify>,
) {
    let mut backoff = LISTEN_RETRY_FIRST;
    loop {
        let mut active = match listener.take() {
            Some(active) => active,
            None => match connect_listener(&connect).await {
                Ok(active) => {
                    tracing::info!("listening for work from other nodes again");
                    waker.notify_one();
                    active
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?backoff, "cannot listen for work from other nodes");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(LISTEN_RETRY_LONGEST);
                    continue;
                }
            },
        };
        backoff = LISTEN_RETRY_FIRST;
        let error = loop {
            match active.try_recv().await {
                Ok(Some(_notification)) => waker.notify_one(),
                // The connection dropped and PgListener re-established it (and its LISTEN).
                Ok(None) => waker.notify_one(),
                Err(error) => break error,
            }
        };
        tracing::warn!(%error, "lost the connection listening for work; reconnecting");
    }
}

// ---------------------------------------------------------------------------------------------
// Queries and row access
// ---------------------------------------------------------------------------------------------

const SELECT_SUBSCRIPTION_BY_ID: &str = concat!(
    "SELECT ",
    subscription_columns!(),
    " FROM subscriptions WHERE id = $1"
);
const SELECT_EVENT_BY_ID: &str = "SELECT id, event_type, version, data, retryable, \
     idempotency_key, created_at FROM events WHERE id = $1";

/// Leases due deliveries and returns them with their event and subscription, in one statement (so
/// in one implicit transaction): oldest first, at most `room` per subscription (its cap minus what
/// this worker already has in flight there), so nothing is claimed only to be released again.
///
/// A claim costs O(subscriptions with queued work + rows claimed), whatever the backlog: `queued`
/// lists the subscriptions that have pending or failed rows by a skip scan over the partial index
/// `deliveries_queued_by_subscription` (one seek per subscription: PostgreSQL 15 has no skip scan
/// of its own), `open` drops the inactive ones and those without room, and `due` takes each open
/// subscription's oldest due rows from the same index (`LATERAL … LIMIT room`). A subscription
/// without room is passed over with one seek however long its backlog, and the rows of other
/// subscriptions behind it are still found. The candidates are read without locks; the picked ones
/// are then locked with `FOR UPDATE OF d SKIP LOCKED` and re-checked, so concurrent claimers, on
/// this node or others, take disjoint rows without waiting for each other (another node may have
/// claimed some meanwhile: they are skipped, not waited for).
static CLAIM_DUE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH RECURSIVE {},
         open AS (
             SELECT s.id, LEAST(COALESCE(listed.room, $7), $6) AS room
               FROM queued JOIN subscriptions s ON s.id = queued.subscription_id
               LEFT JOIN UNNEST($5::text[], $8::int8[]) AS listed(subscription_id, room)
                 ON listed.subscription_id = s.id
              WHERE s.active AND COALESCE(listed.room, $7) > 0),
         due AS (
             SELECT due.id, due.next_attempt_at
               FROM open CROSS JOIN LATERAL (
                    SELECT d.id, d.next_attempt_at FROM deliveries d
                     WHERE d.subscription_id = open.id AND d.state IN ('pending', 'failed')
                       AND d.next_attempt_at <= $2
                     ORDER BY d.next_attempt_at
                     LIMIT open.room) due
              ORDER BY due.next_attempt_at
              LIMIT $6),
         picked AS (
             SELECT d.id FROM deliveries d
              WHERE d.id IN (SELECT id FROM due)
                AND d.state IN ('pending', 'failed') AND d.next_attempt_at <= $2
                FOR UPDATE SKIP LOCKED),
         claimed AS (
             UPDATE deliveries
                SET state = 'in_flight', lease_owner = $1, updated_at = $2,
                    lease_expires_at = $2 + $3 + COALESCE(
                        (SELECT s.timeout_ms FROM subscriptions s
                          WHERE s.id = deliveries.subscription_id), $4)
              WHERE id IN (SELECT id FROM picked)
             RETURNING id, attempts, event_id, subscription_id, next_attempt_at)
         SELECT c.id AS delivery_id, c.attempts AS delivery_attempts,
                e.id AS event_id, e.event_type, e.version, e.data, e.retryable,
                e.idempotency_key, e.created_at AS event_created_at,
                {}
           FROM claimed c
           JOIN events e ON e.id = c.event_id
           JOIN subscriptions s ON s.id = c.subscription_id
          ORDER BY c.next_attempt_at",
        queued_subscriptions!(""),
        prefixed_subscription_columns("s")
    )
});

impl RowExt for PgRow {
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
        self.get(column)
    }
}

// ---------------------------------------------------------------------------------------------
// The Store contract
// ---------------------------------------------------------------------------------------------

#[async_trait]
impl Store for PgStore {
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

    /// Starts a task that `LISTEN`s on [`WORK_CHANNEL`] and wakes `waker` on every notification. It
    /// returns once the first `LISTEN` is in place (or has failed: the task then keeps retrying), and
    /// the task ends when the store is dropped.
    async fn listen_for_work(&self, waker: Arc<Notify>) -> StoreResult<()> {
        let first = match connect_listener(&self.connect).await {
            Ok(listener) => Some(listener),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for work from other nodes yet; retrying");
                None
            }
        };
        let mut closed = self.closed.subscribe();
        let relay = relay_work_notifications(self.connect.clone(), first, waker);
        tokio::spawn(async move {
            tokio::select! {
                _ = closed.changed() => {}
                _ = relay => {}
            }
        });
        Ok(())
    }

    async fn insert_api_key(&self, key: NewApiKey) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, name, prefix, hash, created_at) VALUES ($1, $2, $3, $4, $5)",
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
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
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
             WHERE hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(row.as_ref().map(api_key_from_row))
    }

    async fn insert_subscription(&self, row: &SubscriptionRow) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        lock_sealing_key(&mut tx, sealed::key_id_of(&row.secret)).await?;
        sqlx::query(
            "INSERT INTO subscriptions (id, url, events, description, metadata, secret, active,
                                        disabled_reason, failure_count, created_at, updated_at,
                                        retry_policy, timeout_ms, headers, owner)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(&row.id)
        .bind(&row.url)
        .bind(encode_json(&row.events)?)
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
        .execute(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
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
        let rows = sqlx::query(concat!(
            "SELECT ",
            subscription_columns!(),
            " FROM subscriptions
             WHERE ($1::boolean IS NULL OR active = $1)
               AND ($2::bigint IS NULL OR (created_at, id) < ($2, $3))
               AND ($5::text IS NULL OR owner = $5)
             ORDER BY created_at DESC, id DESC LIMIT $4"
        ))
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // `FOR UPDATE`: a concurrent patch (on any node) waits, then patches this one's result.
        let Some(row) = sqlx::query(concat!(
            "SELECT ",
            subscription_columns!(),
            " FROM subscriptions WHERE id = $1 FOR UPDATE"
        ))
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
            "UPDATE subscriptions SET url = $1, events = $2, description = $3, metadata = $4,
                    active = $5, disabled_reason = $6, failure_count = $7, updated_at = $8,
                    retry_policy = $9, timeout_ms = $10, headers = $11, owner = $13
             WHERE id = $12",
        )
        .bind(&sub.url)
        .bind(encode_json(&sub.events)?)
        .bind(&sub.description)
        .bind(sub.metadata.as_ref().map(json_text))
        .bind(sub.active)
        .bind(&sub.disabled_reason)
        .bind(sub.failure_count)
        .bind(sub.updated_at)
        .bind(sub.retry_policy.as_ref().map(encode_json).transpose()?)
        .bind(sub.timeout_ms)
        .bind(headers_text(&sub.headers)?)
        .bind(id)
        .bind(&sub.owner)
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
        let done = sqlx::query("DELETE FROM subscriptions WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn publish(&self, events: Vec<NewEvent>) -> StoreResult<Vec<Published>> {
        submit(&self.publisher, events).await
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
             WHERE ($1::text IS NULL OR event_type = $1)
               AND ($2::bigint IS NULL OR created_at >= $2)
               AND ($3::bigint IS NULL OR created_at < $3)
               AND ($4::bigint IS NULL OR (created_at, id) < ($4, $5))
             ORDER BY created_at DESC, id DESC LIMIT $6",
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
            " FROM deliveries WHERE event_id = $1 ORDER BY id"
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
             WHERE $1 OR archived_at IS NULL ORDER BY name",
        )
        .bind(include_archived)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(rows.iter().map(event_type_from_row).collect())
    }

    async fn add_event_type(&self, row: EventTypeRow) -> StoreResult<EventTypeRow> {
        let stored = sqlx::query(
            "INSERT INTO event_types (name, description, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE
                SET description = EXCLUDED.description, archived_at = NULL,
                    created_at = EXCLUDED.created_at
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
            "UPDATE event_types SET archived_at = $1 WHERE name = $2 AND archived_at IS NULL",
        )
        .bind(now)
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn event_type_exists(&self, name: &str) -> StoreResult<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM event_types WHERE name = $1 AND archived_at IS NULL)",
        )
        .bind(name)
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn claim_due(&self, request: ClaimRequest) -> StoreResult<Vec<ClaimedDelivery>> {
        let (listed_ids, listed_room): (Vec<&str>, Vec<i64>) = request
            .room
            .iter()
            .map(|(id, n)| (id.as_str(), i64::from(*n)))
            .unzip();
        let rows = sqlx::query(sqlx::AssertSqlSafe(CLAIM_DUE.as_str()))
            .bind(&request.owner)
            .bind(request.now)
            .bind(request.lease_margin_ms)
            .bind(request.default_timeout_ms)
            .bind(listed_ids)
            .bind(i64::from(request.limit))
            .bind(i64::from(request.default_room.unwrap_or(u32::MAX)))
            .bind(listed_room)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let mut decoder = ClaimDecoder::default();
        rows.iter().map(|row| decoder.decode(row)).collect()
    }

    async fn record_outcomes(
        &self,
        owner: &str,
        mut outcomes: Vec<DeliveryOutcome>,
        disable_after_failures: i64,
        now: UnixMs,
    ) -> StoreResult<RecordReport> {
        // Subscription by subscription (a stable sort keeps each one's outcomes in order). The
        // subscription rows are locked first, in one statement and in id order, so that two nodes
        // recording at once (or a disable) cannot deadlock with this transaction.
        outcomes.sort_by(|a, b| a.subscription_id.cmp(&b.subscription_id));
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        lock_subscriptions(&mut tx, &outcomes).await?;
        insert_attempts(&mut tx, &outcomes).await?;
        let applied: HashSet<String> = apply_outcomes(&mut tx, owner, &outcomes, now)
            .await?
            .into_iter()
            .collect();
        let mut report = RecordReport {
            applied: applied.len() as u64,
            stale: (outcomes.len() - applied.len()) as u64,
            disabled: Vec::new(),
        };
        let mut seen = HashSet::new();
        let counted = outcomes
            .iter()
            .filter(|o| applied.contains(&o.delivery_id) && seen.insert(o.delivery_id.as_str()));
        for (subscription, effect) in FailureEffects::tally(counted) {
            if apply_failure_effect(&mut tx, subscription, &effect, disable_after_failures, now)
                .await?
            {
                report.disabled.push(subscription.to_owned());
            }
        }
        tx.commit().await.map_err(map_err)?;
        Ok(report)
    }

    async fn release_leases(&self, owner: &str, delivery_ids: &[String]) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // Back in the queue, unless the subscription was disabled meanwhile: then held, as its
        // queue was (a pending row of a disabled subscription would never be claimed). The share
        // locks (taken in id order) make a concurrent disable either wait for this release, so that
        // it holds the rows released, or finish first, so that this reads `active = false`.
        let released = sqlx::query(
            "WITH subs AS MATERIALIZED (
                 SELECT s.id, s.active FROM subscriptions s
                  WHERE s.id IN (SELECT subscription_id FROM deliveries WHERE id = ANY($2::text[]))
                  ORDER BY s.id
                    FOR SHARE)
             UPDATE deliveries d
                SET state = CASE WHEN subs.active THEN 'pending' ELSE 'held' END,
                    next_attempt_at = CASE WHEN subs.active THEN d.next_attempt_at END,
                    lease_owner = NULL, lease_expires_at = NULL
               FROM subs
              WHERE subs.id = d.subscription_id
                AND d.lease_owner = $1 AND d.state = 'in_flight' AND d.id = ANY($2::text[])",
        )
        .bind(owner)
        .bind(delivery_ids)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        // Released rows are due at once: another node may take them (e.g. this one is stopping).
        if released > 0 {
            notify_work(&mut tx).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(released)
    }

    async fn rescue_expired_leases(&self, now: UnixMs) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // Every node runs this. `SKIP LOCKED` leaves rows that another rescuer (or a late recorder)
        // holds to that one instead of waiting for it; each expired row is rescued once. A row goes
        // to `held` instead of `pending` when its subscription was disabled meanwhile; the share
        // lock orders this against a concurrent disable (as in `release_leases`), and skips a
        // subscription being written now: its rows are rescued on a later pass, never waited for.
        let rescued = sqlx::query(
            "WITH expired AS MATERIALIZED (
                 SELECT id, subscription_id FROM deliveries
                  WHERE state = 'in_flight' AND lease_expires_at < $1
                    FOR UPDATE SKIP LOCKED),
             subs AS MATERIALIZED (
                 SELECT s.id, s.active FROM subscriptions s
                  WHERE s.id IN (SELECT subscription_id FROM expired)
                    FOR SHARE SKIP LOCKED)
             UPDATE deliveries d
                SET state = CASE WHEN subs.active THEN 'pending' ELSE 'held' END,
                    next_attempt_at = CASE WHEN subs.active THEN $1 END,
                    lease_owner = NULL, lease_expires_at = NULL, updated_at = $1
               FROM expired JOIN subs ON subs.id = expired.subscription_id
              WHERE d.id = expired.id",
        )
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        if rescued > 0 {
            notify_work(&mut tx).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(rescued)
    }

    async fn next_due_at(&self) -> StoreResult<Option<UnixMs>> {
        // The first due row of each subscription with queued work, found as `CLAIM_DUE` finds
        // them: O(subscriptions with queued work).
        sqlx::query_scalar(concat!(
            "WITH RECURSIVE ",
            queued_subscriptions!(""),
            " SELECT MIN(first.next_attempt_at)
               FROM queued CROSS JOIN LATERAL (
                    SELECT d.next_attempt_at FROM deliveries d
                     WHERE d.subscription_id = queued.subscription_id
                       AND d.state IN ('pending', 'failed') AND d.next_attempt_at IS NOT NULL
                     ORDER BY d.next_attempt_at LIMIT 1) first",
        ))
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)
    }

    async fn get_delivery(&self, id: &str) -> StoreResult<Option<DeliveryRow>> {
        sqlx::query(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries WHERE id = $1"
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
               FROM attempts WHERE delivery_id = $1 ORDER BY started_at, id",
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let requeued = sqlx::query(concat!(
            "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = $2,
                    updated_at = $2
              WHERE id = $1 AND state <> 'in_flight'
             RETURNING ",
            delivery_columns!()
        ))
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        let result = match requeued {
            Some(row) => {
                notify_work(&mut tx).await?;
                RetryResult::Requeued(delivery_from_row(&row)?)
            }
            None => {
                let exists: bool =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM deliveries WHERE id = $1)")
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(map_err)?;
                match exists {
                    true => RetryResult::InFlight,
                    false => RetryResult::NotFound,
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
                AND ($1::text IS NULL OR d.subscription_id = $1)
                AND ($2::text IS NULL OR e.event_type = $2)
                AND ($3::bigint IS NULL OR d.updated_at >= $3)
                AND ($4::bigint IS NULL OR d.updated_at < $4)
                AND ($5::bigint IS NULL OR (d.updated_at, d.id) < ($5, $6))
              ORDER BY d.updated_at DESC, d.id DESC LIMIT $7"
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let redriven = sqlx::query(concat!(
            "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = $5,
                    updated_at = $5",
            redrivable_where!()
        ))
        .bind(&filter.subscription_id)
        .bind(&filter.event_type)
        .bind(filter.since)
        .bind(filter.until)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        if redriven > 0 {
            notify_work(&mut tx).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(redriven)
    }

    async fn recover(
        &self,
        subscription_id: &str,
        since: UnixMs,
        until: Option<UnixMs>,
        now: UnixMs,
    ) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let recovered = sqlx::query(
            "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = $4,
                    updated_at = $4
              WHERE subscription_id = $1 AND state IN ('failed', 'dead')
                AND updated_at >= $2 AND ($3::bigint IS NULL OR updated_at < $3)",
        )
        .bind(subscription_id)
        .bind(since)
        .bind(until)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        if recovered > 0 {
            notify_work(&mut tx).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(recovered)
    }

    async fn set_subscription_active(
        &self,
        id: &str,
        active: bool,
        reason: Option<String>,
        replay: bool,
        now: UnixMs,
    ) -> StoreResult<Option<(SubscriptionRow, u64)>> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // The row lock taken here, before `hold_queued`'s statement, orders a disable against a
        // concurrent `record_outcomes`, release or rescue (each locks the subscription row first).
        let updated = sqlx::query(
            "UPDATE subscriptions
                SET active = $2, updated_at = $3,
                    disabled_reason = CASE WHEN $2 THEN NULL ELSE COALESCE($4, disabled_reason) END,
                    failure_count = CASE WHEN $2 THEN 0 ELSE failure_count END
              WHERE id = $1",
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
                "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = $2,
                        updated_at = $2
                  WHERE subscription_id = $1 AND state = 'held'",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
            if replayed > 0 {
                notify_work(&mut tx).await?;
            }
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        lock_sealing_key(&mut tx, sealed::key_id_of(new_secret)).await?;
        let row = sqlx::query(concat!(
            "UPDATE subscriptions
                SET previous_secret = CASE WHEN $3::bigint IS NULL THEN NULL ELSE secret END,
                    previous_secret_expires_at = $3,
                    secret = $2, updated_at = $4
              WHERE id = $1
             RETURNING ",
            subscription_columns!()
        ))
        .bind(id)
        .bind(new_secret)
        .bind(previous_expires_at)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        row.map(|row| subscription_from_row(&row)).transpose()
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
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // First: from here on, writers of secrets (who hold this row FOR SHARE) wait for the commit
        // and then find the new key; the writers before it have committed, so the rows read below
        // include their secrets.
        sqlx::query("UPDATE sealing_key SET key_id = $1, rotated_at = $2 WHERE id = 1")
            .bind(key_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let rows = sqlx::query("SELECT id, secret, previous_secret FROM subscriptions FOR UPDATE")
            .fetch_all(&mut *tx)
            .await
            .map_err(map_err)?;
        let mut resealed = 0;
        for row in rows {
            let (id, secret, previous) = reseal_row(&row, reseal)?;
            resealed += 1 + u64::from(previous.is_some());
            sqlx::query("UPDATE subscriptions SET secret = $2, previous_secret = $3 WHERE id = $1")
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
        let counts = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM deliveries
              WHERE ($1::text IS NULL OR subscription_id = $1) GROUP BY state",
        )
        .bind(subscription_id)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let mut stats = DeliveryStats::default();
        for row in &counts {
            add_state_count(&mut stats, &row.text("state"), row.int("n"));
        }
        // AVG of a BIGINT is NUMERIC in PostgreSQL; the contract (and SQLite) has a float.
        stats.average_latency_ms = sqlx::query_scalar(
            "SELECT AVG(a.duration_ms)::float8 FROM attempts a
              WHERE a.status BETWEEN 200 AND 299
                AND ($1::text IS NULL OR a.delivery_id IN
                     (SELECT id FROM deliveries WHERE subscription_id = $1))",
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
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (subscription_id, webhook_id) DO NOTHING",
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
              WHERE subscription_id = $1 AND ($2::bigint IS NULL OR (received_at, id) < ($2, $3))
              ORDER BY received_at DESC, id DESC LIMIT $4",
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

/// Locks the subscription rows of a batch of outcomes, in id order, before anything else is written.
///
/// Without it a retry (`failed`) could be written while another transaction disables the
/// subscription: the disable's `hold_queued` does not see the uncommitted row, and the outcome's
/// check of `active` reads the subscription as it was before the disable committed; the `failed` row
/// would then wait forever on a disabled subscription. With the lock, a disable (which updates the
/// subscription row before holding its queue) either waits for this transaction, so that
/// `hold_queued` sees its `failed` rows, or commits first, so that the outcomes, written by later
/// statements, read `active = false` and write `held`.
///
/// `FOR NO KEY UPDATE` rather than `FOR SHARE` (as `release_leases` takes): this transaction may
/// update the row itself (failure count, auto-disable), and two recorders upgrading share locks on
/// the same row would deadlock. Rows are locked in id order, as every other transaction that locks
/// several subscriptions does, and before any delivery row, as the disable paths lock them.
/// Publishing is not blocked: its foreign-key checks take `FOR KEY SHARE`, which does not conflict.
async fn lock_subscriptions(
    conn: &mut PgConnection,
    outcomes: &[DeliveryOutcome],
) -> StoreResult<()> {
    let mut ids: Vec<&str> = outcomes
        .iter()
        .map(|o| o.subscription_id.as_str())
        .collect();
    ids.dedup();
    sqlx::query(
        "SELECT id FROM subscriptions WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE",
    )
    .bind(ids)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Moves a subscription's queued (pending or failed) deliveries to `held`.
///
/// Callers disable the subscription first, in an earlier statement of the same transaction: that
/// row lock makes a concurrent `record_outcomes` (which locks its subscriptions first) either finish
/// before this statement takes its snapshot, or see the subscription disabled.
async fn hold_queued(
    conn: &mut PgConnection,
    subscription_id: &str,
    now: UnixMs,
) -> StoreResult<u64> {
    let done = sqlx::query(
        "UPDATE deliveries SET state = 'held', next_attempt_at = NULL, updated_at = $2
          WHERE subscription_id = $1 AND state IN ('pending', 'failed')",
    )
    .bind(subscription_id)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected())
}

/// Logs every attempt in one statement, one array per column (attempts of deliveries deleted
/// meanwhile are dropped, as in SQLite).
async fn insert_attempts(conn: &mut PgConnection, outcomes: &[DeliveryOutcome]) -> StoreResult<()> {
    let attempts: Vec<&AttemptRow> = outcomes.iter().map(|o| &o.attempt).collect();
    let ids: Vec<&str> = attempts.iter().map(|a| a.id.as_str()).collect();
    let delivery_ids: Vec<&str> = attempts.iter().map(|a| a.delivery_id.as_str()).collect();
    let numbers: Vec<i64> = attempts.iter().map(|a| a.attempt).collect();
    let started_at: Vec<i64> = attempts.iter().map(|a| a.started_at).collect();
    let durations: Vec<i64> = attempts.iter().map(|a| a.duration_ms).collect();
    let timestamps: Vec<i64> = attempts.iter().map(|a| a.request_timestamp).collect();
    let statuses: Vec<Option<i64>> = attempts.iter().map(|a| a.status).collect();
    let excerpts: Vec<Option<&str>> = attempts
        .iter()
        .map(|a| a.response_excerpt.as_deref())
        .collect();
    let errors: Vec<Option<&str>> = attempts.iter().map(|a| a.error.as_deref()).collect();
    let classes: Vec<Option<&str>> = attempts.iter().map(|a| a.error_class.as_deref()).collect();
    let headers: Vec<Option<String>> = attempts
        .iter()
        .map(|a| response_headers_text(&a.response_headers))
        .collect::<StoreResult<_>>()?;
    sqlx::query(
        "INSERT INTO attempts (id, delivery_id, attempt, started_at, duration_ms, request_timestamp,
                               status, response_excerpt, error, error_class, response_headers)
         SELECT a.* FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
                                $6::bigint[], $7::bigint[], $8::text[], $9::text[], $10::text[],
                                $11::text[])
                      AS a (id, delivery_id, attempt, started_at, duration_ms, request_timestamp,
                            status, response_excerpt, error, error_class, response_headers)
          WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.id = a.delivery_id)",
    )
    .bind(ids)
    .bind(delivery_ids)
    .bind(numbers)
    .bind(started_at)
    .bind(durations)
    .bind(timestamps)
    .bind(statuses)
    .bind(excerpts)
    .bind(errors)
    .bind(classes)
    .bind(headers)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Applies every outcome whose delivery `owner` still leases, in one statement; returns the ids
/// applied. A retry for a subscription disabled meanwhile is held instead.
async fn apply_outcomes(
    conn: &mut PgConnection,
    owner: &str,
    outcomes: &[DeliveryOutcome],
    now: UnixMs,
) -> StoreResult<Vec<String>> {
    let mut ids = Vec::with_capacity(outcomes.len());
    let mut states = Vec::with_capacity(outcomes.len());
    let mut next = Vec::with_capacity(outcomes.len());
    let mut statuses = Vec::with_capacity(outcomes.len());
    let mut errors = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        let (state, next_attempt_at) = match outcome.outcome {
            Outcome::Delivered => ("delivered", None),
            Outcome::Retry { at } => ("failed", Some(at)),
            Outcome::Dead => ("dead", None),
            Outcome::Gone => ("held", None),
        };
        ids.push(outcome.delivery_id.as_str());
        states.push(state);
        next.push(next_attempt_at);
        statuses.push(outcome.attempt.status);
        errors.push(outcome.attempt.error.as_deref());
    }
    sqlx::query_scalar(
        "UPDATE deliveries
            SET state = CASE
                    WHEN o.state = 'failed' AND (SELECT s.active FROM subscriptions s
                                                  WHERE s.id = deliveries.subscription_id) = FALSE
                    THEN 'held' ELSE o.state END,
                next_attempt_at = o.next_attempt_at, attempts = attempts + 1,
                last_status = o.status, last_error = o.error,
                lease_owner = NULL, lease_expires_at = NULL, updated_at = $7
           FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::text[])
                AS o (id, state, next_attempt_at, status, error)
          WHERE deliveries.id = o.id AND deliveries.lease_owner = $6
            AND deliveries.state = 'in_flight'
         RETURNING deliveries.id",
    )
    .bind(ids)
    .bind(states)
    .bind(next)
    .bind(statuses)
    .bind(errors)
    .bind(owner)
    .bind(now)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)
}

/// Applies one subscription's tally (success resets the consecutive-failure count, a dead delivery
/// increments it and disables the subscription at the threshold, `410 Gone` disables it at once);
/// true if this disabled it (its queued deliveries are held).
async fn apply_failure_effect(
    conn: &mut PgConnection,
    id: &str,
    effect: &FailureEffects,
    disable_after_failures: i64,
    now: UnixMs,
) -> StoreResult<bool> {
    let count: Option<i64> = match (effect.reset, effect.dead) {
        (false, 0) => None,
        // The guard skips the row write when the count is already right (the usual success case).
        (true, dead) => sqlx::query_scalar(
            "UPDATE subscriptions SET failure_count = $2
              WHERE id = $1 AND failure_count <> $2 RETURNING failure_count",
        )
        .bind(id)
        .bind(dead)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?
        .or(Some(dead)),
        (false, dead) => sqlx::query_scalar(
            "UPDATE subscriptions SET failure_count = failure_count + $2
              WHERE id = $1 RETURNING failure_count",
        )
        .bind(id)
        .bind(dead)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?,
    };
    let reason = match count {
        _ if effect.gone => "the endpoint answered 410 Gone".to_owned(),
        Some(count) if effect.dead > 0 && count >= disable_after_failures => {
            format!("auto-disabled after {count} consecutive failed deliveries")
        }
        _ => return Ok(false),
    };
    let disabled = sqlx::query(
        "UPDATE subscriptions SET active = FALSE, disabled_reason = $2, updated_at = $3
          WHERE id = $1 AND active",
    )
    .bind(id)
    .bind(&reason)
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    if disabled.rows_affected() == 0 {
        return Ok(false);
    }
    hold_queued(conn, id, now).await?;
    tracing::warn!(subscription = %id, %reason, "subscription disabled");
    Ok(true)
}

/// Holds the sealing-key row FOR SHARE until `tx` ends (a rotation updating it waits, and a write
/// waiting for a rotation sees its key) and refuses a secret sealed with another key.
async fn lock_sealing_key(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    written: Option<&str>,
) -> StoreResult<()> {
    if written.is_none() {
        return Ok(());
    }
    let stored: Option<String> =
        sqlx::query_scalar("SELECT key_id FROM sealing_key WHERE id = 1 FOR SHARE")
            .fetch_optional(&mut **tx)
            .await
            .map_err(map_err)?
            .flatten();
    check_sealing_key(stored.as_deref(), written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_that_are_worth_retrying_are_unavailable() {
        let cases = [
            ("08006", true),  // connection failure
            ("08001", true),  // cannot connect
            ("53100", true),  // disk full
            ("53300", true),  // too many connections
            ("57P01", true),  // admin shutdown (pg_terminate_backend)
            ("57P03", true),  // cannot connect now (starting up)
            ("40001", true),  // serialization failure
            ("40P01", true),  // deadlock
            ("55P03", true),  // lock_timeout
            ("57014", true),  // statement_timeout
            ("25006", true),  // read-only transaction
            ("23505", false), // unique violation (a conflict, mapped before)
            ("23503", false), // foreign key violation: a bug
            ("42P01", false), // undefined table: a bug
            ("22P02", false), // invalid text representation: a bug
            ("40002", false), // integrity constraint violation at commit
        ];
        for (sqlstate, unavailable) in cases {
            assert_eq!(is_unavailable(sqlstate), unavailable, "{sqlstate}");
        }
    }
}
