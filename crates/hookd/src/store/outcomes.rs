//! What recording a batch of outcomes means on every backend: which outcomes count towards each
//! subscription's failure count, and which statement changes that count.

use super::sql::subscriptions::{ADD_FAILURES, SET_FAILURE_COUNT};
use super::{DeliveryOutcome, RecordReport};
use hookd_core::outcome::{CountChange, FailureEffects};
use std::collections::HashSet;

/// The report of a batch before any subscription is disabled, and each subscription's effects from
/// the outcomes that were applied (each delivery once, in batch order).
pub(crate) fn applied_effects<'a>(
    outcomes: &'a [DeliveryOutcome],
    applied: &HashSet<String>,
) -> (RecordReport, Vec<(&'a str, FailureEffects)>) {
    let report = RecordReport {
        applied: applied.len() as u64,
        stale: (outcomes.len() - applied.len()) as u64,
        disabled: Vec::new(),
    };
    let mut seen = HashSet::new();
    let counted = outcomes
        .iter()
        .filter(|o| applied.contains(&o.delivery_id) && seen.insert(o.delivery_id.as_str()))
        .map(|o| (o.subscription_id.as_str(), o.outcome));
    (report, FailureEffects::tally(counted))
}

/// How to change a subscription's failure count for `effect`: a statement (`?1` id, `?2` the
/// argument, returning `failure_count` when it writes the row), its argument, and the count when
/// it writes nothing (`SET_FAILURE_COUNT` skips a row that already has the count). `None`: no
/// change.
pub(crate) fn failure_count_update(
    effect: &FailureEffects,
) -> Option<(&'static str, i64, Option<i64>)> {
    match effect.count_change() {
        CountChange::Unchanged => None,
        CountChange::Set(count) => Some((SET_FAILURE_COUNT, count, Some(count))),
        CountChange::Add(dead) => Some((ADD_FAILURES, dead, None)),
    }
}
