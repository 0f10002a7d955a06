//! Statements written once for both backends, and the store roles that need nothing else.
//!
//! A statement is an [`Sql`]: its text, written with `?N` placeholders (SQLite's own form), and its
//! arguments as [`Arg`] values. A [`Backend`] runs it: SQLite as written, PostgreSQL with the
//! placeholders rewritten to `$N` once per distinct text ([`postgres_text`]). What differs between
//! the dialects in these statements is named by the backend (row locks, a statement that announces
//! new work to other nodes, the `in_flight` index hint); everything else is one text.
//!
//! [`SqlStore`] implements the roles whose statements mean the same on both backends (keys, event
//! types, receipts, subscriptions, the delivery log and operator actions, secrets at rest, the
//! dashboard's queries). Publishing and the queue are each backend's own (the SQLite writer thread,
//! PostgreSQL's `SKIP LOCKED` claims and `UNNEST` batches).

mod admin;
pub(crate) mod decode;
mod deliveries;
mod nodes;
mod owners;
pub(crate) mod retention;
mod secrets;
pub(crate) mod subscriptions;
pub(crate) mod ui;

use super::{StoreError, StoreResult};
use async_trait::async_trait;
use decode::RowExt;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

/// One argument of a statement. `None` binds SQL `NULL` (typed, so PostgreSQL knows the parameter's
/// type without a cast).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
    Flag(Option<bool>),
    Bytes(Vec<u8>),
}

impl From<i64> for Arg {
    fn from(value: i64) -> Self {
        Self::Int(Some(value))
    }
}
impl From<Option<i64>> for Arg {
    fn from(value: Option<i64>) -> Self {
        Self::Int(value)
    }
}
impl From<&str> for Arg {
    fn from(value: &str) -> Self {
        Self::Text(Some(value.to_owned()))
    }
}
impl From<String> for Arg {
    fn from(value: String) -> Self {
        Self::Text(Some(value))
    }
}
impl From<&String> for Arg {
    fn from(value: &String) -> Self {
        Self::Text(Some(value.clone()))
    }
}
impl From<Option<String>> for Arg {
    fn from(value: Option<String>) -> Self {
        Self::Text(value)
    }
}
impl From<&Option<String>> for Arg {
    fn from(value: &Option<String>) -> Self {
        Self::Text(value.clone())
    }
}
impl From<Option<&str>> for Arg {
    fn from(value: Option<&str>) -> Self {
        Self::Text(value.map(str::to_owned))
    }
}
impl From<bool> for Arg {
    fn from(value: bool) -> Self {
        Self::Flag(Some(value))
    }
}
impl From<Option<bool>> for Arg {
    fn from(value: Option<bool>) -> Self {
        Self::Flag(value)
    }
}
impl From<&[u8]> for Arg {
    fn from(value: &[u8]) -> Self {
        Self::Bytes(value.to_vec())
    }
}
impl From<Vec<u8>> for Arg {
    fn from(value: Vec<u8>) -> Self {
        Self::Bytes(value)
    }
}
impl From<&Vec<u8>> for Arg {
    fn from(value: &Vec<u8>) -> Self {
        Self::Bytes(value.clone())
    }
}

/// A statement and its arguments, in the order of their `?N` numbers.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    pub text: Cow<'static, str>,
    pub args: Vec<Arg>,
}

impl Sql {
    pub fn new(text: &'static str) -> Self {
        Self {
            text: Cow::Borrowed(text),
            args: Vec::new(),
        }
    }

    /// A statement assembled at run time (from a closed set of fragments, never from input).
    pub fn dynamic(text: String) -> Self {
        Self {
            text: Cow::Owned(text),
            args: Vec::new(),
        }
    }

    pub fn bind(mut self, arg: impl Into<Arg>) -> Self {
        self.args.push(arg.into());
        self
    }
}

/// Somewhere to run statements: a pool (each statement on its own) or an open transaction.
#[async_trait]
pub(crate) trait Exec: Send {
    type Row: RowExt + Send + Sync;
    async fn all(&mut self, sql: Sql) -> StoreResult<Vec<Self::Row>>;
    async fn optional(&mut self, sql: Sql) -> StoreResult<Option<Self::Row>>;
    /// Rows changed.
    async fn run(&mut self, sql: Sql) -> StoreResult<u64>;

