//! Persistence. Every SQL statement of hookd lives below this module.
//!
//! The contract is split by role, one trait each ([`AdminStore`], [`SubscriptionStore`],
//! [`PublishStore`], [`QueueStore`], [`DeliveryStore`], [`SecretStore`], [`ui::UiStore`]); a [`Store`]
//! holds one implementation of each. Each backend (embedded SQLite, and PostgreSQL for several
//! nodes sharing one database) fills them: the statements that mean the same on both are written
//! once in `sql/` and run on either; `sqlite/` and `postgres/` hold only what differs (the SQLite
//! writer thread, `SKIP LOCKED` claims, `UNNEST` batches, `LISTEN/NOTIFY`). A decorator wraps only
//! the roles it changes (`sealed` seals secrets in subscriptions, claims and rotations). The same
//! contract tests run against both backends (`tests/store`), and so does the API suite
//! (`HOOKD_TEST_BACKEND`). Rows are plain data: validation happens before anything reaches the
//! store.

mod fanout;
mod group;
mod outcomes;
pub mod postgres;
pub mod retention;
mod rows;
pub mod sealed;
mod sql;
pub mod sqlite;
pub mod ui;

pub use group::PublisherStats;
pub use rows::*;

use async_trait::async_trait;
use std::sync::Arc;

/// Re-encrypts one stored secret of a subscription: `(subscription id, value as stored)` to the
/// value to store instead.
pub type ResealFn<'a> = dyn Fn(&str, &str) -> StoreResult<String> + Send + Sync + 'a;

/// Unix time in milliseconds: the unit of every timestamp in the store.
pub type UnixMs = i64;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or cannot write (locked, disk full, I/O error, pool exhausted).
    /// Callers answer 503 and the client retries; nothing was committed.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A uniqueness rule was violated (e.g. an event type that already exists).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Anything else: a bug or corrupt data. Logged with detail, opaque to clients.
    #[error("store error: {0}")]
    Internal(String),
    /// A secret was sealed with a key other than the one the database names (its id is the payload):
    /// the master key was rotated since the writer loaded its keys. Nothing was written; the sealing
    /// layer reloads its keys and writes again.
    #[error("secrets are now sealed with master key {0}")]
    SealingKeyChanged(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The store, by role. Cheap to clone. Every method of every role is one atomic unit: it commits
/// (durably, per the configured synchronous level) before returning `Ok`, or leaves nothing behind.
#[derive(Clone)]
pub struct Store {
    pub admin: Arc<dyn AdminStore>,
    pub subscriptions: Arc<dyn SubscriptionStore>,
    pub publisher: Arc<dyn PublishStore>,
    pub queue: Arc<dyn QueueStore>,
    pub deliveries: Arc<dyn DeliveryStore>,
    pub secrets: Arc<dyn SecretStore>,
    pub nodes: Arc<dyn NodeStore>,
    /// The dashboard's and portal's queries (sessions, the delivery log, chart samples).
    pub ui: Arc<dyn ui::UiStore>,
    pub owners: Arc<dyn OwnerStore>,
    /// Removing finished events once they expire, and the database's size and age.
    pub retention: Arc<dyn retention::RetentionStore>,
}

/// Owners (the operator's customers) as a resource: their subscriptions counted, and erasure.
#[async_trait]
pub trait OwnerStore: Send + Sync + 'static {
    /// Owners of subscriptions, by name, after `after`; at most `limit`.
    async fn list_owners(&self, after: Option<&str>, limit: u32) -> StoreResult<Vec<OwnerRow>>;
    /// One owner: of subscriptions, or of events only (then every count is 0); `None` if unknown.
    async fn get_owner(&self, owner: &str) -> StoreResult<Option<OwnerRow>>;
    /// One bounded step of erasing `owner`, in one transaction: at most `limit` rows per statement
    /// of the deliveries (and with them their attempts) of its subscriptions and of its events
    /// created before `before`; once those are gone its subscriptions, then those events, and its
    /// portal sessions and the API keys bound to it. Repeat until a step erases nothing.
    async fn erase_owner_step(
        &self,
        owner: &str,
        before: UnixMs,
        limit: u32,
    ) -> StoreResult<Erased>;
}

