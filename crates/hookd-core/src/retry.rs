//! Retry policy: when to try a failed delivery again, and when to give up. Pure functions of
//! `(policy, attempts made, outcome, now, jitter)`; the caller supplies the random jitter.

use crate::whole_number;
use serde::{Deserialize, Deserializer, Serialize};

/// Jitter applied to every delay: ±20%.
pub const JITTER_FRACTION: f64 = 0.2;
/// Most attempts any policy may make (never retry forever).
pub const MAX_ATTEMPTS_LIMIT: u32 = 50;
/// Longest delay any policy may ask for: 7 days.
pub const MAX_DELAY_LIMIT_MS: u64 = 7 * 24 * 3_600_000;
/// Shortest base delay accepted (short schedules are for tests and demos).
pub const MIN_DELAY_MS: u64 = 10;

/// The Standard Webhooks recommendation: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
pub const STANDARD_WEBHOOKS_SCHEDULE_MS: [u64; 9] = [
    5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 50_400_000, 72_000_000,
    86_400_000,
];

/// How a subscription retries. The wire form is one of
/// `{"max_attempts", "base_delay_ms", "max_delay_ms"}`, `{"schedule_ms": [...]}` or
/// `{"preset": "standard_webhooks"}`.
///
/// Deserializing names the accepted shapes when none matches (an untagged enum's own message
/// would name the Rust type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RetryPolicy {
    /// Delays double from `base_delay_ms`, capped at `max_delay_ms`; `max_attempts` in total.
    Exponential {
        max_attempts: u32,
        base_delay_ms: u64,
        #[serde(default = "default_max_delay_ms")]
        max_delay_ms: u64,
    },
    /// Explicit delays: after attempt n fails, wait `schedule_ms[n-1]`; `len + 1` attempts in total.
    Schedule { schedule_ms: Vec<u64> },
    /// A named schedule.
    Preset { preset: Preset },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// [`STANDARD_WEBHOOKS_SCHEDULE_MS`]: 10 attempts over about three days.
    StandardWebhooks,
}

/// Every key of every shape, each optional; [`RetryPolicy::try_from`] picks the shape.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryPolicyWire {
    #[serde(default, deserialize_with = "whole_number::deserialize")]
    max_attempts: Option<u32>,
    #[serde(default, deserialize_with = "whole_number::deserialize")]
    base_delay_ms: Option<u64>,
    #[serde(default, deserialize_with = "whole_number::deserialize")]
    max_delay_ms: Option<u64>,
    #[serde(default, deserialize_with = "whole_number::deserialize")]
    schedule_ms: Option<Vec<u64>>,
    preset: Option<Preset>,
}

/// What a `retry` object must look like, for messages.
const RETRY_SHAPES: &str = "expected {\"max_attempts\", \"base_delay_ms\", optional \"max_delay_ms\"}, \
     {\"schedule_ms\": [...]} or {\"preset\": \"standard_webhooks\"}";

impl TryFrom<RetryPolicyWire> for RetryPolicy {
    type Error = String;

    fn try_from(wire: RetryPolicyWire) -> Result<Self, String> {
        match wire {
            RetryPolicyWire {
                max_attempts: Some(max_attempts),
                base_delay_ms: Some(base_delay_ms),
                max_delay_ms,
                schedule_ms: None,
                preset: None,
            } => Ok(Self::Exponential {
                max_attempts,
                base_delay_ms,
                max_delay_ms: max_delay_ms
                    .unwrap_or_else(|| default_max_delay_ms().max(base_delay_ms)),
            }),
            RetryPolicyWire {
                max_attempts: None,
                base_delay_ms: None,
                max_delay_ms: None,
                schedule_ms: Some(schedule_ms),
                preset: None,
            } => Ok(Self::Schedule { schedule_ms }),
            RetryPolicyWire {
                max_attempts: None,
                base_delay_ms: None,
                max_delay_ms: None,
                schedule_ms: None,
                preset: Some(preset),
            } => Ok(Self::Preset { preset }),
            _ => Err(RETRY_SHAPES.to_owned()),
        }
    }
}

impl<'de> Deserialize<'de> for RetryPolicy {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = RetryPolicyWire::deserialize(deserializer)?;
        Self::try_from(wire).map_err(serde::de::Error::custom)
    }
}

fn default_max_delay_ms() -> u64 {
    3_600_000
}

