//! Persistence. Every SQL statement of hookd lives below this module.
//!
//! [`Store`] is the contract the rest of the server relies on; each backend implements it (embedded
//! SQLite, and PostgreSQL for several nodes sharing one database) and the same integration tests run
//! against each (`HOOKD_TEST_BACKEND`). Rows are plain data: validation happens in the API layer
//! before anything reaches the store. What the backends share (decoding, paging, the group-commit
//! queue) lives in `common`.

mod common;
pub mod postgres;
pub mod sealed;
pub mod sqlite;
mod sqlite_writer;
pub mod ui;

pub use common::PublisherStats;

use async_trait::async_trait;
use hookd_core::RetryPolicy;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Re-encrypts one stored secret of a subscription: `(subscription id, value as stored)` to the
/// value to store instead.
pub type ResealFn<'a> = dyn Fn(&str, &str) -> StoreResult<String> + Send + Sync + 'a;

/// Shared handle to whichever backend is configured.
pub type DynStore = Arc<dyn Store>;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: UnixMs,
    pub revoked_at: Option<UnixMs>,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub hash: Vec<u8>,
    pub created_at: UnixMs,
}

/// A subscription as stored. `events` holds the filter strings; they were validated on the way in.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionRow {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub secret: String,
    pub active: bool,
    pub disabled_reason: Option<String>,
    pub failure_count: i64,
    pub created_at: UnixMs,
    pub updated_at: UnixMs,
    /// `None`: the server's default policy.
    pub retry_policy: Option<RetryPolicy>,
    /// `None`: the server's default timeout.
    pub timeout_ms: Option<i64>,
    /// Custom headers sent with every delivery (validated, lowercase names).
    pub headers: BTreeMap<String, String>,
    /// The secret before the last rotation; it keeps signing until `previous_secret_expires_at`.
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<UnixMs>,
    /// The subscriber's id in the operator's system: who may see it in the portal.
    pub owner: Option<String>,
}

impl SubscriptionRow {
    /// A new, active subscription with server defaults for everything optional.
    pub fn new(id: String, url: String, events: Vec<String>, secret: String, now: UnixMs) -> Self {
        Self {
            id,
            url,
            events,
            description: None,
            metadata: None,
            secret,
            active: true,
            disabled_reason: None,
            failure_count: 0,
            created_at: now,
            updated_at: now,
            retry_policy: None,
            timeout_ms: None,
            headers: BTreeMap::new(),
            previous_secret: None,
            previous_secret_expires_at: None,
            owner: None,
        }
    }
}

/// A partial update. `None` leaves a field alone; `Some(None)` clears a nullable field.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<Option<String>>,
    pub metadata: Option<Option<serde_json::Value>>,
    pub active: Option<bool>,
    pub retry_policy: Option<Option<RetryPolicy>>,
    pub timeout_ms: Option<Option<i64>>,
    pub headers: Option<BTreeMap<String, String>>,
    pub owner: Option<Option<String>>,
}

/// An event ready to be published: ids assigned, fields validated, `data` as the exact JSON text.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub event_type: String,
    pub version: String,
    pub data: String,
    pub retryable: bool,
    pub idempotency_key: Option<String>,
    pub created_at: UnixMs,
    /// Fan out to this subscription only (test events); `None` for normal publishing.
    pub only_subscription: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub id: String,
    pub event_type: String,
    pub version: String,
    pub data: String,
    pub retryable: bool,
    pub idempotency_key: Option<String>,
    pub created_at: UnixMs,
}

