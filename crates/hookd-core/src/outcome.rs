//! Where an attempt leaves its delivery, and what a batch of outcomes does to a subscription's
//! consecutive-failure count (auto-disable).

use std::collections::HashMap;

/// Where an attempt leaves its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Failed; try again at this time, Unix ms (held instead if the subscription was disabled
    /// meanwhile).
    Retry {
        at: i64,
    },
    /// Attempts exhausted: dead letter; counts towards auto-disable.
    Dead,
    /// `410 Gone`: disable the subscription, hold this delivery.
    Gone,
}

/// What a batch of applied outcomes does to one subscription's consecutive-failure count, in the
/// order they happened: a success resets it, a dead delivery adds one, `410 Gone` disables.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FailureEffects {
    /// A delivery succeeded: the count restarts from zero before `dead` is added.
    pub reset: bool,
    /// Dead deliveries after the last success.
    pub dead: i64,
    pub gone: bool,
}

/// How the stored failure count changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountChange {
    Unchanged,
    /// Set to this value (after a success).
    Set(i64),
    /// Add this many.
    Add(i64),
}

impl FailureEffects {
    /// Per subscription, in first-seen order, from `(subscription id, outcome)` pairs.
    pub fn tally<'a>(outcomes: impl Iterator<Item = (&'a str, Outcome)>) -> Vec<(&'a str, Self)> {
        let mut order: Vec<&str> = Vec::new();
        let mut effects: HashMap<&str, Self> = HashMap::new();
        for (id, outcome) in outcomes {
            let effect = effects.entry(id).or_insert_with(|| {
                order.push(id);
                Self::default()
            });
            match outcome {
                Outcome::Delivered => {
                    effect.reset = true;
                    effect.dead = 0;
                }
                Outcome::Dead => effect.dead += 1,
                Outcome::Gone => effect.gone = true,
                Outcome::Retry { .. } => {}
            }
        }
        order
            .into_iter()
            .filter_map(|id| effects.remove(id).map(|effect| (id, effect)))
            .collect()
    }

    pub fn count_change(&self) -> CountChange {
        match (self.reset, self.dead) {
            (false, 0) => CountChange::Unchanged,
            (true, dead) => CountChange::Set(dead),
            (false, dead) => CountChange::Add(dead),
        }
    }

    /// Why the subscription is to be disabled, given its failure count after the change (`None`
    /// when unchanged): `410 Gone` at once, dead deliveries at `disable_after_failures` in a row.
    pub fn disable_reason(
        &self,
        count: Option<i64>,
        disable_after_failures: i64,
    ) -> Option<String> {
        match count {
            _ if self.gone => Some("the endpoint answered 410 Gone".to_owned()),
            Some(count) if self.dead > 0 && count >= disable_after_failures => Some(format!(
                "auto-disabled after {count} consecutive failed deliveries"
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_success_resets_the_count_before_later_deaths() {
        let outcomes = [
            ("a", Outcome::Dead),
            ("b", Outcome::Retry { at: 5 }),
            ("a", Outcome::Delivered),
            ("a", Outcome::Dead),
            ("b", Outcome::Gone),
            ("c", Outcome::Dead),
            ("c", Outcome::Dead),
        ];
        let tally = FailureEffects::tally(outcomes.into_iter());
        assert_eq!(
            tally,
            vec![
                (
                    "a",
                    FailureEffects {
                        reset: true,
                        dead: 1,
                        gone: false
                    }
                ),
                (
                    "b",
                    FailureEffects {
                        reset: false,
                        dead: 0,
                        gone: true
                    }
                ),
                (
                    "c",
                    FailureEffects {
                        reset: false,
                        dead: 2,
                        gone: false
                    }
                ),
            ]
        );
        assert_eq!(tally[0].1.count_change(), CountChange::Set(1));
        assert_eq!(tally[1].1.count_change(), CountChange::Unchanged);
    }

    #[test]
    fn disabling_needs_gone_or_enough_deaths_in_a_row() {
        let dead = |n| FailureEffects {
            reset: false,
            dead: n,
            gone: false,
        };
        assert_eq!(dead(1).count_change(), CountChange::Add(1));
        assert_eq!(dead(1).disable_reason(Some(9), 10), None);
        assert_eq!(
            dead(1).disable_reason(Some(10), 10).as_deref(),
            Some("auto-disabled after 10 consecutive failed deliveries")
        );
        // A count at the threshold without a new death (a success batch) disables nothing.
        assert_eq!(dead(0).disable_reason(Some(10), 10), None);
        let gone = FailureEffects {
            gone: true,
            ..FailureEffects::default()
        };
        assert_eq!(
            gone.disable_reason(None, 10).as_deref(),
            Some("the endpoint answered 410 Gone")
        );
    }
}
