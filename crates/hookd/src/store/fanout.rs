//! One subscription as publishing sees it: its id, its owner, its parsed filters (event types and
//! content) and whether it is active; and the cache that compiles each content filter once.
//!
//! The rule: an event goes to the subscriptions of its owner (an event published without an owner,
//! to the subscriptions without one) whose filters select it. Targets are indexed by owner, so an
//! event is matched against its owner's subscriptions only.

use super::sql::decode::decode_err;
use super::{NewEvent, StoreResult};
use hookd_core::{ContentFilter, EventFilter, FilterInput};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::OnceLock;

/// One subscription's row, parsed.
pub(crate) struct FanoutTarget {
    pub id: String,
    /// The stored event-type filter list, as text: subscriptions with the same text are one group.
    events_text: String,
    pub filters: Vec<EventFilter>,
    /// The compiled content filter, shared by subscriptions with the same text; `None` (the fast
    /// path) when the subscription has none.
    pub content: Option<Arc<ContentFilter>>,
    pub active: bool,
    pub owner: Option<String>,
}

impl FanoutTarget {
    /// Parses the stored filter list (a JSON array of filter strings) and takes the compiled
    /// content filter for `content_json` from `cache`.
    pub fn parse(
        id: String,
        events_json: String,
        content_json: Option<String>,
        active: bool,
        owner: Option<String>,
        cache: &mut FilterCache,
    ) -> StoreResult<Self> {
        let raw: Vec<String> = serde_json::from_str(&events_json)
            .map_err(|e| decode_err("subscription filters", e))?;
        let filters = raw
            .iter()
            .map(|f| EventFilter::parse(f).map_err(|e| decode_err("subscription filter", e)))
            .collect::<StoreResult<_>>()?;
        let content = content_json.map(|text| cache.compiled(text)).transpose()?;
        Ok(Self {
            id,
            events_text: events_json,
            filters,
            content,
            active,
            owner,
        })
    }
}

/// Every subscription as publishing sees it, by owner, then grouped by identical event-type and
/// content filters: an event is matched against its owner's groups only, once per distinct pair of
/// filters, not once per subscription.
#[derive(Default)]
pub(crate) struct FanoutTargets {
    by_owner: HashMap<Option<String>, Vec<TargetGroup>>,
}

struct TargetGroup {
    filters: Vec<EventFilter>,
    content: Option<Arc<ContentFilter>>,
    members: Vec<FanoutMember>,
}

/// A subscription that may get a delivery.
pub(crate) struct FanoutMember {
    pub id: String,
    pub active: bool,
}

impl FanoutTargets {
    pub fn new(targets: Vec<FanoutTarget>) -> Self {
        let mut index: HashMap<(Option<String>, String, usize), usize> = HashMap::new();
        let mut by_owner: HashMap<Option<String>, Vec<TargetGroup>> = HashMap::new();
        for target in targets {
            let groups = by_owner.entry(target.owner.clone()).or_default();
            let content_key = target
                .content
                .as_ref()
                .map_or(0, |c| Arc::as_ptr(c) as usize);
            let member = FanoutMember {
                id: target.id,
                active: target.active,
            };
            let key = (target.owner, target.events_text, content_key);
            match index.get(&key) {
                Some(&at) => groups[at].members.push(member),
                None => {
                    index.insert(key, groups.len());
                    groups.push(TargetGroup {
                        filters: target.filters,
                        content: target.content,
                        members: vec![member],
                    });
                }
            }
        }
        Self { by_owner }
    }

    /// The subscriptions that get a delivery of `event`. A test event (sent to one subscription)
    /// goes to that one only, whatever its event-type and content filters.
    pub fn selected<'s: 'e, 'e>(
        &'s self,
        event: &'e FanoutEvent<'_>,
    ) -> impl Iterator<Item = &'s FanoutMember> + 'e {
        let only = event.event.only_subscription.as_deref();
        // A test event names its subscription, whoever owns it; any other event looks at its
        // owner's subscriptions only.
        let groups: Box<dyn Iterator<Item = &'s TargetGroup> + 'e> = match only {
            Some(_) => Box::new(self.by_owner.values().flatten()),
            None => Box::new(self.by_owner.get(&event.event.owner).into_iter().flatten()),
        };
        groups
            .filter(move |group| only.is_some() || group.selects(event))
            .flat_map(|group| group.members.iter())
            .filter(move |member| only.is_none_or(|id| id == member.id))
    }
}

impl TargetGroup {
    fn selects(&self, event: &FanoutEvent<'_>) -> bool {
        hookd_core::event_type::any_matches(&self.filters, &event.event.event_type)
            && self
                .content
                .as_ref()
                .is_none_or(|filter| event.content_matches(filter))
    }
}

