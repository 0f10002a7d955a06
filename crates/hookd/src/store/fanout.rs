//! One subscription as publishing sees it: its id, its parsed filters and whether it is active.

use super::sql::decode::decode_err;
use super::{NewEvent, StoreResult};
use hookd_core::EventFilter;

pub(crate) struct FanoutTarget {
    pub id: String,
    pub filters: Vec<EventFilter>,
    pub active: bool,
}

impl FanoutTarget {
    /// Parses the stored filter list (a JSON array of filter strings).
    pub fn parse(id: String, events_json: &str, active: bool) -> StoreResult<Self> {
        let raw: Vec<String> =
            serde_json::from_str(events_json).map_err(|e| decode_err("subscription filters", e))?;
        let filters = raw
            .iter()
            .map(|f| EventFilter::parse(f).map_err(|e| decode_err("subscription filter", e)))
            .collect::<StoreResult<_>>()?;
        Ok(Self {
            id,
            filters,
            active,
        })
    }

    /// Whether `event` gets a delivery for this subscription.
    pub fn selects(&self, event: &NewEvent) -> bool {
        hookd_core::event_type::receives(
            &self.id,
            &self.filters,
            &event.event_type,
            event.only_subscription.as_deref(),
        )
    }
}
