//! `hookd backup` of a running server under load, and `hookd restore` into a new data dir.

use crate::common::{Server, mode, received_ids, run};
use crate::receiver::{Answer, Receiver};
use crate::wait;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The state of each event's delivery in a backup file (one subscription: one delivery each).
fn states_in(file: &Path) -> BTreeMap<String, String> {
    let conn =
        rusqlite::Connection::open_with_flags(file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut statement = conn
        .prepare("SELECT e.id, d.state FROM events e JOIN deliveries d ON d.event_id = e.id")
        .unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Publishes in a loop until `stop`, recording each acknowledged event id in order.
fn keep_publishing(
    server: Arc<Server>,
    stop: Arc<AtomicBool>,
) -> (Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let record = acknowledged.clone();
    let task = tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let reply = server.publish(2_000).await;
            assert_eq!(reply.status, 202, "{}", reply.body);
            record
                .lock()
                .unwrap()
                .push(reply.body["id"].as_str().unwrap().to_owned());
        }
    });
    (acknowledged, task)
}

#[tokio::test]
async fn a_backup_taken_while_publishing_restores_every_acknowledged_event_and_delivers_only_what_was_pending()
 {
    let root = tempfile::tempdir().unwrap();
    let (data, restored, backup) = (
        root.path().join("data"),
        root.path().join("restored"),
        root.path().join("backups/hookd-backup.db"),
    );
    std::fs::create_dir(root.path().join("backups")).unwrap();
    let receiver = Receiver::start().await;
    let server = Arc::new(Server::start(&data).await);
    server.subscribe(&receiver.url("/hook")).await;

    // Delivered before the backup: 20 events the receiver took.
    let mut delivered_first = Vec::new();
    for _ in 0..20 {
        let reply = server.publish(2_000).await;
        assert_eq!(reply.status, 202);
        delivered_first.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    for id in &delivered_first {
        wait::until(wait::DEFAULT_LIMIT, async || {
            match server.delivery_states(id).await == ["delivered"] {
                true => Ok(()),
                false => Err(format!("{id} not delivered")),
            }
        })
        .await;
    }

    // The receiver fails from now on: what is published stays pending, and publishing goes on
    // while the backup runs.
    receiver.set_default("/hook", Answer::Status(503));
    let stop = Arc::new(AtomicBool::new(false));
    let (acknowledged, publisher) = keep_publishing(server.clone(), stop.clone());
    wait::until(wait::DEFAULT_LIMIT, async || {
        match acknowledged.lock().unwrap().len() >= 20 {
            true => Ok(()),
            false => Err("fewer than 20 published".to_owned()),
        }
    })
    .await;
    let before_backup = acknowledged.lock().unwrap().clone();
    let (ok, stdout, stderr) = run(&[
        "backup",
        "--data-dir",
        data.to_str().unwrap(),
        "--to",
        backup.to_str().unwrap(),
    ])
    .await;
    let after_backup = acknowledged.lock().unwrap().len();
    assert!(ok, "{stderr}");
    assert!(stdout.contains("hookd-backup.db.master.key"), "{stdout}");
    assert!(
        after_backup > before_backup.len(),
        "publishing went on during the backup"
    );
    // A little more after it, then stop, and stop the server (the receiver still failing).
    let more = after_backup + 5;
    wait::until(wait::DEFAULT_LIMIT, async || {
        match acknowledged.lock().unwrap().len() >= more {
            true => Ok(()),
            false => Err("publishing stalled".to_owned()),
        }
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    publisher.await.unwrap();
    Arc::into_inner(server).unwrap().stop().await;

    // The backup: private files, nothing half-written left beside them.
    let key_copy = root.path().join("backups/hookd-backup.db.master.key");
    assert_eq!(mode(&backup), 0o600);
    assert_eq!(mode(&key_copy), 0o600);
    let names: BTreeSet<String> = std::fs::read_dir(root.path().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "hookd-backup.db".to_owned(),
            "hookd-backup.db.master.key".to_owned()
        ])
    );
    assert_eq!(
        std::fs::read_to_string(&key_copy).unwrap(),
        std::fs::read_to_string(data.join("master.key")).unwrap()
    );

    // Nothing acknowledged before the backup started is missing from it.
    let in_backup = states_in(&backup);
    let missing: Vec<&String> = delivered_first
        .iter()
        .chain(&before_backup)
        .filter(|id| !in_backup.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged before the backup, not in it: {missing:?}"
    );
    for id in &delivered_first {
        assert_eq!(in_backup[id], "delivered", "{id}");
    }
    let pending: BTreeSet<&String> = in_backup
        .iter()
        .filter(|(_, state)| *state != "delivered")
        .map(|(id, _)| id)
        .collect();
    assert!(
        pending.len() >= before_backup.len(),
        "{} pending",
        pending.len()
    );

    // Restore into a new data dir and start from it with a receiver that works again.
    let (ok, stdout, stderr) = run(&[
        "restore",
        "--data-dir",
        restored.to_str().unwrap(),
        "--from",
        backup.to_str().unwrap(),
    ])
    .await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("Restored the database"), "{stdout}");
    assert_eq!(mode(&restored), 0o700);
    assert_eq!(mode(&restored.join("hookd.db")), 0o600);
    assert_eq!(mode(&restored.join("master.key")), 0o600);
    let earlier = receiver.received("/hook").len();
    receiver.set_default("/hook", Answer::Status(200));
    let server = Server::start(&restored).await;
    let delivered_after = wait::until(wait::DEFAULT_LIMIT, async || {
        let after: BTreeSet<String> = received_ids(&receiver, "/hook")[earlier..]
            .iter()
            .cloned()
            .collect();
        match pending.iter().all(|id| after.contains(*id)) {
            true => Ok(after),
            false => Err(format!(
                "{} of {} pending delivered",
                after.len(),
                pending.len()
            )),
        }
    })
    .await;
    // Every pending one arrived (above), with its secret (signed: the key came along); nothing
    // delivered before the backup came again, and nothing that is not in the backup came at all.
    for id in &delivered_after {
        assert!(
            pending.contains(id),
            "{id} was delivered again (or is not in the backup)"
        );
    }
    for request in &receiver.received("/hook")[earlier..] {
        assert!(request.header("webhook-signature").starts_with("v1,"));
    }
    // The receiver answered before hookd recorded the outcome: wait for each to be recorded.
    for id in &pending {
        let states = wait::until(wait::DEFAULT_LIMIT, async || {
            let states = server.delivery_states(id).await;
            match states.iter().any(|state| state == "in_flight") {
                true => Err(format!("{id}: {states:?}")),
                false => Ok(states),
            }
        })
        .await;
        assert_eq!(states, ["delivered"], "{id}");
    }
    server.stop().await;
}

