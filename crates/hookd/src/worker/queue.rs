//! The worker's local queue: deliveries leased ahead of a free request slot (prefetch), kept per
//! subscription and handed to slots in turn. Pure bookkeeping: no IO, and the time is passed in.
//!
//! Why: with a per-endpoint cap of 16, a slot that had to wait for a claim (a writer round, which
//! may wait behind a commit's fsync) after each request spent most of its time waiting for the
//! database. Leasing ahead lets a finished request start the next one at once; claims refill the
//! queue in the background, in batches.
//!
//! Safety: a waiting delivery's lease keeps running. Each subscription waits for at most
//! [`Queue::depth`] deliveries, sized from how long its requests take so that the last one still
//! starts well within its lease; and [`Queue::take`] never hands out a delivery whose lease has less
//! than its timeout plus half the margin left (it is returned for release instead), so a delivery
//! is never sent on a lease that could expire, and be rescued and sent elsewhere, mid-request.

use super::budget::Budget;
use crate::store::{ByteRoom, ClaimedDelivery, EventRow, UnixMs};
use std::collections::{HashMap, VecDeque};

/// Weight of the newest attempt in a subscription's moving average of attempt durations.
const AVERAGE_WEIGHT: f64 = 0.2;

/// Idle subscriptions whose averages are kept; beyond this, idle ones are forgotten.
const KEEP_IDLE_LANES: usize = 1_024;

/// A leased delivery waiting for a slot.
#[derive(Debug, Clone)]
pub struct Leased {
    pub delivery: ClaimedDelivery,
    /// When the lease ends: the claim's `now` + the request timeout + the lease margin, as the
    /// store computed it.
    pub lease_until: UnixMs,
    /// The request timeout it will be sent with (ms).
    pub timeout_ms: i64,
}

/// One subscription's share of the queue.
#[derive(Debug, Default)]
struct Lane {
    waiting: VecDeque<Leased>,
    sending: usize,
    /// Moving average of this subscription's attempt durations (ms); `None` before the first.
    average_ms: Option<f64>,
    /// Its request timeout (ms), from the last delivery seen.
    timeout_ms: i64,
}

/// The queue's settings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Requests in flight at once per subscription.
    pub cap: usize,
    /// Most deliveries waiting per subscription (0: no prefetch).
    pub prefetch: usize,
    /// Most deliveries held (sent and waiting) in all.
    pub budget: usize,
    /// Most bytes held (sent and waiting) in all ([`Budget`]).
    pub memory_budget_bytes: u64,
    /// Lease margin (ms): the lease is the request timeout plus this.
    pub lease_margin_ms: i64,
    /// Request timeout of subscriptions without their own (ms).
    pub default_timeout_ms: i64,
}

#[derive(Debug)]
pub struct Queue {
    limits: Limits,
    lanes: HashMap<String, Lane>,
    /// Subscriptions with waiting deliveries, in turn order.
    turns: VecDeque<String>,
    waiting: usize,
    sending: usize,
    /// Lane count at which idle lanes are dropped.
    prune_at: usize,
    /// The bytes held, sent and waiting.
    bytes: Budget,
}