/// An owner and its subscriptions, counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRow {
    pub owner: String,
    pub subscriptions: i64,
    /// Disabled (by the operator, a 410 or too many dead deliveries).
    pub disabled: i64,
    /// Disabled, or with dead deliveries since their last success.
    pub failing: i64,
}

/// What erasure removed (one step, or added up).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    pub subscriptions: u64,
    pub events: u64,
    pub deliveries: u64,
}

impl Erased {
    pub fn is_empty(&self) -> bool {
        self.subscriptions + self.events + self.deliveries == 0
    }

    pub fn add(&mut self, other: Erased) {
        self.subscriptions += other.subscriptions;
        self.events += other.events;
        self.deliveries += other.deliveries;
    }
}

/// API keys, the event-type catalog, receipts of the inbound endpoint, and the readiness check.
#[async_trait]
pub trait AdminStore: Send + Sync + 'static {
    /// Cheap round trip used by `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    async fn insert_api_key(&self, key: NewApiKey) -> StoreResult<()>;
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRow>>;
    /// Marks a key revoked; false when no unrevoked key has that id.
    async fn revoke_api_key(&self, id: &str, now: UnixMs) -> StoreResult<bool>;
    /// The unrevoked key with this SHA-256 hash, if any.
    async fn api_key_by_hash(&self, hash: &[u8]) -> StoreResult<Option<ApiKeyRow>>;

    async fn list_event_types(&self, include_archived: bool) -> StoreResult<Vec<EventTypeRow>>;
    /// Adds a type, or brings back an archived one; `Conflict` when it exists and is not archived.
    async fn add_event_type(&self, row: EventTypeRow) -> StoreResult<EventTypeRow>;
    /// Archives a type; false when there is no such unarchived type.
    async fn archive_event_type(&self, name: &str, now: UnixMs) -> StoreResult<bool>;
    /// True when the type is in the catalog and not archived.
    async fn event_type_exists(&self, name: &str) -> StoreResult<bool>;
    /// The type with this name, archived or not.
    async fn get_event_type(&self, name: &str) -> StoreResult<Option<EventTypeRow>>;
    /// Writes a type's description, schemas, examples and validation mode, if its `updated_at`
    /// is still `expected_updated_at` (no concurrent change); false otherwise.
    async fn update_event_type(
        &self,
        row: &EventTypeRow,
        expected_updated_at: UnixMs,
    ) -> StoreResult<bool>;
    /// Dates the catalog's built-in types, which a migration seeds with `created_at` 0: they get
    /// `now` (the first start that sees them). Returns how many were dated; 0 ever after.
    async fn date_builtin_event_types(&self, now: UnixMs) -> StoreResult<u64>;

    /// Records a receipt; false (and nothing written) when this `webhook_id` was already recorded for
    /// the subscription.
    async fn record_receipt(&self, receipt: ReceiptRow) -> StoreResult<bool>;
    /// A subscription's receipts, newest first.
    async fn list_receipts(
        &self,
        subscription_id: &str,
        after: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Page<ReceiptRow>>;
}

