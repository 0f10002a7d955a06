//! The retention role ([`RetentionStore`]): removing finished events and their rows once they are
//! older than the retention in force, trimming old response excerpts, and what the metrics report
//! about the database's size and age.
//!
//! Every step is one short transaction over a bounded window of rows, so that a purge never holds
//! the database long enough to stall publishing or delivery; the caller yields between steps.

use super::{StoreResult, UnixMs};
use async_trait::async_trait;

#[async_trait]
pub trait RetentionStore: Send + Sync + 'static {
    /// One step of the purge, in one transaction: looks at the next `limit` events after `after`
    /// (by `(created_at, id)`, created before the later of the two cutoffs) and removes those that
    /// are finished and expired under `cutoffs`, with their deliveries and attempts. Events with
    /// anything unfinished are left alone, and so are all their deliveries. `next` is `None` once
    /// the window reached the last candidate.
    async fn purge_step(
        &self,
        cutoffs: PurgeCutoffs,
        after: Option<EventPosition>,
        limit: u32,
    ) -> StoreResult<PurgeStep>;
    /// One step of excerpt trimming, in one transaction: clears the response excerpt and headers
    /// of at most `limit` attempts started in `[from, before)` that still have either, oldest
    /// first. Returns how many were cleared and the latest `started_at` among them (where the next
    /// step may start).
    async fn trim_excerpts_step(
        &self,
        from: UnixMs,
        before: UnixMs,
        limit: u32,
    ) -> StoreResult<TrimStep>;
    /// The distinct retry policies subscriptions carry (as stored: JSON text), to check the
    /// retention against the longest schedule in use.
    async fn retry_policies_in_use(&self) -> StoreResult<Vec<String>>;
    /// The database's size and its oldest event, for the metrics.
    async fn retention_stats(&self) -> StoreResult<RetentionStats>;
}

/// When a finished delivery expired: one whose state changed to `delivered` (or `dead`) before the
/// cutoff. `None`: that kind is kept forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PurgeCutoffs {
    /// Delivered deliveries updated before this expired; so did events without any delivery
    /// created before it (nothing is left to do for them).
    pub delivered_before: Option<UnixMs>,
    /// Dead deliveries (dead letters) updated before this expired.
    pub dead_before: Option<UnixMs>,
}

impl PurgeCutoffs {
    /// No event created at or after this can be removed: each of its deliveries changed state
    /// after the event was created.
    pub fn latest(&self) -> Option<UnixMs> {
        self.delivered_before.max(self.dead_before)
    }
}

/// An event's place in the purge's walk, by `(created_at, id)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPosition {
    pub created_at: UnixMs,
    pub id: String,
}

/// Rows removed by the purge (one step, or added up).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub events: u64,
    pub deliveries: u64,
    pub attempts: u64,
}

impl Purged {
    pub fn add(&mut self, other: Purged) {
        self.events += other.events;
        self.deliveries += other.deliveries;
        self.attempts += other.attempts;
    }

    pub fn total(&self) -> u64 {
        self.events + self.deliveries + self.attempts
    }
}

/// What one purge step did, and where the next one starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeStep {
    pub purged: Purged,
    /// The last event the step looked at; `None` when no candidate is left after it.
    pub next: Option<EventPosition>,
}

/// What one excerpt-trimming step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrimStep {
    pub trimmed: u64,
    /// The latest `started_at` trimmed; `None` when nothing was.
    pub last_started_at: Option<UnixMs>,
}

/// The database as the retention metrics report it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionStats {
    /// Bytes the database occupies (SQLite: pages in use, free pages excluded, which SQLite
    /// reuses; PostgreSQL: `pg_database_size`).
    pub database_bytes: i64,
    /// When the oldest stored event was created; `None` when there is none.
    pub oldest_event_at: Option<UnixMs>,
}
