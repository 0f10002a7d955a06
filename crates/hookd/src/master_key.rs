//! `hookd master-key rotate`: re-encrypts every subscription secret with a new master key in one
//! transaction, in steps arranged so that no crash can leave a secret sealed with a key nobody can
//! find (ARCHITECTURE.md, "Master key rotation"):
//!
//! 1. [`Rotation::prepare`] chooses the new key and writes it to `<data_dir>/master.key.next`
//!    (0600, fsynced, linked into place). From then on every node loading keys from this data dir
//!    holds both keys.
//! 2. [`Rotation::reseal`], one transaction: names the new key as the database's sealing key, and
//!    re-encrypts every stored secret (current and previous) with it. Before the commit everything
//!    is under the old key, after it everything is under the new one.
//! 3. [`Rotation::install`]: with keys in the data dir, `master.key.next` replaces `master.key`
//!    (rename, directory fsynced) and the old key is gone. With `HOOKD_MASTER_KEY`, the operator
//!    installs the new key; a generated key stays in `master.key.next` until then.
//!
//! Interrupted anywhere, the data is readable with the keys on disk, and running the command again
//! finishes the same rotation.

use crate::config::Config;
use crate::ids::{Clock, SystemClock};
use crate::server;
use crate::store::sealed::{KeySource, Keyring, MasterKey, read_key_file, write_private};
use crate::store::{Store, StoreResult};
use anyhow::Context;
use std::path::{Path, PathBuf};

/// A rotation whose new key is safely on disk (step 1 done).
pub struct Rotation {
    /// The backend itself: values as stored.
    store: Store,
    source: KeySource,
    /// Opens every value stored now: the current key, the new one, and any other the source has.
    keyring: Keyring,
    new_key: MasterKey,
    /// The key that sealed so far (the configured key or `master.key`).
    old_key_id: String,
    /// The new key came from the operator (`--new-key`) rather than being generated here.
    requested: bool,
    /// This run finishes an earlier, interrupted rotation.
    resumed: bool,
}

/// What a finished rotation did.
#[derive(Debug)]
pub struct Rotated {
    pub new_key: MasterKey,
    pub old_key_id: String,
    /// Values re-encrypted (current and previous secrets).
    pub resealed: u64,
    pub resumed: bool,
    pub installed: Installed,
}

/// Where the new key is now.
#[derive(Debug, PartialEq, Eq)]
pub enum Installed {
    /// `<data_dir>/master.key` holds it; the old key file is gone.
    KeyFile(PathBuf),
    /// The key is configured (`HOOKD_MASTER_KEY`): the operator has to install the new one. A
    /// generated key is also kept in this file (0600) until then.
    Configured { saved_at: Option<PathBuf> },
}

/// All three steps.
pub async fn rotate(config: &Config, requested: Option<MasterKey>) -> anyhow::Result<Rotated> {
    let rotation = Rotation::prepare(config, requested).await?;
    let resealed = rotation.reseal().await?;
    rotation.install(resealed)
}

