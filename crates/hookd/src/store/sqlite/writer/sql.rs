//! `rusqlite` plumbing for the writer thread: opening its connection, error mapping, row access and
//! statements over many rows.

use crate::store::sql::decode::RowExt;
use crate::store::{StoreError, StoreResult};
use rusqlite::{Connection, ErrorCode, OpenFlags, Row, Statement, ToSql, ffi};
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

/// Prepared statements kept per connection: the writer's fixed statements plus up to nine chunk
/// sizes of each [`MultiRow`].
const STATEMENT_CACHE: usize = 128;

/// The writer's `wal_autocheckpoint`: a backstop only (64 MiB of WAL), as the checkpointer thread
/// ([`super::checkpoint`]) copies the WAL into the database every few hundred milliseconds.
pub(super) const WRITER_AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// Opens the writer's connection to the database the pool created and migrated, with the pool's
/// settings (WAL, foreign keys, busy timeout).
pub(super) fn open(path: &Path, busy_timeout: Duration) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(map_err)?;
    conn.busy_timeout(busy_timeout).map_err(map_err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(map_err)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(map_err)?;
    conn.pragma_update(None, "wal_autocheckpoint", WRITER_AUTOCHECKPOINT_PAGES)
        .map_err(map_err)?;
    // Statement journals in memory. Inside the round's transaction every statement that may fail
    // on a constraint keeps a journal of the pages it changes, so that it can be undone alone;
    // past 64 KiB SQLite spills it to a temporary file (created, written a page at a time,
    // unlinked: measured ≈ 3,700 page writes and 25–100 file creations a second at full load,
    // almost as many writes as the WAL's). A journal holds at most the pages one statement
    // touches (a few MiB for a group of 2,000 events).
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(map_err)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// A writer connection to a fresh database `hookd.db` in `dir`, migrated as the store does it
/// (through an sqlx pool).
#[cfg(test)]
pub(super) async fn migrated(dir: &Path) -> Connection {
    let path = dir.join("hookd.db");
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    crate::store::sqlite::MIGRATOR.run(&pool).await.unwrap();
    pool.close().await;
    open(&path, Duration::from_secs(5)).unwrap()
}

/// Maps driver errors onto the store's three kinds, as `sqlite::map_err` does for sqlx: a unique or
/// primary key violation is a conflict; busy, locked, read-only, I/O, full and cannot-open mean
/// "cannot write now", i.e. unavailable.
pub(super) fn map_err(error: rusqlite::Error) -> StoreError {
    let rusqlite::Error::SqliteFailure(failure, message) = &error else {
        return StoreError::Internal(error.to_string());
    };
    let text = message.clone().unwrap_or_else(|| failure.to_string());
    match failure.code {
        ErrorCode::ConstraintViolation
            if matches!(
                failure.extended_code,
                ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ) =>
        {
            StoreError::Conflict(text)
        }
        ErrorCode::DatabaseBusy
        | ErrorCode::DatabaseLocked
        | ErrorCode::ReadOnly
        | ErrorCode::SystemIoFailure
        | ErrorCode::DiskFull
        | ErrorCode::CannotOpen => StoreError::Unavailable(text),
        _ => StoreError::Internal(text),
    }
}

/// A row read by column name, with the names looked up once per statement rather than once per
/// value: `rusqlite`'s by-name access asks SQLite for every column's name on each call, which was
/// the writer's largest single cost when decoding claimed rows (≈ 25 columns each).
pub(super) struct NamedRow<'a, 'r> {
    row: &'a Row<'r>,
    names: &'a [String],
}

impl NamedRow<'_, '_> {
    fn get<T: rusqlite::types::FromSql>(&self, column: &str) -> T {
        let Some(index) = self
            .names
            .iter()
            .position(|name| name.eq_ignore_ascii_case(column))
        else {
            panic!("column {column}: no such column")
        };
        self.row
            .get(index)
            .unwrap_or_else(|e| panic!("column {column}: {e}"))
    }
}

/// Columns as the schema declares them; a mismatch is a bug in a query, as with sqlx's `Row::get`.
impl RowExt for NamedRow<'_, '_> {
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
        self.int(column) == 1
    }
    fn bytes(&self, column: &str) -> Vec<u8> {
        self.get(column)
    }
    fn opt_float(&self, column: &str) -> Option<f64> {
        self.get(column)
    }
}

