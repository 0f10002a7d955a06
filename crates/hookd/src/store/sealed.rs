//! Subscription secrets encrypted at rest, for every backend: a decorator around any [`Store`] that
//! seals secrets on the way in and opens them on the way out. The rest of hookd sees plaintext; the
//! database holds `enc:v2:<key id>:<base64 of nonce ‖ ciphertext>` (XChaCha20-Poly1305, random
//! 24-byte nonce, the subscription id as associated data so a sealed secret cannot be moved to
//! another row). The key id names the master key that sealed the value, so a node holding several
//! keys (during a rotation) opens each value with the right one.
//!
//! Older forms are still read: `enc:v1:…` (no key id: tried with every key the node has) and
//! plaintext (written before encryption existed). Both are sealed afresh at their next write or
//! by `hookd master-key rotate`.
//!
//! The master keys come from a [`KeySource`]: `master_key` / `HOOKD_MASTER_KEY`, else
//! `<data_dir>/master.key`, plus `<data_dir>/master.key.next` while a rotation is under way. The
//! database records which key seals its secrets (`sealing_key`, set by the rotation); every write
//! of a secret checks it, and a node that meets a key it does not know looks at its key source
//! again, so a running node follows a rotation by itself (see `crate::master_key`).

use super::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::Digest;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

const PREFIX_V1: &str = "enc:v1:";
const PREFIX_V2: &str = "enc:v2:";
/// The current master key, in the data dir, when none is configured.
pub const KEY_FILE: &str = "master.key";
/// The key a rotation is moving to, written (0600, fsynced) before anything is re-encrypted.
pub const NEXT_KEY_FILE: &str = "master.key.next";
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

