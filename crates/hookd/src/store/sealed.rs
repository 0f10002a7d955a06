//! Subscription secrets encrypted at rest, for every backend: a decorator around any [`Store`] that
//! seals secrets on the way in and opens them on the way out. The rest of hookd sees plaintext; the
//! database holds `enc:v1:<base64 of nonce ‖ ciphertext>` (XChaCha20-Poly1305, random 24-byte nonce,
//! the subscription id as associated data so a sealed secret cannot be moved to another row).
//! Values without the prefix (written before encryption existed) are read as they are and sealed at
//! their next write.

use super::*;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::path::Path;

const PREFIX: &str = "enc:v1:";
pub const KEY_FILE: &str = "master.key";

/// The 32-byte master key.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

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

    /// Reads `<data_dir>/master.key`, creating it (mode 0600) on first start.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text).map_err(std::io::Error::other),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate();
                write_private(&path, &key.to_base64())?;
                Ok(key)
            }
            Err(error) => Err(error),
        }
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
        Ok(format!("{PREFIX}{}", STANDARD.encode(out)))
    }

    /// Opens a stored value; plaintext (legacy) values pass through unchanged.
    pub fn open(&self, id: &str, stored: &str) -> StoreResult<String> {
        let Some(encoded) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let corrupt = || {
            StoreError::Internal(format!(
                "the secret of {id} cannot be decrypted (wrong master key?)"
            ))
        };
        let bytes = STANDARD.decode(encoded).map_err(|_| corrupt())?;
        if bytes.len() < 24 {
            return Err(corrupt());
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let nonce = XNonce::try_from(nonce).map_err(|_| corrupt())?;
        let plain = self
            .cipher()
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| corrupt())?;
        String::from_utf8(plain).map_err(|_| corrupt())
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
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

/// A store whose subscription secrets are sealed with `key`.
pub struct SealedStore {
    inner: DynStore,
    key: MasterKey,
}

impl SealedStore {
    pub fn new(inner: DynStore, key: MasterKey) -> Self {
        Self { inner, key }
    }

    fn seal_row(&self, row: &SubscriptionRow) -> StoreResult<SubscriptionRow> {
        let mut sealed = row.clone();
        sealed.secret = self.key.seal(&row.id, &row.secret)?;
        if let Some(previous) = &row.previous_secret {
            sealed.previous_secret = Some(self.key.seal(&row.id, previous)?);
        }
        Ok(sealed)
    }

    fn open_row(&self, mut row: SubscriptionRow) -> StoreResult<SubscriptionRow> {
        row.secret = self.key.open(&row.id, &row.secret)?;
        if let Some(previous) = &row.previous_secret {
            row.previous_secret = Some(self.key.open(&row.id, previous)?);
        }
        Ok(row)
    }
}

#[async_trait]
impl Store for SealedStore {
    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
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
        self.inner.insert_subscription(&self.seal_row(row)?).await
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
        self.inner
            .claim_due(request)
            .await?
            .into_iter()
            .map(|mut claimed| {
                claimed.subscription = self.open_row(claimed.subscription)?;
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
        let sealed = self.key.seal(id, new_secret)?;
        self.inner
            .rotate_secret(id, &sealed, previous_expires_at, now)
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
        assert!(sealed.starts_with(PREFIX));
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
        assert!(!format!("{key:?}").contains(&key.to_base64()));
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
        assert_eq!(first.to_base64(), again.to_base64());
        assert!(MasterKey::parse("not base64!").is_err());
        assert!(MasterKey::parse(&STANDARD.encode([1u8; 16])).is_err());
    }
}