fn column_names(statement: &Statement<'_>) -> Vec<String> {
    statement
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// Runs a cached statement with `bind`'s values and returns what `read` makes of each row.
pub(super) fn query<R>(
    conn: &Connection,
    sql: &str,
    bind: impl FnOnce(&mut Binder<'_, '_>),
    mut read: impl FnMut(&NamedRow<'_, '_>) -> StoreResult<R>,
) -> StoreResult<Vec<R>> {
    let mut statement = conn.prepare_cached(sql).map_err(map_err)?;
    let names = column_names(&statement);
    let mut binder = Binder::new(&mut statement);
    bind(&mut binder);
    binder.finish()?;
    let mut rows = statement.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        out.push(read(&NamedRow { row, names: &names })?);
    }
    Ok(out)
}

/// Runs a cached statement with `bind`'s values; returns the rows it changed.
pub(super) fn execute(
    conn: &Connection,
    sql: &str,
    bind: impl FnOnce(&mut Binder<'_, '_>),
) -> StoreResult<u64> {
    let mut statement = conn.prepare_cached(sql).map_err(map_err)?;
    let mut binder = Binder::new(&mut statement);
    bind(&mut binder);
    binder.finish()?;
    let changed = statement.raw_execute().map_err(map_err)?;
    Ok(changed as u64)
}

/// Binds values to a statement's parameters in order (`?1`, `?2`, … or anonymous `?`), keeping
/// the first error for [`Binder::finish`].
pub(super) struct Binder<'s, 'c> {
    statement: &'s mut Statement<'c>,
    next: usize,
    failed: Option<rusqlite::Error>,
}

impl<'s, 'c> Binder<'s, 'c> {
    fn new(statement: &'s mut Statement<'c>) -> Self {
        Self {
            statement,
            next: 0,
            failed: None,
        }
    }

    pub fn bind(&mut self, value: impl ToSql) -> &mut Self {
        self.next += 1;
        if self.failed.is_none()
            && let Err(error) = self.statement.raw_bind_parameter(self.next, value)
        {
            self.failed = Some(error);
        }
        self
    }

    fn finish(self) -> StoreResult<()> {
        if let Some(error) = self.failed {
            return Err(map_err(error));
        }
        let expected = self.statement.parameter_count();
        match self.next == expected {
            true => Ok(()),
            false => Err(StoreError::Internal(format!(
                "{} values bound to a statement with {expected} parameters",
                self.next
            ))),
        }
    }
}

/// A statement run over many rows: `head`, then `VALUES (?, …), …` with `columns` placeholders
/// per row, then `tail`.
pub(in crate::store) struct MultiRow {
    head: &'static str,
    columns: usize,
    tail: &'static str,
    /// The statement text for 1, 2, 4, … [`MAX_ROWS_PER_STATEMENT`] rows, built once.
    texts: OnceLock<Vec<String>>,
}

/// Most rows per statement (SQLite allows 32,766 bound parameters).
const MAX_ROWS_PER_STATEMENT: usize = 256;

impl MultiRow {
    pub const fn new(head: &'static str, columns: usize, tail: &'static str) -> Self {
        Self {
            head,
            columns,
            tail,
            texts: OnceLock::new(),
        }
    }

    /// Runs the statement over `rows`, binding each with `bind`, in chunks whose sizes are powers
    /// of two (so at most nine distinct statements are prepared and cached per `MultiRow`). Values
    /// are bound, not embedded in JSON: parsing a JSON argument per row cost more than the writes.
    /// Returns what `read` makes of the rows the statement returns (`RETURNING`), all chunks
    /// together.
    pub fn run<T, R>(
        &self,
        conn: &Connection,
        rows: &[T],
        bind: impl Fn(&mut Binder<'_, '_>, &T),
        mut read: impl FnMut(&NamedRow<'_, '_>) -> StoreResult<R>,
    ) -> StoreResult<Vec<R>> {
        let mut returned = Vec::new();
        let mut rest = rows;
        while !rest.is_empty() {
            let size = chunk_size(rest.len());
            let (chunk, tail) = rest.split_at(size);
            let sql = self.text(size);
            returned.extend(query(
                conn,
                sql,
                |binder| chunk.iter().for_each(|row| bind(binder, row)),
                &mut read,
            )?);
            rest = tail;
        }
        Ok(returned)
    }

    fn text(&self, rows: usize) -> &str {
        let texts = self.texts.get_or_init(|| {
            let row = format!("({})", vec!["?"; self.columns].join(", "));
            std::iter::successors(Some(1), |n| {
                (n * 2 <= MAX_ROWS_PER_STATEMENT).then_some(n * 2)
            })
            .map(|n| {
                format!(
                    "{} VALUES {} {}",
                    self.head,
                    vec![row.as_str(); n].join(", "),
                    self.tail
                )
            })
            .collect()
        });
        &texts[rows.trailing_zeros() as usize]
    }
}

