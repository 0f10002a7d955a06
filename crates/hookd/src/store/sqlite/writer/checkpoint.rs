//! WAL checkpoints on a thread of their own, off the writer's path.
//!
//! SQLite checkpoints by itself on the connection whose commit pushes the WAL past
//! `wal_autocheckpoint` pages: on the writer, that is the commit of some unlucky round, which then
//! also copies the WAL into the database file and fsyncs it (measured: ≈ 8% of the writer thread at
//! full load). Instead the writer nudges this thread after each commit, and this thread runs a
//! `PASSIVE` checkpoint (never waits for a lock, never blocks the writer) at most every
//! [`INTERVAL`], on its own connection. The writer keeps a far higher `wal_autocheckpoint`
//! ([`sql::WRITER_AUTOCHECKPOINT_PAGES`]) as a backstop, so the WAL stays bounded even if this thread
//! cannot keep up.

use super::sql;
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvError, SyncSender, TrySendError};
use std::time::Duration;

/// Shortest time between two checkpoints while commits keep coming. The default autocheckpoint
/// (1,000 pages) ran about this often at full load; fewer, larger checkpoints copy a page that
/// many commits changed (an index's hot leaf) once.
pub(super) const INTERVAL: Duration = Duration::from_millis(250);

/// The writer's handle: tells the checkpointer that a commit added to the WAL.
pub(super) struct Nudge(SyncSender<()>);

impl Nudge {
    /// Never blocks: a nudge already waiting covers this commit too.
    pub fn committed(&self) {
        match self.0.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        }
    }
}

/// Starts the checkpointer for the database at `path`. It runs until the returned [`Nudge`] is
/// dropped (the writer stopped), then checkpoints once more and ends. If it cannot start, the
/// writer's own autocheckpoint still bounds the WAL.
pub(super) fn spawn(path: PathBuf, busy_timeout: Duration) -> Nudge {
    let (nudge, nudges) = mpsc::sync_channel(1);
    let started = std::thread::Builder::new()
        .name("hookd-sqlite-checkpoint".into())
        .spawn(move || run(path, busy_timeout, nudges));
    if let Err(error) = started {
        tracing::warn!(%error, "cannot start the WAL checkpointer; the writer checkpoints");
    }
    Nudge(nudge)
}

fn run(path: PathBuf, busy_timeout: Duration, nudges: Receiver<()>) {
    let mut connection: Option<Connection> = None;
    loop {
        let stopping = matches!(nudges.recv(), Err(RecvError));
        if let Err(error) = checkpoint(&mut connection, &path, busy_timeout) {
            tracing::warn!(%error, "WAL checkpoint failed");
            connection = None;
        }
        if stopping {
            return;
        }
        // Let commits accumulate: one checkpoint per interval, however many nudges (the one
        // waiting in the channel covers them all).
        std::thread::sleep(INTERVAL);
    }
}

/// Copies what it can of the WAL into the database (`PASSIVE`: frames a reader still needs stay).
fn checkpoint(
    connection: &mut Option<Connection>,
    path: &std::path::Path,
    busy_timeout: Duration,
) -> Result<(), crate::store::StoreError> {
    let conn = match connection {
        Some(conn) => conn,
        None => connection.insert(sql::open(path, busy_timeout)?),
    };
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        .map_err(sql::map_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn wal_bytes(dir: &std::path::Path) -> u64 {
        std::fs::metadata(dir.join("db.sqlite-wal"))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// The writer's commits stay in the WAL (its autocheckpoint is far away); a nudge makes the
    /// checkpointer copy them into the database file, and a later write restarts the WAL from its
    /// beginning instead of growing it.
    #[test]
    fn a_nudge_checkpoints_the_wal_into_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let writer = sql::open(&path, Duration::from_secs(5)).unwrap();
        writer
            .execute_batch(
                "CREATE TABLE t (v BLOB);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
                 INSERT INTO t SELECT zeroblob(1000) FROM n;",
            )
            .unwrap();
        let database_before = std::fs::metadata(&path).unwrap().len();
        assert!(wal_bytes(dir.path()) > 1_000_000, "the rows are in the WAL");

        let nudge = spawn(path.clone(), Duration::from_secs(5));
        nudge.committed();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&path).unwrap().len() <= database_before {
            assert!(Instant::now() < deadline, "no checkpoint within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Once a checkpoint has copied everything, the next write starts the WAL over rather than
        // appending to it. Written as the writer does: commit, then nudge.
        loop {
            let wal_before = wal_bytes(dir.path());
            writer
                .execute_batch("INSERT INTO t VALUES (x'00')")
                .unwrap();
            nudge.committed();
            if wal_bytes(dir.path()) <= wal_before {
                break;
            }
            assert!(Instant::now() < deadline, "the WAL kept growing for 10 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(nudge);
    }
}