    async fn one(&mut self, sql: Sql) -> StoreResult<Self::Row> {
        self.optional(sql)
            .await?
            .ok_or_else(|| StoreError::Internal("a statement returned no row".into()))
    }
}

/// What a backend brings to the shared statements: where to run them, and the few places where the
/// dialects truly differ.
#[async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    type Row: RowExt + Send + Sync;
    type Pool: Exec<Row = Self::Row> + Clone + Send + Sync;
    type Tx: Exec<Row = Self::Row> + Send;

    /// Appended to a read inside a write transaction whose rows the transaction then changes:
    /// PostgreSQL locks them (several nodes write at once); SQLite has one writer at a time and
    /// its write transactions take the lock at `BEGIN`.
    const FOR_UPDATE: &'static str;
    /// Appended to a read of a row that a concurrent writer must not change before this
    /// transaction ends (the sealing key while a secret is written).
    const FOR_SHARE: &'static str;
    /// Run inside a transaction that made deliveries due, so that every node's worker starts on
    /// them (PostgreSQL's `NOTIFY`); `None` where only one process uses the database.
    const ANNOUNCE_WORK: Option<&'static str>;
    /// How the delivery log's `in_flight` filter reads the leased rows (SQLite names the index:
    /// left alone it walks the whole log by time; PostgreSQL plans by statistics).
    const LEASED_HINT: &'static str;
    /// Re-queues at most `?4` failed or dead deliveries of subscription `?1` that failed in
    /// `[?2, ?3)`, due at `?5`. The pick is dialect-specific (see each backend).
    const RECOVER_SOME: &'static str;

    /// One row, `bytes`: how large the database is (SQLite: its pages; PostgreSQL:
    /// `pg_database_size`).
    const DATABASE_BYTES: &'static str;

    /// One row naming sqlx's migration table when it exists (`name` NULL, or no row, when not).
    const MIGRATIONS_TABLE: &'static str;

    /// A transaction that will write. SQLite takes the write lock at once (`BEGIN IMMEDIATE`), so
    /// that two writers never deadlock upgrading a read lock.
    async fn begin_write(pool: &Self::Pool) -> StoreResult<Self::Tx>;
    async fn commit(tx: Self::Tx) -> StoreResult<()>;
}

/// Announces new work from inside `tx` where the backend does that.
pub(crate) async fn announce_work<B: Backend>(tx: &mut B::Tx) -> StoreResult<()> {
    if let Some(statement) = B::ANNOUNCE_WORK {
        tx.run(Sql::new(statement)).await?;
    }
    Ok(())
}

/// The store by role: the shared statements on `pool`, publishing and the queue on `engine` (each
/// backend's own).
pub(crate) fn store_by_role<B, E>(pool: B::Pool, engine: E) -> super::Store
where
    B: Backend,
    E: super::PublishStore + super::QueueStore,
{
    let shared = std::sync::Arc::new(SqlStore::<B>::new(pool));
    let engine = std::sync::Arc::new(engine);
    super::Store {
        admin: shared.clone(),
        subscriptions: shared.clone(),
        publisher: engine.clone(),
        queue: engine,
        deliveries: shared.clone(),
        secrets: shared.clone(),
        nodes: shared.clone(),
        owners: shared.clone(),
        retention: shared.clone(),
        ui: shared,
    }
}

/// Maps a driver error onto the store's kinds: a unique violation is a conflict; a database error
/// that `unavailable` recognises, lost connections and an exhausted pool mean "cannot serve this
/// now, try again" (503); the rest is internal.
pub(crate) fn map_sqlx_error(
    error: sqlx::Error,
    unavailable: impl Fn(&dyn sqlx::error::DatabaseError) -> bool,
) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_owned())
        }
        sqlx::Error::Database(db) if unavailable(db.as_ref()) => {
            StoreError::Unavailable(db.message().to_owned())
        }
        sqlx::Error::Database(db) => StoreError::Internal(db.message().to_owned()),
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
        _ => StoreError::Internal(error.to_string()),
    }
}