/// What publishing one event did.
#[derive(Debug, Clone)]
pub struct Published {
    pub event: EventRow,
    /// Deliveries queued for active subscriptions (for an existing event: those it has).
    pub deliveries: u64,
    /// False when the id or idempotency key matched an earlier event and nothing was written.
    pub created: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its first attempt (or re-queued by an operator).
    Pending,
    /// Leased by a worker; an attempt is under way.
    InFlight,
    Delivered,
    /// The last attempt failed; a retry is scheduled at `next_attempt_at`.
    Failed,
    /// Attempts exhausted: in the dead-letter queue.
    Dead,
    /// Recorded while the subscription was disabled; not sent unless replayed.
    Held,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InFlight => "in_flight",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Dead => "dead",
            Self::Held => "held",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "pending" => Self::Pending,
            "in_flight" => Self::InFlight,
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            "dead" => Self::Dead,
            "held" => Self::Held,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    pub id: String,
    pub event_id: String,
    pub subscription_id: String,
    pub state: DeliveryState,
    pub attempts: i64,
    pub next_attempt_at: Option<UnixMs>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: UnixMs,
    pub updated_at: UnixMs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTypeRow {
    pub name: String,
    pub description: String,
    pub created_at: UnixMs,
    pub archived_at: Option<UnixMs>,
}

/// Position in a newest-first listing: the `(created_at, id)` of the last row of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: UnixMs,
    pub id: String,
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

#[derive(Debug, Clone, Default)]
pub struct SubscriptionQuery {
    pub active: Option<bool>,
    /// Only this owner's subscriptions.
    pub owner: Option<String>,
    pub after: Option<Cursor>,
    pub limit: u32,
}

#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub event_type: Option<String>,
    pub since: Option<UnixMs>,
    pub until: Option<UnixMs>,
    pub after: Option<Cursor>,
    pub limit: u32,
}

/// Asks for due deliveries: every pending or failed delivery with `next_attempt_at <= now` whose
/// subscription is active, oldest first.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// Who holds the lease (one id per worker process).
    pub owner: String,
    pub now: UnixMs,
    pub limit: u32,
    /// The lease lasts the subscription's timeout (or this default) plus `lease_margin_ms`.
    pub default_timeout_ms: i64,
    pub lease_margin_ms: i64,
    /// Most deliveries this claim leases of one subscription not listed in `room` (`None`: no
    /// limit).
    pub default_room: Option<u32>,
    /// How many more deliveries the worker takes of these subscriptions (its window minus what it
    /// holds there, in flight or waiting); overrides `default_room`. 0 skips the subscription.
    pub room: Vec<(String, u32)>,
}

impl ClaimRequest {
    /// The most deliveries this claim reads of any one subscription: the largest room (the default
    /// one, or a listed one), at most `limit`, and with many subscriptions open at most a fair
    /// share of `limit` (but never less than `default_room`). A claim reads up to this many rows
    /// of every subscription with queued work and ranks them all, so with 100 subscriptions and
    /// no share it read 100 × `limit` rows to lease `limit`. A subscription that got this many may
    /// have more due: the caller claims again.
    pub fn most_of_one_subscription(&self) -> u32 {
        let listed = self.room.iter().map(|(_, n)| *n).max().unwrap_or(0);
        let largest = self
            .default_room
            .unwrap_or(u32::MAX)
            .max(listed)
            .min(self.limit);
        let open = (self.room.iter().filter(|(_, n)| *n > 0).count() as u32).max(1);
        let share = self
            .limit
            .div_ceil(open)
            .max(self.default_room.unwrap_or(u32::MAX));
        largest.min(share)
    }
}

/// A leased delivery with everything needed to send it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub delivery_id: String,
    /// Attempts already made in this run; the next is `attempts + 1`.
    pub attempts: i64,
    pub event: EventRow,
    /// Shared by every delivery of the same subscription in one claim: decoded (and its secrets
    /// opened) once per claim, not once per row.
    pub subscription: Arc<SubscriptionRow>,
}

/// One attempt, as logged.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRow {
    pub id: String,
    pub delivery_id: String,
    pub attempt: i64,
    pub started_at: UnixMs,
    pub duration_ms: i64,
    pub request_timestamp: i64,
    pub status: Option<i64>,
    pub response_excerpt: Option<String>,
    /// A bounded, redacted copy of the response headers (`send::capture_headers`), in the order
    /// received; `None` without a response, and for attempts logged before migration 0006.
    pub response_headers: Option<Vec<(String, String)>>,
    pub error: Option<String>,
    /// dns, connect, tls, timeout, http, blocked; `None` on success.
    pub error_class: Option<String>,
}

