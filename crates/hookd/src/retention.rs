//! Retention: how long finished events are kept, and the background purge that removes them, so
//! that the database stops growing.
//!
//! An event goes only when every one of its deliveries is finished and expired: `delivered` longer
//! ago than the delivered retention, `dead` longer ago than the dead-letter retention. Anything
//! pending, in flight, failed (awaiting a retry) or held keeps its event and every delivery of it,
//! however old. The purge runs in bounded steps ([`STEP_ROWS`] events, each step its own short
//! transaction, a pause between steps), so publishing and delivery go on while it runs. The same
//! pass clears response excerpts and headers of attempts older than the excerpt retention.

use crate::ids::DynClock;
use crate::store::retention::{EventPosition, PurgeCutoffs, Purged};
use crate::store::{Store, StoreResult, UnixMs};
use hookd_core::RetryPolicy;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// Events per purge step (and attempts per trimming step): small enough that a step's
/// transaction never holds the database for long.
pub const STEP_ROWS: u32 = 500;

/// The pause between two steps, which lets the writers waiting for the database go first.
const PAUSE_BETWEEN_STEPS: Duration = Duration::from_millis(10);

/// Attempts are recorded after their request ends (a request takes at most a minute, a recorder
/// batch a moment more): a trimming pass looks this far behind where the last one stopped, for
/// attempts recorded late.
const LATE_RECORD_MARGIN_MS: i64 = 600_000;

/// The retention in force. `None`: that kind is kept forever.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionSettings {
    /// How long a delivered delivery (and an event without deliveries) is kept, in ms.
    pub delivered_ms: Option<u64>,
    /// How long a dead letter is kept, in ms.
    pub dead_ms: Option<u64>,
    /// How long an attempt keeps its response excerpt and headers, in ms.
    pub excerpts_ms: Option<u64>,
    /// How often the purge runs.
    pub interval: Duration,
}

impl RetentionSettings {
    /// Whether anything is ever removed or trimmed.
    pub fn is_enabled(&self) -> bool {
        self.delivered_ms.is_some() || self.dead_ms.is_some() || self.excerpts_ms.is_some()
    }

    /// What expired at `now`.
    pub fn cutoffs(&self, now: UnixMs) -> PurgeCutoffs {
        let before = |kept: Option<u64>| kept.map(|ms| now.saturating_sub(ms as i64));
        PurgeCutoffs {
            delivered_before: before(self.delivered_ms),
            dead_before: before(self.dead_ms),
        }
    }

    /// Refuses a retention of finished deliveries shorter than `policy`'s longest schedule (its
    /// delays with the most jitter): a delivery could then be removed sooner after it finished
    /// than its own retries took. `whose` names the policy in the message.
    pub fn check_retry_policy(&self, policy: &RetryPolicy, whose: &str) -> Result<(), String> {
        let longest = policy.longest_schedule_ms();
        for (key, kept) in [
            ("retention_delivered_ms", self.delivered_ms),
            ("retention_dead_ms", self.dead_ms),
        ] {
            if let Some(kept) = kept
                && kept < longest
            {
                return Err(format!(
                    "{key} ({kept} ms, {}) is shorter than the longest retry schedule in use \
                     ({longest} ms, {}: {whose})",
                    human_duration(kept),
                    human_duration(longest)
                ));
            }
        }
        Ok(())
    }

    /// The retention as people read it, per kind: "30 days", or "forever".
    pub fn described(&self) -> Vec<(&'static str, String)> {
        let text = |kept: Option<u64>| kept.map_or_else(|| "forever".to_owned(), human_duration);
        vec![
            ("Delivered events", text(self.delivered_ms)),
            ("Dead letters", text(self.dead_ms)),
            ("Response excerpts", text(self.excerpts_ms)),
        ]
    }
}

/// `ms` in the largest whole unit that fits ("36 s", "7 days"), else in ms.
pub fn human_duration(ms: u64) -> String {
    const UNITS: [(u64, &str, &str); 4] = [
        (86_400_000, "day", "days"),
        (3_600_000, "hour", "hours"),
        (60_000, "min", "min"),
        (1_000, "s", "s"),
    ];
    for (size, one, many) in UNITS {
        if ms >= size && ms.is_multiple_of(size) {
            let count = ms / size;
            return format!("{count} {}", if count == 1 { one } else { many });
        }
    }
    format!("{ms} ms")
}

/// What one purge pass removed and trimmed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    pub purged: Purged,
    pub excerpts_trimmed: u64,
}

/// The background purge: [`Purger::run_pass`] is one pass (tests drive it directly), `run` repeats
/// it every `interval` until shutdown.
pub struct Purger {
    store: Store,
    clock: DynClock,
    settings: RetentionSettings,
    /// Where the next trimming pass starts (less [`LATE_RECORD_MARGIN_MS`]): every attempt with a
    /// response before it was trimmed already.
    trimmed_until: AtomicI64,
}

impl Purger {
    pub fn new(store: Store, clock: DynClock, settings: RetentionSettings) -> Self {
        Self {
            store,
            clock,
            settings,
            trimmed_until: AtomicI64::new(i64::MIN),
        }
    }

