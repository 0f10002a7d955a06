//! A full disk, for real: the data dir on a small tmpfs the test mounts and fills. Writes that do
//! not fit answer 503 `store_unavailable` with `Retry-After`, never a 2xx for an event that is not
//! stored; once space returns the same process publishes again and delivers everything it
//! acknowledged. Mounting needs root (`CAP_SYS_ADMIN`): without it the test says it is skipped.

use crate::common::{Reply, Server, received_ids};
use crate::receiver::Receiver;
use crate::wait;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A tmpfs mounted for the test; unmounted when dropped, also when the test fails (lazily, so a
/// process still holding files in it does not keep it mounted).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Self, String> {
        let output = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .map_err(|e| e.to_string())?;
        match output.status.success() {
            true => Ok(Self(dir.to_path_buf())),
            false => Err(String::from_utf8_lossy(&output.stderr).trim().to_owned()),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("--lazy")
            .arg(&self.0)
            .status();
    }
}

/// Fills the filesystem of `path` with the file `path`, then frees `leave` bytes of it.
fn fill_leaving(path: &Path, leave: u64) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 256 * 1024];
    loop {
        match file.write_all(&chunk) {
            Ok(()) => {}
            Err(error) if error.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(error) => panic!("filling {}: {error}", path.display()),
        }
    }
    let written = file.metadata().unwrap().len();
    file.set_len(written.saturating_sub(leave)).unwrap();
    file.sync_all().unwrap();
}

/// Every answer to a publish while the disk is full: acknowledged ids, and the refusals.
#[derive(Default)]
struct Publishes {
    acknowledged: Vec<String>,
    refused: Vec<Reply>,
}

#[tokio::test]
async fn a_full_disk_answers_503_stores_what_it_acknowledged_and_recovers_without_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let mount_point = root.path().join("small");
    std::fs::create_dir(&mount_point).unwrap();
    let _tmpfs = match Tmpfs::mount(&mount_point, "8m") {
        Ok(tmpfs) => tmpfs,
        Err(reason) => {
            // Straight to the run's stderr, past the harness's capture: the skip must show.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: the full-disk test cannot mount a tmpfs ({reason}); it needs root"
            );
            return;
        }
    };
    let receiver = Receiver::start().await;
    let server = Arc::new(Server::start(&mount_point.join("data")).await);
    server.subscribe(&receiver.url("/hook")).await;
    let first = server.publish(100).await;
    assert_eq!(first.status, 202);
    let filler = mount_point.join("filler");
    fill_leaving(&filler, 1024 * 1024);

    // Eight publishers of 50 KB events until each has been refused three times.
    let publishes = Arc::new(Mutex::new(Publishes::default()));
    let mut publishers = Vec::new();
    for _ in 0..8 {
        let (server, publishes) = (server.clone(), publishes.clone());
        publishers.push(tokio::spawn(async move {
            let mut refusals = 0;
            for _ in 0..200 {
                let reply = server.publish(50_000).await;
                let mut publishes = publishes.lock().unwrap();
                match reply.status {
                    202 => publishes
                        .acknowledged
                        .push(reply.body["id"].as_str().unwrap().to_owned()),
                    _ => {
                        publishes.refused.push(reply);
                        refusals += 1;
                    }
                }
                if refusals == 3 {
                    return;
                }
            }
        }));
    }
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let Publishes {
        mut acknowledged,
        refused,
    } = std::mem::take(&mut *publishes.lock().unwrap());
    assert!(
        !acknowledged.is_empty(),
        "some events fitted before the disk filled"
    );
    assert!(refused.len() >= 4, "the disk never filled");
    for reply in &refused {
        assert_eq!(reply.status, 503, "{}", reply.body);
        assert_eq!(reply.body["code"], "store_unavailable", "{}", reply.body);
        assert_eq!(reply.retry_after.as_deref(), Some("1"));
    }

    // Space returns: the same process publishes again at once.
    std::fs::remove_file(&filler).unwrap();
    for _ in 0..5 {
        let reply = server.publish(50_000).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        acknowledged.push(reply.body["id"].as_str().unwrap().to_owned());
    }
    acknowledged.push(first.body["id"].as_str().unwrap().to_owned());

    // Every acknowledged event is stored and delivered.
    for id in &acknowledged {
        assert_eq!(
            server.delivery_states(id).await.len(),
            1,
            "{id} is not stored"
        );
    }
    wait::until(wait::DEFAULT_LIMIT, async || {
        let arrived = received_ids(&receiver, "/hook");
        let missing = acknowledged
            .iter()
            .filter(|id| !arrived.contains(id))
            .count();
        match missing {
            0 => Ok(()),
            _ => Err(format!("{missing} of {} not delivered", acknowledged.len())),
        }
    })
    .await;
    let logs = server.logs();
    assert!(!logs.contains("panicked"), "{logs}");
    Arc::into_inner(server).unwrap().stop().await;
}