/// Subscriptions: their settings, their state, and their signing secrets.
#[async_trait]
pub trait SubscriptionStore: Send + Sync + 'static {
    /// Writes new subscriptions, all or none, in one transaction. Each secret, if sealed with a key
    /// id (`sealed::key_id_of`), must be sealed with the key the database names, else
    /// `SealingKeyChanged` and nothing is written.
    async fn insert_subscriptions(&self, rows: &[SubscriptionRow]) -> StoreResult<()>;
    /// Writes one new subscription (see [`SubscriptionStore::insert_subscriptions`]).
    async fn insert_subscription(&self, row: &SubscriptionRow) -> StoreResult<()> {
        self.insert_subscriptions(std::slice::from_ref(row)).await
    }
    async fn get_subscription(&self, id: &str) -> StoreResult<Option<SubscriptionRow>>;
    async fn list_subscriptions(
        &self,
        query: SubscriptionQuery,
    ) -> StoreResult<Page<SubscriptionRow>>;
    /// Applies `patch`; `None` when the subscription does not exist.
    async fn update_subscription(
        &self,
        id: &str,
        patch: SubscriptionPatch,
        now: UnixMs,
    ) -> StoreResult<Option<SubscriptionRow>>;
    /// Deletes the subscription and its deliveries; false when it did not exist.
    async fn delete_subscription(&self, id: &str) -> StoreResult<bool>;
    /// Enables or disables a subscription. Disabling holds its queued deliveries; enabling with
    /// `replay` re-queues its held ones. Returns the row and the number replayed.
    async fn set_subscription_active(
        &self,
        id: &str,
        active: bool,
        reason: Option<String>,
        replay: bool,
        now: UnixMs,
    ) -> StoreResult<Option<(SubscriptionRow, u64)>>;
    /// Installs a new secret; the old one keeps signing until `previous_expires_at` (if any). The
    /// new secret is checked against the sealing key as in `insert_subscription`.
    async fn rotate_secret(
        &self,
        id: &str,
        new_secret: &str,
        previous_expires_at: Option<UnixMs>,
        now: UnixMs,
    ) -> StoreResult<Option<SubscriptionRow>>;
    /// Installs a new `v1a` key pair; the old one (if any) keeps signing until
    /// `previous_expires_at` (if any). Checked against the sealing key like a secret.
    async fn rotate_signing_key(
        &self,
        id: &str,
        new_key: &str,
        previous_expires_at: Option<UnixMs>,
        now: UnixMs,
    ) -> StoreResult<Option<SubscriptionRow>>;
}

/// Publishing: the hot write path, group-committed by each backend.
#[async_trait]
pub trait PublishStore: Send + Sync + 'static {
    /// Publishes events all-or-nothing: each new event and one delivery per matching subscription
    /// (pending if active, held if disabled) are committed in one transaction. An event whose id or
    /// idempotency key is already stored is returned as it is, with `created: false`.
    async fn publish(&self, events: Vec<NewEvent>) -> StoreResult<Vec<Published>>;
}

/// The delivery engine's queue: leases, outcomes, rescues.
#[async_trait]
pub trait QueueStore: Send + Sync + 'static {
    /// Wakes `waker` whenever another process sharing this store makes deliveries due (publish,
    /// operator re-queues, rescued leases), so that a worker on one node starts at once on work
    /// published through another. Returns once listening has started; the listening goes on in the
    /// background, reconnecting by itself. A store that only one process can use has nothing to
    /// listen to: the default does nothing (in-process wake-ups go through the local waker).
    async fn listen_for_work(&self, waker: Arc<tokio::sync::Notify>) -> StoreResult<()> {
        let _ = waker;
        Ok(())
    }
    /// Leases due deliveries (state `in_flight`, owner, expiry) and returns them with their event and
    /// subscription. Committed before returning: no transaction is held while sending.
    async fn claim_due(&self, request: ClaimRequest) -> StoreResult<Vec<ClaimedDelivery>>;
    /// Logs the attempts and applies the outcomes in one transaction. An outcome for a delivery that
    /// `owner` no longer leases only logs its attempt.
    async fn record_outcomes(
        &self,
        owner: &str,
        outcomes: Vec<DeliveryOutcome>,
        disable_after_failures: i64,
        now: UnixMs,
    ) -> StoreResult<RecordReport>;
    /// Returns `owner`'s leases on these deliveries to the queue, due at once (shutdown, over-claim).
    async fn release_leases(&self, owner: &str, delivery_ids: &[String]) -> StoreResult<u64>;
    /// Returns the leases `rescue` selects to the queue: those that ran out, and those of nodes
    /// whose heartbeat stopped (a crashed worker's deliveries). Safe to run concurrently on every
    /// node.
    async fn rescue_leases(&self, rescue: Rescue) -> StoreResult<u64>;
    /// Returns every expired lease to the queue.
    async fn rescue_expired_leases(&self, now: UnixMs) -> StoreResult<u64> {
        self.rescue_leases(Rescue::expired(now)).await
    }
    /// When the earliest pending or failed delivery of an active subscription is due, if any.
    async fn next_due_at(&self) -> StoreResult<Option<UnixMs>>;
}

