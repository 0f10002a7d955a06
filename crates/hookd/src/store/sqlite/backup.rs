//! The SQL behind `hookd backup` and `hookd restore`: a consistent copy of a live database, and
//! what a copy holds (schema version, the master keys its secrets need). Files, key files and
//! messages are the command's (`crate::backup`).

use super::MIGRATOR;
use crate::store::sealed::key_id_of;
use crate::store::sql::decode::SEALED_COLUMNS;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// What a database file holds, as far as a restore needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseFacts {
    /// The latest migration applied to it.
    pub schema_version: i64,
    /// The ids of the master keys its secrets are sealed with: the sealing key the database names
    /// and the key of every `enc:v2` secret. Values of older forms name no key.
    pub key_ids: BTreeSet<String>,
}

/// Why a file cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum NotRestorable {
    #[error("it cannot be read as a SQLite database ({0})")]
    Unreadable(String),
    #[error("it fails SQLite's integrity check ({0})")]
    Corrupt(String),
    #[error("it is not a hookd database (it has no migrations table)")]
    NotHookd,
    #[error("a migration was left unfinished in it (version {0})")]
    UnfinishedMigration(i64),
    #[error(
        "its schema is at migration {found}, newer than this hookd knows (migration {known}): \
         restore it with a hookd at least as new as the one that wrote it"
    )]
    Newer { found: i64, known: i64 },
}

/// Writes a consistent copy of the database at `database` to `target`, which must not exist or be
/// empty. The database is opened read-only, and `VACUUM INTO` reads it in one read transaction: in
/// WAL mode that sees one commit and neither waits for the writer nor holds it up, so a running
/// hookd keeps publishing. The copy uses a rollback journal, so it is one self-contained file.
/// SQLite does not fsync the copy; the caller does.
pub fn copy_into(database: &Path, target: &Path, busy_timeout: Duration) -> Result<(), String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let source = Connection::open_with_flags(database, flags).map_err(|e| e.to_string())?;
    source
        .busy_timeout(busy_timeout)
        .map_err(|e| e.to_string())?;
    let target_name = target
        .to_str()
        .ok_or_else(|| format!("{} is not a UTF-8 path", target.display()))?;
    source
        .execute("VACUUM INTO ?1", [target_name])
        .map_err(|e| e.to_string())?;
    drop(source);
    let copy = Connection::open(target).map_err(|e| e.to_string())?;
    let mode: String = copy
        .query_row("PRAGMA journal_mode = DELETE", [], |row| row.get(0))
        .map_err(|e| e.to_string())?;
    match mode.eq_ignore_ascii_case("delete") {
        true => Ok(()),
        false => Err(format!("the copy stayed in journal mode {mode}")),
    }
}

/// Reads `file` (read-only) and tells whether this hookd can restore it: SQLite reads it and its
/// `quick_check` passes, it has hookd's migrations table, every migration in it finished, and none
/// is newer than this binary's.
pub fn inspect(file: &Path) -> Result<DatabaseFacts, NotRestorable> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let unreadable = |e: rusqlite::Error| NotRestorable::Unreadable(e.to_string());
    let conn = Connection::open_with_flags(file, flags).map_err(unreadable)?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |row| row.get(0))
        .map_err(unreadable)?;
    if check != "ok" {
        return Err(NotRestorable::Corrupt(check));
    }
    if !has_table(&conn, "_sqlx_migrations").map_err(unreadable)? {
        return Err(NotRestorable::NotHookd);
    }
    let unfinished: Option<i64> = conn
        .query_row(
            "SELECT MIN(version) FROM _sqlx_migrations WHERE NOT success",
            [],
            |row| row.get(0),
        )
        .map_err(unreadable)?;
    if let Some(version) = unfinished {
        return Err(NotRestorable::UnfinishedMigration(version));
    }
    let found: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations",
            [],
            |row| row.get(0),
        )
        .map_err(unreadable)?;
    let known = latest_migration();
    if found > known {
        return Err(NotRestorable::Newer { found, known });
    }
    Ok(DatabaseFacts {
        schema_version: found,
        key_ids: key_ids(&conn).map_err(unreadable)?,
    })
}

/// The latest migration this binary knows.
pub fn latest_migration() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

fn has_table(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |_| Ok(()),
    )
    .optional()
    .map(|found| found.is_some())
}

