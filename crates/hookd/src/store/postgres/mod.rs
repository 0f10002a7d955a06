//! The PostgreSQL backend, for several hookd nodes sharing one database: a connection pool per node,
//! forward-only migrations applied under an advisory lock, a group-commit publisher task per node,
//! claims with `FOR UPDATE SKIP LOCKED`, and `LISTEN/NOTIFY` so that work published on one node wakes
//! the workers of all of them.
//!
//! It behaves like the SQLite backend method for method (the same integration tests run against both;
//! see `HOOKD_TEST_BACKEND`). What differs is how concurrent writers are kept apart: SQLite has one
//! writer at a time, while here several nodes write at once, so rows are locked where it matters
//! (`FOR UPDATE`, `SKIP LOCKED`) and idempotency rests on unique indexes (`ON CONFLICT DO NOTHING`).
//!
//! The statements that mean the same on SQLite are in `super::sql` and run here too (placeholders
//! rewritten to `$N`); this folder holds what is PostgreSQL's own: the publisher (`publish`), the
//! queue (`queue`: `SKIP LOCKED` claims, `UNNEST` batches) and `LISTEN/NOTIFY`.

mod publish;
mod queue;

use super::group::{PublishJob, PublisherStats};
use super::sql::{
    Backend, Reworded, accept_reworded_migrations, map_sqlx_error, migration_error, postgres_text,
    sqlx_exec, store_by_role,
};
use super::*;
use async_trait::async_trait;
use publish::run_publisher;
use sqlx::PgConnection;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::{Notify, mpsc, watch};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Migrations reworded since their release (see [`accept_reworded_migrations`]).
const REWORDED: &[Reworded] = &[Reworded {
    version: 2,
    released_checksum: "e5e4a5ca84488d7e721c1ff2b3f16c4b2a8aa5a25f24fc2e55caa59bcb1f0b9771fc9c909a6637599e12e4a80e190564",
}];

/// The `NOTIFY` channel on which every write that makes deliveries due announces it.
pub const WORK_CHANNEL: &str = "hookd_work";
/// The announcement on [`WORK_CHANNEL`], run inside the transaction that queued the work.
const ANNOUNCE_WORK: &str = "SELECT pg_notify('hookd_work', '')";

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

    /// The publisher's counters, to read after the store is split into roles.
    pub fn stats(&self) -> Arc<PublisherStats> {
        self.stats.clone()
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
    accept_reworded_migrations::<sqlx::Postgres>(pool, &MIGRATOR, REWORDED).await?;
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| migration_error(e, &MIGRATOR))
}

/// Maps driver errors onto the store's three kinds: a unique violation is a conflict; whatever means
/// "cannot serve this now, try again" is unavailable (503); the rest is internal.
fn map_err(error: sqlx::Error) -> StoreError {
    map_sqlx_error(error, |db| {
        db.code().is_some_and(|code| is_unavailable(&code))
    })
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
    sqlx::query(ANNOUNCE_WORK)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    Ok(())
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
// The shared statements, in this dialect
// ---------------------------------------------------------------------------------------------

sqlx_exec!(sqlx::Postgres, PgRow, map_err, |text| Cow::Borrowed(
    postgres_text(&text)
));

/// PostgreSQL runs the shared statements with `$N` placeholders, locks the rows a write reads (several
/// nodes write at once) and announces new work to every node.
#[async_trait]
impl Backend for sqlx::Postgres {
    type Row = PgRow;
    type Pool = PgPool;
    type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const DATABASE_BYTES: &'static str = "SELECT pg_database_size(current_database()) AS bytes";
    const MIGRATIONS_TABLE: &'static str = "SELECT to_regclass('_sqlx_migrations')::text AS name";
    const FOR_SHARE: &'static str = " FOR SHARE";
    const ANNOUNCE_WORK: Option<&'static str> = Some(ANNOUNCE_WORK);
    const LEASED_HINT: &'static str = "";
    /// `ARRAY(…)` makes the pick run once (an init plan); as a join or `IN`, a table without
    /// statistics yet got a nested loop that re-ran it per row (2.6 s for 1,000 of 5,000 rows). The
    /// outer conditions repeat the inner ones: a row that a worker claimed between the pick and the
    /// update is rechecked on its new version and left alone.
    const RECOVER_SOME: &'static str =
        "UPDATE deliveries SET state = 'pending', attempts_before = attempts_before + attempts, attempts = 0,
                    next_attempt_at = ?5, updated_at = ?5
          WHERE id = ANY(ARRAY(SELECT id FROM deliveries
                                WHERE subscription_id = ?1 AND state IN ('failed', 'dead')
                                  AND updated_at >= ?2 AND updated_at < ?3
                                LIMIT ?4))
            AND subscription_id = ?1 AND state IN ('failed', 'dead')
            AND updated_at >= ?2 AND updated_at < ?3";

    async fn begin_write(pool: &PgPool) -> StoreResult<Self::Tx> {
        pool.begin().await.map_err(map_err)
    }

    async fn commit(tx: Self::Tx) -> StoreResult<()> {
        tx.commit().await.map_err(map_err)
    }
}

impl PgStore {
    /// The store by role: the shared statements on this node's pool, publishing through its
    /// group-commit task, the queue with `SKIP LOCKED` claims.
    pub fn into_store(self) -> Store {
        store_by_role::<sqlx::Postgres, _>(self.pool.clone(), self)
    }
}

#[async_trait]
impl PublishStore for PgStore {
    async fn publish(&self, events: Vec<NewEvent>) -> StoreResult<Vec<Published>> {
        super::group::submit(&self.publisher, events).await
    }
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