impl Rotation {
    /// Step 1: chooses the new key (`requested`, else generated; or the key of an interrupted
    /// rotation, which must be finished first) and makes it durable in `master.key.next`.
    pub async fn prepare(config: &Config, requested: Option<MasterKey>) -> anyhow::Result<Self> {
        let source = server::key_source(config)?;
        server::create_data_dir(config)?;
        let mut keyring = source.load().context("cannot load the master key")?;
        let current = keyring.sealing().clone();
        let next_path = source.next_key_path();
        let pending = read_key_file(&next_path)?;
        let (new_key, resumed) = match (pending, requested.clone()) {
            // A rotation that finished (its key is installed as the current one) left its copy.
            (Some(pending), requested) if pending == current => {
                remove_file_durably(&next_path)?;
                (requested.unwrap_or_else(MasterKey::generate), false)
            }
            (Some(pending), Some(requested)) if pending != requested => anyhow::bail!(
                "an earlier rotation to master key {} was interrupted ({} exists); run \
                 `hookd master-key rotate` without --new-key to finish it first",
                pending.id(),
                next_path.display()
            ),
            (Some(pending), _) => (pending, true),
            (None, requested) => (requested.unwrap_or_else(MasterKey::generate), false),
        };
        anyhow::ensure!(
            new_key != current,
            "the new master key is the current one ({})",
            current.id()
        );
        let store = server::open_backend(config).await?;
        keyring.add(new_key.clone());
        if let Some(sealing) = store.secrets.sealing_key_id().await? {
            anyhow::ensure!(
                keyring.get(&sealing).is_some(),
                "the database's secrets are sealed with master key {sealing}, which is not \
                 configured here (keys: {}); rotate with the key the database uses",
                keyring.ids().join(", ")
            );
        }
        if !resumed {
            write_key_file(&next_path, &new_key)?;
        }
        Ok(Self {
            store,
            source,
            keyring,
            old_key_id: current.id(),
            new_key,
            requested: requested.is_some(),
            resumed,
        })
    }

    /// Step 2: one transaction re-encrypts every stored secret with the new key and names it the
    /// sealing key. Returns how many values it re-encrypted.
    pub async fn reseal(&self) -> anyhow::Result<u64> {
        let keyring = &self.keyring;
        let new_key = &self.new_key;
        let reseal = |id: &str, stored: &str| -> StoreResult<String> {
            new_key.seal(id, &keyring.open(id, stored)?)
        };
        self.store
            .secrets
            .reseal_secrets(&new_key.id(), &reseal, SystemClock.now_ms())
            .await
            .context("re-encrypting the secrets failed; nothing was changed")
    }

    /// Step 3: puts the new key where the nodes look for it.
    pub fn install(self, resealed: u64) -> anyhow::Result<Rotated> {
        let next_path = self.source.next_key_path();
        let installed = match (&self.source.configured, self.requested) {
            (None, _) => {
                let key_path = self.source.key_path();
                std::fs::rename(&next_path, &key_path)
                    .with_context(|| format!("cannot install {}", key_path.display()))?;
                sync_dir(&self.source.data_dir)?;
                Installed::KeyFile(key_path)
            }
            // The operator has the key they gave; no copy on disk.
            (Some(_), true) => {
                remove_file_durably(&next_path)?;
                Installed::Configured { saved_at: None }
            }
            (Some(_), false) => Installed::Configured {
                saved_at: Some(next_path),
            },
        };
        Ok(Rotated {
            new_key: self.new_key,
            old_key_id: self.old_key_id,
            resealed,
            resumed: self.resumed,
            installed,
        })
    }

    pub fn new_key(&self) -> &MasterKey {
        &self.new_key
    }

    /// True when this run finishes an earlier, interrupted rotation.
    pub fn resumed(&self) -> bool {
        self.resumed
    }
}

/// Writes `key` to `path` as a new file: mode 0600, contents fsynced, then linked into place (which
/// fails if `path` exists, so two rotations cannot overwrite each other's key) and the directory
/// fsynced. A crash leaves either no file or the complete one.
fn write_key_file(path: &Path, key: &MasterKey) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let staging = path.with_extension(format!("next.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&staging);
    write_private(&staging, &key.to_base64())
        .with_context(|| format!("cannot write {}", staging.display()))?;
    let linked = std::fs::hard_link(&staging, path);
    let _ = std::fs::remove_file(&staging);
    match linked {
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => anyhow::bail!(
            "{} appeared meanwhile: is another rotation running? Run this command again once it \
             has finished",
            path.display()
        ),
        other => other.with_context(|| format!("cannot write {}", path.display()))?,
    }
    sync_dir(dir)
}

fn remove_file_durably(path: &Path) -> anyhow::Result<()> {
    std::fs::remove_file(path).with_context(|| format!("cannot remove {}", path.display()))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Makes renames, links and removals in `dir` durable.
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .with_context(|| format!("cannot sync directory {}", dir.display()))
}