/// Events and the delivery log as operators see them, and the operator's actions on deliveries.
#[async_trait]
pub trait DeliveryStore: Send + Sync + 'static {
    async fn get_event(&self, id: &str) -> StoreResult<Option<EventRow>>;
    async fn list_events(&self, query: EventQuery) -> StoreResult<Page<EventRow>>;
    async fn deliveries_for_event(&self, event_id: &str) -> StoreResult<Vec<DeliveryRow>>;

    async fn get_delivery(&self, id: &str) -> StoreResult<Option<DeliveryRow>>;
    /// The attempt log of a delivery, oldest first.
    async fn list_attempts(&self, delivery_id: &str) -> StoreResult<Vec<AttemptRow>>;
    async fn list_deliveries(&self, query: DeliveryQuery) -> StoreResult<Page<DeliveryRow>>;
    /// Re-queues one delivery now with a fresh attempt budget (any state but in flight).
    async fn retry_delivery(&self, id: &str, now: UnixMs) -> StoreResult<RetryResult>;
    async fn list_dead_letters(
        &self,
        filter: DeadLetterFilter,
        after: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Page<DeadLetterRow>>;
    /// Re-queues dead letters matching `filter` (of active subscriptions); returns how many.
    async fn redrive_dead_letters(&self, filter: DeadLetterFilter, now: UnixMs)
    -> StoreResult<u64>;
    /// Re-queues one subscription's failed and dead deliveries that failed in `[since, until)`.
    async fn recover(
        &self,
        subscription_id: &str,
        since: UnixMs,
        until: Option<UnixMs>,
        now: UnixMs,
    ) -> StoreResult<u64>;
    async fn delivery_stats(&self, subscription_id: Option<&str>) -> StoreResult<DeliveryStats>;
}

/// The nodes whose workers hold leases, and their heartbeats.
#[async_trait]
pub trait NodeStore: Send + Sync + 'static {
    /// Records that node `id` (running `role`, started at `started_at`) is alive at `now`.
    async fn heartbeat(
        &self,
        id: &str,
        role: &str,
        started_at: UnixMs,
        now: UnixMs,
    ) -> StoreResult<()>;
    /// Marks a node stopped (a graceful stop, after its leases were released).
    async fn stop_node(&self, id: &str, now: UnixMs) -> StoreResult<()>;
    /// The nodes heard from since `since` (a stop counts), newest first, with what each leases now.
    async fn list_nodes(&self, since: UnixMs) -> StoreResult<Vec<NodeRow>>;
    /// Forgets nodes silent since `before` that lease nothing; returns how many.
    async fn forget_nodes(&self, before: UnixMs) -> StoreResult<u64>;
}

/// Secrets at rest: which master key seals them, and re-sealing them all.
#[async_trait]
pub trait SecretStore: Send + Sync + 'static {
    /// The id of the master key that sealed every stored secret at the last rotation; `None` before
    /// the first one.
    async fn sealing_key_id(&self) -> StoreResult<Option<String>>;
    /// Master-key rotation, in one transaction: names `key_id` as the sealing key (first, so that
    /// concurrent writers of secrets wait or fail with `SealingKeyChanged`), then replaces every
    /// stored secret and signing key (current and previous, as stored) with `reseal(subscription_id, value)`.
    /// Returns how many values were replaced. Any error rolls everything back.
    async fn reseal_secrets(
        &self,
        key_id: &str,
        reseal: &ResealFn<'_>,
        now: UnixMs,
    ) -> StoreResult<u64>;
}