impl Queue {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits: Limits {
                cap: limits.cap.max(1),
                ..limits
            },
            lanes: HashMap::new(),
            turns: VecDeque::new(),
            waiting: 0,
            sending: 0,
            prune_at: KEEP_IDLE_LANES,
            bytes: Budget::new(limits.memory_budget_bytes),
        }
    }

    /// Deliveries waiting for a slot, all subscriptions together.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Requests in flight, all subscriptions together.
    pub fn sending(&self) -> usize {
        self.sending
    }

    /// Most deliveries held (sent and waiting) in all.
    pub fn budget(&self) -> usize {
        self.limits.budget
    }

    /// Bytes held (sent and waiting), as [`Budget`] counts them.
    pub fn bytes_held(&self) -> u64 {
        self.bytes.held()
    }

    /// What the next claim may take in bytes.
    pub fn byte_room(&self) -> ByteRoom {
        self.bytes.room()
    }

    /// A sent delivery of `event` is done with: frees its bytes. Returns true when what is held
    /// fell to half the byte budget, or to nothing: time to claim more.
    pub fn let_go(&mut self, event: &EventRow) -> bool {
        self.bytes.release(event)
    }

    /// Adds a freshly leased delivery. It shares the copy of its event already held, if any.
    pub fn push(&mut self, mut leased: Leased) {
        self.bytes.admit(&mut leased.delivery);
        let id = leased.delivery.subscription.id.clone();
        let lane = self.lanes.entry(id.clone()).or_default();
        lane.timeout_ms = leased.timeout_ms;
        if lane.waiting.is_empty() {
            self.turns.push_back(id);
        }
        lane.waiting.push_back(leased);
        self.waiting += 1;
    }

    /// The next delivery to send, taking subscriptions in turn and skipping those at their cap.
    /// Deliveries whose lease has too little time left are moved to `expired` (to be released).
    pub fn take(&mut self, now: UnixMs, expired: &mut Vec<String>) -> Option<ClaimedDelivery> {
        let guard_ms = self.limits.lease_margin_ms / 2;
        for _ in 0..self.turns.len() {
            let id = self.turns.pop_front()?;
            let Some(lane) = self.lanes.get_mut(&id) else {
                continue;
            };
            if lane.sending >= self.limits.cap {
                self.turns.push_back(id);
                continue;
            }
            let mut found = None;
            while let Some(leased) = lane.waiting.pop_front() {
                self.waiting -= 1;
                match leased.lease_until - now >= leased.timeout_ms + guard_ms {
                    true => {
                        found = Some(leased.delivery);
                        break;
                    }
                    false => {
                        self.bytes.release(&leased.delivery.event);
                        expired.push(leased.delivery.delivery_id);
                    }
                }
            }
            let has_more = !lane.waiting.is_empty();
            if found.is_some() {
                lane.sending += 1;
                self.sending += 1;
            }
            if has_more {
                self.turns.push_back(id);
            }
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// A request to `subscription` finished after `duration_ms`. The subscription's average is kept
    /// while it idles (up to [`KEEP_IDLE_LANES`] idle subscriptions), so that its next burst is
    /// prefetched at once. Returns true when this finish took what the worker holds of the
    /// subscription (sent and waiting) down to half its window, or what it holds in all down to
    /// half its budget: time to claim more. Claims so come in batches of half a window (or half
    /// the budget), not one per request.
    pub fn finish(&mut self, subscription: &str, duration_ms: i64) -> bool {
        let window = self.limits.cap + self.depth(subscription);
        let total = self.sending + self.waiting;
        let half_budget = self.limits.budget / 2;
        let globally_low = total > half_budget && total - 1 <= half_budget;
        let Some(lane) = self.lanes.get_mut(subscription) else {
            return false;
        };
        let held = lane.sending + lane.waiting.len();
        let low = globally_low || (held > window / 2 && held - 1 <= window / 2);
        if lane.sending > 0 {
            lane.sending -= 1;
            self.sending -= 1;
        }
        let sample = duration_ms.max(0) as f64;
        lane.average_ms = Some(match lane.average_ms {
            Some(average) => average + AVERAGE_WEIGHT * (sample - average),
            None => sample,
        });
        if self.lanes.len() > self.prune_at {
            self.lanes
                .retain(|_, lane| lane.sending > 0 || !lane.waiting.is_empty());
            // Busy lanes stay; the next pruning waits until as many idle ones have gathered.
            self.prune_at = self.lanes.len() + KEEP_IDLE_LANES;
        }
        low
    }

    /// How many deliveries of `subscription` may wait for a slot: enough that the last one still
    /// starts within half the lease margin if its requests take twice their recent average (or
    /// their timeout, before any finished), capped by `prefetch`.
    pub fn depth(&self, subscription: &str) -> usize {
        self.depth_of(self.lanes.get(subscription))
    }

    /// [`Queue::depth`] of a lane, or of a subscription the queue has not seen (`None`).
    fn depth_of(&self, lane: Option<&Lane>) -> usize {
        let expected_ms = lane
            .and_then(|l| l.average_ms)
            .unwrap_or_else(|| {
                lane.map(|l| l.timeout_ms as f64)
                    .unwrap_or(self.limits.default_timeout_ms as f64)
            })
            .max(1.0);
        let rounds = (self.limits.lease_margin_ms as f64 / 2.0 / (2.0 * expected_ms)).floor();
        let depth = (rounds.max(0.0) * self.limits.cap as f64).min(self.limits.prefetch as f64);
        depth as usize
    }

    /// What the next claim may lease: the room per subscription this worker holds deliveries of
    /// (its cap plus its depth, minus what is in flight or waiting) and the room for any other
    /// subscription. With `prefetch` false, only free request slots count.
    pub fn room(&self, prefetch: bool) -> (u32, Vec<(String, u32)>) {
        let cap = self.limits.cap;
        let window = |lane: Option<&Lane>| match prefetch {
            true => cap + self.depth_of(lane),
            false => cap,
        };
        let listed = self
            .lanes
            .iter()
            .map(|(id, lane)| {
                let held = lane.sending + lane.waiting.len();
                (id.clone(), window(Some(lane)).saturating_sub(held) as u32)
            })
            .collect();
        (window(None) as u32, listed)
    }

    /// Empties the queue (at shutdown): the ids of every waiting delivery, to release.
    pub fn drain(&mut self) -> Vec<String> {
        let mut ids = Vec::with_capacity(self.waiting);
        for lane in self.lanes.values_mut() {
            for leased in lane.waiting.drain(..) {
                self.bytes.release(&leased.delivery.event);
                ids.push(leased.delivery.delivery_id);
            }
        }
        self.turns.clear();
        self.waiting = 0;
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SubscriptionRow;

    const CAP: usize = 2;

    fn limits() -> Limits {
        Limits {
            cap: CAP,
            prefetch: 64,
            budget: 1_000,
            memory_budget_bytes: 1 << 20,
            lease_margin_ms: 30_000,
            default_timeout_ms: 10_000,
        }
    }

    fn delivery(subscription: &str, n: usize) -> ClaimedDelivery {
        ClaimedDelivery {
            delivery_id: format!("{subscription}-{n}"),
            attempts: 0,
            attempts_before: 0,
            event: std::sync::Arc::new(EventRow {
                id: "evt".into(),
                event_type: "a.b".into(),
                version: "1".into(),
                data: "{}".into(),
                retryable: true,
                idempotency_key: None,
                owner: None,
                created_at: 0,
            }),
            subscription: std::sync::Arc::new(SubscriptionRow::new(
                subscription.into(),
                hookd_core::EndpointUrl::from_stored("http://127.0.0.1/").unwrap(),
                vec![hookd_core::EventFilter::All],
                "whsec_x".into(),
                0,
            )),
        }
    }

    fn leased(subscription: &str, n: usize, claimed_at: UnixMs) -> Leased {
        Leased {
            delivery: delivery(subscription, n),
            lease_until: claimed_at + 10_000 + 30_000,
            timeout_ms: 10_000,
        }
    }

    fn take_all(queue: &mut Queue, now: UnixMs) -> (Vec<String>, Vec<String>) {
        let mut expired = Vec::new();
        let mut taken = Vec::new();
        while let Some(d) = queue.take(now, &mut expired) {
            taken.push(d.delivery_id);
        }
        (taken, expired)
    }

    #[test]
    fn subscriptions_take_turns_and_each_stays_within_its_cap() {
        let mut queue = Queue::new(limits());
        for n in 0..4 {
            queue.push(leased("a", n, 0));
        }
        for n in 0..4 {
            queue.push(leased("b", n, 0));
        }
        let (taken, expired) = take_all(&mut queue, 0);
        assert_eq!(taken, ["a-0", "b-0", "a-1", "b-1"]);
        assert!(expired.is_empty());
        assert_eq!((queue.sending(), queue.waiting()), (4, 4));

        queue.finish("b", 5);
        let (taken, _) = take_all(&mut queue, 0);
        assert_eq!(
            taken,
            ["b-2"],
            "a freed slot takes its own subscription's next"
        );
        queue.finish("a", 5);
        queue.finish("a", 5);
        let (taken, _) = take_all(&mut queue, 0);
        assert_eq!(taken, ["a-2", "a-3"]);
        assert_eq!(queue.waiting(), 1);
    }

    #[test]
    fn a_lease_too_short_for_its_request_is_handed_back_not_sent() {
        let mut queue = Queue::new(limits());
        queue.push(leased("a", 0, 0));
        queue.push(leased("a", 1, 20_000));
        // At 25 s the first lease (until 40 s) has 15 s left: less than the 10 s timeout + 15 s
        // guard. The second (until 60 s) has 35 s: enough.
        let (taken, expired) = take_all(&mut queue, 25_000);
        assert_eq!(taken, ["a-1"]);
        assert_eq!(expired, ["a-0"]);
        assert_eq!(queue.waiting(), 0);
    }

    #[test]
    fn depth_follows_how_long_requests_take() {
        let mut queue = Queue::new(limits());
        // Before any attempt: the 10 s default timeout. Half the 30 s margin is 15 s, which covers
        // no round of requests expected to take 2 × 10 s: no prefetch.
        assert_eq!(queue.depth("a"), 0);
        queue.push(leased("a", 0, 0));
        let mut expired = Vec::new();
        queue.take(0, &mut expired).unwrap();
        queue.push(leased("a", 1, 0));
        queue.finish("a", 1_000);
        // 15 s / (2 × 1 s) = 7 rounds of CAP requests.
        assert_eq!(queue.depth("a"), 7 * CAP);
        for _ in 0..50 {
            queue.push(leased("a", 9, 0));
            queue.take(0, &mut expired).unwrap();
            queue.finish("a", 1);
        }
        assert_eq!(queue.depth("a"), 64, "fast requests: prefetch is the bound");
    }

    #[test]
    fn a_claim_is_asked_for_once_per_half_window_not_per_request() {
        let mut queue = Queue::new(limits());
        let mut expired = Vec::new();
        // No average yet: depth 0, window = CAP = 2, half = 1.
        queue.push(leased("a", 0, 0));
        queue.push(leased("a", 1, 0));
        queue.take(0, &mut expired).unwrap();
        queue.take(0, &mut expired).unwrap();
        assert!(queue.finish("a", 10_000), "2 held → 1: half the window");
        assert!(!queue.finish("a", 10_000), "1 → 0: already asked");
        // Fast requests: depth 64, window 66, half 33. Hold 40, then finish them one by one.
        for _ in 0..20 {
            queue.push(leased("a", 9, 0));
            queue.take(0, &mut expired).unwrap();
            queue.finish("a", 1);
        }
        for n in 0..40 {
            queue.push(leased("a", n, 0));
        }
        let mut asked = Vec::new();
        for held in (1..=40).rev() {
            if queue.take(0, &mut expired).is_some() && queue.finish("a", 1) {
                asked.push(held);
            }
        }
        assert_eq!(asked, [34], "one wake-up, when 34 held became 33");
    }

    #[test]
    fn a_claim_is_asked_for_when_all_held_falls_to_half_the_budget() {
        // Many subscriptions, each far below half its window: the budget is what runs low.
        let mut queue = Queue::new(Limits {
            budget: 8,
            ..limits()
        });
        let mut expired = Vec::new();
        for sub in ["a", "b", "c", "d"] {
            queue.push(leased(sub, 0, 0));
            queue.take(0, &mut expired).unwrap();
            queue.finish(sub, 1);
        }
        for sub in ["a", "b", "c", "d"] {
            queue.push(leased(sub, 1, 0));
            queue.push(leased(sub, 2, 0));
        }
        let mut asked = Vec::new();
        let mut held = 8;
        while let Some(delivery) = queue.take(0, &mut expired) {
            if queue.finish(&delivery.subscription.id, 1) {
                asked.push(held);
            }
            held -= 1;
        }
        assert_eq!(asked, [5], "once, when 5 held became 4 (half of 8)");
    }

    #[test]
    fn room_counts_what_is_sent_and_what_waits() {
        let mut queue = Queue::new(limits());
        queue.push(leased("a", 0, 0));
        let mut expired = Vec::new();
        queue.take(0, &mut expired).unwrap();
        queue.finish("a", 100);
        queue.push(leased("a", 1, 0));
        queue.push(leased("a", 2, 0));
        queue.take(0, &mut expired).unwrap();
        // a: average 100 ms → depth min(64, floor(15 000 / 200) × 2) = 64; window 66; holds 2.
        let (default_room, listed) = queue.room(true);
        assert_eq!(
            default_room, CAP as u32,
            "unknown subscriptions: the cap, no prefetch"
        );
        assert_eq!(listed, [("a".to_owned(), 64)]);
        let (default_room, listed) = queue.room(false);
        assert_eq!(default_room, CAP as u32);
        assert_eq!(
            listed,
            [("a".to_owned(), 0)],
            "both slots taken (one sent, one waits)"
        );
    }

    #[test]
    fn drain_returns_every_waiting_delivery_and_keeps_counting_the_sent() {
        let mut queue = Queue::new(limits());
        for n in 0..3 {
            queue.push(leased("a", n, 0));
        }
        queue.push(leased("b", 0, 0));
        let mut expired = Vec::new();
        let first = queue.take(0, &mut expired).unwrap();
        let mut drained = queue.drain();
        drained.sort();
        assert_eq!(drained, ["a-1", "a-2", "b-0"]);
        assert_eq!((queue.sending(), queue.waiting()), (1, 0));
        assert!(queue.take(0, &mut expired).is_none());
        queue.finish(&first.subscription.id, 1);
        assert_eq!(queue.sending(), 0);
    }
}
