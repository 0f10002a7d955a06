//! The worker's memory budget: the bytes its leased deliveries hold, counted as a claim counts
//! them ([`claim_cost`]). Pure bookkeeping: no IO.
//!
//! Why: the queue and the request slots are bounded by count, and a count says nothing about
//! bytes. With large events and a slow receiver every held delivery carries its event's data and,
//! while it is sent, a request body of about that size: ten subscriptions and 250 KB events took
//! the process past 500 MB. So the worker charges each delivery its event's `data` size (its
//! body) and each event once more (the one copy its deliveries share: a delivery claimed later
//! takes the copy already held), asks each claim for no more than the budget has left, and frees
//! the charge as deliveries finish.
//!
//! An event larger than the whole budget is still claimed when the worker holds nothing, so it is
//! sent, one at a time, rather than never.

use crate::store::{ByteRoom, ClaimedDelivery, EventRow, claim_cost};
use std::collections::HashMap;
use std::sync::Arc;

/// One event the worker holds deliveries of.
#[derive(Debug)]
struct HeldEvent {
    /// The copy every held delivery of this event shares.
    event: Arc<EventRow>,
    /// How many deliveries of it are held (waiting or in flight); at least 1.
    deliveries: usize,
}

#[derive(Debug)]
pub struct Budget {
    /// Most bytes held at once (but see the module's note on larger events).
    limit: u64,
    /// Bytes held now: the sum of [`claim_cost`] over `events`.
    held: u64,
    events: HashMap<String, HeldEvent>,
}

impl Budget {
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            held: 0,
            events: HashMap::new(),
        }
    }

    /// Bytes held now.
    pub fn held(&self) -> u64 {
        self.held
    }

    /// What the next claim may take: what the budget has left, and the first row regardless when
    /// nothing is held.
    pub fn room(&self) -> ByteRoom {
        ByteRoom {
            bytes: self.limit.saturating_sub(self.held),
            first_regardless: self.events.is_empty(),
        }
    }

    /// Counts a claimed delivery in. Its event becomes the copy already held, if any: the data is
    /// kept once whatever the fan-out.
    pub fn admit(&mut self, delivery: &mut ClaimedDelivery) {
        let size = delivery.event.data.len();
        match self.events.get_mut(&delivery.event.id) {
            Some(held) => {
                delivery.event = Arc::clone(&held.event);
                held.deliveries += 1;
            }
            None => {
                self.events.insert(
                    delivery.event.id.clone(),
                    HeldEvent {
                        event: Arc::clone(&delivery.event),
                        deliveries: 1,
                    },
                );
            }
        }
        let deliveries = self
            .events
            .get(&delivery.event.id)
            .map_or(1, |h| h.deliveries);
        self.held += claim_cost(size, deliveries) - claim_cost(size, deliveries - 1);
    }

    /// Counts a delivery of `event` out (sent, or handed back). Returns true when this took what is
    /// held down to half the budget, or to nothing: time to claim more.
    pub fn release(&mut self, event: &EventRow) -> bool {
        let Some(held) = self.events.get_mut(&event.id) else {
            return false;
        };
        let size = held.event.data.len();
        let before = self.held;
        self.held -= claim_cost(size, held.deliveries) - claim_cost(size, held.deliveries - 1);
        held.deliveries -= 1;
        if held.deliveries == 0 {
            self.events.remove(&event.id);
        }
        let half = self.limit / 2;
        self.held == 0 || (before > half && self.held <= half)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SubscriptionRow;

    fn delivery(event: &str, n: usize, bytes: usize) -> ClaimedDelivery {
        ClaimedDelivery {
            delivery_id: format!("{event}-{n}"),
            attempts: 0,
            attempts_before: 0,
            event: Arc::new(EventRow {
                id: event.into(),
                event_type: "a.b".into(),
                version: "1".into(),
                data: "x".repeat(bytes),
                retryable: true,
                idempotency_key: None,
                owner: None,
                created_at: 0,
            }),
            subscription: Arc::new(SubscriptionRow::new(
                format!("wh_{n}"),
                hookd_core::EndpointUrl::from_stored("http://127.0.0.1/").unwrap(),
                vec![hookd_core::EventFilter::All],
                "whsec_x".into(),
                0,
            )),
        }
    }

    #[test]
    fn deliveries_of_one_event_share_its_copy_and_are_charged_their_bodies() {
        let mut budget = Budget::new(1_000);
        let mut first = delivery("evt_a", 0, 100);
        let mut second = delivery("evt_a", 1, 100);
        assert!(!Arc::ptr_eq(&first.event, &second.event));
        budget.admit(&mut first);
        assert_eq!(budget.held(), 200, "the event's copy and one body");
        budget.admit(&mut second);
        assert!(
            Arc::ptr_eq(&first.event, &second.event),
            "claimed apart, shared"
        );
        assert_eq!(budget.held(), 300);
        assert_eq!(
            budget.room(),
            ByteRoom {
                bytes: 700,
                first_regardless: false
            }
        );
        assert!(!budget.release(&first.event));
        assert_eq!(budget.held(), 200);
        assert!(budget.release(&second.event), "nothing held: claim more");
        assert_eq!(
            budget.room(),
            ByteRoom {
                bytes: 1_000,
                first_regardless: true
            }
        );
    }

    #[test]
    fn an_event_larger_than_the_budget_is_admitted_when_nothing_is_held() {
        let mut budget = Budget::new(1_000);
        let mut big = delivery("evt_big", 0, 5_000);
        assert!(budget.room().first_regardless);
        budget.admit(&mut big);
        assert_eq!(
            budget.room(),
            ByteRoom {
                bytes: 0,
                first_regardless: false
            }
        );
        assert!(budget.release(&big.event));
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn a_claim_is_asked_for_when_held_bytes_fall_to_half_the_budget() {
        let mut budget = Budget::new(1_000);
        let mut held: Vec<_> = (0..4).map(|n| delivery(&format!("e{n}"), n, 100)).collect();
        for d in &mut held {
            budget.admit(d);
        }
        assert_eq!(budget.held(), 800);
        let asked: Vec<bool> = held.iter().map(|d| budget.release(&d.event)).collect();
        assert_eq!(
            asked,
            [false, true, false, true],
            "800 → 600 → 400 → 200 → 0"
        );
    }
}
