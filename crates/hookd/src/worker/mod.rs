//! The delivery worker: leases due deliveries ahead of need, sends them concurrently within a
//! global and a per-subscription cap, and records outcomes in batches.
//!
//! Flow: the `dispatch loop` claims (the store commits the leases) into the local [`queue`], which
//! hands deliveries to request slots, subscriptions taking turns. A slot (one task) runs
//! [`Worker::attempt`] (HTTP, then the pure retry decision), passes the outcome to the `recorder`
//! task, which writes outcomes in batches, and takes the next delivery from the queue at once: a
//! request never waits for a claim. The loop claims again when a subscription's queue runs low, when
//! a slot has nothing left to do, and when a publish wakes it. A `rescuer` returns expired leases (a
//! crashed worker's) to the queue. No database transaction is ever open while an HTTP request is in
//! flight.
//!
//! Tests drive [`Worker::run_once`], the same claim/attempt/record steps run to completion.

pub mod budget;
pub mod queue;
pub mod send;
pub mod ssrf;

use crate::ids::{DynClock, new_id, random_bytes};
use crate::store::{
    AttemptRow, ClaimRequest, ClaimedDelivery, DeliveryOutcome, Outcome, Rescue, Store, StoreError,
};
use hookd_core::retry::{self, AttemptResult, Decision, RetryPolicy};
use queue::{Leased, Limits, Queue};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::JoinSet;

/// Worker settings (from [`crate::config::Config`]).
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Lease owner id, unique per process.
    pub owner: String,
    pub default_timeout: Duration,
    pub connect_timeout: Duration,
    /// Requests in flight at once, all endpoints together.
    pub max_in_flight: usize,
    /// Requests in flight at once to one subscription.
    pub max_in_flight_per_subscription: usize,
    /// Deliveries leased ahead of a free slot, all subscriptions together (see [`queue`]).
    pub prefetch: usize,
    /// Most bytes of event data and request bodies held at once, leased ahead and in flight
    /// (see [`budget`]).
    pub memory_budget_bytes: u64,
    pub default_retry: RetryPolicy,
    /// Consecutive dead deliveries after which a subscription is disabled.
    pub disable_after_failures: i64,
    /// Added to the request timeout to make the lease: time to record the outcome.
    pub lease_margin: Duration,
    /// Longest sleep between looks at the queue when nothing wakes the worker.
    pub poll_interval: Duration,
    pub rescue_interval: Duration,
    /// How often this node renews its heartbeat.
    pub heartbeat_interval: Duration,
    /// A node whose heartbeat is older than this is dead: any node's rescuer returns its leases.
    pub node_timeout: Duration,
    /// What the process runs, as the node list shows it (`all` or `worker`).
    pub role: String,
    /// No other worker can use the store (SQLite, with the data dir's worker lock): nobody else
    /// takes this node's leases, so failing heartbeats do not stop it.
    pub sole_worker: bool,
    /// On shutdown, how long in-flight requests may take before their leases are released.
    pub shutdown_grace: Duration,
    /// Most deliveries claimed per query.
    pub claim_batch: u32,
    /// Most outcomes written per transaction.
    pub record_batch: usize,
    /// Which resolved addresses deliveries may connect to (checked at connect time, every attempt).
    pub targets: hookd_core::TargetPolicy,
}

impl WorkerConfig {
    pub fn new(owner: String) -> Self {
        Self {
            owner,
            default_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_in_flight: 256,
            max_in_flight_per_subscription: 16,
            prefetch: 1024,
            memory_budget_bytes: 32 << 20,
            default_retry: RetryPolicy::default(),
            disable_after_failures: 10,
            lease_margin: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            rescue_interval: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(2),
            node_timeout: Duration::from_secs(10),
            role: "worker".into(),
            sole_worker: false,
            shutdown_grace: Duration::from_secs(10),
            claim_batch: 256,
            record_batch: 512,
            targets: hookd_core::TargetPolicy::default(),
        }
    }
}

/// A fresh lease-owner id for this process.
pub fn new_owner_id(now_ms: i64) -> String {
    new_id("wrk", now_ms)
}

