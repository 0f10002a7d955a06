//! Owners: the operator's customers, counted from their subscriptions, and erased on request.

use super::{Ops, OpsError};
use crate::store::{Erased, OwnerRow};

/// Rows per statement in one erasure step: small enough that a step's transaction never holds the
/// database for long, so publishing and delivery go on while an owner is erased.
pub const ERASE_STEP_ROWS: u32 = 500;

/// The pause after each erasure step. On SQLite the steps and the publishing writer take turns at
/// one write lock, and a writer kept waiting backs off by up to 100 ms at a time: without a pause
/// the next step takes the lock again first and publishing stalls for the whole erasure.
const ERASE_PAUSE: std::time::Duration = std::time::Duration::from_millis(10);

impl Ops {
    /// Owners after `after` (by name), at most `limit`.
    pub async fn list_owners(
        &self,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<OwnerRow>, OpsError> {
        Ok(self
            .store
            .owners
            .list_owners(after.as_deref(), limit)
            .await?)
    }

    pub async fn get_owner(&self, owner: &str) -> Result<OwnerRow, OpsError> {
        self.store
            .owners
            .get_owner(owner)
            .await?
            .ok_or(OpsError::NotFound("owner"))
    }

    /// Erases an owner: its subscriptions, the events published to it, every delivery and attempt
    /// of either, its portal sessions and the API keys bound to it, in bounded steps (each its own transaction). Events
    /// published to it after the erasure began are kept. Answers once everything is gone.
    pub async fn erase_owner(&self, owner: &str) -> Result<Erased, OpsError> {
        self.get_owner(owner).await?;
        let started = self.clock.now_ms();
        let mut total = Erased::default();
        loop {
            let step = self
                .store
                .owners
                .erase_owner_step(owner, started + 1, ERASE_STEP_ROWS)
                .await?;
            if step.is_empty() {
                break;
            }
            total.add(step);
            tokio::time::sleep(ERASE_PAUSE).await;
        }
        tracing::info!(
            subscriptions = total.subscriptions,
            events = total.events,
            deliveries = total.deliveries,
            "owner erased"
        );
        Ok(total)
    }
}
