//! Subscription secrets and Ed25519 signing keys encrypted at rest, for every backend: a decorator around the roles that
//! carry secrets ([`SubscriptionStore`], and [`QueueStore`] whose claims return subscriptions) that
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

mod key_file;
mod keys;

pub use key_file::{KEY_FILE, KeySource, NEXT_KEY_FILE, read_key_file, write_private};
pub use keys::{Keyring, MasterKey, OpenError, key_id_of};

use super::*;
use keys::open_failed;
use std::collections::HashMap;
use std::future::Future;
use std::sync::RwLock;

/// The node's master keys, shared by the sealed roles.
struct Sealing {
    source: KeySource,
    /// Replaced (not mutated) when the node looks at its key source again.
    keys: RwLock<Arc<Keyring>>,
}

/// Wraps the roles of `store` that carry secrets with the keys of `source`, sealing with the key
/// the database names (after a rotation) or else the current one. Fails if the database names a key
/// the source lacks.
pub async fn seal(store: Store, source: KeySource) -> StoreResult<Store> {
    let keys = source.load().map_err(key_source_error)?;
    let sealing = Arc::new(Sealing {
        source,
        keys: RwLock::new(Arc::new(keys)),
    });
    if let Some(key_id) = store.secrets.sealing_key_id().await? {
        sealing.reload(Some(&key_id))?;
    }
    Ok(Store {
        subscriptions: Arc::new(SealedSubscriptions {
            inner: store.subscriptions.clone(),
            sealing: sealing.clone(),
        }),
        queue: Arc::new(SealedQueue {
            inner: store.queue.clone(),
            sealing,
        }),
        ..store
    })
}

impl Sealing {
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
        for entry in sealed
            .signing_key
            .iter_mut()
            .chain(sealed.previous_signing_key.iter_mut())
        {
            entry.key = keyring.seal(&row.id, &entry.key)?;
        }
        Ok(sealed)
    }

    fn seal_patch(
        &self,
        keyring: &Keyring,
        id: &str,
        patch: &SubscriptionPatch,
    ) -> StoreResult<SubscriptionPatch> {
        let mut sealed = patch.clone();
        for key in sealed
            .signing_key
            .iter_mut()
            .chain(sealed.signing_key_if_missing.iter_mut())
        {
            *key = keyring.seal(id, key)?;
        }
        Ok(sealed)
    }

    fn open_row(&self, mut row: SubscriptionRow) -> StoreResult<SubscriptionRow> {
        row.secret = self.open_value(&row.id, &row.secret)?;
        if let Some(previous) = &row.previous_secret {
            row.previous_secret = Some(self.open_value(&row.id, previous)?);
        }
        let id = row.id.clone();
        for entry in row
            .signing_key
            .iter_mut()
            .chain(row.previous_signing_key.iter_mut())
        {
            entry.key = self.open_value(&id, &entry.key)?;
        }
        Ok(row)
    }
}

fn key_source_error(error: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("cannot read the master key: {error}"))
}

/// Subscriptions with their secrets sealed at rest and open in memory.
struct SealedSubscriptions {
    inner: Arc<dyn SubscriptionStore>,
    sealing: Arc<Sealing>,
}

#[async_trait]
impl SubscriptionStore for SealedSubscriptions {
    async fn insert_subscriptions(&self, rows: &[SubscriptionRow]) -> StoreResult<()> {
        self.sealing
            .write_sealed(|keyring| async move {
                let sealed = rows
                    .iter()
                    .map(|row| self.sealing.seal_row(&keyring, row))
                    .collect::<StoreResult<Vec<_>>>()?;
                self.inner.insert_subscriptions(&sealed).await
            })
            .await
    }

    async fn get_subscription(&self, id: &str) -> StoreResult<Option<SubscriptionRow>> {
        self.inner
            .get_subscription(id)
            .await?
            .map(|row| self.sealing.open_row(row))
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
                .map(|row| self.sealing.open_row(row))
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
        self.sealing
            .write_sealed(|keyring| {
                let sealed = self.sealing.seal_patch(&keyring, id, &patch);
                async move { self.inner.update_subscription(id, sealed?, now).await }
            })
            .await?
            .map(|row| self.sealing.open_row(row))
            .transpose()
    }

    async fn rotate_signing_key(
        &self,
        id: &str,
        new_key: &str,
        previous_expires_at: Option<UnixMs>,
        now: UnixMs,
    ) -> StoreResult<Option<SubscriptionRow>> {
        // The store moves the current (sealed) key to `previous_signing_key` itself.
        self.sealing
            .write_sealed(|keyring| async move {
                let sealed = keyring.seal(id, new_key)?;
                self.inner
                    .rotate_signing_key(id, &sealed, previous_expires_at, now)
                    .await
            })
            .await?
            .map(|row| self.sealing.open_row(row))
            .transpose()
    }

    async fn delete_subscription(&self, id: &str) -> StoreResult<bool> {
        self.inner.delete_subscription(id).await
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
            Some((row, replayed)) => Ok(Some((self.sealing.open_row(row)?, replayed))),
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
        self.sealing
            .write_sealed(|keyring| async move {
                let sealed = keyring.seal(id, new_secret)?;
                self.inner
                    .rotate_secret(id, &sealed, previous_expires_at, now)
                    .await
            })
            .await?
            .map(|row| self.sealing.open_row(row))
            .transpose()
    }
}

/// The queue, with each claimed subscription's secrets opened (once per subscription per claim).
struct SealedQueue {
    inner: Arc<dyn QueueStore>,
    sealing: Arc<Sealing>,
}

#[async_trait]
impl QueueStore for SealedQueue {
    async fn listen_for_work(&self, waker: Arc<tokio::sync::Notify>) -> StoreResult<()> {
        self.inner.listen_for_work(waker).await
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
                        let open =
                            Arc::new(self.sealing.open_row((*claimed.subscription).clone())?);
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

    async fn rescue_leases(&self, rescue: Rescue) -> StoreResult<u64> {
        self.inner.rescue_leases(rescue).await
    }

    async fn next_due_at(&self) -> StoreResult<Option<UnixMs>> {
        self.inner.next_due_at().await
    }
}