/// Builds the outbound HTTP client: no redirects, no proxies, pooled keep-alive connections.
///
/// The pool keeps up to `max_in_flight` idle connections per host, not the per-subscription cap:
/// many subscriptions often share one host (one receiver's paths, a SaaS ingress), and their
/// requests together may use every slot. With 16 per host, the `fanout` and `isolation` benchmarks
/// (10 to 100 subscriptions on one receiver) closed and reopened ≈ 230 connections a second
/// (≈ 14,000 sockets in `TIME_WAIT`). The global cap still bounds the connections in use, and idle
/// ones close after 90 s.
pub fn http_client(config: &WorkerConfig) -> reqwest::Client {
    crate::runtime::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(ssrf::GuardedResolver::new(Arc::new(config.targets.clone())))
        .connect_timeout(config.connect_timeout)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(config.max_in_flight.max(1))
        .user_agent(send::user_agent())
        .build()
        .unwrap_or_default()
}

/// What [`Worker::run_once`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StepReport {
    pub attempted: usize,
    pub delivered: usize,
    pub retrying: usize,
    pub dead: usize,
    pub gone: usize,
}

pub struct Worker {
    store: Store,
    clock: DynClock,
    http: reqwest::Client,
    config: WorkerConfig,
    /// Woken by publishes, re-queues and recorded outcomes (shared with the API).
    waker: Arc<Notify>,
    /// Woken when what the worker holds of a subscription runs low, or leases ran short.
    refill: Notify,
    /// Leased deliveries, waiting or being sent, per subscription.
    queue: Mutex<Queue>,
    /// Leases whose time ran short while they waited, to release.
    expired: Mutex<Vec<String>>,
    /// Global cap on in-flight requests.
    slots: Arc<Semaphore>,
    /// Deliveries this process is sending now (to release their leases on a hard stop).
    in_flight: Mutex<HashSet<String>>,
    /// When this node started (its first heartbeat).
    started_at: i64,
    /// The time (this node's clock) of the last heartbeat the store took.
    last_beat: AtomicI64,
    /// The last heartbeat failed: with `last_beat` old enough, other nodes may take this one for
    /// dead, so it starts nothing new (see [`Worker::fenced`]).
    beat_failing: AtomicBool,
}

impl Worker {
    pub fn new(
        store: Store,
        clock: DynClock,
        config: WorkerConfig,
        waker: Arc<Notify>,
    ) -> Arc<Self> {
        Arc::new(Self {
            http: http_client(&config),
            slots: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            store,
            queue: Mutex::new(Queue::new(Limits {
                cap: config.max_in_flight_per_subscription,
                prefetch: config.prefetch,
                budget: config.max_in_flight + config.prefetch,
                memory_budget_bytes: config.memory_budget_bytes,
                lease_margin_ms: config.lease_margin.as_millis() as i64,
                default_timeout_ms: config.default_timeout.as_millis() as i64,
            })),
            config,
            waker,
            refill: Notify::new(),
            expired: Mutex::new(Vec::new()),
            in_flight: Mutex::new(HashSet::new()),
            started_at: clock.now_ms(),
            last_beat: AtomicI64::new(i64::MIN),
            beat_failing: AtomicBool::new(false),
            clock,
        })
    }

    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // The queue's bookkeeping cannot be left half-done by a panic (no code that can panic runs
        // under the lock), so a poisoned lock still holds a consistent queue.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Claims up to `limit` due deliveries into the queue: per subscription, as many as its window
    /// has room for (with `prefetch`, its cap plus its depth; without, its free slots), and in all
    /// no more bytes than the memory budget has left. Returns how
    /// many were leased, and whether more may be due (the claim was full, or a subscription got as
    /// many as one claim reads of it).
    async fn claim(&self, limit: u32, prefetch: bool) -> Result<(usize, bool), StoreError> {
        let ((default_room, room), bytes) = {
            let queue = self.queue();
            (queue.room(prefetch), queue.byte_room())
        };
        let now = self.clock.now_ms();
        let lease_margin_ms = self.config.lease_margin.as_millis() as i64;
        let default_timeout_ms = self.config.default_timeout.as_millis() as i64;
        let request = ClaimRequest {
            owner: self.config.owner.clone(),
            now,
            limit,
            default_timeout_ms,
            lease_margin_ms,
            default_room: Some(default_room),
            room,
            bytes: Some(bytes),
        };
        let most_of_one = request.most_of_one_subscription() as usize;
        let claimed = self.store.queue.claim_due(request).await?;
        let count = claimed.len();
        let more = count >= limit as usize || {
            let mut per_subscription: HashMap<&str, usize> = HashMap::new();
            for delivery in &claimed {
                *per_subscription
                    .entry(delivery.subscription.id.as_str())
                    .or_default() += 1;
            }
            per_subscription.values().any(|n| *n >= most_of_one)
        };
        let mut queue = self.queue();
        for delivery in claimed {
            let timeout_ms = delivery
                .subscription
                .timeout_ms
                .unwrap_or(default_timeout_ms);
            queue.push(Leased {
                lease_until: now + timeout_ms + lease_margin_ms,
                timeout_ms,
                delivery,
            });
        }
        Ok((count, more))
    }

