//! Where a node's master keys live on disk: `<data_dir>/master.key` (created 0600 at first start)
//! and, during a rotation, `master.key.next`; or a configured key.

use super::keys::{Keyring, MasterKey};
use std::path::{Path, PathBuf};

/// The current master key, in the data dir, when none is configured.
pub const KEY_FILE: &str = "master.key";
/// The key a rotation is moving to, written (0600, fsynced) before anything is re-encrypted.
pub const NEXT_KEY_FILE: &str = "master.key.next";

impl MasterKey {
    /// Reads `<data_dir>/master.key`, creating it (mode 0600) on first start.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join(KEY_FILE);
        if let Some(key) = read_key_file(&path)? {
            return Ok(key);
        }
        let key = Self::generate();
        write_private(&path, &key.to_base64())?;
        Ok(key)
    }
}

/// Reads a key file; `None` when it does not exist.
pub fn read_key_file(path: &Path) -> std::io::Result<Option<MasterKey>> {
    match std::fs::read_to_string(path) {
        Ok(text) => MasterKey::parse(&text)
            .map(Some)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display()))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// Creates `path` with mode 0600 and `contents`, fsynced. Fails if it exists.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// Where a node finds its master keys; looked at again when a rotation brings a key it lacks.
#[derive(Debug, Clone)]
pub struct KeySource {
    /// `master_key` / `HOOKD_MASTER_KEY`; `None`: `<data_dir>/master.key`, created at first start.
    pub configured: Option<MasterKey>,
    /// Holds `master.key` (when not configured) and, during a rotation, `master.key.next`.
    pub data_dir: PathBuf,
}

impl KeySource {
    /// The current key (configured, else the key file, created if missing) and the key of an
    /// unfinished rotation, if any. The current key seals unless the database says otherwise.
    pub fn load(&self) -> std::io::Result<Keyring> {
        let current = match &self.configured {
            Some(key) => key.clone(),
            None => MasterKey::load_or_create(&self.data_dir)?,
        };
        let mut keyring = Keyring::new(current);
        if let Some(next) = read_key_file(&self.next_key_path())? {
            keyring.add(next);
        }
        Ok(keyring)
    }

    pub fn key_path(&self) -> PathBuf {
        self.data_dir.join(KEY_FILE)
    }

    pub fn next_key_path(&self) -> PathBuf {
        self.data_dir.join(NEXT_KEY_FILE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn key_file_is_private_and_stable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::TempDir::new().unwrap();
        let first = MasterKey::load_or_create(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = MasterKey::load_or_create(dir.path()).unwrap();
        assert_eq!(first, again);
        assert!(MasterKey::parse("not base64!").is_err());
        assert!(MasterKey::parse(&STANDARD.encode([1u8; 16])).is_err());
    }

    #[test]
    fn the_key_source_adds_the_key_of_an_unfinished_rotation() {
        let dir = tempfile::TempDir::new().unwrap();
        let files = KeySource {
            configured: None,
            data_dir: dir.path().to_path_buf(),
        };
        let current = files.load().unwrap().sealing().clone();
        let next = MasterKey::generate();
        write_private(&files.next_key_path(), &next.to_base64()).unwrap();
        let keyring = files.load().unwrap();
        assert_eq!(keyring.ids(), vec![current.id(), next.id()]);
        assert_eq!(
            keyring.sealing(),
            &current,
            "the current key seals by default"
        );
        let configured = MasterKey::generate();
        let from_config = KeySource {
            configured: Some(configured.clone()),
            data_dir: dir.path().to_path_buf(),
        };
        assert_eq!(
            from_config.load().unwrap().ids(),
            vec![configured.id(), next.id()]
        );
    }
}
