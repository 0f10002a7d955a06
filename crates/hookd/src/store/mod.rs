//! Persistence. Every SQL statement of hookd lives below this module.
//!
//! [`Store`] is the contract the rest of the server relies on; each backend implements it (SQLite now,
//! PostgreSQL later) and the same tests run against each. Rows are plain data: validation happens in
//! the API layer before anything reaches the store.

pub mod sqlite;

use async_trait::async_trait;
use std::sync::Arc;

/// Shared handle to whichever backend is configured.
pub type DynStore = Arc<dyn Store>;

/// Unix time in milliseconds: the unit of every timestamp in the store.
pub type UnixMs = i64;

#[derive(Debug, thiserror::Error)]
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
}

/// A partial update. `None` leaves a field alone; `Some(None)` clears a nullable field.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<Option<String>>,
    pub metadata: Option<Option<serde_json::Value>>,
    pub active: Option<bool>,
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
    Pending,
    InFlight,
    Delivered,
    Failed,
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

/// The storage contract. Every method is one atomic unit: it commits (durably, per the configured
/// synchronous level) before returning `Ok`, or leaves nothing behind.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Cheap round trip used by `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    async fn insert_api_key(&self, key: NewApiKey) -> StoreResult<()>;
    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRow>>;
    /// Marks a key revoked; false when no unrevoked key has that id.
    async fn revoke_api_key(&self, id: &str, now: UnixMs) -> StoreResult<bool>;
    /// The unrevoked key with this SHA-256 hash, if any.
    async fn api_key_by_hash(&self, hash: &[u8]) -> StoreResult<Option<ApiKeyRow>>;

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
}