/// A failed migration run as the operator should read it. A database that records a migration this
/// binary does not have was migrated by a newer hookd: serving it with this binary's statements
/// could corrupt it, so it is refused, saying which hookd to run.
pub(crate) fn migration_error(
    error: sqlx::migrate::MigrateError,
    migrator: &sqlx::migrate::Migrator,
) -> StoreError {
    match error {
        sqlx::migrate::MigrateError::VersionMissing(version) => {
            let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
            StoreError::Internal(format!(
                "the database is at migration {version}, newer than this hookd knows (migration \
                 {known}): it was migrated by a newer hookd; run that version or a later one"
            ))
        }
        other => StoreError::Internal(format!("migration failed: {other}")),
    }
}

/// A released migration whose comments were reworded later (its statements are unchanged): its
/// version and the SHA-384 of its text as released, in hex.
pub(crate) struct Reworded {
    pub version: i64,
    pub released_checksum: &'static str,
}

/// Moves the checksum recorded for each reworded migration from its released text to the current
/// one, so that the migrator (which refuses a recorded checksum that differs) opens a database
/// migrated before the rewording. A fresh database, or one already moved, is left alone.
pub(crate) async fn accept_reworded_migrations<B: Backend>(
    pool: &B::Pool,
    migrator: &sqlx::migrate::Migrator,
    reworded: &[Reworded],
) -> StoreResult<()> {
    let mut db = pool.clone();
    let table = db.optional(Sql::new(B::MIGRATIONS_TABLE)).await?;
    if table.and_then(|row| row.opt_text("name")).is_none() {
        return Ok(());
    }
    for migration in reworded {
        let Some(current) = migrator.iter().find(|m| m.version == migration.version) else {
            continue;
        };
        let released = hex::decode(migration.released_checksum)
            .map_err(|e| StoreError::Internal(format!("released checksum: {e}")))?;
        let update = Sql::new(
            "UPDATE _sqlx_migrations SET checksum = ?1 WHERE version = ?2 AND checksum = ?3",
        )
        .bind(current.checksum.to_vec())
        .bind(migration.version)
        .bind(released);
        db.run(update).await?;
    }
    Ok(())
}

/// The shared roles over one backend's pool.
pub(crate) struct SqlStore<B: Backend> {
    pool: B::Pool,
}

impl<B: Backend> SqlStore<B> {
    pub fn new(pool: B::Pool) -> Self {
        Self { pool }
    }

    /// The pool, to run one statement on (a clone is a reference count).
    fn db(&self) -> B::Pool {
        self.pool.clone()
    }
}

/// A statement's text for PostgreSQL: each `?N` becomes `$N` (a bare `?` takes the next number),
/// outside quoted strings and identifiers. Each distinct text is rewritten once and kept: the
/// statements are a closed set (the dynamic ones are assembled from fixed fragments).
pub(crate) fn postgres_text(text: &str) -> &'static str {
    static REWRITTEN: LazyLock<Mutex<HashMap<String, &'static str>>> =
        LazyLock::new(Default::default);
    let mut cache = REWRITTEN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(done) = cache.get(text) {
        return done;
    }
    let done: &'static str = Box::leak(rewrite_placeholders(text).into_boxed_str());
    cache.insert(text.to_owned(), done);
    done
}

fn rewrite_placeholders(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut quote: Option<char> = None;
    let mut next = 1u32;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                match digits.parse::<u32>() {
                    Ok(n) => {
                        out.push('$');
                        out.push_str(&digits);
                        next = n + 1;
                    }
                    Err(_) => {
                        out.push('$');
                        out.push_str(&next.to_string());
                        next += 1;
                    }
                }
            }
            (None, c) => out.push(c),
        }
    }
    out
}

