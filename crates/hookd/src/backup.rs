//! `hookd backup` and `hookd restore` (SQLite): a consistent copy of a running server's database,
//! with the master keys its sealed secrets need, and its restore into a data dir without a
//! database.
//!
//! A backup is the file `FILE` and, unless the key is configured (`HOOKD_MASTER_KEY`) or `--no-key`
//! is given, `FILE.master.key` (plus `FILE.master.key.next` while a rotation is unfinished): the
//! subscription secrets in the database open with those keys only. Every file is written 0600
//! under a temporary name, fsynced and renamed into place, keys first, so a crash never leaves a
//! partial file under a backup's name, and a backup file in place has its keys beside it.
//!
//! Both directions check the database as a restore needs it (`store::sqlite::backup::inspect`):
//! SQLite reads it, its `quick_check` passes, it is hookd's, its schema is not newer than this
//! binary's, and the keys at hand open its secrets.

use crate::config::Config;
use crate::data_dir;
use crate::store::sealed::{KEY_FILE, MasterKey, NEXT_KEY_FILE, read_key_file};
use crate::store::sqlite::backup::{self as database_copy, DatabaseFacts};
use anyhow::Context;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `hookd backup` was asked to do.
#[derive(Debug, Clone)]
pub struct BackupRequest {
    /// The backup file to write.
    pub to: PathBuf,
    /// Replace `to` (and its key files) if they exist.
    pub force: bool,
    /// Write the master keys beside the backup (`FILE.master.key`) when they come from the data dir.
    pub copy_keys: bool,
}

/// A finished backup.
#[derive(Debug)]
pub struct BackedUp {
    pub file: PathBuf,
    pub bytes: u64,
    pub facts: DatabaseFacts,
    pub keys: KeyCopies,
}

/// Where the master keys of a backup's secrets are.
#[derive(Debug)]
pub enum KeyCopies {
    /// Written beside the backup, each 0600.
    Written(Vec<PathBuf>),
    /// Left in the data dir (`--no-key`): these files.
    NotCopied(Vec<PathBuf>),
    /// The configured key (`master_key` / `HOOKD_MASTER_KEY`), by id.
    Configured(String),
}

/// A finished restore.
#[derive(Debug)]
pub struct Restored {
    pub database: PathBuf,
    pub facts: DatabaseFacts,
    /// Key files copied into the data dir.
    pub keys: Vec<PathBuf>,
}

/// The key files a data dir may hold, each with the suffix its copy beside a backup gets.
const KEY_FILES: [&str; 2] = [KEY_FILE, NEXT_KEY_FILE];