    /// The next delivery to send, if a subscription with waiting work has a free slot. It counts as
    /// in flight from here until [`Worker::finish`].
    fn take(&self) -> Option<ClaimedDelivery> {
        let now = self.clock.now_ms();
        if self.fenced(now) {
            self.give_up_waiting();
            return None;
        }
        let mut expired = Vec::new();
        let next = self.queue().take(now, &mut expired);
        if !expired.is_empty() {
            tracing::debug!(
                count = expired.len(),
                "leases ran short while waiting; releasing"
            );
            if let Ok(mut list) = self.expired.lock() {
                list.append(&mut expired);
            }
            self.refill.notify_one();
        }
        if let (Some(delivery), Ok(mut in_flight)) = (&next, self.in_flight.lock()) {
            in_flight.insert(delivery.delivery_id.clone());
        }
        next
    }

    /// Marks a delivery's request as finished: frees its subscription slot, and wakes the loop to
    /// claim more when the subscription runs low.
    fn finish(&self, delivery: &ClaimedDelivery, duration_ms: i64) {
        let low = {
            let mut queue = self.queue();
            let low = queue.finish(&delivery.subscription.id, duration_ms);
            queue.let_go(&delivery.event) || low
        };
        if low {
            self.refill.notify_one();
        }
        if let Ok(mut in_flight) = self.in_flight.lock() {
            in_flight.remove(&delivery.delivery_id);
        }
    }

