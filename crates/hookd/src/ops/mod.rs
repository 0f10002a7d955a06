//! The use cases: what the API, the dashboard and the portal do to subscriptions, events and deliveries.
//!
//! Each operation takes parsed inputs and returns store rows or an [`OpsError`]; the edges (`api/`,
//! `ui/`) parse requests into those inputs and shape the results as JSON or HTML. Operations that make
//! work due wake the local delivery worker through [`Ops::work_became_due`], and nowhere else.

mod api_keys;
mod cursor;
mod deliveries;
mod error;
mod event_types;
mod events;
mod owners;
mod portal;
pub mod schemas;
mod subscriptions;
#[cfg(test)]
mod tests;

pub use api_keys::{KeyCreated, KeyRequest, MAX_KEY_NAME_LEN, parse_key_request};
pub use cursor::{CURSOR_PATTERN, decode_cursor, encode_cursor};
pub use deliveries::ReplayOutcome;
pub use error::OpsError;
pub use event_types::{
    EventTypeChanges, EventTypeDraft, MAX_EXAMPLES, MAX_SCHEMA_BYTES, MAX_TYPE_DESCRIPTION_LEN,
    TypeDocs,
};
pub use events::{DEFAULT_VERSION, EventDraft, MAX_VERSION_LEN, TestPayload};
pub use owners::ERASE_STEP_ROWS;
pub use portal::{MAX_PORTAL_TTL_SECONDS, PortalLinkCreated, new_token, session_row};
pub use subscriptions::{
    DEFAULT_OVERLAP_SECONDS, MAX_DESCRIPTION_LEN, MAX_FILTERS, MAX_METADATA_BYTES,
    MAX_OVERLAP_SECONDS, MAX_OWNER_LEN, MAX_TIMEOUT_MS, MIN_TIMEOUT_MS, PublicKey, RotatedSecret,
    SubscriptionChanges, SubscriptionDraft, parse_content_filter, parse_owner, public_keys_at,
};

use crate::ids::DynClock;
use crate::store::Store;
use hookd_core::UrlPolicy;
use std::sync::Arc;
use tokio::sync::Notify;

/// Limits and policies the operations apply, whichever edge calls them.
#[derive(Debug, Clone)]
pub struct OpsSettings {
    /// Which endpoint URLs a subscription may have.
    pub url_policy: UrlPolicy,
    /// Largest `data` of one event, in bytes.
    pub max_payload_bytes: usize,
    /// Publishing a type missing from the catalog is refused.
    pub strict_event_types: bool,
    /// The retention in force: a subscription's retry policy must fit in it; the dashboard shows it.
    pub retention: crate::retention::RetentionSettings,
}

/// What every operation needs. Cheap to clone (every field is shared).
#[derive(Clone)]
pub struct Ops {
    pub store: Store,
    pub clock: DynClock,
    pub settings: OpsSettings,
    /// The event types' compiled schemas on this node.
    schemas: Arc<schemas::SchemaCache>,
    /// Wakes the local delivery worker; notified only by [`Ops::work_became_due`].
    waker: Arc<Notify>,
}

impl Ops {
    pub fn new(store: Store, clock: DynClock, settings: OpsSettings, waker: Arc<Notify>) -> Self {
        Self {
            store,
            clock,
            settings,
            schemas: Arc::default(),
            waker,
        }
    }

    /// Deliveries became due (published, re-queued, redriven, recovered, replayed): the local worker
    /// looks for them now instead of at its next poll. Other nodes learn it through the store.
    fn work_became_due(&self) {
        self.waker.notify_one();
    }
}