/// The largest power of two not above `remaining`, capped at [`MAX_ROWS_PER_STATEMENT`].
fn chunk_size(remaining: usize) -> usize {
    match remaining >= MAX_ROWS_PER_STATEMENT {
        true => MAX_ROWS_PER_STATEMENT,
        false => 1 << (usize::BITS - 1 - remaining.leading_zeros()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The writer's own connection: a write that finds no room (`SQLITE_FULL`, as from a full disk)
    /// is "unavailable" (503, retry), and the connection writes again once there is room.
    #[test]
    fn a_full_database_is_unavailable_on_the_writer() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v BLOB); PRAGMA max_page_count = 4;")
            .unwrap();
        let full = conn
            .execute("INSERT INTO t VALUES (zeroblob(100000))", [])
            .unwrap_err();
        assert!(matches!(map_err(full), StoreError::Unavailable(_)));
        conn.execute_batch("PRAGMA max_page_count = 1000").unwrap();
        conn.execute("INSERT INTO t VALUES (zeroblob(100000))", [])
            .unwrap();
    }

    #[test]
    fn chunks_are_powers_of_two_up_to_the_cap() {
        let mut sizes = Vec::new();
        let mut left = 1_000;
        while left > 0 {
            let size = chunk_size(left);
            sizes.push(size);
            left -= size;
        }
        assert_eq!(sizes, vec![256, 256, 256, 128, 64, 32, 8]);
        assert_eq!(chunk_size(1), 1);
        assert_eq!(chunk_size(3), 2);
    }

    #[test]
    fn a_multi_row_statement_inserts_every_row_and_returns_what_it_returns() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)")
            .unwrap();
        static INSERT: MultiRow = MultiRow::new("INSERT INTO t (a, b)", 2, "RETURNING a");
        let rows: Vec<(i64, String)> = (0..300).map(|i| (i, format!("row {i}"))).collect();
        let returned = INSERT
            .run(
                &conn,
                &rows,
                |q, (a, b)| {
                    q.bind(a).bind(b);
                },
                |row| Ok(row.int("a")),
            )
            .unwrap();
        assert_eq!(returned, (0..300).collect::<Vec<_>>());
        assert!(
            INSERT
                .text(4)
                .ends_with("VALUES (?, ?), (?, ?), (?, ?), (?, ?) RETURNING a")
        );
        let count: i64 = conn
            .query_row("SELECT COUNT(*) FROM t WHERE b = 'row ' || a", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(count, 300);
    }

    #[test]
    fn statement_journals_stay_in_memory_and_still_undo_one_statement() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(&dir.path().join("t.db"), Duration::from_secs(1)).unwrap();
        let temp_store: i64 = conn
            .query_row("PRAGMA temp_store", [], |r| r.get(0))
            .unwrap();
        assert_eq!(temp_store, 2, "2 is MEMORY");
        conn.execute_batch("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT UNIQUE)")
            .unwrap();
        let tx = conn.transaction().unwrap();
        execute(&tx, "INSERT INTO t (a, b) VALUES (0, 'kept')", |_| {}).unwrap();
        // Far more than the 64 KiB that would spill the journal to a file: it must still undo
        // every row this statement wrote before its last row failed.
        let failing = execute(
            &tx,
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
             INSERT INTO t (a, b)
             SELECT i, CASE i WHEN 5000 THEN 'kept' ELSE printf('%0500d', i) END FROM n",
            |_| {},
        );
        assert!(
            matches!(failing, Err(StoreError::Conflict(_))),
            "{failing:?}"
        );
        tx.commit().unwrap();
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
    }

    #[test]
    fn binding_too_few_values_is_an_error_not_a_null() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a INTEGER)").unwrap();
        let error = execute(&conn, "INSERT INTO t (a) VALUES (?1), (?2)", |q| {
            q.bind(1);
        })
        .unwrap_err();
        assert!(matches!(error, StoreError::Internal(_)), "{error:?}");
    }

    #[test]
    fn a_unique_violation_is_a_conflict() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a INTEGER PRIMARY KEY)")
            .unwrap();
        execute(&conn, "INSERT INTO t (a) VALUES (?1)", |q| {
            q.bind(1);
        })
        .unwrap();
        let error = execute(&conn, "INSERT INTO t (a) VALUES (?1)", |q| {
            q.bind(1);
        })
        .unwrap_err();
        assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    }
}
