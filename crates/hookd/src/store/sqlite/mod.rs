//! The embedded SQLite backend: WAL mode, `synchronous=FULL` by default, forward-only migrations, and
//! one writer thread (`writer`) that group-commits every hot-path write: concurrent
//! publishes, claims and outcomes share one transaction and one fsync.
//!
//! The statements that mean the same on PostgreSQL are in `super::sql` and run here on the reader
//! pool; this folder holds what is SQLite's own: opening the file, the writer thread, and the
//! queue's reads that name SQLite's indexes.

pub mod backup;
#[cfg(test)]
mod plans;
mod writer;

use super::group::{PublishJob, PublisherStats};
use super::sql::decode::RowExt;
use super::sql::{
    Backend, Exec, Reworded, Sql, accept_reworded_migrations, map_sqlx_error, migration_error,
    sqlx_exec, store_by_role,
};
use super::*;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use writer::{RecordJob, WriteJob, WriterOptions, spawn_writer, submit};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Migrations reworded since their release (see [`accept_reworded_migrations`]).
const REWORDED: &[Reworded] = &[Reworded {
    version: 2,
    released_checksum: "b0fd549d2f148e94797da794b6e13d95e7d67c909105b737dec9d4f91165e3243103ca8fc52fe6e2ddcc409fc32517ec",
}];

/// Applies pending migrations (after accepting reworded ones).
async fn run_migrations(pool: &SqlitePool) -> StoreResult<()> {
    accept_reworded_migrations::<sqlx::Sqlite>(pool, &MIGRATOR, REWORDED).await?;
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| migration_error(e, &MIGRATOR))
}

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
        create_database_file(&options)?;
        let connect = connect_options(&options);
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(connect.clone())
            .await
            .map_err(map_err)?;
        run_migrations(&pool).await?;
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

    /// The publisher's counters, to read after the store is split into roles.
    pub fn stats(&self) -> Arc<PublisherStats> {
        self.stats.clone()
    }

    /// Applies migrations without starting anything (for `hookd migrate`).
    pub async fn migrate(options: SqliteOptions) -> StoreResult<Vec<i64>> {
        create_database_file(&options)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(connect_options(&options))
            .await
            .map_err(map_err)?;
        run_migrations(&pool).await?;
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

/// Creates the database file, empty and private (0600), unless it exists. SQLite gives the `-wal`
/// and `-shm` files it creates beside it the database file's mode, so they are private too.
fn create_database_file(options: &SqliteOptions) -> StoreResult<()> {
    crate::data_dir::create_private_file(&options.path).map_err(|error| {
        StoreError::Unavailable(format!("cannot create {}: {error}", options.path.display()))
    })
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
    map_sqlx_error(error, |db| {
        let primary = db.code().and_then(|code| code.parse::<i64>().ok());
        matches!(
            primary.map(|code| code & 0xff),
            Some(5 | 6 | 8 | 10 | 13 | 14)
        )
    })
}

sqlx_exec!(sqlx::Sqlite, SqliteRow, map_err, |text| text);

/// SQLite runs the shared statements as written.
#[async_trait]
impl Backend for sqlx::Sqlite {
    type Row = SqliteRow;
    type Pool = SqlitePool;
    type Tx = sqlx::Transaction<'static, sqlx::Sqlite>;

    const FOR_UPDATE: &'static str = "";
    /// The file's pages; free pages (of deleted rows) are reused before the file grows.
    const DATABASE_BYTES: &'static str =
        "SELECT page_count * page_size AS bytes FROM pragma_page_count(), pragma_page_size()";
    const MIGRATIONS_TABLE: &'static str =
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'";
    const FOR_SHARE: &'static str = "";
    const ANNOUNCE_WORK: Option<&'static str> = None;
    /// Left alone, SQLite walks `deliveries_by_time` for the order, through the whole log when few
    /// rows are in flight, where the leased rows (as many as the leases) are quickly sorted.
    const LEASED_HINT: &'static str = "INDEXED BY deliveries_leased";
    const RECOVER_SOME: &'static str =
        "UPDATE deliveries SET state = 'pending', attempts_before = attempts_before + attempts, attempts = 0,
                    next_attempt_at = ?5, updated_at = ?5
      WHERE id IN (SELECT id FROM deliveries
                    WHERE subscription_id = ?1 AND state IN ('failed', 'dead')
                      AND updated_at >= ?2 AND updated_at < ?3
                    LIMIT ?4)
        AND subscription_id = ?1 AND state IN ('failed', 'dead')
        AND updated_at >= ?2 AND updated_at < ?3";

    async fn begin_write(pool: &SqlitePool) -> StoreResult<Self::Tx> {
        pool.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)
    }

    async fn commit(tx: Self::Tx) -> StoreResult<()> {
        tx.commit().await.map_err(map_err)
    }
}

impl SqliteStore {
    /// The store by role: the shared statements on the reader pool, publishing and the queue
    /// through the writer thread.
    pub fn into_store(self) -> Store {
        store_by_role::<sqlx::Sqlite, _>(self.pool.clone(), self)
    }
}

#[async_trait]
impl PublishStore for SqliteStore {
    async fn publish(&self, events: Vec<NewEvent>) -> StoreResult<Vec<Published>> {
        submit(&self.writer, |reply| {
            WriteJob::Publish(PublishJob { events, reply })
        })
        .await
    }
}

#[async_trait]
impl QueueStore for SqliteStore {
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

    async fn rescue_leases(&self, rescue: Rescue) -> StoreResult<u64> {
        submit(&self.writer, |reply| WriteJob::Rescue { rescue, reply }).await
    }

    /// The first row of `deliveries_due`: one seek.
    async fn next_due_at(&self) -> StoreResult<Option<UnixMs>> {
        let sql = Sql::new(
            "SELECT MIN(next_attempt_at) AS due FROM deliveries INDEXED BY deliveries_due
              WHERE state IN ('pending', 'failed')",
        );
        let mut pool = self.pool.clone();
        Ok(pool.one(sql).await?.opt_int("due"))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A write that finds no room (`SQLITE_FULL`; here from `max_page_count`, in production from a
    /// full disk) is "unavailable": the API answers 503 with `Retry-After`, never 500.
    #[tokio::test]
    async fn a_full_database_is_unavailable_on_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("full.db"))
            .create_if_missing(true);
        let mut conn = sqlx::ConnectOptions::connect(&options).await.unwrap();
        sqlx::raw_sql("CREATE TABLE t (v BLOB); PRAGMA max_page_count = 4;")
            .execute(&mut conn)
            .await
            .unwrap();
        let full = sqlx::query("INSERT INTO t VALUES (zeroblob(100000))")
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert!(matches!(map_err(full), StoreError::Unavailable(_)));
    }
}