impl Default for RetryPolicy {
    /// The original webhook specification's policy: 5 attempts in total, 2 s base delay, doubling
    /// (2, 4, 8, 16 s).
    fn default() -> Self {
        Self::Exponential {
            max_attempts: 5,
            base_delay_ms: 2_000,
            max_delay_ms: default_max_delay_ms(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryPolicyError {
    #[error("max_attempts must be 1 to {MAX_ATTEMPTS_LIMIT}")]
    Attempts,
    #[error("delays must be {MIN_DELAY_MS} ms to {MAX_DELAY_LIMIT_MS} ms")]
    Delay,
}

impl RetryPolicy {
    /// Checks the limits: at most 50 attempts, delays between 10 ms and 7 days.
    pub fn validate(&self) -> Result<(), RetryPolicyError> {
        let delay_ok = |d: u64| (MIN_DELAY_MS..=MAX_DELAY_LIMIT_MS).contains(&d);
        match self {
            Self::Exponential {
                max_attempts,
                base_delay_ms,
                max_delay_ms,
            } => {
                if !(1..=MAX_ATTEMPTS_LIMIT).contains(max_attempts) {
                    return Err(RetryPolicyError::Attempts);
                }
                // A `max_delay_ms` below `base_delay_ms` is no mistake: it caps every delay, the
                // first included (each field's own range is all the API's schema can state).
                match delay_ok(*base_delay_ms) && delay_ok(*max_delay_ms) {
                    true => Ok(()),
                    false => Err(RetryPolicyError::Delay),
                }
            }
            Self::Schedule { schedule_ms } => {
                if schedule_ms.len() >= MAX_ATTEMPTS_LIMIT as usize {
                    return Err(RetryPolicyError::Attempts);
                }
                match schedule_ms.iter().all(|d| delay_ok(*d)) {
                    true => Ok(()),
                    false => Err(RetryPolicyError::Delay),
                }
            }
            Self::Preset { .. } => Ok(()),
        }
    }

    /// Attempts in total, the first included.
    pub fn max_attempts(&self) -> u32 {
        match self {
            Self::Exponential { max_attempts, .. } => *max_attempts,
            Self::Schedule { schedule_ms } => schedule_ms.len() as u32 + 1,
            Self::Preset { preset } => preset.schedule().len() as u32 + 1,
        }
    }

    /// The delay before the next attempt after `attempts_made` attempts failed (1-based), without
    /// jitter; `None` when no attempt is left.
    pub fn base_delay_ms(&self, attempts_made: u32) -> Option<u64> {
        if attempts_made == 0 || attempts_made >= self.max_attempts() {
            return None;
        }
        let index = (attempts_made - 1) as usize;
        match self {
            Self::Exponential {
                base_delay_ms,
                max_delay_ms,
                ..
            } => {
                let factor = 1u64.checked_shl(attempts_made - 1).unwrap_or(u64::MAX);
                Some(base_delay_ms.saturating_mul(factor).min(*max_delay_ms))
            }
            Self::Schedule { schedule_ms } => schedule_ms.get(index).copied(),
            Self::Preset { preset } => preset.schedule().get(index).copied(),
        }
    }

    /// The longest time from a delivery's first attempt to its last: every delay of the schedule
    /// with the most jitter added (+20% each). A delivery of this policy is `delivered` or `dead`
    /// within this time of its first attempt, unless a receiver's `Retry-After` asks for longer
    /// (clamped to [`RetryPolicy::bounds_ms`]) or an operator re-queues it.
    pub fn longest_schedule_ms(&self) -> u64 {
        (1..self.max_attempts())
            .filter_map(|n| self.base_delay_ms(n))
            .map(|delay| with_jitter(delay, 1.0))
            .fold(0u64, u64::saturating_add)
    }

    /// The range `Retry-After` is clamped into: from the shortest delay this policy uses to its
    /// longest allowed delay (`max_delay_ms` for an exponential policy, even when its few attempts
    /// never reach it; the longest step of a schedule).
    pub fn bounds_ms(&self) -> (u64, u64) {
        let delays: Vec<u64> = (1..self.max_attempts())
            .filter_map(|n| self.base_delay_ms(n))
            .collect();
        let min = delays.iter().copied().min().unwrap_or(0);
        let max = match self {
            Self::Exponential { max_delay_ms, .. } => *max_delay_ms,
            Self::Schedule { .. } | Self::Preset { .. } => {
                delays.iter().copied().max().unwrap_or(0)
            }
        };
        (min, max.max(min))
    }
}

impl Preset {
    pub fn schedule(self) -> &'static [u64] {
        match self {
            Self::StandardWebhooks => &STANDARD_WEBHOOKS_SCHEDULE_MS,
        }
    }
}

/// Applies jitter to a delay. `jitter_unit` is a random number in `[-1, 1]`; the result lies within
/// ±[`JITTER_FRACTION`] of `delay_ms`.
pub fn with_jitter(delay_ms: u64, jitter_unit: f64) -> u64 {
    let unit = jitter_unit.clamp(-1.0, 1.0);
    let scaled = delay_ms as f64 * (1.0 + JITTER_FRACTION * unit);
    scaled.round().max(0.0) as u64
}

/// What one attempt came to, as far as retry decisions care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptResult {
    /// Any 2xx.
    Success,
    /// `410 Gone`: the receiver asks never to be called again.
    Gone,
    /// Any other failure: a non-2xx status, a timeout, a connection, DNS or TLS error, a blocked
    /// address. `retry_after_ms` is the receiver's `Retry-After` (honoured on 429 and 503 only).
    Failure { retry_after_ms: Option<u64> },
}

/// What to do with a delivery after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Delivered,
    /// Try again at this time (Unix ms).
    RetryAt(i64),
    /// Attempts exhausted (or the event is not retryable): dead-letter it.
    Dead,
    /// The endpoint is gone: disable the subscription and hold this delivery.
    DisableSubscription,
}

/// Decides the fate of a delivery after its `attempts_made`-th attempt (1-based) at `now_ms`.
pub fn decide(
    policy: &RetryPolicy,
    attempts_made: u32,
    result: AttemptResult,
    retryable: bool,
    now_ms: i64,
    jitter_unit: f64,
) -> Decision {
    let retry_after_ms = match result {
        AttemptResult::Success => return Decision::Delivered,
        AttemptResult::Gone => return Decision::DisableSubscription,
        AttemptResult::Failure { retry_after_ms } => retry_after_ms,
    };
    if !retryable {
        return Decision::Dead;
    }
    let Some(base) = policy.base_delay_ms(attempts_made) else {
        return Decision::Dead;
    };
    let delay = match retry_after_ms {
        Some(requested) => {
            let (min, max) = policy.bounds_ms();
            requested.clamp(min, max)
        }
        None => with_jitter(base, jitter_unit),
    };
    Decision::RetryAt(now_ms.saturating_add(delay.min(i64::MAX as u64) as i64))
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date. Returns the wait in ms from `now_ms`
/// (0 for a date in the past); `None` when unparsable.
pub fn parse_retry_after(value: &str, now_ms: i64) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(seconds.saturating_mul(1_000));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let at_ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis()
        .min(i64::MAX as u128) as i64;
    Some(at_ms.saturating_sub(now_ms).max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exponential(max_attempts: u32, base: u64, max: u64) -> RetryPolicy {
        RetryPolicy::Exponential {
            max_attempts,
            base_delay_ms: base,
            max_delay_ms: max,
        }
    }

    #[test]
    fn longest_schedule_adds_every_delay_with_the_most_jitter() {
        let cases = [
            // 2 + 4 + 8 + 16 s, each +20%.
            (RetryPolicy::default(), 36_000),
            (exponential(1, 1_000, 1_000), 0),
            // 1 + 2 + 2.5 (capped) s, each +20%.
            (exponential(4, 1_000, 2_500), 6_600),
            (
                RetryPolicy::Schedule {
                    schedule_ms: vec![100, 200],
                },
                360,
            ),
            (
                RetryPolicy::Preset {
                    preset: Preset::StandardWebhooks,
                },
                STANDARD_WEBHOOKS_SCHEDULE_MS.iter().sum::<u64>() * 6 / 5,
            ),
        ];
        for (policy, expected) in cases {
            assert_eq!(policy.longest_schedule_ms(), expected, "{policy:?}");
        }
    }

    #[test]
    fn default_is_the_original_specifications_schedule() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.max_attempts(), 5);
        let delays: Vec<_> = (1..=5).map(|n| policy.base_delay_ms(n)).collect();
        assert_eq!(
            delays,
            [Some(2_000), Some(4_000), Some(8_000), Some(16_000), None]
        );
        assert_eq!(policy.base_delay_ms(0), None);
    }