/// The master keys the database's secrets need (see [`DatabaseFacts::key_ids`]).
fn key_ids(conn: &Connection) -> rusqlite::Result<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    if has_table(conn, "sealing_key")? {
        let sealing: Option<String> = conn
            .query_row("SELECT key_id FROM sealing_key", [], |row| row.get(0))
            .optional()?
            .flatten();
        ids.extend(sealing);
    }
    if has_table(conn, "subscriptions")? {
        // Every sealed column this database's schema has (older ones lack the signing keys).
        let present: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('subscriptions')")?
            .query_map([], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let sealed: Vec<&str> = SEALED_COLUMNS
            .into_iter()
            .filter(|column| present.iter().any(|name| name == column))
            .collect();
        let text = format!("SELECT {} FROM subscriptions", sealed.join(", "));
        let mut statement = conn.prepare(&text)?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            for column in 0..sealed.len() {
                let value: Option<String> = row.get(column)?;
                ids.extend(value.as_deref().and_then(key_id_of).map(str::to_owned));
            }
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn migrated(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("hookd.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, success BOOLEAN NOT NULL);
             CREATE TABLE sealing_key (id INTEGER PRIMARY KEY, key_id TEXT);
             INSERT INTO sealing_key VALUES (1, 'aaaa');
             CREATE TABLE subscriptions (id TEXT PRIMARY KEY, secret TEXT NOT NULL,
                                         previous_secret TEXT);
             INSERT INTO subscriptions VALUES ('wh_1', 'enc:v2:bbbb:xyz', NULL),
                                              ('wh_2', 'enc:v1:old', 'enc:v2:cccc:xyz');",
        )
        .unwrap();
        let mut insert = conn
            .prepare("INSERT INTO _sqlx_migrations VALUES (?1, TRUE)")
            .unwrap();
        for version in 1..=latest_migration() {
            insert.execute([version]).unwrap();
        }
        path
    }

    #[test]
    fn a_copy_is_one_file_with_the_schema_version_and_the_keys_it_needs() {
        let dir = tempfile::tempdir().unwrap();
        let database = migrated(dir.path());
        let copy = dir.path().join("copy.db");
        copy_into(&database, &copy, Duration::from_secs(1)).unwrap();
        assert!(!dir.path().join("copy.db-wal").exists());
        let facts = inspect(&copy).unwrap();
        assert_eq!(facts.schema_version, latest_migration());
        let ids: Vec<&str> = facts.key_ids.iter().map(String::as_str).collect();
        assert_eq!(ids, ["aaaa", "bbbb", "cccc"]);
        // With the signing-key columns, a key sealing only a `v1a` key counts too.
        let conn = Connection::open(&database).unwrap();
        conn.execute_batch(
            "ALTER TABLE subscriptions ADD COLUMN signing_key TEXT;
             ALTER TABLE subscriptions ADD COLUMN previous_signing_key TEXT;
             UPDATE subscriptions SET previous_signing_key = 'enc:v2:dddd:xyz' WHERE id = 'wh_1';",
        )
        .unwrap();
        drop(conn);
        let facts = inspect(&database).unwrap();
        let ids: Vec<&str> = facts.key_ids.iter().map(String::as_str).collect();
        assert_eq!(ids, ["aaaa", "bbbb", "cccc", "dddd"]);
    }

    #[test]
    fn files_that_are_not_restorable_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(
            &text,
            "not a database, just some text of some length".repeat(20),
        )
        .unwrap();
        assert!(matches!(inspect(&text), Err(NotRestorable::Unreadable(_))));

        let other = dir.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        assert!(matches!(inspect(&other), Err(NotRestorable::NotHookd)));

        let database = migrated(dir.path());
        let newer = latest_migration() + 1;
        Connection::open(&database)
            .unwrap()
            .execute("INSERT INTO _sqlx_migrations VALUES (?1, TRUE)", [newer])
            .unwrap();
        let refused = inspect(&database).unwrap_err();
        assert!(
            matches!(refused, NotRestorable::Newer { found, .. } if found == newer),
            "{refused}"
        );
        Connection::open(&database)
            .unwrap()
            .execute(
                "UPDATE _sqlx_migrations SET success = FALSE WHERE version = ?1",
                [newer],
            )
            .unwrap();
        assert!(matches!(
            inspect(&database),
            Err(NotRestorable::UnfinishedMigration(v)) if v == newer
        ));
    }
}
