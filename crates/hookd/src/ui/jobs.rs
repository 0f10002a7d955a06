//! Work the dashboard starts and then shows the progress of: "recover failed since T".
//!
//! A recovery can touch hundreds of thousands of deliveries. Run as one `UPDATE` it would hold the
//! database's write lock (SQLite: every publish waits) for as long as it takes, and the page could
//! say nothing until the end. So it runs in the background in steps of at most [`RECOVERY_STEP`]
//! rows, one transaction each, and the page polls its progress (htmx). Jobs live in this process's
//! memory: a restart forgets the progress, not the work done (each step is committed), and running
//! the recovery again picks up what is left.

use crate::ops::Ops;
use crate::store::UnixMs;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most deliveries one step re-queues (one transaction).
pub const RECOVERY_STEP: u32 = 1_000;
/// How long a finished job's result stays readable.
const KEEP_FINISHED_MS: i64 = 3_600_000;

/// The recoveries of this process, by id.
#[derive(Default)]
pub struct Jobs {
    recoveries: Mutex<HashMap<String, Arc<Recovery>>>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").finish_non_exhaustive()
    }
}

/// One "recover failed since T" of one endpoint.
pub struct Recovery {
    pub id: String,
    pub subscription_id: String,
    /// The portal owner who started it (only that owner's sessions and operators may read it);
    /// `None` when an operator did.
    pub owner: Option<String>,
    /// Deliveries that failed at or after this time...
    pub since: UnixMs,
    /// ...and before this one (the start): what fails while the job runs is not its business, and
    /// a row it re-queued that fails again is never taken twice.
    pub until: UnixMs,
    /// How many matched when it started.
    pub expected: i64,
    progress: Mutex<Progress>,
}

/// How far a recovery got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub recovered: u64,
    /// Transactions committed so far.
    pub steps: u32,
    pub finished_at: Option<UnixMs>,
    /// Why it stopped early (the store failed); the steps before it stay committed.
    pub error: Option<String>,
}

impl Recovery {
    pub fn progress(&self) -> Progress {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn update(&self, change: impl FnOnce(&mut Progress)) {
        change(&mut self.progress.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// What starts a recovery.
pub struct RecoveryRequest {
    pub subscription_id: String,
    pub owner: Option<String>,
    pub since: UnixMs,
    pub expected: i64,
}

impl Jobs {
    /// Starts a recovery in the background and returns it at once.
    pub fn start_recovery(&self, ops: &Ops, request: RecoveryRequest) -> Arc<Recovery> {
        let now = ops.clock.now_ms();
        let job = Arc::new(Recovery {
            id: crate::ids::new_id("rcv", now),
            subscription_id: request.subscription_id,
            owner: request.owner,
            since: request.since,
            // One past now: a row that failed in this very millisecond is counted and recovered.
            until: now + 1,
            expected: request.expected,
            progress: Mutex::default(),
        });
        {
            let mut jobs = self.recoveries.lock().unwrap_or_else(|e| e.into_inner());
            jobs.retain(|_, old| {
                old.progress()
                    .finished_at
                    .is_none_or(|at| now - at < KEEP_FINISHED_MS)
            });
            jobs.insert(job.id.clone(), job.clone());
        }
        tokio::spawn(run_recovery(ops.clone(), job.clone()));
        job
    }

    pub fn recovery(&self, id: &str) -> Option<Arc<Recovery>> {
        self.recoveries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }
}

/// Re-queues step after step until a step finds nothing left.
async fn run_recovery(ops: Ops, job: Arc<Recovery>) {
    loop {
        // Re-queued rows get `updated_at = now`; at or after `until` they are out of the job's range.
        let now = ops.clock.now_ms().max(job.until);
        let step = ops
            .recover_step(
                &job.subscription_id,
                job.since,
                job.until,
                RECOVERY_STEP,
                now,
            )
            .await;
        match step {
            Ok(0) => {
                job.update(|p| p.finished_at = Some(now));
                return;
            }
            Ok(recovered) => {
                job.update(|p| {
                    p.recovered += recovered;
                    p.steps += 1;
                });
            }
            Err(error) => {
                tracing::warn!(%error, job = %job.id, "recovery stopped");
                job.update(|p| {
                    p.error = Some(error.to_string());
                    p.finished_at = Some(now);
                });
                return;
            }
        }
        // Let the publisher and the worker's writes in between steps.
        tokio::task::yield_now().await;
    }
}
