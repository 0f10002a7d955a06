//! The data dir is its owner's alone: 0700, and every file in it 0600, whoever created it.

use crate::common::{Server, mode};
use crate::receiver::Receiver;
use crate::wait;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Every entry of `dir` with its mode, for messages.
fn modes(dir: &Path) -> Vec<(String, u32)> {
    let mut entries: Vec<(String, u32)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                mode(&entry.path()),
            )
        })
        .collect();
    entries.sort();
    entries
}

/// Publishes an event and waits until it is delivered, so the database has its WAL and
/// shared-memory files and the worker its lock.
async fn publish_and_deliver(server: &Server) {
    let published = server.publish(100).await;
    assert_eq!(published.status, 202, "{}", published.body);
    let id = published.body["id"].as_str().unwrap().to_owned();
    wait::until(wait::DEFAULT_LIMIT, async || {
        let states = server.delivery_states(&id).await;
        match !states.is_empty() && states.iter().all(|state| state == "delivered") {
            true => Ok(()),
            false => Err(format!("{id} not delivered yet")),
        }
    })
    .await;
}

#[tokio::test]
async fn the_data_dir_is_0700_and_every_file_in_it_0600_and_looser_modes_are_narrowed_at_start() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let receiver = Receiver::start().await;
    let server = Server::start(&data).await;
    server.subscribe(&receiver.url("/hook")).await;
    publish_and_deliver(&server).await;

    // While it runs, with the WAL and shared memory in use.
    let files = modes(&data);
    for name in [
        "hookd.db",
        "hookd.db-wal",
        "hookd.db-shm",
        "master.key",
        "worker.lock",
    ] {
        assert!(files.iter().any(|(n, _)| n == name), "no {name}: {files:?}");
    }
    assert!(files.iter().all(|(_, m)| *m == 0o600), "{files:?}");
    assert_eq!(mode(&data), 0o700);
    server.stop().await;

    // A data dir someone loosened (or an older hookd made): narrowed at the next start, and said.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (name, _) in modes(&data) {
        std::fs::set_permissions(data.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let server = Server::start(&data).await;
    publish_and_deliver(&server).await;
    let files = modes(&data);
    assert!(files.iter().all(|(_, m)| *m == 0o600), "{files:?}");
    assert_eq!(mode(&data), 0o700);
    let logs = server.logs();
    assert!(
        logs.contains("restricted a data dir entry to its owner")
            && logs.contains("hookd.db")
            && logs.contains("from=\"644\""),
        "{logs}"
    );
    assert!(
        !logs.contains(&std::fs::read_to_string(data.join("master.key")).unwrap()),
        "the key is never logged"
    );
    server.stop().await;
}