/// An event being fanned out; its `data` is parsed once, and only if a content filter asks.
pub(crate) struct FanoutEvent<'a> {
    pub event: &'a NewEvent,
    data: OnceLock<serde_json::Value>,
}

impl<'a> FanoutEvent<'a> {
    pub fn new(event: &'a NewEvent) -> Self {
        Self {
            event,
            data: OnceLock::new(),
        }
    }

    fn content_matches(&self, filter: &ContentFilter) -> bool {
        // `data` was checked to be a JSON object when the event was prepared; should it not parse,
        // it reads as null and every condition on `data` fails.
        let data = self
            .data
            .get_or_init(|| serde_json::from_str(&self.event.data).unwrap_or_default());
        filter.matches(&FilterInput {
            id: &self.event.id,
            event: &self.event.event_type,
            version: &self.event.version,
            data,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(rows: &[(&str, &str, Option<&str>, bool)]) -> (FanoutTargets, usize) {
        let owned: Vec<_> = rows
            .iter()
            .map(|&(id, events, content, active)| (id, events, content, active, None))
            .collect();
        owned_targets(&owned)
    }

    type Row<'a> = (&'a str, &'a str, Option<&'a str>, bool, Option<&'a str>);

    fn owned_targets(rows: &[Row<'_>]) -> (FanoutTargets, usize) {
        let mut cache = FilterCache::default();
        cache.begin_round();
        let parsed = rows
            .iter()
            .map(|(id, events, content, active, owner)| {
                let content = content.map(str::to_owned);
                FanoutTarget::parse(
                    id.to_string(),
                    events.to_string(),
                    content,
                    *active,
                    owner.map(str::to_owned),
                    &mut cache,
                )
                .unwrap()
            })
            .collect();
        cache.end_round();
        let targets = FanoutTargets::new(parsed);
        let groups = targets.by_owner.values().map(Vec::len).sum();
        (targets, groups)
    }

    fn event(event_type: &str, data: &str, only: Option<&str>) -> NewEvent {
        NewEvent {
            id: "evt_1".into(),
            event_type: event_type.into(),
            version: "1".into(),
            data: data.into(),
            retryable: true,
            idempotency_key: None,
            created_at: 0,
            only_subscription: only.map(str::to_owned),
            owner: None,
        }
    }

    fn selected(targets: &FanoutTargets, event: &NewEvent) -> Vec<String> {
        let fanout = FanoutEvent::new(event);
        targets.selected(&fanout).map(|m| m.id.clone()).collect()
    }

    #[test]
    fn subscriptions_with_the_same_filters_are_matched_as_one_group() {
        let big = Some(r#"{"data.amount": {"$gte": 100}}"#);
        let (targets, groups) = targets(&[
            ("a", r#"["order.*"]"#, big, true),
            ("b", r#"["order.*"]"#, big, false),
            ("c", r#"["order.*"]"#, None, true),
            ("d", r#"["user.*"]"#, big, true),
            ("e", r#"["order.*"]"#, big, true),
        ]);
        assert_eq!(groups, 3);
        let large = event("order.created", r#"{"amount": 150}"#, None);
        assert_eq!(selected(&targets, &large), ["a", "b", "e", "c"]);
        let small = event("order.created", r#"{"amount": 5}"#, None);
        assert_eq!(selected(&targets, &small), ["c"]);
        // A test event goes to its one subscription, whatever the filters say.
        let test = event("webhook.test", r#"{"amount": 5}"#, Some("d"));
        assert_eq!(selected(&targets, &test), ["d"]);
    }

    #[test]
    fn an_event_goes_to_its_owners_subscriptions_only() {
        let (targets, groups) = owned_targets(&[
            ("internal", r#"["*"]"#, None, true, None),
            ("acme", r#"["order.*"]"#, None, true, Some("acme")),
            ("acme_users", r#"["user.*"]"#, None, true, Some("acme")),
            ("globex", r#"["order.*"]"#, None, true, Some("globex")),
        ]);
        // Same filters, other owners: separate groups.
        assert_eq!(groups, 4);
        let mut to_acme = event("order.created", "{}", None);
        to_acme.owner = Some("acme".into());
        assert_eq!(selected(&targets, &to_acme), ["acme"]);
        let unowned = event("order.created", "{}", None);
        assert_eq!(selected(&targets, &unowned), ["internal"]);
        let mut to_nobody = event("order.created", "{}", None);
        to_nobody.owner = Some("initech".into());
        assert!(selected(&targets, &to_nobody).is_empty());
        // A test event reaches its subscription whoever owns it.
        let test = event("webhook.test", "{}", Some("globex"));
        assert_eq!(selected(&targets, &test), ["globex"]);
    }
}