    #[test]
    fn delay_tables() {
        // (policy, attempts made, expected delay)
        let preset = RetryPolicy::Preset {
            preset: Preset::StandardWebhooks,
        };
        let schedule = RetryPolicy::Schedule {
            schedule_ms: vec![100, 50, 300],
        };
        let capped = exponential(10, 1_000, 5_000);
        let cases: &[(&RetryPolicy, u32, Option<u64>)] = &[
            (&capped, 1, Some(1_000)),
            (&capped, 3, Some(4_000)),
            (&capped, 4, Some(5_000)),
            (&capped, 9, Some(5_000)),
            (&capped, 10, None),
            (&schedule, 1, Some(100)),
            (&schedule, 2, Some(50)),
            (&schedule, 3, Some(300)),
            (&schedule, 4, None),
            (&preset, 1, Some(5_000)),
            (&preset, 9, Some(86_400_000)),
            (&preset, 10, None),
        ];
        for (policy, made, expected) in cases {
            assert_eq!(
                policy.base_delay_ms(*made),
                *expected,
                "{policy:?} after {made}"
            );
        }
        assert_eq!(preset.max_attempts(), 10);
        assert_eq!(schedule.max_attempts(), 4);
        assert_eq!(schedule.bounds_ms(), (50, 300));
        // Up to `max_delay_ms`, not only to the longest delay the few attempts reach (16 s).
        assert_eq!(RetryPolicy::default().bounds_ms(), (2_000, 3_600_000));
        let short = RetryPolicy::Exponential {
            max_attempts: 4,
            base_delay_ms: 50,
            max_delay_ms: 5_000,
        };
        assert_eq!(
            decide(
                &short,
                1,
                AttemptResult::Failure {
                    retry_after_ms: Some(1_000)
                },
                true,
                0,
                0.0
            ),
            Decision::RetryAt(1_000),
            "Retry-After: 1 is honoured although the policy's own delays stop at 200 ms"
        );
        // Huge attempt counts do not overflow.
        assert_eq!(
            exponential(50, 1_000, 60_000).base_delay_ms(49),
            Some(60_000)
        );
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        assert_eq!(with_jitter(1_000, 0.0), 1_000);
        assert_eq!(with_jitter(1_000, 1.0), 1_200);
        assert_eq!(with_jitter(1_000, -1.0), 800);
        assert_eq!(with_jitter(1_000, 7.0), 1_200, "clamped");
        assert_eq!(with_jitter(0, 1.0), 0);
    }

