//! The dashboard's and portal's store role ([`UiStore`]): browser
//! sessions, the filtered delivery log, and the samples behind the charts.
//!
//! Every view query takes an optional `owner`: `None` for operators, the subscriber's id for a portal
//! session. The scope is applied in SQL (`subscription_id IN (SELECT id FROM subscriptions WHERE
//! owner = ?)`), so that a portal page can never list another owner's rows.

use super::{Cursor, DeliveryRow, Page, StoreResult, UnixMs};
use async_trait::async_trait;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// Signed in with an API key: sees everything.
    Operator,
    /// A subscriber in the portal: sees one owner's data.
    Portal,
    /// A one-time portal link, not yet exchanged for a `Portal` session.
    Link,
}

impl SessionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Portal => "portal",
            Self::Link => "link",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "operator" => Self::Operator,
            "portal" => Self::Portal,
            "link" => Self::Link,
            _ => return None,
        })
    }
}

/// A browser session or a one-time link. The token itself is never stored, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub token_hash: Vec<u8>,
    pub kind: SessionKind,
    /// `None` exactly for operator sessions.
    pub owner: Option<String>,
    /// Portal: may create, edit, test, rotate and redrive.
    pub can_manage: bool,
    pub created_at: UnixMs,
    pub expires_at: UnixMs,
}

/// The delivery log's filters. Every field narrows; `owner` scopes to one subscriber.
#[derive(Debug, Clone, Default)]
pub struct DeliverySearch {
    pub owner: Option<String>,
    pub subscription_id: Option<String>,
    pub state: Option<super::DeliveryState>,
    pub event_type: Option<String>,
    /// The last attempt's HTTP status.
    pub status: Option<i64>,
    /// Created at or after.
    pub since: Option<UnixMs>,
    /// Created before.
    pub until: Option<UnixMs>,
    pub after: Option<Cursor>,
    pub limit: u32,
}

impl DeliverySearch {
    /// The API's delivery list (`GET /api/deliveries`) as a log search: one query text per set of
    /// filters, each served by an index (a generic `(? IS NULL OR …)` query walked the whole log
    /// from its newest row for an endpoint or state filter).
    pub fn from_query(query: super::DeliveryQuery) -> Self {
        Self {
            subscription_id: query.subscription_id,
            state: query.state,
            after: query.after,
            limit: query.limit,
            ..Self::default()
        }
    }
}

/// A page of the log as the API's delivery list: the deliveries without their event types.
pub fn deliveries_of(page: Page<DeliveryListRow>) -> Page<DeliveryRow> {
    Page {
        items: page.items.into_iter().map(|row| row.delivery).collect(),
        next: page.next,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryListRow {
    pub delivery: DeliveryRow,
    pub event_type: String,
}

/// One attempt, reduced to what the charts need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptSample {
    pub started_at: UnixMs,
    pub duration_ms: i64,
    /// A 2xx answer.
    pub ok: bool,
    pub subscription_id: String,
}

/// Dead letters of one subscription that died the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterGroup {
    pub subscription_id: String,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub count: i64,
    pub last_failed_at: UnixMs,
}

#[async_trait]
pub trait UiStore: Send + Sync {
    /// Stores a session (or link) and deletes the expired ones.
    async fn insert_session(&self, session: &SessionRow) -> StoreResult<()>;
    /// An unexpired operator or portal session (never a link).
    async fn session_by_hash(&self, hash: &[u8], now: UnixMs) -> StoreResult<Option<SessionRow>>;
    /// Deletes an unexpired one-time link and returns it: a second exchange finds nothing.
    async fn take_link(&self, hash: &[u8], now: UnixMs) -> StoreResult<Option<SessionRow>>;
    async fn delete_session(&self, hash: &[u8]) -> StoreResult<()>;

    /// The delivery log, newest first by `(created_at, id)`, with each delivery's event type.
    async fn search_deliveries(&self, search: DeliverySearch)
    -> StoreResult<Page<DeliveryListRow>>;
    /// Attempts started at or after `since`, newest first, at most `limit`.
    async fn attempt_samples(
        &self,
        since: UnixMs,
        owner: Option<&str>,
        subscription_id: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<AttemptSample>>;
    /// Deliveries per state, for the states that are not `delivered`.
    async fn backlog(&self, owner: Option<&str>) -> StoreResult<Vec<(String, i64)>>;
    /// Dead letters grouped by subscription and error, largest groups first.
    async fn dead_letter_groups(
        &self,
        owner: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<DeadLetterGroup>>;
    /// How many failed or dead deliveries `recover(subscription_id, since)` would re-queue.
    async fn count_recoverable(&self, subscription_id: &str, since: UnixMs) -> StoreResult<i64>;
    /// How many dead letters of active subscriptions a redrive with this filter would re-queue.
    async fn count_redrivable(&self, filter: super::DeadLetterFilter) -> StoreResult<i64>;
    /// One step of "recover failed since T": re-queues at most `limit` of the subscription's failed
    /// or dead deliveries that failed in `[since, until)`, in one transaction, and returns how many.
    /// Re-queued rows get `updated_at = now`, so with `until` at or before the first step's `now`
    /// a later step never takes a row twice (even one that failed again meanwhile).
    async fn recover_some(
        &self,
        subscription_id: &str,
        since: UnixMs,
        until: UnixMs,
        limit: u32,
        now: UnixMs,
    ) -> StoreResult<u64>;
    /// Queues an existing event for one more subscription (replay to an endpoint that had no
    /// delivery of it, e.g. one created after the event or not subscribed to its type): a new
    /// pending delivery `id`, due at once. `None` when the subscription is not active, or already
    /// has a delivery of this event (then replay that one).
    async fn add_delivery(
        &self,
        id: &str,
        event_id: &str,
        subscription_id: &str,
        now: UnixMs,
    ) -> StoreResult<Option<DeliveryRow>>;
}