/// Where an attempt leaves its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Failed; try again at this time (held instead if the subscription was disabled meanwhile).
    Retry {
        at: UnixMs,
    },
    /// Attempts exhausted: dead letter; counts towards auto-disable.
    Dead,
    /// `410 Gone`: disable the subscription, hold this delivery.
    Gone,
}

#[derive(Debug, Clone)]
pub struct DeliveryOutcome {
    pub delivery_id: String,
    pub subscription_id: String,
    pub attempt: AttemptRow,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordReport {
    /// Outcomes applied to deliveries this owner still leased.
    pub applied: u64,
    /// Outcomes whose lease had expired and moved on (the attempt is still logged).
    pub stale: u64,
    /// Subscriptions disabled by these outcomes (410, or too many dead deliveries in a row).
    pub disabled: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    pub subscription_id: Option<String>,
    pub state: Option<DeliveryState>,
    pub after: Option<Cursor>,
    pub limit: u32,
}

/// Selects dead letters (dead deliveries); times are when they died.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterFilter {
    pub subscription_id: Option<String>,
    pub event_type: Option<String>,
    pub since: Option<UnixMs>,
    pub until: Option<UnixMs>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterRow {
    pub delivery: DeliveryRow,
    pub event_type: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RetryResult {
    NotFound,
    /// An attempt is under way; retrying now would send twice.
    InFlight,
    Requeued(DeliveryRow),
}

/// Counts for the brief's metrics (overall or for one subscription).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryStats {
    pub total: i64,
    pub delivered: i64,
    /// Failed (awaiting retry) plus dead.
    pub failed: i64,
    pub dead: i64,
    pub pending: i64,
    pub in_flight: i64,
    pub held: i64,
    /// Mean duration of successful attempts, in ms.
    pub average_latency_ms: Option<f64>,
}

/// One verified request received by the inbound endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptRow {
    pub id: String,
    pub subscription_id: String,
    pub webhook_id: String,
    pub event_type: Option<String>,
    pub received_at: UnixMs,
}