    #[test]
    fn decisions() {
        let policy = RetryPolicy::default();
        let now = 1_000_000;
        let failure = AttemptResult::Failure {
            retry_after_ms: None,
        };
        let cases = [
            (1, AttemptResult::Success, true, Decision::Delivered),
            (5, AttemptResult::Success, true, Decision::Delivered),
            (1, AttemptResult::Gone, true, Decision::DisableSubscription),
            (1, failure, true, Decision::RetryAt(now + 2_000)),
            (2, failure, true, Decision::RetryAt(now + 4_000)),
            (4, failure, true, Decision::RetryAt(now + 16_000)),
            (5, failure, true, Decision::Dead),
            (1, failure, false, Decision::Dead),
            (
                1,
                AttemptResult::Failure {
                    retry_after_ms: Some(10_000),
                },
                true,
                Decision::RetryAt(now + 10_000),
            ),
            (
                1,
                AttemptResult::Failure {
                    retry_after_ms: Some(0),
                },
                true,
                Decision::RetryAt(now + 2_000),
            ),
            (
                1,
                AttemptResult::Failure {
                    retry_after_ms: Some(999_999_999),
                },
                true,
                Decision::RetryAt(now + 3_600_000),
            ),
            (
                5,
                AttemptResult::Failure {
                    retry_after_ms: Some(1_000),
                },
                true,
                Decision::Dead,
            ),
        ];
        for (made, result, retryable, expected) in cases {
            assert_eq!(
                decide(&policy, made, result, retryable, now, 0.0),
                expected,
                "after {made}: {result:?} retryable={retryable}"
            );
        }
        assert_eq!(
            decide(&policy, 1, failure, true, now, 1.0),
            Decision::RetryAt(now + 2_400)
        );
    }