    /// Runs passes every `interval` until `shutdown` flips to true. A failed pass is logged and
    /// the next one starts over.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        if !self.settings.is_enabled() {
            return;
        }
        loop {
            let stopping = shutdown.clone();
            match self.run_pass_until(|| *stopping.borrow()).await {
                Ok(report) if report.purged.total() + report.excerpts_trimmed > 0 => {
                    tracing::info!(
                        events = report.purged.events,
                        deliveries = report.purged.deliveries,
                        attempts = report.purged.attempts,
                        excerpts = report.excerpts_trimmed,
                        "retention purge"
                    );
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "retention purge failed; retrying later"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.settings.interval) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }

    /// One pass: every expired event (with its rows) removed, every expired excerpt cleared.
    pub async fn run_pass(&self) -> StoreResult<PassReport> {
        self.run_pass_until(|| false).await
    }

    async fn run_pass_until(&self, stop: impl Fn() -> bool) -> StoreResult<PassReport> {
        let now = self.clock.now_ms();
        let mut report = PassReport::default();
        let cutoffs = self.settings.cutoffs(now);
        let mut after: Option<EventPosition> = None;
        while cutoffs.latest().is_some() && !stop() {
            let step = self
                .store
                .retention
                .purge_step(cutoffs, after, STEP_ROWS)
                .await?;
            count_purged(step.purged);
            report.purged.add(step.purged);
            match step.next {
                Some(next) => after = Some(next),
                None => break,
            }
            tokio::time::sleep(PAUSE_BETWEEN_STEPS).await;
        }
        if let Some(kept) = self.settings.excerpts_ms {
            report.excerpts_trimmed = self.trim_excerpts(now - kept as i64, &stop).await?;
        }
        Ok(report)
    }

    /// Clears the excerpts of attempts started before `before`, in steps.
    async fn trim_excerpts(&self, before: UnixMs, stop: &impl Fn() -> bool) -> StoreResult<u64> {
        let mut from = self
            .trimmed_until
            .load(Ordering::Relaxed)
            .saturating_sub(LATE_RECORD_MARGIN_MS);
        let mut trimmed = 0;
        loop {
            if stop() {
                return Ok(trimmed);
            }
            let step = self
                .store
                .retention
                .trim_excerpts_step(from, before, STEP_ROWS)
                .await?;
            metrics::counter!("hookd_retention_trimmed_excerpts_total").increment(step.trimmed);
            trimmed += step.trimmed;
            match step.last_started_at {
                Some(last) if step.trimmed == u64::from(STEP_ROWS) => from = last,
                _ => break,
            }
            tokio::time::sleep(PAUSE_BETWEEN_STEPS).await;
        }
        self.trimmed_until.store(before, Ordering::Relaxed);
        Ok(trimmed)
    }
}

fn count_purged(purged: Purged) {
    for (table, rows) in [
        ("events", purged.events),
        ("deliveries", purged.deliveries),
        ("attempts", purged.attempts),
    ] {
        metrics::counter!("hookd_retention_purged_rows_total", "table" => table).increment(rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(delivered: Option<u64>, dead: Option<u64>) -> RetentionSettings {
        RetentionSettings {
            delivered_ms: delivered,
            dead_ms: dead,
            ..RetentionSettings::default()
        }
    }

    #[test]
    fn cutoffs_are_now_less_each_retention() {
        let cutoffs = settings(Some(1_000), None).cutoffs(10_000);
        assert_eq!(cutoffs.delivered_before, Some(9_000));
        assert_eq!(cutoffs.dead_before, None);
        assert_eq!(cutoffs.latest(), Some(9_000));
        assert_eq!(settings(None, None).cutoffs(10_000).latest(), None);
    }

    #[test]
    fn a_retention_shorter_than_the_retry_schedule_is_refused_naming_both() {
        let default = RetryPolicy::default();
        let cases = [
            (settings(None, None), None),
            (settings(Some(36_000), Some(36_000)), None),
            (
                settings(Some(35_999), None),
                Some("retention_delivered_ms (35999 ms"),
            ),
            (
                settings(Some(86_400_000), Some(1_000)),
                Some("retention_dead_ms (1000 ms, 1 s)"),
            ),
        ];
        for (retention, refused) in cases {
            let checked = retention.check_retry_policy(&default, "the default retry policy");
            match refused {
                None => assert_eq!(checked, Ok(()), "{retention:?}"),
                Some(wanted) => {
                    let message = checked.unwrap_err();
                    assert!(message.contains(wanted), "{message}");
                    assert!(
                        message.contains("36000 ms, 36 s: the default retry"),
                        "{message}"
                    );
                }
            }
        }
    }

    #[test]
    fn durations_read_in_their_largest_whole_unit() {
        let cases = [
            (1, "1 ms"),
            (1_500, "1500 ms"),
            (36_000, "36 s"),
            (3_600_000, "1 hour"),
            (7 * 86_400_000, "7 days"),
            (90 * 60_000, "90 min"),
        ];
        for (ms, text) in cases {
            assert_eq!(human_duration(ms), text);
        }
    }
}