    /// Makes one attempt and decides what follows. Never touches the store.
    pub async fn attempt(&self, claimed: &ClaimedDelivery) -> DeliveryOutcome {
        // The retry schedule counts this run's attempts; the log, the envelope and the headers
        // number on across runs (a redrive continues at 4 after 3, with a fresh schedule).
        let as_number = |n: i64| n.clamp(1, i64::from(u32::MAX)) as u32;
        let attempt_number = as_number(claimed.attempts + 1);
        let logged_number = as_number(claimed.attempts_before + claimed.attempts + 1);
        let started_at = self.clock.now_ms();
        let timeout = claimed
            .subscription
            .timeout_ms
            .map(|ms| Duration::from_millis(ms.max(1) as u64))
            .unwrap_or(self.config.default_timeout);
        let prepared = send::prepare(claimed, logged_number, started_at).and_then(|request| {
            let url = request.url.clone();
            ssrf::check_literal(&url, &self.config.targets).map(|()| (url, request))
        });
        let (response, request_timestamp) = match prepared {
            Ok((url, request)) => {
                let timestamp = request.timestamp;
                (
                    send::send(&self.http, url, request, timeout).await,
                    timestamp,
                )
            }
            Err(error) => (
                send::Response {
                    status: None,
                    excerpt: None,
                    headers: None,
                    error_class: Some(match error.starts_with(ssrf::BLOCKED) {
                        true => "blocked",
                        false => "internal",
                    }),
                    error: Some(error),
                    retry_after: None,
                    duration: Duration::ZERO,
                },
                started_at.div_euclid(1_000),
            ),
        };
        if response.error_class == Some("blocked") {
            tracing::warn!(
                delivery = %claimed.delivery_id,
                subscription = %claimed.subscription.id,
                error = response.error.as_deref().unwrap_or_default(),
                "delivery blocked: the endpoint is not a permitted address"
            );
        }
        let finished_at = self.clock.now_ms();
        let result = attempt_result(&response, finished_at);
        let policy = claimed
            .subscription
            .retry_policy
            .as_ref()
            .unwrap_or(&self.config.default_retry);
        let jitter = jitter_unit();
        let decision = retry::decide(
            policy,
            attempt_number,
            result,
            claimed.event.retryable,
            finished_at,
            jitter,
        );
        let outcome = match decision {
            Decision::Delivered => Outcome::Delivered,
            Decision::RetryAt(at) => Outcome::Retry { at },
            Decision::Dead => Outcome::Dead,
            Decision::DisableSubscription => Outcome::Gone,
        };
        metrics::counter!("hookd_attempts_total", "outcome" => outcome_label(outcome)).increment(1);
        metrics::histogram!("hookd_attempt_duration_seconds")
            .record(response.duration.as_secs_f64());
        DeliveryOutcome {
            delivery_id: claimed.delivery_id.clone(),
            subscription_id: claimed.subscription.id.clone(),
            outcome,
            attempt: AttemptRow {
                id: new_id("att", started_at),
                delivery_id: claimed.delivery_id.clone(),
                attempt: i64::from(logged_number),
                started_at,
                duration_ms: response.duration.as_millis() as i64,
                request_timestamp,
                status: response.status.map(i64::from),
                response_excerpt: response.excerpt,
                response_headers: response.headers,
                error: response.error,
                error_class: response.error_class.map(str::to_owned),
            },
        }
    }