fn open_failed(id: &str, error: OpenError) -> StoreError {
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

/// A store whose subscription secrets are sealed with the node's master keys.
pub struct SealedStore {
    inner: DynStore,
    source: KeySource,
    /// Replaced (not mutated) when the node looks at its key source again.
    keys: RwLock<Arc<Keyring>>,
}

impl SealedStore {
    /// Wraps `inner` with the keys of `source`, sealing with the key the database names (after a
    /// rotation) or else the current one. Fails if the database names a key the source lacks.
    pub async fn open(inner: DynStore, source: KeySource) -> StoreResult<Self> {
        let keys = source.load().map_err(key_source_error)?;
        let store = Self {
            inner,
            source,
            keys: RwLock::new(Arc::new(keys)),
        };
        if let Some(key_id) = store.inner.sealing_key_id().await? {
            store.reload(Some(&key_id))?;
        }
        Ok(store)
    }

    fn keyring(&self) -> Arc<Keyring> {
        match self.keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Loads the key source again and seals from now on with `sealing_id` (the database's choice),
    /// else with the key that sealed so far, else with the source's current key.
    fn reload(&self, sealing_id: Option<&str>) -> StoreResult<Arc<Keyring>> {
        let mut keyring = self.source.load().map_err(key_source_error)?;
        let sealing = sealing_id.map(str::to_owned);
        let previous = self.keyring().sealing().id();
        match &sealing {
            Some(id) if !keyring.seal_with(id) => {
                return Err(StoreError::Unavailable(format!(
                    "the database's secrets are sealed with master key {id}, which this node \
                     does not have (its keys: {}); install the new master key and restart",
                    keyring.ids().join(", ")
                )));
            }
            Some(_) => {}
            None => {
                keyring.seal_with(&previous);
            }
        }
        let keyring = Arc::new(keyring);
        match self.keys.write() {
            Ok(mut keys) => *keys = keyring.clone(),
            Err(poisoned) => *poisoned.into_inner() = keyring.clone(),
        }
        Ok(keyring)
    }

    /// Runs a write of freshly sealed secrets. When the database says that another key seals now (a
    /// rotation happened since this node loaded its keys), reloads the keys and writes once more,
    /// sealed with that key.
    async fn write_sealed<T, Write, Written>(&self, write: Write) -> StoreResult<T>
    where
        Write: Fn(Arc<Keyring>) -> Written,
        Written: Future<Output = StoreResult<T>>,
    {
        match write(self.keyring()).await {
            Err(StoreError::SealingKeyChanged(key_id)) => write(self.reload(Some(&key_id))?).await,
            other => other,
        }
    }

    fn open_value(&self, id: &str, stored: &str) -> StoreResult<String> {
        match self.keyring().try_open(id, stored) {
            Err(OpenError::UnknownKey(_)) => {
                // A rotation may have brought a key this node has not loaded yet.
                self.reload(None)?.open(id, stored)
            }
            other => other.map_err(|error| open_failed(id, error)),
        }
    }

    fn seal_row(&self, keyring: &Keyring, row: &SubscriptionRow) -> StoreResult<SubscriptionRow> {
        let mut sealed = row.clone();
        sealed.secret = keyring.seal(&row.id, &row.secret)?;
        if let Some(previous) = &row.previous_secret {
            sealed.previous_secret = Some(keyring.seal(&row.id, previous)?);
        }
        Ok(sealed)
    }

    fn open_row(&self, mut row: SubscriptionRow) -> StoreResult<SubscriptionRow> {
        row.secret = self.open_value(&row.id, &row.secret)?;
        if let Some(previous) = &row.previous_secret {
            row.previous_secret = Some(self.open_value(&row.id, previous)?);
        }
        Ok(row)
    }
}

fn key_source_error(error: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("cannot read the master key: {error}"))
}
#[async_trait]
impl Store for SealedStore {
    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }
    async fn sealing_key_id(&self) -> StoreResult<Option<String>> {
        self.inner.sealing_key_id().await
    }
    async fn reseal_secrets(
        &self,
        key_id: &str,
        reseal: &ResealFn<'_>,
        now: UnixMs,
    ) -> StoreResult<u64> {
        self.inner.reseal_secrets(key_id, reseal, now).await
    }
    /// The UI queries never read secrets, so they pass straight through.
    fn ui(&self) -> &dyn super::ui::UiStore {
        self.inner.ui()
    }
    async fn listen_for_work(&self, waker: Arc<tokio::sync::Notify>) -> StoreResult<()> {
        self.inner.listen_for_work(waker).await
    }
    async fn insert_api_key(&self, key: NewApiKey) -> StoreResult<()> {
        self.inner.insert_api_key(key).await
    }
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRow>> {
        self.inner.list_api_keys().await
    }
    async fn revoke_api_key(&self, id: &str, now: UnixMs) -> StoreResult<bool> {
        self.inner.revoke_api_key(id, now).await
    }
    async fn api_key_by_hash(&self, hash: &[u8]) -> StoreResult<Option<ApiKeyRow>> {
        self.inner.api_key_by_hash(hash).await
    }
    async fn insert_subscription(&self, row: &SubscriptionRow) -> StoreResult<()> {
        self.write_sealed(|keyring| async move {
            let sealed = self.seal_row(&keyring, row)?;
            self.inner.insert_subscription(&sealed).await
        })
        .await
    }
    async fn get_subscription(&self, id: &str) -> StoreResult<Option<SubscriptionRow>> {
        self.inner
            .get_subscription(id)
            .await?
            .map(|row| self.open_row(row))
            .transpose()
    }
    async fn list_subscriptions(
        &self,
        query: SubscriptionQuery,
    ) -> StoreResult<Page<SubscriptionRow>> {
        let page = self.inner.list_subscriptions(query).await?;
        Ok(Page {
            items: page
                .items
                .into_iter()
                .map(|row| self.open_row(row))
                .collect::<StoreResult<_>>()?,
            next: page.next,
        })
    }
    async fn update_subscription(
        &self,
        id: &str,
        patch: SubscriptionPatch,
        now: UnixMs,
    ) -> StoreResult<Option<SubscriptionRow>> {
        self.inner
            .update_subscription(id, patch, now)
            .await?
            .map(|row| self.open_row(row))
            .transpose()
    }
    async fn delete_subscription(&self, id: &str) -> StoreResult<bool> {
        self.inner.delete_subscription(id).await
    }
    async fn publish(&self, events: Vec<NewEvent>) -> StoreResult<Vec<Published>> {
        self.inner.publish(events).await
    }
    async fn get_event(&self, id: &str) -> StoreResult<Option<EventRow>> {
        self.inner.get_event(id).await
    }
    async fn list_events(&self, query: EventQuery) -> StoreResult<Page<EventRow>> {
        self.inner.list_events(query).await
    }
    async fn deliveries_for_event(&self, event_id: &str) -> StoreResult<Vec<DeliveryRow>> {
        self.inner.deliveries_for_event(event_id).await
    }
    async fn list_event_types(&self, include_archived: bool) -> StoreResult<Vec<EventTypeRow>> {
        self.inner.list_event_types(include_archived).await
    }
    async fn add_event_type(&self, row: EventTypeRow) -> StoreResult<EventTypeRow> {
        self.inner.add_event_type(row).await
    }
    async fn archive_event_type(&self, name: &str, now: UnixMs) -> StoreResult<bool> {
        self.inner.archive_event_type(name, now).await
    }
    async fn event_type_exists(&self, name: &str) -> StoreResult<bool> {
        self.inner.event_type_exists(name).await
    }
    async fn claim_due(&self, request: ClaimRequest) -> StoreResult<Vec<ClaimedDelivery>> {
        let mut opened: HashMap<String, Arc<SubscriptionRow>> = HashMap::new();
        self.inner
            .claim_due(request)
            .await?
            .into_iter()
            .map(|mut claimed| {
                // One claim's deliveries of a subscription share its row: opened once.
                claimed.subscription = match opened.get(&claimed.subscription.id) {
                    Some(open) => Arc::clone(open),
                    None => {
                        let open = Arc::new(self.open_row((*claimed.subscription).clone())?);
                        opened.insert(open.id.clone(), Arc::clone(&open));
                        open
                    }
                };
                Ok(claimed)
            })
            .collect()
    }
    async fn record_outcomes(
        &self,
        owner: &str,
        outcomes: Vec<DeliveryOutcome>,
        disable_after_failures: i64,
        now: UnixMs,
    ) -> StoreResult<RecordReport> {
        self.inner
            .record_outcomes(owner, outcomes, disable_after_failures, now)
            .await
    }
    async fn release_leases(&self, owner: &str, delivery_ids: &[String]) -> StoreResult<u64> {
        self.inner.release_leases(owner, delivery_ids).await
    }
    async fn rescue_expired_leases(&self, now: UnixMs) -> StoreResult<u64> {
        self.inner.rescue_expired_leases(now).await
    }
    async fn next_due_at(&self) -> StoreResult<Option<UnixMs>> {
        self.inner.next_due_at().await
    }
    async fn get_delivery(&self, id: &str) -> StoreResult<Option<DeliveryRow>> {
        self.inner.get_delivery(id).await
    }
    async fn list_attempts(&self, delivery_id: &str) -> StoreResult<Vec<AttemptRow>> {
        self.inner.list_attempts(delivery_id).await
    }
    async fn list_deliveries(&self, query: DeliveryQuery) -> StoreResult<Page<DeliveryRow>> {
        self.inner.list_deliveries(query).await
    }
    async fn retry_delivery(&self, id: &str, now: UnixMs) -> StoreResult<RetryResult> {
        self.inner.retry_delivery(id, now).await
    }
    async fn list_dead_letters(
        &self,
        filter: DeadLetterFilter,
        after: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Page<DeadLetterRow>> {
        self.inner.list_dead_letters(filter, after, limit).await
    }
    async fn redrive_dead_letters(
        &self,
        filter: DeadLetterFilter,
        now: UnixMs,
    ) -> StoreResult<u64> {
        self.inner.redrive_dead_letters(filter, now).await
    }
    async fn recover(
        &self,
        subscription_id: &str,
        since: UnixMs,
        until: Option<UnixMs>,
        now: UnixMs,
    ) -> StoreResult<u64> {
        self.inner.recover(subscription_id, since, until, now).await
    }
    async fn set_subscription_active(
        &self,
        id: &str,
        active: bool,
        reason: Option<String>,
        replay: bool,
        now: UnixMs,
    ) -> StoreResult<Option<(SubscriptionRow, u64)>> {
        match self
            .inner
            .set_subscription_active(id, active, reason, replay, now)
            .await?
        {
            Some((row, replayed)) => Ok(Some((self.open_row(row)?, replayed))),
            None => Ok(None),
        }
    }
    async fn rotate_secret(
        &self,
        id: &str,
        new_secret: &str,
        previous_expires_at: Option<UnixMs>,
        now: UnixMs,
    ) -> StoreResult<Option<SubscriptionRow>> {
        // The store moves the current (sealed) secret to `previous_secret` itself.
        self.write_sealed(|keyring| async move {
            let sealed = keyring.seal(id, new_secret)?;
            self.inner
                .rotate_secret(id, &sealed, previous_expires_at, now)
                .await
        })
        .await?
        .map(|row| self.open_row(row))
        .transpose()
    }
    async fn delivery_stats(&self, subscription_id: Option<&str>) -> StoreResult<DeliveryStats> {
        self.inner.delivery_stats(subscription_id).await
    }
    async fn record_receipt(&self, receipt: ReceiptRow) -> StoreResult<bool> {
        self.inner.record_receipt(receipt).await
    }
    async fn list_receipts(
        &self,
        subscription_id: &str,
        after: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Page<ReceiptRow>> {
        self.inner
            .list_receipts(subscription_id, after, limit)
            .await
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