    #[test]
    fn retry_after_forms() {
        let now = 1_445_412_480_000; // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(parse_retry_after("120", now), Some(120_000));
        assert_eq!(parse_retry_after(" 0 ", now), Some(0));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(30_000)
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(0)
        );
        for bad in ["", "soon", "-5", "1.5"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn wire_forms_and_validation() {
        let parse = |json: &str| serde_json::from_str::<RetryPolicy>(json);
        assert_eq!(
            parse(r#"{"max_attempts": 3, "base_delay_ms": 100}"#).unwrap(),
            exponential(3, 100, 3_600_000)
        );
        assert_eq!(
            parse(r#"{"schedule_ms": [1000, 2000]}"#).unwrap(),
            RetryPolicy::Schedule {
                schedule_ms: vec![1_000, 2_000]
            }
        );
        assert_eq!(
            parse(r#"{"preset": "standard_webhooks"}"#)
                .unwrap()
                .max_attempts(),
            10
        );
        assert!(parse(r#"{"preset": "forever"}"#).is_err());
        assert!(parse(r#"{"max_attempts": 3}"#).is_err());
        let invalid = [
            (exponential(0, 100, 1_000), RetryPolicyError::Attempts),
            (exponential(51, 100, 1_000), RetryPolicyError::Attempts),
            (exponential(3, 1, 1_000), RetryPolicyError::Delay),
            (
                RetryPolicy::Schedule {
                    schedule_ms: vec![10; 50],
                },
                RetryPolicyError::Attempts,
            ),
            (
                RetryPolicy::Schedule {
                    schedule_ms: vec![MAX_DELAY_LIMIT_MS + 1],
                },
                RetryPolicyError::Delay,
            ),
        ];
        for (policy, expected) in invalid {
            assert_eq!(policy.validate(), Err(expected), "{policy:?}");
        }
        assert_eq!(RetryPolicy::default().validate(), Ok(()));
        assert_eq!(
            RetryPolicy::Schedule {
                schedule_ms: vec![]
            }
            .max_attempts(),
            1
        );
    }

    #[test]
    fn a_max_delay_below_the_base_caps_every_delay() {
        let capped = exponential(3, 2_000, 1_000);
        assert_eq!(capped.validate(), Ok(()));
        assert_eq!(capped.base_delay_ms(1), Some(1_000));
        assert_eq!(capped.base_delay_ms(2), Some(1_000));
        // Left out, the cap is the default or the base delay, whichever is longer.
        let long_base: RetryPolicy =
            serde_json::from_str(r#"{"max_attempts": 3, "base_delay_ms": 7200000}"#).unwrap();
        assert_eq!(long_base.validate(), Ok(()));
        assert_eq!(long_base.base_delay_ms(1), Some(7_200_000));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn exponential_delays_are_monotone_bounded_and_finite(
            max_attempts in 1u32..=MAX_ATTEMPTS_LIMIT,
            base in MIN_DELAY_MS..=60_000u64,
            extra in 0u64..=3_600_000,
        ) {
            let policy = RetryPolicy::Exponential { max_attempts, base_delay_ms: base, max_delay_ms: base + extra };
            prop_assert!(policy.validate().is_ok());
            let delays: Vec<u64> = (1..max_attempts).map(|n| policy.base_delay_ms(n).unwrap()).collect();
            prop_assert!(delays.windows(2).all(|w| w[0] <= w[1]));
            prop_assert!(delays.iter().all(|d| *d >= base && *d <= base + extra));
            prop_assert_eq!(policy.base_delay_ms(max_attempts), None);
        }

        #[test]
        fn jitter_is_within_twenty_percent(delay in 0u64..=MAX_DELAY_LIMIT_MS, unit in -1.0f64..=1.0) {
            let jittered = with_jitter(delay, unit) as f64;
            let delay = delay as f64;
            prop_assert!(jittered >= delay * 0.8 - 1.0 && jittered <= delay * 1.2 + 1.0);
        }

        #[test]
        fn every_failure_ends_dead_after_max_attempts(max_attempts in 1u32..=20, unit in -1.0f64..=1.0) {
            let policy = RetryPolicy::Exponential { max_attempts, base_delay_ms: 100, max_delay_ms: 10_000 };
            let failure = AttemptResult::Failure { retry_after_ms: None };
            for made in 1..max_attempts {
                prop_assert!(matches!(decide(&policy, made, failure, true, 0, unit), Decision::RetryAt(at) if at > 0));
            }
            prop_assert_eq!(decide(&policy, max_attempts, failure, true, 0, unit), Decision::Dead);
        }
    }
}