/// `hookd backup --to FILE`: copies the database of the data dir, while hookd may be running, to
/// `FILE`, with its keys beside it.
pub fn backup(config: &Config, request: &BackupRequest) -> anyhow::Result<BackedUp> {
    refuse_postgres(config, "backup")?;
    let database = config.database_path();
    anyhow::ensure!(
        database.is_file(),
        "there is no database at {}: nothing to back up",
        database.display()
    );
    let key_copies = KEY_FILES.map(|name| beside(&request.to, name));
    if !request.force {
        for path in std::iter::once(&request.to).chain(&key_copies) {
            anyhow::ensure!(
                !path.exists(),
                "{} exists; pass --force to replace it",
                path.display()
            );
        }
    }
    let staging = staging_path(&request.to);
    data_dir::create_new_private_file(&staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    let placed = copy_and_place(config, request, &staging, &key_copies);
    let (facts, keys) = placed.inspect_err(|_| {
        let _ = std::fs::remove_file(&staging);
    })?;
    Ok(BackedUp {
        bytes: std::fs::metadata(&request.to)?.len(),
        file: request.to.clone(),
        facts,
        keys,
    })
}

/// Copies the database into `staging` and checks the copy, writes its key copies, then renames it
/// to the backup's name.
fn copy_and_place(
    config: &Config,
    request: &BackupRequest,
    staging: &Path,
    key_copies: &[PathBuf; 2],
) -> anyhow::Result<(DatabaseFacts, KeyCopies)> {
    let database = config.database_path();
    let busy_timeout = Duration::from_millis(config.sqlite_busy_timeout_ms);
    database_copy::copy_into(&database, staging, busy_timeout)
        .map_err(|e| anyhow::anyhow!("cannot copy {}: {e}", database.display()))?;
    let facts = database_copy::inspect(staging)
        .map_err(|e| anyhow::anyhow!("the copy cannot be restored: {e}"))?;
    sync_file(staging)?;
    // Read after the copy: a rotation that finished meanwhile removed a key the copy needs, and
    // the check says so rather than leaving a backup nobody can open.
    let keys = keys_in_data_dir(config)?;
    check_keys_open(&facts, &keys, "the data dir's master keys")
        .context("was the master key rotated during the backup? Run the backup again")?;
    let keys = match (configured_key(config)?, request.copy_keys) {
        (Some(key), _) => KeyCopies::Configured(key.id()),
        (None, true) => KeyCopies::Written(write_key_copies(&keys, key_copies)?),
        (None, false) => KeyCopies::NotCopied(keys.into_iter().map(|(path, _)| path).collect()),
    };
    // A key copy an earlier backup left under this name (`--force`) may not open this one.
    remove_stale(key_copies, &keys)?;
    std::fs::rename(staging, &request.to).with_context(|| {
        format!(
            "cannot rename {} to {}",
            staging.display(),
            request.to.display()
        )
    })?;
    data_dir::sync_dir(parent(&request.to))?;
    Ok((facts, keys))
}

impl BackedUp {
    /// What the operator reads: what was written, and what a restore will need.
    pub fn report(&self) -> String {
        let mut text = format!(
            "Backed up the database (migration {}, {} bytes) to {} (mode 0600).\n",
            self.facts.schema_version,
            self.bytes,
            self.file.display()
        );
        let needed = match self.facts.key_ids.is_empty() {
            true => "The subscription secrets in it".to_owned(),
            false => format!(
                "The subscription secrets in it are sealed with master key {}; they",
                self.facts
                    .key_ids
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        text.push_str(&match &self.keys {
            KeyCopies::Written(paths) | KeyCopies::NotCopied(paths) if paths.is_empty() => {
                "No master key file to copy: no subscription secret is sealed yet.\n".to_owned()
            }
            KeyCopies::Written(paths) => format!(
                "{needed} open only with the key in {} (mode 0600). Keep the two files together, \
                 and as safe as the key itself: `hookd restore --from {}` installs both.\n",
                list(paths),
                self.file.display()
            ),
            KeyCopies::NotCopied(paths) => format!(
                "{needed} open only with the key in {}, which was not copied (--no-key): keep a \
                 copy of it with the backup, or the secrets in it are lost.\n",
                list(paths)
            ),
            KeyCopies::Configured(id) => format!(
                "{needed} open only with the configured master key (HOOKD_MASTER_KEY, id {id}): \
                 a restore needs that key.\n"
            ),
        });
        text
    }
}

impl Restored {
    /// What the operator reads after a restore.
    pub fn report(&self) -> String {
        let mut text = format!(
            "Restored the database (migration {}) to {} (mode 0600).\n",
            self.facts.schema_version,
            self.database.display()
        );
        if !self.keys.is_empty() {
            text.push_str(&format!("Installed {} (mode 0600).\n", list(&self.keys)));
        }
        text.push_str(
            "Start hookd on this data dir: deliveries that were pending or in flight at the \
             backup are sent (again, for those in flight: receivers deduplicate on webhook-id); \
             delivered ones are not.\n",
        );
        text
    }
}

fn list(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|path| path.display().to_string())
        .collect::<Vec<_>>()
        .join(" and ")
}

/// Removes key copies under the backup's name that this backup did not write.
fn remove_stale(key_copies: &[PathBuf], keys: &KeyCopies) -> anyhow::Result<()> {
    let written: &[PathBuf] = match keys {
        KeyCopies::Written(paths) => paths,
        _ => &[],
    };
    for path in key_copies.iter().filter(|p| !written.contains(p)) {
        match std::fs::remove_file(path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                return Err(error).with_context(|| format!("cannot remove {}", path.display()));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `hookd restore --from FILE`: installs a backup as the data dir's database, with the key files
/// beside it, after checking it. Refuses a data dir that already holds a database.
pub fn restore(config: &Config, from: &Path) -> anyhow::Result<Restored> {
    refuse_postgres(config, "restore")?;
    anyhow::ensure!(from.is_file(), "{} is not a file", from.display());
    let cannot = || format!("cannot restore {}", from.display());
    let facts = database_copy::inspect(from)
        .map_err(anyhow::Error::new)
        .with_context(cannot)?;
    let database = config.database_path();
    data_dir::prepare(&config.data_dir)?;
    for existing in [database.clone(), with_suffix(&database, "-wal")] {
        anyhow::ensure!(
            !existing.exists(),
            "{} already holds a database ({}): restore into an empty data dir, or move that \
             database away first",
            config.data_dir.display(),
            existing.display()
        );
    }
    let keys = keys_to_restore(config, from)?;
    let available: Vec<(PathBuf, MasterKey)> = keys
        .iter()
        .map(|plan| (plan.target.clone(), plan.key.clone()))
        .chain(configured_key(config)?.map(|key| (PathBuf::new(), key)))
        .collect();
    check_keys_open(&facts, &available, "the master keys at hand").with_context(|| {
        format!(
            "put the key file beside the backup as {}, or set HOOKD_MASTER_KEY to the key",
            beside(from, KEY_FILE).display()
        )
    })?;
    let mut installed = Vec::new();
    for plan in keys.iter().filter(|plan| plan.copy) {
        install_file(&plan.target, plan.key.to_base64().as_bytes())?;
        installed.push(plan.target.clone());
    }
    install_database(from, &database, &facts).with_context(cannot)?;
    Ok(Restored {
        database,
        facts,
        keys: installed,
    })
}

/// Copies `from` to `<database>.restoring` (0600, fsynced), checks that the copy holds what
/// `from` was checked to hold, and renames it to `database`.
fn install_database(from: &Path, database: &Path, checked: &DatabaseFacts) -> anyhow::Result<()> {
    let staging = with_suffix(database, ".restoring");
    // Left by a restore that crashed; the database was never renamed into place.
    let _ = std::fs::remove_file(&staging);
    let installed = copy_private(from, &staging).and_then(|()| {
        let copied = database_copy::inspect(&staging)?;
        anyhow::ensure!(&copied == checked, "the file changed while it was copied");
        std::fs::rename(&staging, database).with_context(|| {
            format!(
                "cannot rename {} to {}",
                staging.display(),
                database.display()
            )
        })?;
        Ok(data_dir::sync_dir(parent(database))?)
    });
    installed.inspect_err(|_| {
        let _ = std::fs::remove_file(&staging);
    })
}

/// One key file a restore will find in the data dir.
struct KeyPlan {
    target: PathBuf,
    key: MasterKey,
    /// Copy it from beside the backup (else it is in the data dir already).
    copy: bool,
}

/// The key files beside the backup and in the data dir, as the restored node will load them;
/// refuses when the data dir holds a different key under the same name. A configured key replaces
/// `master.key`, so that one is then not copied.
fn keys_to_restore(config: &Config, from: &Path) -> anyhow::Result<Vec<KeyPlan>> {
    let mut plans = Vec::new();
    for name in KEY_FILES {
        if name == KEY_FILE && config.master_key.is_some() {
            continue;
        }
        let target = config.data_dir.join(name);
        let present = read_key_file(&target)?;
        let copy = read_key_file(&beside(from, name))?;
        let plan = match (present, copy) {
            (Some(present), Some(copy)) if present != copy => anyhow::bail!(
                "{} holds another master key than the backup's {}: restore into a data dir \
                 without one",
                target.display(),
                beside(from, name).display()
            ),
            (Some(key), _) => KeyPlan {
                target,
                key,
                copy: false,
            },
            (None, Some(key)) => KeyPlan {
                target,
                key,
                copy: true,
            },
            (None, None) => continue,
        };
        plans.push(plan);
    }
    Ok(plans)
}

/// Refuses unless `keys` hold every master key the database's secrets are sealed with.
fn check_keys_open(
    facts: &DatabaseFacts,
    keys: &[(PathBuf, MasterKey)],
    which: &str,
) -> anyhow::Result<()> {
    let held: BTreeSet<String> = keys.iter().map(|(_, key)| key.id()).collect();
    let missing: Vec<&str> = facts
        .key_ids
        .iter()
        .filter(|id| !held.contains(*id))
        .map(String::as_str)
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "the subscription secrets in the database are sealed with master key {}, which {which} \
         ({}) do not include",
        missing.join(", "),
        match held.is_empty() {
            true => "none".to_owned(),
            false => held.into_iter().collect::<Vec<_>>().join(", "),
        }
    );
    Ok(())
}

/// The keys a node on this data dir holds: the configured key or `master.key`, and
/// `master.key.next` during a rotation, each with its file (empty for a configured key).
fn keys_in_data_dir(config: &Config) -> anyhow::Result<Vec<(PathBuf, MasterKey)>> {
    let mut keys: Vec<(PathBuf, MasterKey)> = configured_key(config)?
        .map(|key| (PathBuf::new(), key))
        .into_iter()
        .collect();
    for name in KEY_FILES {
        if name == KEY_FILE && !keys.is_empty() {
            continue;
        }
        let path = config.data_dir.join(name);
        if let Some(key) = read_key_file(&path)? {
            keys.push((path, key));
        }
    }
    Ok(keys)
}

fn configured_key(config: &Config) -> anyhow::Result<Option<MasterKey>> {
    config
        .master_key
        .as_deref()
        .map(MasterKey::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("master_key: {e}"))
}

/// Writes each data dir key file's key to its copy beside the backup.
fn write_key_copies(
    keys: &[(PathBuf, MasterKey)],
    key_copies: &[PathBuf; 2],
) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (path, key) in keys {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let Some(index) = KEY_FILES.iter().position(|known| *known == name) else {
            continue;
        };
        install_file(&key_copies[index], key.to_base64().as_bytes())?;
        written.push(key_copies[index].clone());
    }
    Ok(written)
}

/// Writes `contents` to `path` (0600) through a temporary file, fsynced and renamed into place.
fn install_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let staging = staging_path(path);
    let written = (|| -> std::io::Result<()> {
        let mut file = data_dir::create_new_private_file(&staging)?;
        file.write_all(contents)?;
        file.sync_all()?;
        std::fs::rename(&staging, path)?;
        data_dir::sync_dir(parent(path))
    })();
    written
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&staging);
        })
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Copies `from` to the new file `to` (0600), fsynced.
fn copy_private(from: &Path, to: &Path) -> anyhow::Result<()> {
    let copied = (|| -> std::io::Result<()> {
        let mut target = data_dir::create_new_private_file(to)?;
        std::io::copy(&mut std::fs::File::open(from)?, &mut target)?;
        target.sync_all()
    })();
    copied.with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))
}

fn sync_file(path: &Path) -> anyhow::Result<()> {
    std::fs::File::open(path)
        .and_then(|file| file.sync_all())
        .with_context(|| format!("cannot sync {}", path.display()))
}

fn refuse_postgres(config: &Config, command: &str) -> anyhow::Result<()> {
    match config.database_url {
        None => Ok(()),
        Some(_) => anyhow::bail!(
            "`hookd {command}` copies the SQLite database of a data dir, and this configuration \
             uses PostgreSQL ({}). Back it up with pg_dump and restore it with pg_restore (README, \
             \"Backup and restore\"); keep the master key with the dump",
            config.store_description()
        ),
    }
}

/// `FILE.<name>`: a key file's copy beside the backup `FILE`.
fn beside(file: &Path, name: &str) -> PathBuf {
    with_suffix(file, &format!(".{name}"))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut text: OsString = path.as_os_str().to_owned();
    text.push(suffix);
    PathBuf::from(text)
}

/// A temporary name beside `path`, unique to this process.
fn staging_path(path: &Path) -> PathBuf {
    with_suffix(path, &format!(".{}.partial", std::process::id()))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}
