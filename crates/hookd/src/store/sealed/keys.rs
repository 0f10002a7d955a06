//! Sealing one secret: the master key, the keyring a node holds, and the stored forms
//! (`enc:v2:<key id>:…`, the older `enc:v1:…`, plaintext). Pure: no files, no database.

use crate::store::{StoreError, StoreResult};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::Digest;

const PREFIX_V1: &str = "enc:v1:";
const PREFIX_V2: &str = "enc:v2:";
/// Hex digits of a key id (64 bits of a SHA-256 of the key).
const KEY_ID_LEN: usize = 16;

/// The 32-byte master key.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id())
    }
}

impl PartialEq for MasterKey {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq;
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for MasterKey {}

impl MasterKey {
    pub fn generate() -> Self {
        Self(crate::ids::random_bytes::<32>())
    }

    /// Parses the base64 form (as in `HOOKD_MASTER_KEY` and the key file).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| "the master key must be base64".to_owned())?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "the master key must be 32 bytes".to_owned())?;
        Ok(Self(key))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// A short public name for the key (16 hex digits of a SHA-256 of it): stored in front of every
    /// value it seals and in the database's `sealing_key`. It reveals nothing usable about the key.
    pub fn id(&self) -> String {
        let digest = sha2::Sha256::new()
            .chain_update(b"hookd master key id\0")
            .chain_update(self.0)
            .finalize();
        hex::encode(digest)[..KEY_ID_LEN].to_owned()
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }

    /// Seals `secret` for subscription `id`.
    pub fn seal(&self, id: &str, secret: &str) -> StoreResult<String> {
        let nonce_bytes = crate::ids::random_bytes::<24>();
        let nonce = XNonce::from(nonce_bytes);
        let sealed = self
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: secret.as_bytes(),
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Internal("cannot seal a secret".into()))?;
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{PREFIX_V2}{}:{}", self.id(), STANDARD.encode(out)))
    }

    /// Decrypts the base64 part of a sealed value; `None` if this key did not seal it.
    fn decrypt(&self, id: &str, encoded: &str) -> Option<String> {
        let bytes = STANDARD.decode(encoded).ok()?;
        if bytes.len() < 24 {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let nonce = XNonce::try_from(nonce).ok()?;
        let plain = self
            .cipher()
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: id.as_bytes(),
                },
            )
            .ok()?;
        String::from_utf8(plain).ok()
    }

    /// Opens a stored value sealed with this key; plaintext (legacy) values pass through unchanged.
    pub fn open(&self, id: &str, stored: &str) -> StoreResult<String> {
        Keyring::new(self.clone()).open(id, stored)
    }
}

/// The id of the key that sealed a stored value, when its form names one (`enc:v2:<id>:…`).
/// Backends compare it with the database's sealing key before writing a secret.
pub fn key_id_of(stored: &str) -> Option<&str> {
    let rest = stored.strip_prefix(PREFIX_V2)?;
    rest.split_once(':').map(|(id, _)| id)
}

/// Why a stored value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Sealed with a key this keyring does not hold (by its id).
    UnknownKey(String),
    /// Not a value any key of this keyring sealed for this subscription.
    Corrupt,
}

/// The master keys a node holds: one seals, all open.
#[derive(Debug, Clone)]
pub struct Keyring {
    /// Never empty; `keys[sealing]` seals new values.
    keys: Vec<MasterKey>,
    sealing: usize,
}

impl Keyring {
    pub fn new(sealing: MasterKey) -> Self {
        Self {
            keys: vec![sealing],
            sealing: 0,
        }
    }

    /// Adds a key that opens values (it seals only once chosen with [`Self::seal_with`]).
    pub fn add(&mut self, key: MasterKey) {
        if !self.keys.contains(&key) {
            self.keys.push(key);
        }
    }

    pub fn get(&self, id: &str) -> Option<&MasterKey> {
        self.keys.iter().find(|key| key.id() == id)
    }

    /// Makes the key with this id the sealing key; false (and nothing changed) if it is not here.
    pub fn seal_with(&mut self, id: &str) -> bool {
        match self.keys.iter().position(|key| key.id() == id) {
            Some(index) => {
                self.sealing = index;
                true
            }
            None => false,
        }
    }