    /// One synchronous step: claims everything due now (within the caps, without prefetch),
    /// attempts it all concurrently, records the outcomes, and reports. The background loop runs
    /// the same steps pipelined.
    pub async fn run_once(self: &Arc<Self>) -> Result<StepReport, StoreError> {
        self.beat().await;
        self.claim(self.config.claim_batch, false).await?;
        let mut tasks = JoinSet::new();
        while let Some(delivery) = self.take() {
            let worker = self.clone();
            tasks.spawn(async move {
                let outcome = worker.attempt(&delivery).await;
                worker.finish(&delivery, outcome.attempt.duration_ms);
                outcome
            });
        }
        self.release_expired().await;
        let mut outcomes = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            if let Ok(outcome) = joined {
                outcomes.push(outcome);
            }
        }
        let report = summarize(&outcomes);
        if !outcomes.is_empty() {
            self.store
                .queue
                .record_outcomes(
                    &self.config.owner,
                    outcomes,
                    self.config.disable_after_failures,
                    self.clock.now_ms(),
                )
                .await?;
        }
        Ok(report)
    }

    /// Runs the worker until `shutdown` flips to true: dispatch loop, slots, recorder and rescuer.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let (outcomes_tx, outcomes_rx) = mpsc::channel(self.config.record_batch * 4);
        let recorder = tokio::spawn(self.clone().record_loop(outcomes_rx));
        self.beat().await;
        let heart = tokio::spawn(self.clone().heartbeat_loop(shutdown.clone()));
        let rescuer = tokio::spawn(self.clone().rescue_loop(shutdown.clone()));
        let mut tasks = JoinSet::new();
        tracing::info!(owner = %self.config.owner, "delivery worker started");
        while !*shutdown.borrow() {
            while tasks.try_join_next().is_some() {}
            self.release_expired().await;
            let claimed = self.fill().await;
            self.start_slots(&mut tasks, &outcomes_tx);
            let pause = match claimed {
                Claimed::Full => continue,
                Claimed::Nothing => self.idle_pause().await,
                // Outcomes, a subscription running low or a publish wake the loop before that.
                Claimed::Some | Claimed::Blocked => self.config.poll_interval,
            };
            tokio::select! {
                _ = self.waker.notified() => {}
                _ = self.refill.notified() => {}
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => {}
            }
        }
        self.stop(tasks, outcomes_tx, recorder, rescuer).await;
        let _ = heart.await;
        if let Err(error) = self
            .store
            .nodes
            .stop_node(&self.config.owner, self.clock.now_ms())
            .await
        {
            tracing::warn!(%error, "could not record this node's stop");
        }
    }

    /// Renews this node's heartbeat; returns whether the store took it. A heartbeat that takes
    /// longer than the interval counts as failed.
    async fn beat(&self) -> bool {
        let now = self.clock.now_ms();
        let beat =
            self.store
                .nodes
                .heartbeat(&self.config.owner, &self.config.role, self.started_at, now);
        match tokio::time::timeout(self.config.heartbeat_interval, beat).await {
            Ok(Ok(())) => {
                self.last_beat.fetch_max(now, Ordering::Relaxed);
                self.beat_failing.store(false, Ordering::Relaxed);
                true
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "heartbeat failed");
                self.beat_failing.store(true, Ordering::Relaxed);
                false
            }
            Err(_) => {
                tracing::warn!("heartbeat timed out");
                self.beat_failing.store(true, Ordering::Relaxed);
                false
            }
        }
    }

    /// Whether other nodes may already take this one for dead: its heartbeats fail and the last one
    /// the store took is more than half the node timeout old. Such a node starts no request (its
    /// leases may be handed to another node before it could record an outcome) and gives back what
    /// waits in its queue; it resumes with its next heartbeat.
    fn fenced(&self, now: i64) -> bool {
        if self.config.sole_worker {
            return false;
        }
        let half = self.config.node_timeout.as_millis() as i64 / 2;
        self.beat_failing.load(Ordering::Relaxed)
            && now.saturating_sub(self.last_beat.load(Ordering::Relaxed)) > half
    }

    /// Returns every waiting delivery's lease (released by the dispatch loop; a lease another node
    /// took meanwhile is left alone).
    fn give_up_waiting(&self) {
        let mut waiting = self.queue().drain();
        if waiting.is_empty() {
            return;
        }
        if let Ok(mut list) = self.expired.lock() {
            list.append(&mut waiting);
        }
        self.refill.notify_one();
    }

    async fn heartbeat_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        // Nodes silent for a day that lease nothing are forgotten (their rows would only grow).
        let day_ago = self.clock.now_ms() - 86_400_000;
        if let Err(error) = self.store.nodes.forget_nodes(day_ago).await {
            tracing::warn!(%error, "could not forget old nodes");
        }
        while !*shutdown.borrow() {
            tokio::select! {
                _ = tokio::time::sleep(self.config.heartbeat_interval) => {}
                _ = shutdown.changed() => return,
            }
            if !self.beat().await && self.fenced(self.clock.now_ms()) {
                tracing::warn!("heartbeats failing: starting no delivery until one succeeds");
                self.give_up_waiting();
            }
        }
    }

    /// Returns every lease in the store to the queue at once. Only for a node that knows no other
    /// worker can hold one (SQLite, with the data dir's worker lock): what is leased then was
    /// leased by an earlier run of this node that crashed.
    pub async fn release_earlier_runs(&self) -> Result<u64, StoreError> {
        let now = self.clock.now_ms();
        self.store
            .queue
            .rescue_leases(Rescue {
                now,
                expired_before: i64::MAX,
                dead_before: i64::MIN,
                rescuer: None,
            })
            .await
    }

    /// Claims as much as the queue has room for.
    async fn fill(&self) -> Claimed {
        if self.fenced(self.clock.now_ms()) {
            return Claimed::Blocked;
        }
        let (room, bytes) = {
            let queue = self.queue();
            let room = queue
                .budget()
                .saturating_sub(queue.sending() + queue.waiting());
            (room, queue.byte_room())
        };
        let limit = room.min(self.config.claim_batch as usize) as u32;
        if limit == 0 || (bytes.bytes == 0 && !bytes.first_regardless) {
            return Claimed::Blocked;
        }
        match self.claim(limit, true).await {
            Ok((_, true)) => Claimed::Full,
            Ok((0, _)) => Claimed::Nothing,
            Ok(_) => Claimed::Some,
            Err(error) => {
                tracing::warn!(%error, "claiming deliveries failed; will retry");
                Claimed::Blocked
            }
        }
    }

    /// Starts a slot for each delivery that can be sent now, while the global cap allows.
    fn start_slots(
        self: &Arc<Self>,
        tasks: &mut JoinSet<()>,
        outcomes: &mpsc::Sender<DeliveryOutcome>,
    ) {
        while let Ok(permit) = self.slots.clone().try_acquire_owned() {
            let Some(delivery) = self.take() else {
                break;
            };
            tasks.spawn(self.clone().slot(delivery, permit, outcomes.clone()));
        }
        metrics::gauge!("hookd_in_flight")
            .set((self.config.max_in_flight - self.slots.available_permits()) as f64);
        let (waiting, bytes_held) = {
            let queue = self.queue();
            (queue.waiting(), queue.bytes_held())
        };
        metrics::gauge!("hookd_prefetched").set(waiting as f64);
        metrics::gauge!("hookd_worker_held_bytes").set(bytes_held as f64);
    }

    /// One request slot: sends `first`, then whatever the queue hands it next, until the queue has
    /// nothing for it. Outcomes go to the recorder.
    async fn slot(
        self: Arc<Self>,
        first: ClaimedDelivery,
        permit: OwnedSemaphorePermit,
        outcomes: mpsc::Sender<DeliveryOutcome>,
    ) {
        let mut next = Some(first);
        while let Some(delivery) = next {
            let outcome = self.attempt(&delivery).await;
            let duration_ms = outcome.attempt.duration_ms;
            let _ = outcomes.send(outcome).await;
            self.finish(&delivery, duration_ms);
            next = self.take();
        }
        drop(permit);
    }

    /// Releases the leases that ran short while waiting, so that they are claimed again.
    async fn release_expired(&self) {
        let ids = match self.expired.lock() {
            Ok(mut list) => std::mem::take(&mut *list),
            Err(_) => return,
        };
        if ids.is_empty() {
            return;
        }
        if let Err(error) = self
            .store
            .queue
            .release_leases(&self.config.owner, &ids)
            .await
        {
            tracing::warn!(%error, count = ids.len(), "could not release leases; they will expire");
        }
    }

    /// How long to sleep when a claim found nothing: until the next delivery is due, at most the
    /// poll interval.
    async fn idle_pause(&self) -> Duration {
        let now = self.clock.now_ms();
        match self.store.queue.next_due_at().await {
            Ok(Some(at)) if at > now => {
                Duration::from_millis((at - now) as u64).min(self.config.poll_interval)
            }
            // Due now but not claimable (its subscription's window is full): a slot finishing or
            // a queue running low wakes the loop.
            _ => self.config.poll_interval,
        }
    }

    /// Writes outcomes in batches. A store failure is retried (outcomes are never dropped while the
    /// process lives; if it dies, the leases expire and the deliveries are attempted again).
    async fn record_loop(self: Arc<Self>, mut outcomes: mpsc::Receiver<DeliveryOutcome>) {
        let mut batch = Vec::with_capacity(self.config.record_batch);
        while outcomes
            .recv_many(&mut batch, self.config.record_batch)
            .await
            > 0
        {
            let mut backoff = Duration::from_millis(50);
            loop {
                let result = self
                    .store
                    .queue
                    .record_outcomes(
                        &self.config.owner,
                        batch.clone(),
                        self.config.disable_after_failures,
                        self.clock.now_ms(),
                    )
                    .await;
                match result {
                    Ok(report) => {
                        if report.stale > 0 {
                            tracing::warn!(stale = report.stale, "outcomes for expired leases");
                        }
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(%error, outcomes = batch.len(), "recording outcomes failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            // A retry changes when the next delivery is due: the dispatch loop recomputes its sleep.
            if batch
                .iter()
                .any(|o| matches!(o.outcome, Outcome::Retry { .. }))
            {
                self.waker.notify_one();
            }
            batch.clear();
        }
    }

    async fn rescue_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            let now = self.clock.now_ms();
            let rescue = Rescue {
                now,
                expired_before: now,
                dead_before: now - self.config.node_timeout.as_millis() as i64,
                rescuer: Some(self.config.owner.clone()),
            };
            match self.store.queue.rescue_leases(rescue).await {
                Ok(0) => {}
                Ok(rescued) => {
                    tracing::warn!(
                        rescued,
                        "returned the leases of dead nodes, or leases that ran out, to the queue"
                    );
                    self.waker.notify_one();
                }
                Err(error) => tracing::warn!(%error, "rescuing expired leases failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.rescue_interval) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Graceful stop: no new claims; in-flight requests get `shutdown_grace` to finish; the leases of
    /// any still running are released so another worker can take them at once.
    async fn stop(
        &self,
        mut tasks: JoinSet<()>,
        outcomes: mpsc::Sender<DeliveryOutcome>,
        recorder: tokio::task::JoinHandle<()>,
        rescuer: tokio::task::JoinHandle<()>,
    ) {
        let running = tasks.len();
        tracing::info!(running, "delivery worker stopping");
        // Nothing new starts: what waits for a slot goes back to the queue now.
        let waiting = self.queue().drain();
        if !waiting.is_empty() {
            match self
                .store
                .queue
                .release_leases(&self.config.owner, &waiting)
                .await
            {
                Ok(released) => tracing::info!(released, "released leases of waiting deliveries"),
                Err(error) => tracing::warn!(%error, "could not release leases; they will expire"),
            }
        }
        let drained = tokio::time::timeout(self.config.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tasks.shutdown().await;
        }
        drop(outcomes);
        let _ = recorder.await;
        let _ = rescuer.await;
        let mut unfinished: Vec<String> = self
            .in_flight
            .lock()
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default();
        if let Ok(mut expired) = self.expired.lock() {
            unfinished.append(&mut expired);
        }
        if !unfinished.is_empty() {
            match self
                .store
                .queue
                .release_leases(&self.config.owner, &unfinished)
                .await
            {
                Ok(released) => {
                    tracing::info!(released, "released leases of unfinished deliveries")
                }
                Err(error) => tracing::warn!(%error, "could not release leases; they will expire"),
            }
        }
        tracing::info!("delivery worker stopped");
    }
}

/// What a claim by the dispatch loop found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claimed {
    /// As many as asked for, or as many of one subscription as a claim reads: more may be due.
    Full,
    /// Some, fewer than asked for.
    Some,
    /// Nothing due and claimable.
    Nothing,
    /// No room to claim, or the store failed.
    Blocked,
}

/// Turns an HTTP response into what the retry policy needs. `Retry-After` counts on 429 and 503 only.
fn attempt_result(response: &send::Response, now_ms: i64) -> AttemptResult {
    match response.status {
        Some(200..=299) => AttemptResult::Success,
        Some(410) => AttemptResult::Gone,
        Some(429 | 503) => AttemptResult::Failure {
            retry_after_ms: response
                .retry_after
                .as_deref()
                .and_then(|v| retry::parse_retry_after(v, now_ms)),
        },
        _ => AttemptResult::Failure {
            retry_after_ms: None,
        },
    }
}

/// A uniform random number in [-1, 1] for retry jitter.
fn jitter_unit() -> f64 {
    let raw = u64::from_le_bytes(random_bytes::<8>());
    (raw as f64 / u64::MAX as f64) * 2.0 - 1.0
}

fn outcome_label(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Delivered => "delivered",
        Outcome::Retry { .. } => "retry",
        Outcome::Dead => "dead",
        Outcome::Gone => "gone",
    }
}

fn summarize(outcomes: &[DeliveryOutcome]) -> StepReport {
    let mut report = StepReport {
        attempted: outcomes.len(),
        ..StepReport::default()
    };
    for outcome in outcomes {
        match outcome.outcome {
            Outcome::Delivered => report.delivered += 1,
            Outcome::Retry { .. } => report.retrying += 1,
            Outcome::Dead => report.dead += 1,
            Outcome::Gone => report.gone += 1,
        }
    }
    report
}