#[tokio::test]
async fn backup_and_restore_refuse_what_would_lose_or_mix_data() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let path = |name: &str| root.path().join(name).to_str().unwrap().to_owned();
    let server = Server::start(&data).await;
    server.subscribe("http://127.0.0.1:9/hook").await;
    let data_arg = path("data");

    let (ok, _, stderr) = run(&["backup", "--data-dir", &data_arg, "--to", &path("b.db")]).await;
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = run(&["backup", "--data-dir", &data_arg, "--to", &path("b.db")]).await;
    assert!(
        !ok && stderr.contains("--force"),
        "an existing backup is kept: {stderr}"
    );
    let (ok, _, stderr) = run(&[
        "backup",
        "--data-dir",
        &data_arg,
        "--to",
        &path("b.db"),
        "--force",
    ])
    .await;
    assert!(ok, "{stderr}");
    server.stop().await;

    // Into a data dir that has a database: refused, and that database is untouched.
    let before = std::fs::read(data.join("hookd.db")).unwrap();
    let (ok, _, stderr) = run(&["restore", "--data-dir", &data_arg, "--from", &path("b.db")]).await;
    assert!(
        !ok && stderr.contains("already holds a database"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(data.join("hookd.db")).unwrap(), before);

    // Without the key its secrets need: refused, naming the key file it looks for.
    std::fs::rename(path("b.db.master.key"), path("elsewhere.key")).unwrap();
    let (ok, _, stderr) = run(&[
        "restore",
        "--data-dir",
        &path("new"),
        "--from",
        &path("b.db"),
    ])
    .await;
    assert!(!ok && stderr.contains("b.db.master.key"), "{stderr}");
    assert!(!root.path().join("new/hookd.db").exists());

    // Not a hookd database.
    std::fs::write(root.path().join("notes.txt"), "not a database ".repeat(100)).unwrap();
    let (ok, _, stderr) = run(&[
        "restore",
        "--data-dir",
        &path("new"),
        "--from",
        &path("notes.txt"),
    ])
    .await;
    assert!(
        !ok && stderr.contains("cannot be read as a SQLite database"),
        "{stderr}"
    );

    // A newer hookd's database.
    std::fs::rename(path("elsewhere.key"), path("b.db.master.key")).unwrap();
    rusqlite::Connection::open(path("b.db"))
        .unwrap()
        .execute(
            "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time)
             VALUES (9999, 'from the future', CURRENT_TIMESTAMP, TRUE, x'00', 0)",
            [],
        )
        .unwrap();
    let (ok, _, stderr) = run(&[
        "restore",
        "--data-dir",
        &path("new"),
        "--from",
        &path("b.db"),
    ])
    .await;
    assert!(
        !ok && stderr.contains("migration 9999, newer than this hookd knows"),
        "{stderr}"
    );

    // A key rotation that overtook the copy (the key its secrets need is gone): no backup.
    let sealed_with = std::fs::read_to_string(data.join("master.key")).unwrap();
    let other = hookd::store::sealed::MasterKey::generate().to_base64();
    std::fs::write(data.join("master.key"), other).unwrap();
    let (ok, _, stderr) = run(&["backup", "--data-dir", &data_arg, "--to", &path("c.db")]).await;
    assert!(
        !ok && stderr.contains("rotated during the backup"),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("c.db"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    std::fs::write(data.join("master.key"), sealed_with).unwrap();

    // PostgreSQL: pointed to pg_dump, nothing attempted.
    let (ok, _, stderr) = run(&[
        "backup",
        "--database",
        "postgres://hookd@127.0.0.1:1/hookd",
        "--to",
        &path("pg.db"),
    ])
    .await;
    assert!(!ok && stderr.contains("pg_dump"), "{stderr}");
    let (ok, _, stderr) = run(&[
        "restore",
        "--database",
        "postgres://hookd@127.0.0.1:1/hookd",
        "--from",
        &path("b.db"),
    ])
    .await;
    assert!(!ok && stderr.contains("pg_restore"), "{stderr}");
}
