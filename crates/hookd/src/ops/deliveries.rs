//! Deliveries: retry one, redrive dead letters, replay an event to its endpoints or to one endpoint.

use super::{Ops, OpsError};
use crate::ids::new_id;
use crate::store::{DeadLetterFilter, DeliveryRow, DeliveryState, RetryResult, SubscriptionRow};

/// What replaying an event to one endpoint did.
#[derive(Debug)]
pub enum ReplayOutcome {
    /// The endpoint's delivery of the event was re-queued.
    Requeued(DeliveryRow),
    /// The endpoint had no delivery of the event; a new one was queued.
    Created(DeliveryRow),
    /// The endpoint's delivery (this id) has an attempt in flight; nothing changed.
    InFlight(String),
    /// The endpoint is disabled and had no delivery of the event; nothing changed.
    EndpointDisabled,
    /// The endpoint was disabled, or got a delivery of the event, meanwhile; nothing changed.
    EndpointChanged,
    /// The endpoint belongs to another owner than the event: an event is never sent to another
    /// owner's endpoint; nothing changed.
    OtherOwner,
}

impl Ops {
    /// Re-queues one delivery now with a fresh attempt budget (any state but in flight).
    pub async fn retry_delivery(&self, id: &str) -> Result<RetryResult, OpsError> {
        let result = self
            .store
            .deliveries
            .retry_delivery(id, self.clock.now_ms())
            .await?;
        if matches!(result, RetryResult::Requeued(_)) {
            self.work_became_due();
        }
        Ok(result)
    }

    /// Re-queues one dead letter; "not found" for a delivery that is not dead.
    pub async fn redrive_dead_letter(&self, id: &str) -> Result<RetryResult, OpsError> {
        let delivery = self.store.deliveries.get_delivery(id).await?;
        if delivery.map(|d| d.state) != Some(DeliveryState::Dead) {
            return Err(OpsError::NotFound("dead letter"));
        }
        self.retry_delivery(id).await
    }

    /// Re-queues every dead letter matching the filter; returns how many.
    pub async fn redrive_dead_letters(&self, filter: DeadLetterFilter) -> Result<u64, OpsError> {
        let redriven = self
            .store
            .deliveries
            .redrive_dead_letters(filter, self.clock.now_ms())
            .await?;
        if redriven > 0 {
            self.work_became_due();
        }
        Ok(redriven)
    }

    /// Re-queues each of these deliveries (of one event); returns how many were re-queued and how
    /// many were skipped because an attempt is in flight.
    pub async fn replay_deliveries(&self, delivery_ids: &[String]) -> Result<(u64, u64), OpsError> {
        let now = self.clock.now_ms();
        let (mut queued, mut busy) = (0, 0);
        for id in delivery_ids {
            match self.store.deliveries.retry_delivery(id, now).await? {
                RetryResult::Requeued(_) => queued += 1,
                RetryResult::InFlight => busy += 1,
                RetryResult::NotFound => {}
            }
        }
        if queued > 0 {
            self.work_became_due();
        }
        Ok((queued, busy))
    }

    /// Replays an event to one endpoint: re-queues its delivery of the event if it has one, else
    /// creates one (the endpoint was created after the event, or does not subscribe to its type and
    /// was picked anyway).
    pub async fn replay_to_endpoint(
        &self,
        event_id: &str,
        subscription: &SubscriptionRow,
    ) -> Result<ReplayOutcome, OpsError> {
        let now = self.clock.now_ms();
        let existing = self
            .store
            .deliveries
            .deliveries_for_event(event_id)
            .await?
            .into_iter()
            .find(|d| d.subscription_id == subscription.id);
        let outcome = match existing {
            Some(delivery) => match self
                .store
                .deliveries
                .retry_delivery(&delivery.id, now)
                .await?
            {
                RetryResult::Requeued(row) => ReplayOutcome::Requeued(row),
                RetryResult::InFlight => return Ok(ReplayOutcome::InFlight(delivery.id)),
                RetryResult::NotFound => return Err(OpsError::NotFound("delivery")),
            },
            None if !subscription.active => return Ok(ReplayOutcome::EndpointDisabled),
            None => {
                let event = self
                    .store
                    .deliveries
                    .get_event(event_id)
                    .await?
                    .ok_or(OpsError::NotFound("event"))?;
                if event.owner != subscription.owner {
                    return Ok(ReplayOutcome::OtherOwner);
                }
                let id = new_id("dlv", now);
                let added = self
                    .store
                    .ui
                    .add_delivery(&id, event_id, &subscription.id, now)
                    .await?;
                match added {
                    Some(row) => ReplayOutcome::Created(row),
                    None => return Ok(ReplayOutcome::EndpointChanged),
                }
            }
        };
        self.work_became_due();
        Ok(outcome)
    }
}
