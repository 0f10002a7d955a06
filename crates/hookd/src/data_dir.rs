//! The data dir is readable by hookd's user alone: the directory has mode 0700 and every file in it
//! 0600. It holds the SQLite database and its `-wal` and `-shm` files (payloads, sealed secrets, API
//! key hashes), `master.key` and `master.key.next` (what opens those secrets) and `worker.lock`.
//!
//! [`prepare`] creates the directory 0700, or tightens an existing one, and tightens every regular
//! file directly in it that its group or others could read, write or run (logged at info with the
//! path and both modes). Files hookd creates there are created 0600 by whoever creates them
//! (the SQLite store creates its database file itself, and SQLite gives the `-wal` and `-shm`
//! files the database file's mode). Modes are only ever narrowed, never widened.

use anyhow::Context;
use std::path::Path;

/// The data dir's mode: its owner only.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file in the data dir: its owner reads and writes.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` (its missing parents with the default mode, `dir` itself 0700), or tightens it if
/// it exists; then tightens the files in it. A file whose mode cannot be changed (another user's)
/// is a warning, not a reason not to start.
pub fn prepare(dir: &Path) -> anyhow::Result<()> {
    create(dir).with_context(|| format!("cannot create data dir {}", dir.display()))?;
    tighten(dir, DIR_MODE).with_context(|| {
        format!(
            "cannot restrict data dir {} to its owner (mode {DIR_MODE:o})",
            dir.display()
        )
    })?;
    tighten_files(dir).with_context(|| format!("cannot list data dir {}", dir.display()))
}

#[cfg(unix)]
fn create(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        // Another process created it meanwhile: tightened below like any existing one.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

#[cfg(not(unix))]
fn create(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Tightens every regular file directly in `dir` (not symbolic links: their targets live
/// elsewhere, and not subdirectories: hookd makes none).
fn tighten_files(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        // `DirEntry::file_type` does not follow symbolic links.
        if !entry.file_type()?.is_file() {
            continue;
        }
        let path = entry.path();
        if let Err(error) = tighten(&path, FILE_MODE) {
            tracing::warn!(
                %error,
                path = %path.display(),
                "cannot restrict a data dir file to its owner (mode {FILE_MODE:o})"
            );
        }
    }
    Ok(())
}

/// Clears the bits of `path`'s mode outside `allowed` (and set-id and sticky bits), if any are set.
#[cfg(unix)]
fn tighten(path: &Path, allowed: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::symlink_metadata(path)?.permissions().mode() & 0o7777;
    let narrowed = mode & allowed;
    if narrowed == mode {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(narrowed))?;
    tracing::info!(
        path = %path.display(),
        from = format!("{mode:o}"),
        to = format!("{narrowed:o}"),
        "restricted a data dir entry to its owner"
    );
    Ok(())
}

#[cfg(not(unix))]
fn tighten(_path: &Path, _allowed: u32) -> std::io::Result<()> {
    Ok(())
}

/// Creates `path` empty with mode 0600 if it does not exist (an existing file is left as it is).
pub fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    options.open(path).map(drop)
}

/// Creates `path` with mode 0600; fails if it exists.
pub fn create_new_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    options.open(path)
}

/// Makes the renames and removals in `dir` durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_new_data_dir_is_private_and_its_parents_are_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("parent/data");
        prepare(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_ne!(
            mode(&root.path().join("parent")) & 0o077,
            0,
            "a parent directory keeps the usual mode"
        );
        create_private_file(&dir.join("hookd.db")).unwrap();
        assert_eq!(mode(&dir.join("hookd.db")), 0o600);
    }

    #[test]
    fn an_existing_data_dir_and_its_files_are_narrowed_never_widened() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        set_mode(&dir, 0o755);
        for (name, before, after) in [
            ("hookd.db", 0o644, 0o600),
            ("hookd.db-wal", 0o666, 0o600),
            ("master.key", 0o400, 0o400),
            ("notes.txt", 0o4755, 0o600),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, b"x").unwrap();
            set_mode(&path, before);
            prepare(&dir).unwrap();
            assert_eq!(mode(&path), after, "{name}");
        }
        assert_eq!(mode(&dir), 0o700);
        // A symbolic link's target is not the data dir's.
        let outside = root.path().join("outside");
        std::fs::write(&outside, b"x").unwrap();
        set_mode(&outside, 0o644);
        std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();
        prepare(&dir).unwrap();
        assert_eq!(mode(&outside), 0o644);
    }
}