    pub fn sealing(&self) -> &MasterKey {
        &self.keys[self.sealing]
    }

    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(MasterKey::id).collect()
    }

    pub fn seal(&self, id: &str, secret: &str) -> StoreResult<String> {
        self.sealing().seal(id, secret)
    }

    /// Opens a stored value of subscription `id` (plaintext passes through). Values without a key id
    /// (`enc:v1:`) are tried with every key, the sealing key first.
    pub fn try_open(&self, id: &str, stored: &str) -> Result<String, OpenError> {
        if let Some(rest) = stored.strip_prefix(PREFIX_V2) {
            let (key_id, encoded) = rest.split_once(':').ok_or(OpenError::Corrupt)?;
            let key = self
                .get(key_id)
                .ok_or_else(|| OpenError::UnknownKey(key_id.to_owned()))?;
            return key.decrypt(id, encoded).ok_or(OpenError::Corrupt);
        }
        let Some(encoded) = stored.strip_prefix(PREFIX_V1) else {
            return Ok(stored.to_owned());
        };
        std::iter::once(self.sealing())
            .chain(&self.keys)
            .find_map(|key| key.decrypt(id, encoded))
            .ok_or(OpenError::Corrupt)
    }

    /// [`Self::try_open`] with the failure as a [`StoreError`].
    pub fn open(&self, id: &str, stored: &str) -> StoreResult<String> {
        self.try_open(id, stored)
            .map_err(|error| open_failed(id, error))
    }
}

pub(super) fn open_failed(id: &str, error: OpenError) -> StoreError {
    match error {
        // Unavailable, not internal: the node lacks a key (a rotation it has not caught up with),
        // the data is intact, and requests succeed again once the key is installed.
        OpenError::UnknownKey(key_id) => StoreError::Unavailable(format!(
            "the secret of {id} is sealed with master key {key_id}, which this node does not \
             have (was the master key rotated? install the new key and restart)"
        )),
        OpenError::Corrupt => StoreError::Internal(format!(
            "the secret of {id} cannot be decrypted (wrong master key?)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let key = MasterKey::generate();
        let sealed = key.seal("wh_1", "whsec_abc").unwrap();
        assert!(sealed.starts_with(&format!("{PREFIX_V2}{}:", key.id())));
        assert_eq!(key_id_of(&sealed), Some(key.id().as_str()));
        assert!(!sealed.contains("whsec_abc"));
        assert_ne!(
            sealed,
            key.seal("wh_1", "whsec_abc").unwrap(),
            "random nonces"
        );
        assert_eq!(key.open("wh_1", &sealed).unwrap(), "whsec_abc");
        assert!(
            key.open("wh_2", &sealed).is_err(),
            "bound to its subscription"
        );
        assert!(
            MasterKey::generate().open("wh_1", &sealed).is_err(),
            "wrong key"
        );
        assert_eq!(key.open("wh_1", "whsec_legacy").unwrap(), "whsec_legacy");
        assert_eq!(key_id_of("whsec_legacy"), None);
        assert!(!format!("{key:?}").contains(&key.to_base64()));
    }

    /// `enc:v1:` as hookd wrote it before key ids: nonce ‖ ciphertext, no id.
    fn seal_v1(key: &MasterKey, id: &str, secret: &str) -> String {
        let v2 = key.seal(id, secret).unwrap();
        let encoded = v2.rsplit(':').next().unwrap();
        format!("{PREFIX_V1}{encoded}")
    }

    #[test]
    fn a_keyring_opens_with_the_key_each_value_names() {
        let old = MasterKey::generate();
        let new = MasterKey::generate();
        assert_ne!(old.id(), new.id());
        assert_eq!(old.id().len(), KEY_ID_LEN);
        let mut keyring = Keyring::new(old.clone());
        keyring.add(new.clone());
        keyring.add(new.clone());
        assert_eq!(keyring.ids(), vec![old.id(), new.id()]);
        let by_old = old.seal("wh_1", "whsec_old").unwrap();
        let by_new = new.seal("wh_1", "whsec_new").unwrap();
        let legacy = seal_v1(&new, "wh_1", "whsec_v1");
        assert_eq!(keyring.open("wh_1", &by_old).unwrap(), "whsec_old");
        assert_eq!(keyring.open("wh_1", &by_new).unwrap(), "whsec_new");
        assert_eq!(keyring.open("wh_1", &legacy).unwrap(), "whsec_v1");
        assert_eq!(
            key_id_of(&keyring.seal("wh_1", "s").unwrap()),
            Some(old.id().as_str())
        );
        assert!(keyring.seal_with(&new.id()));
        assert_eq!(
            key_id_of(&keyring.seal("wh_1", "s").unwrap()),
            Some(new.id().as_str())
        );
        assert!(!keyring.seal_with("0000000000000000"));
        let alone = Keyring::new(new.clone());
        assert_eq!(
            alone.try_open("wh_1", &by_old),
            Err(OpenError::UnknownKey(old.id()))
        );
        assert!(matches!(
            alone.open("wh_1", &by_old),
            Err(StoreError::Unavailable(_))
        ));
        let tampered = by_new.replace(&new.id(), &old.id());
        assert_eq!(keyring.try_open("wh_1", &tampered), Err(OpenError::Corrupt));
    }
}