/// The storage contract. Every method is one atomic unit: it commits (durably, per the configured
/// synchronous level) before returning `Ok`, or leaves nothing behind.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap round trip used by `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    /// The dashboard's and portal's queries (sessions, the delivery log, chart samples).
    fn ui(&self) -> &dyn ui::UiStore;

    /// Wakes `waker` whenever another process sharing this store makes deliveries due (publish,
    /// operator re-queues, rescued leases), so that a worker on one node starts at once on work
    /// published through another. Returns once listening has started; the listening goes on in the
    /// background, reconnecting by itself. A store that only one process can use has nothing to
    /// listen to: the default does nothing (in-process wake-ups go through `AppState::waker`).
    async fn listen_for_work(&self, waker: Arc<tokio::sync::Notify>) -> StoreResult<()> {
        let _ = waker;
        Ok(())
    }

    async fn insert_api_key(&self, key: NewApiKey) -> StoreResult<()>;
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRow>>;
    /// Marks a key revoked; false when no unrevoked key has that id.
    async fn revoke_api_key(&self, id: &str, now: UnixMs) -> StoreResult<bool>;
    /// The unrevoked key with this SHA-256 hash, if any.
    async fn api_key_by_hash(&self, hash: &[u8]) -> StoreResult<Option<ApiKeyRow>>;

    /// Writes a new subscription. Its secret, if sealed with a key id (`sealed::key_id_of`), must
    /// be sealed with the key the database names, else `SealingKeyChanged` and nothing is written.
    async fn insert_subscription(&self, row: &SubscriptionRow) -> StoreResult<()>;
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

    /// Publishes events all-or-nothing: each new event and one delivery per matching subscription
    /// (pending if active, held if disabled) are committed in one transaction. An event whose id or
    /// idempotency key is already stored is returned as it is, with `created: false`.
    async fn publish(&self, events: Vec<NewEvent>) -> StoreResult<Vec<Published>>;
    async fn get_event(&self, id: &str) -> StoreResult<Option<EventRow>>;
    async fn list_events(&self, query: EventQuery) -> StoreResult<Page<EventRow>>;
    async fn deliveries_for_event(&self, event_id: &str) -> StoreResult<Vec<DeliveryRow>>;

    async fn list_event_types(&self, include_archived: bool) -> StoreResult<Vec<EventTypeRow>>;
    /// Adds a type, or brings back an archived one; `Conflict` when it exists and is not archived.
    async fn add_event_type(&self, row: EventTypeRow) -> StoreResult<EventTypeRow>;
    /// Archives a type; false when there is no such unarchived type.
    async fn archive_event_type(&self, name: &str, now: UnixMs) -> StoreResult<bool>;
    /// True when the type is in the catalog and not archived.
    async fn event_type_exists(&self, name: &str) -> StoreResult<bool>;

    // --- delivery engine ---------------------------------------------------------------------

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
    /// Returns every expired lease to the queue (a crashed worker's deliveries). Safe to run
    /// concurrently on every node.
    async fn rescue_expired_leases(&self, now: UnixMs) -> StoreResult<u64>;
    /// When the earliest pending or failed delivery of an active subscription is due, if any.
    async fn next_due_at(&self) -> StoreResult<Option<UnixMs>>;

    // --- operator views and actions -------------------------------------------------------------

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
    async fn delivery_stats(&self, subscription_id: Option<&str>) -> StoreResult<DeliveryStats>;

    // --- secrets at rest --------------------------------------------------------------------------

    /// The id of the master key that sealed every stored secret at the last rotation; `None` before
    /// the first one.
    async fn sealing_key_id(&self) -> StoreResult<Option<String>>;
    /// Master-key rotation, in one transaction: names `key_id` as the sealing key (first, so that
    /// concurrent writers of secrets wait or fail with `SealingKeyChanged`), then replaces every
    /// stored secret (current and previous, as stored) with `reseal(subscription_id, value)`.
    /// Returns how many values were replaced. Any error rolls everything back.
    async fn reseal_secrets(
        &self,
        key_id: &str,
        reseal: &ResealFn<'_>,
        now: UnixMs,
    ) -> StoreResult<u64>;

    // --- inbound endpoint -------------------------------------------------------------------------

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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(limit: u32, default_room: Option<u32>, listed: &[u32]) -> ClaimRequest {
        ClaimRequest {
            owner: "w".into(),
            now: 0,
            limit,
            default_timeout_ms: 10_000,
            lease_margin_ms: 30_000,
            default_room,
            room: listed
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("wh_{i}"), *n))
                .collect(),
        }
    }

    #[test]
    fn a_claim_reads_a_fair_share_of_each_subscription_but_at_least_the_default_room() {
        // One busy subscription: the whole limit; two share it.
        assert_eq!(
            request(256, Some(16), &[1_000]).most_of_one_subscription(),
            256
        );
        assert_eq!(
            request(256, Some(16), &[1_000, 900]).most_of_one_subscription(),
            128
        );
        // A hundred: the default room, not 256 rows of each.
        let hundred = vec![1_000; 100];
        assert_eq!(
            request(256, Some(16), &hundred).most_of_one_subscription(),
            16
        );
        // Full subscriptions do not count as sharing.
        assert_eq!(
            request(256, Some(16), &[0, 0, 0, 500]).most_of_one_subscription(),
            256
        );
        // Never more than the largest room or the limit.
        assert_eq!(request(256, Some(4), &[10]).most_of_one_subscription(), 10);
        assert_eq!(request(8, Some(16), &[1_000]).most_of_one_subscription(), 8);
        // No default room: unlimited, as before.
        assert_eq!(request(256, None, &hundred).most_of_one_subscription(), 256);
    }
}
