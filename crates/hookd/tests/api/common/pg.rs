//! Fresh PostgreSQL databases for tests (`HOOKD_TEST_BACKEND=postgres`).
//!
//! Each test config gets its own database, `hookd_test_<pid>_<n>`, created through a maintenance
//! connection (to the `postgres` database, else `test`) on `HOOKD_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/`; a server URL ending in `/`, without a database). A database
//! belongs to the data dir of its config and is dropped (`WITH (FORCE)`) once that directory is gone:
//! a `TestApp` removes its own data dir when dropped, and a test that owns its data dir removes it
//! when it ends (the next sweep then drops the database). The first database a process creates also
//! drops those left behind by test processes that no longer run (killed, aborted), so at most a
//! handful ever remain.
//!
//! Everything here runs on a thread of its own with a small runtime: callers are sync (`test_config`,
//! `Drop`) and usually inside the test's runtime, where blocking on async work is not allowed.
//!
//! If PostgreSQL cannot be reached, the test fails, saying so: the postgres backend was asked for.

use sqlx::{Connection, Executor, PgConnection};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

const DEFAULT_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/";
const NAME_PREFIX: &str = "hookd_test_";

/// Databases created by this process that may still exist, with the data dir each belongs to.
static DATABASES: Mutex<Vec<(PathBuf, String)>> = Mutex::new(Vec::new());
static NEXT_NUMBER: AtomicU64 = AtomicU64::new(0);
static SWEEP_DEAD_PROCESSES: Once = Once::new();

/// The server URL, ending in `/`.
pub fn server_url() -> String {
    let url =
        std::env::var("HOOKD_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_SERVER_URL.into());
    match url.ends_with('/') {
        true => url,
        false => format!("{url}/"),
    }
}

/// Creates an empty database that lives as long as `data_dir` and returns its URL. Panics with a
/// clear message when PostgreSQL is unreachable.
pub fn fresh_database(data_dir: &Path) -> String {
    SWEEP_DEAD_PROCESSES.call_once(drop_databases_of_dead_processes);
    drop_orphaned_databases();
    let name = format!(
        "{NAME_PREFIX}{}_{}",
        std::process::id(),
        NEXT_NUMBER.fetch_add(1, Ordering::Relaxed)
    );
    let create = format!("CREATE DATABASE \"{name}\"");
    if let Err(error) = with_maintenance(async move |conn| {
        conn.execute(sqlx::AssertSqlSafe(create)).await.map(drop)
    }) {
        panic!(
            "HOOKD_TEST_BACKEND=postgres, but no database could be created on {}: {error}\n\
             Start PostgreSQL (see DEVELOPERS.md), set HOOKD_TEST_POSTGRES_URL, or run the tests \
             with HOOKD_TEST_BACKEND=sqlite.",
            server_url()
        );
    }
    lock(&DATABASES).push((data_dir.to_path_buf(), name.clone()));
    format!("{}{name}", server_url())
}

/// Drops the databases whose data dir no longer exists. Never panics (it runs in `Drop`).
pub fn drop_orphaned_databases() {
    let orphans: Vec<String> = {
        let mut databases = lock(&DATABASES);
        let (gone, kept): (Vec<_>, Vec<_>) =
            databases.drain(..).partition(|(dir, _)| !dir.exists());
        *databases = kept;
        gone.into_iter().map(|(_, name)| name).collect()
    };
    drop_databases(orphans);
}

/// Drops the test databases of processes that have exited (Linux: no `/proc/<pid>`).
fn drop_databases_of_dead_processes() {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let listed = with_maintenance(async |conn| {
        sqlx::query_scalar::<_, String>("SELECT datname FROM pg_database WHERE datname LIKE $1")
            .bind(format!("{NAME_PREFIX}%"))
            .fetch_all(&mut *conn)
            .await
    });
    let Ok(names) = listed else {
        return; // fresh_database reports an unreachable server
    };
    let dead = names
        .into_iter()
        .filter(|name| {
            let pid = name
                .strip_prefix(NAME_PREFIX)
                .and_then(|rest| rest.split('_').next());
            pid.is_some_and(|pid| !Path::new("/proc").join(pid).exists())
        })
        .collect();
    drop_databases(dead);
}

fn drop_databases(names: Vec<String>) {
    if names.is_empty() {
        return;
    }
    let dropped = with_maintenance(async move |conn| {
        for name in &names {
            let statement = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            conn.execute(sqlx::AssertSqlSafe(statement)).await?;
        }
        Ok(())
    });
    if let Err(error) = dropped {
        eprintln!("could not drop test databases: {error}");
    }
}

/// Runs `work` on a maintenance connection, on a thread of its own with its own runtime.
fn with_maintenance<T, F>(work: F) -> Result<T, String>
where
    T: Send + 'static,
    F: AsyncFnOnce(&mut PgConnection) -> Result<T, sqlx::Error> + Send + 'static,
{
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async move {
            let mut conn = connect_maintenance().await?;
            let result = work(&mut conn).await.map_err(|e| e.to_string());
            let _ = conn.close().await;
            result
        })
    });
    thread
        .join()
        .unwrap_or_else(|_| Err("the maintenance thread panicked".into()))
}

async fn connect_maintenance() -> Result<PgConnection, String> {
    let server = server_url();
    let mut errors = Vec::new();
    for database in ["postgres", "test"] {
        match PgConnection::connect(&format!("{server}{database}")).await {
            Ok(conn) => return Ok(conn),
            Err(error) => errors.push(format!("{database}: {error}")),
        }
    }
    Err(errors.join("; "))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