/// Implements [`Exec`] for an sqlx driver's pool and transactions, and [`RowExt`] for its rows:
/// `sql_backend!(sqlx::Sqlite, SqliteRow, map_err, |text| text)`. The fourth argument turns a
/// statement's text into the driver's.
macro_rules! sqlx_exec {
    ($db:ty, $row:ty, $map_err:path, $text:expr) => {
        impl $crate::store::sql::decode::RowExt for $row {
            fn text(&self, column: &str) -> String {
                sqlx::Row::get(self, column)
            }
            fn opt_text(&self, column: &str) -> Option<String> {
                sqlx::Row::get(self, column)
            }
            fn int(&self, column: &str) -> i64 {
                sqlx::Row::get(self, column)
            }
            fn opt_int(&self, column: &str) -> Option<i64> {
                sqlx::Row::get(self, column)
            }
            fn flag(&self, column: &str) -> bool {
                sqlx::Row::get(self, column)
            }
            fn bytes(&self, column: &str) -> Vec<u8> {
                sqlx::Row::get(self, column)
            }
            fn opt_float(&self, column: &str) -> Option<f64> {
                sqlx::Row::get(self, column)
            }
        }

        fn bound(
            sql: $crate::store::sql::Sql,
        ) -> sqlx::query::Query<'static, $db, <$db as sqlx::Database>::Arguments> {
            use $crate::store::sql::Arg;
            let text: fn(std::borrow::Cow<'static, str>) -> std::borrow::Cow<'static, str> = $text;
            let mut query = sqlx::query(sqlx::AssertSqlSafe(text(sql.text)));
            for arg in sql.args {
                query = match arg {
                    Arg::Int(value) => query.bind(value),
                    Arg::Text(value) => query.bind(value),
                    Arg::Flag(value) => query.bind(value),
                    Arg::Bytes(value) => query.bind(value),
                };
            }
            query
        }

        #[async_trait::async_trait]
        impl $crate::store::sql::Exec for sqlx::Pool<$db> {
            type Row = $row;
            async fn all(
                &mut self,
                sql: $crate::store::sql::Sql,
            ) -> $crate::store::StoreResult<Vec<$row>> {
                bound(sql).fetch_all(&*self).await.map_err($map_err)
            }
            async fn optional(
                &mut self,
                sql: $crate::store::sql::Sql,
            ) -> $crate::store::StoreResult<Option<$row>> {
                bound(sql).fetch_optional(&*self).await.map_err($map_err)
            }
            async fn run(
                &mut self,
                sql: $crate::store::sql::Sql,
            ) -> $crate::store::StoreResult<u64> {
                let done = bound(sql).execute(&*self).await.map_err($map_err)?;
                Ok(done.rows_affected())
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::sql::Exec for sqlx::Transaction<'static, $db> {
            type Row = $row;
            async fn all(
                &mut self,
                sql: $crate::store::sql::Sql,
            ) -> $crate::store::StoreResult<Vec<$row>> {
                bound(sql).fetch_all(&mut **self).await.map_err($map_err)
            }
            async fn optional(
                &mut self,
                sql: $crate::store::sql::Sql,
            ) -> $crate::store::StoreResult<Option<$row>> {
                bound(sql)
                    .fetch_optional(&mut **self)
                    .await
                    .map_err($map_err)
            }
            async fn run(
                &mut self,
                sql: $crate::store::sql::Sql,
            ) -> $crate::store::StoreResult<u64> {
                let done = bound(sql).execute(&mut **self).await.map_err($map_err)?;
                Ok(done.rows_affected())
            }
        }
    };
}
pub(crate) use sqlx_exec;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollar_numbers_outside_quotes() {
        let cases = [
            ("SELECT ?1, ?2 WHERE x = ?1", "SELECT $1, $2 WHERE x = $1"),
            ("VALUES (?, ?, ?)", "VALUES ($1, $2, $3)"),
            ("a = ?10 AND b = ?", "a = $10 AND b = $11"),
            ("x = '?1' AND y = ?1", "x = '?1' AND y = $1"),
            ("\"odd?\" = ?2", "\"odd?\" = $2"),
            ("no parameters", "no parameters"),
        ];
        for (sqlite, postgres) in cases {
            assert_eq!(rewrite_placeholders(sqlite), postgres, "{sqlite}");
        }
    }

    #[test]
    fn each_text_is_rewritten_once() {
        let first = postgres_text("SELECT ?1 AS once");
        let again = postgres_text("SELECT ?1 AS once");
        assert_eq!(first, "SELECT $1 AS once");
        assert!(std::ptr::eq(first, again));
    }
}
