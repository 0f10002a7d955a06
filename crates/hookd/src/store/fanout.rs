//! One subscription as publishing sees it: its id, its parsed filters (event types and content)
//! and whether it is active; and the cache that compiles each content filter once.

use super::sql::decode::decode_err;
use super::{NewEvent, StoreResult};
use hookd_core::{ContentFilter, EventFilter, FilterInput};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::OnceLock;

pub(crate) struct FanoutTarget {
    pub id: String,
    pub filters: Vec<EventFilter>,
    /// The content filter, compiled; `None` (the fast path) when the subscription has none.
    pub content: Option<Arc<ContentFilter>>,
    pub active: bool,
}

impl FanoutTarget {
    /// Parses the stored filter list (a JSON array of filter strings) and takes the compiled
    /// content filter for `content_json` from `cache`.
    pub fn parse(
        id: String,
        events_json: &str,
        content_json: Option<String>,
        active: bool,
        cache: &mut FilterCache,
    ) -> StoreResult<Self> {
        let raw: Vec<String> =
            serde_json::from_str(events_json).map_err(|e| decode_err("subscription filters", e))?;
        let filters = raw
            .iter()
            .map(|f| EventFilter::parse(f).map_err(|e| decode_err("subscription filter", e)))
            .collect::<StoreResult<_>>()?;
        let content = content_json.map(|text| cache.compiled(text)).transpose()?;
        Ok(Self {
            id,
            filters,
            content,
            active,
        })
    }

    /// Whether `event` gets a delivery for this subscription. A test event (sent to one
    /// subscription) ignores the content filter, as it ignores the event-type filters.
    pub fn selects(&self, event: &FanoutEvent<'_>) -> bool {
        let by_type = hookd_core::event_type::receives(
            &self.id,
            &self.filters,
            &event.event.event_type,
            event.event.only_subscription.as_deref(),
        );
        match (&self.content, by_type) {
            (None, selected) | (Some(_), selected @ false) => selected,
            (Some(_), true) if event.event.only_subscription.is_some() => true,
            (Some(filter), true) => event.content_matches(filter),
        }
    }
}

/// An event being fanned out; its `data` is parsed once, and only if a content filter asks. Each
/// distinct compiled filter is evaluated once per event: subscriptions with the same filter text
/// share one compiled filter ([`FilterCache`]), and its verdict.
pub(crate) struct FanoutEvent<'a> {
    pub event: &'a NewEvent,
    data: OnceLock<serde_json::Value>,
    verdicts: RefCell<HashMap<*const ContentFilter, bool>>,
}

impl<'a> FanoutEvent<'a> {
    pub fn new(event: &'a NewEvent) -> Self {
        Self {
            event,
            data: OnceLock::new(),
            verdicts: RefCell::new(HashMap::new()),
        }
    }

    fn content_matches(&self, filter: &Arc<ContentFilter>) -> bool {
        let key = Arc::as_ptr(filter);
        if let Some(verdict) = self.verdicts.borrow().get(&key) {
            return *verdict;
        }
        // `data` was checked to be a JSON object when the event was prepared; should it not parse,
        // it reads as null and every condition on `data` fails.
        let data = self
            .data
            .get_or_init(|| serde_json::from_str(&self.event.data).unwrap_or_default());
        let verdict = filter.matches(&FilterInput {
            id: &self.event.id,
            event: &self.event.event_type,
            version: &self.event.version,
            data,
        });
        self.verdicts.borrow_mut().insert(key, verdict);
        verdict
    }
}

/// Compiled content filters kept from one publish round to the next, by the text they were
/// compiled from: a round re-reads the subscriptions but compiles only a filter text it has not
/// seen, and subscriptions with the same text share one compiled filter. Owned by the task that
/// publishes (the SQLite writer thread, a PostgreSQL node's publisher).
#[derive(Default)]
pub(crate) struct FilterCache {
    compiled: HashMap<String, Compiled>,
    /// Counts the rounds; an entry not used in the latest round belongs to no subscription any more.
    round: u64,
}

struct Compiled {
    filter: Arc<ContentFilter>,
    round: u64,
}

impl FilterCache {
    /// Starts a round of loading every subscription.
    pub fn begin_round(&mut self) {
        self.round += 1;
    }

    /// Ends the round: forgets the filters no subscription used in it.
    pub fn end_round(&mut self) {
        let round = self.round;
        self.compiled.retain(|_, entry| entry.round == round);
    }

    fn compiled(&mut self, text: String) -> StoreResult<Arc<ContentFilter>> {
        if let Some(entry) = self.compiled.get_mut(&text) {
            entry.round = self.round;
            return Ok(entry.filter.clone());
        }
        let filter = Arc::new(
            ContentFilter::parse_text(&text)
                .map_err(|e| decode_err("subscription content filter", e))?,
        );
        let entry = Compiled {
            filter: filter.clone(),
            round: self.round,
        };
        self.compiled.insert(text, entry);
        Ok(filter)
    }
}
