//! Chaos delivery: hookd delivers to endpoints that answer at random with 200, 500,
//! 503 with `Retry-After`, 429, 410, a hang, a connection reset, garbage, slow drips and a huge body
//! (see [`ChaosReceiver`]). After the load drains:
//! - every delivery is in the terminal state the policy predicts from what the receiver did
//!   (delivered on the first 2xx, held after a 410 or because its subscription was disabled, dead
//!   after exactly `max_attempts` failures), and nothing is pending, failing or in flight;
//! - hookd's attempt log matches the receiver's log attempt for attempt: the same attempts of the
//!   same deliveries, each logged with the status or error class the receiver's behaviour implies;
//! - no retry came earlier than the policy allows (`Retry-After` honoured, clamped to its delays);
//! - hookd hung up on every hang and drip, and read no huge body beyond a small bound (bodies are
//!   not buffered).
//!
//! Behaviours are a pure function of `(seed, endpoint, event, attempt)`: `HOOKD_CHAOS_SEED=<n>`
//! replays a run's behaviours (the interleaving, and so which queued deliveries a 410 holds, may
//! differ). `HOOKD_CHAOS_EVENTS=<n>` sets the load (default [`DEFAULT_EVENTS`]; see DEVELOPERS.md).

use crate::common::chaos::{Behaviour, ChaosReceiver, Exchange, HUGE_BODY_LIMIT, Request};
use crate::common::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// Events published in the default (CI) run; each goes to all three endpoints.
const DEFAULT_EVENTS: usize = 60;
/// The subscriptions' retry policy: 4 attempts, waiting 50, 100 and 200 ms (±20% jitter).
const MAX_ATTEMPTS: usize = 4;
const RETRY_DELAYS_MS: [i64; 3] = [50, 100, 200];
/// `Retry-After` is clamped into the policy's shortest and longest delay.
const RETRY_AFTER_CLAMP_MS: (i64, i64) = (50, 200);
/// The subscriptions' per-attempt timeout (the smallest hookd accepts).
const TIMEOUT_MS: i64 = 1_000;
/// hookd keeps at most this much of a response body.
const MAX_EXCERPT: usize = 4 * 1024;
/// What hookd may take of a huge body before it hangs up: the 4 KiB it keeps plus the buffers of
/// the client and of both sockets. Buffering the whole body would take [`HUGE_BODY_LIMIT`].
const HUGE_BODY_BOUND: u64 = 16 << 20;
// The bound must tell reading a little from reading it all.
const _: () = assert!(HUGE_BODY_BOUND < HUGE_BODY_LIMIT);

/// The three endpoints: mostly healthy, mostly failing, and one that turns 410 half-way.
const MIXED: &str = "/mixed";
const HOSTILE: &str = "/hostile";
const GONE: &str = "/gone";
const ENDPOINTS: [&str; 3] = [MIXED, HOSTILE, GONE];

/// Weights of the random behaviours (410 is never drawn: only [`GONE`] answers it, on purpose).
const MIXED_WEIGHTS: [(Behaviour, u64); 11] = [
    (Behaviour::Ok, 30),
    (Behaviour::ServerError, 8),
    (Behaviour::Unavailable, 8),
    (Behaviour::TooManyRequests { retry_after: true }, 5),
    (Behaviour::TooManyRequests { retry_after: false }, 5),
    (Behaviour::Hang, 5),
    (Behaviour::Reset, 8),
    (Behaviour::Garbage, 8),
    (Behaviour::SlowHeaders, 5),
    (Behaviour::SlowBody, 5),
    (Behaviour::HugeBody, 6),
];
const HOSTILE_WEIGHTS: [(Behaviour, u64); 11] = [
    (Behaviour::Ok, 4),
    (Behaviour::ServerError, 20),
    (Behaviour::Unavailable, 12),
    (Behaviour::TooManyRequests { retry_after: true }, 8),
    (Behaviour::TooManyRequests { retry_after: false }, 8),
    (Behaviour::Hang, 3),
    (Behaviour::Reset, 15),
    (Behaviour::Garbage, 15),
    (Behaviour::SlowHeaders, 3),
    (Behaviour::SlowBody, 3),
    (Behaviour::HugeBody, 3),
];

#[tokio::test]
async fn chaos_receiver_outcomes_match_the_policy_and_the_attempt_log() {
    let (seed, events) = run_parameters();
    // Printed with the test's output when it fails; `--nocapture` shows it always.
    println!("chaos: HOOKD_CHAOS_SEED={seed} HOOKD_CHAOS_EVENTS={events}");
    let started = Instant::now();

    // Only 410 disables a subscription here: auto-disable after consecutive dead deliveries has its
    // own test, and would make the expected states depend on the order outcomes are recorded in.
    let app = spawn_app_with(|c| c.disable_after_failures = 1_000_000).await;
    let receiver = ChaosReceiver::start(move |request| choose(seed, events, request)).await;
    let subscriptions = subscribe_endpoints(&app, &receiver).await;
    publish_events(&app, events).await;
    // Generous: the CI run drains in seconds; a long run needs about 100 ms of budget per event.
    let limit = Duration::from_secs(60) + Duration::from_millis(100 * events as u64);
    wait_for_drain(&app, &subscriptions, limit).await;
    let exchanges = receiver.wait_until_finished(Duration::from_secs(30)).await;
    let observed = collect_deliveries(&app, &subscriptions).await;
    let gone_disabled = check_subscriptions(&app, &subscriptions, &exchanges).await;
    assert_eq!(
        observed.len(),
        events * ENDPOINTS.len(),
        "one delivery per event and endpoint"
    );

    let (problems, states) = compare(&exchanges, &observed, gone_disabled);
    println!("{}", summary(&exchanges, &states, started.elapsed()));
    assert!(
        problems.is_empty(),
        "HOOKD_CHAOS_SEED={seed} HOOKD_CHAOS_EVENTS={events}: {} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    // Whatever the seed, every behaviour happened (the deck and the forced 410 see to it).
    for behaviour in Behaviour::ALL {
        assert!(
            exchanges.iter().any(|e| e.behaviour == behaviour),
            "{behaviour:?} never happened"
        );
    }
    for state in ["delivered", "dead", "held"] {
        assert!(
            states.contains_key(state),
            "no delivery ended {state}: {states:?}"
        );
    }
    app.stop().await;
}

/// `HOOKD_CHAOS_SEED` (default: from the clock) and `HOOKD_CHAOS_EVENTS` (default
/// [`DEFAULT_EVENTS`], at least one per behaviour of the deck).
fn run_parameters() -> (u64, usize) {
    let seed = env_number("HOOKD_CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let events = env_number("HOOKD_CHAOS_EVENTS")
        .map(|n| n as usize)
        .unwrap_or(DEFAULT_EVENTS)
        .max(DECK.len());
    (seed, events)
}

/// Every delivery checked against the receiver's exchanges for it, and every exchange accounted
/// for. Returns the problems found and the count of deliveries per final state.
fn compare(
    exchanges: &[Exchange],
    observed: &Observed,
    gone_disabled: bool,
) -> (Vec<String>, BTreeMap<String, usize>) {
    let mut problems = Vec::new();
    let mut by_delivery: HashMap<(String, String), Vec<Exchange>> = HashMap::new();
    for exchange in exchanges {
        let key = (
            exchange.request.path.clone(),
            exchange.request.webhook_id.clone(),
        );
        by_delivery.entry(key).or_default().push(exchange.clone());
    }
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    for (key, (delivery, attempts)) in observed {
        let (path, event_id) = key;
        let seen = by_delivery.remove(key).unwrap_or_default();
        if let Err(problem) =
            check_delivery(delivery, attempts, seen, path == GONE && gone_disabled)
        {
            problems.push(format!("{path} {event_id} ({}): {problem}", delivery["id"]));
        }
        *states
            .entry(delivery["state"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    for ((path, event_id), seen) in by_delivery {
        problems.push(format!(
            "{path} {event_id}: the receiver saw {} requests of a delivery hookd does not have",
            seen.len()
        ));
    }
    (problems, states)
}

/// One line on what happened, for the test's output.
fn summary(exchanges: &[Exchange], states: &BTreeMap<String, usize>, took: Duration) -> String {
    let mut behaviours: BTreeMap<String, usize> = BTreeMap::new();
    for exchange in exchanges {
        *behaviours
            .entry(format!("{:?}", exchange.behaviour))
            .or_default() += 1;
    }
    let huge_max = exchanges
        .iter()
        .filter(|e| e.behaviour == Behaviour::HugeBody)
        .map(|e| e.body_bytes_written)
        .max()
        .unwrap_or(0);
    format!(
        "chaos: {} requests in {took:.1?}; deliveries {states:?}; behaviours {behaviours:?}; \
         most of a huge body written before hookd hung up: {huge_max} bytes",
        exchanges.len()
    )
}

// ---------------------------------------------------------------------------------------------
// What the receiver does
// ---------------------------------------------------------------------------------------------

/// The first attempt of the first events to [`MIXED`] goes through every behaviour but 410 once,
/// so each is exercised whatever the seed.
const DECK: [Behaviour; 11] = [
    Behaviour::Ok,
    Behaviour::ServerError,
    Behaviour::Unavailable,
    Behaviour::TooManyRequests { retry_after: true },
    Behaviour::TooManyRequests { retry_after: false },
    Behaviour::Hang,
    Behaviour::Reset,
    Behaviour::Garbage,
    Behaviour::SlowHeaders,
    Behaviour::SlowBody,
    Behaviour::HugeBody,
];

/// The behaviour for one request: a pure function of the seed, the endpoint, the event and the
/// attempt. [`GONE`] answers like [`MIXED`] for the first half of the events; from the middle
/// event's first attempt (always 410) on, half its answers are 410.
fn choose(seed: u64, events: usize, request: &Request) -> Behaviour {
    let event = event_index(&request.webhook_id);
    let mut rng = SplitMix::new(seed, request);
    match request.path.as_str() {
        MIXED if request.attempt == 1 && event < DECK.len() => DECK[event],
        HOSTILE => rng.weighted(&HOSTILE_WEIGHTS),
        GONE if event == events / 2 && request.attempt == 1 => Behaviour::Gone,
        GONE if event > events / 2 && rng.next().is_multiple_of(2) => Behaviour::Gone,
        _ => rng.weighted(&MIXED_WEIGHTS),
    }
}

fn event_id(index: usize) -> String {
    format!("chaos-{index:06}")
}

fn event_index(webhook_id: &str) -> usize {
    webhook_id
        .strip_prefix("chaos-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

/// SplitMix64 seeded from the run's seed and the request: no dependency, and the same request
/// always draws the same numbers.
struct SplitMix(u64);

impl SplitMix {
    fn new(seed: u64, request: &Request) -> Self {
        // FNV-1a over what identifies the request.
        let mut hash = 0xcbf2_9ce4_8422_2325u64 ^ seed;
        let key = format!(
            "{}|{}|{}",
            request.path, request.webhook_id, request.attempt
        );
        for byte in key.bytes() {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        Self(hash)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn weighted(&mut self, weights: &[(Behaviour, u64)]) -> Behaviour {
        let total: u64 = weights.iter().map(|(_, w)| w).sum();
        let mut pick = self.next() % total;
        for (behaviour, weight) in weights {
            if pick < *weight {
                return *behaviour;
            }
            pick -= weight;
        }
        unreachable!("pick < total")
    }
}

fn env_number(name: &str) -> Option<u64> {
    let raw = std::env::var(name).ok()?;
    Some(
        raw.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={raw:?}: expected a number")),
    )
}

// ---------------------------------------------------------------------------------------------
// Driving hookd and reading its side
// ---------------------------------------------------------------------------------------------

/// Every delivery with its attempts (oldest first), by (endpoint path, event id).
type Observed = BTreeMap<(String, String), (Value, Vec<Value>)>;

/// One subscription per endpoint, with the short timeout and retry policy; ids by path.
async fn subscribe_endpoints(
    app: &TestApp,
    receiver: &ChaosReceiver,
) -> BTreeMap<&'static str, String> {
    let mut subscriptions = BTreeMap::new();
    for path in ENDPOINTS {
        let created = app
            .subscribe_with(json!({
                "url": receiver.url(path),
                "events": ["*"],
                "timeout_ms": TIMEOUT_MS,
                "retry": {"max_attempts": MAX_ATTEMPTS, "base_delay_ms": 50, "max_delay_ms": 200},
            }))
            .await;
        subscriptions.insert(path, created["id"].as_str().unwrap().to_owned());
    }
    subscriptions
}

async fn publish_events(app: &TestApp, events: usize) {
    let events = (0..events)
        .map(|n| json!({"id": event_id(n), "event": "chaos.test", "data": {"n": n}}))
        .collect();
    app.publish_batches(events).await;
}

/// Waits until no delivery of these subscriptions is pending, in flight or failed (waiting for a
/// retry).
async fn wait_for_drain(app: &TestApp, subscriptions: &BTreeMap<&str, String>, limit: Duration) {
    // Nine requests a round: checked less often than the default, to leave the machine to hookd.
    wait::until_every(limit, Duration::from_millis(50), async || {
        let mut open = Vec::new();
        for (path, id) in subscriptions {
            for state in ["pending", "in_flight", "failed"] {
                let page = app
                    .get(&format!(
                        "/api/webhooks/{id}/deliveries?state={state}&limit=3"
                    ))
                    .await;
                assert_eq!(page.status, 200, "{}", page.body);
                for delivery in page.body["data"].as_array().unwrap() {
                    open.push(format!("{path}: {delivery}"));
                }
            }
        }
        match open.is_empty() {
            true => Ok(()),
            false => Err(format!("not drained: {open:#?}")),
        }
    })
    .await;
}

/// Every delivery of these subscriptions with its attempts.
async fn collect_deliveries(app: &TestApp, subscriptions: &BTreeMap<&str, String>) -> Observed {
    let mut observed = BTreeMap::new();
    for (path, id) in subscriptions {
        let mut cursor: Option<String> = None;
        loop {
            let mut url = format!("/api/webhooks/{id}/deliveries?limit=250");
            if let Some(cursor) = &cursor {
                url.push_str(&format!("&cursor={cursor}"));
            }
            let page = app.get(&url).await;
            assert_eq!(page.status, 200, "{}", page.body);
            for delivery in page.body["data"].as_array().unwrap() {
                let detail = app
                    .get(&format!(
                        "/api/deliveries/{}",
                        delivery["id"].as_str().unwrap()
                    ))
                    .await;
                assert_eq!(detail.status, 200, "{}", detail.body);
                let attempts = detail.body["attempts"].as_array().unwrap().clone();
                let event_id = delivery["event_id"].as_str().unwrap().to_owned();
                observed.insert((path.to_string(), event_id), (delivery.clone(), attempts));
            }
            match page.body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => break,
            }
        }
    }
    observed
}

/// Only [`GONE`] may be disabled, and it is exactly when it answered 410. Returns whether it is.
async fn check_subscriptions(
    app: &TestApp,
    subscriptions: &BTreeMap<&str, String>,
    exchanges: &[Exchange],
) -> bool {
    let mut gone_disabled = false;
    for (path, id) in subscriptions {
        let webhook = app.get(&format!("/api/webhooks/{id}")).await.body;
        let answered_410 = exchanges
            .iter()
            .any(|e| e.request.path == *path && e.behaviour == Behaviour::Gone);
        assert_eq!(
            webhook["active"], !answered_410,
            "{path}: active unless it answered 410: {webhook}"
        );
        if answered_410 {
            assert_eq!(webhook["disabled_reason"], "the endpoint answered 410 Gone");
            gone_disabled |= *path == GONE;
        }
    }
    assert!(gone_disabled, "{GONE} answered 410 and is disabled");
    gone_disabled
}

// ---------------------------------------------------------------------------------------------
// The comparison
// ---------------------------------------------------------------------------------------------

/// Checks one delivery: its attempts against the receiver's exchanges for it, and its final state
/// against the policy. `disabled` says its subscription was disabled (so queued work is held).
fn check_delivery(
    delivery: &Value,
    attempts: &[Value],
    mut seen: Vec<Exchange>,
    disabled: bool,
) -> Result<(), String> {
    seen.sort_by_key(|e| e.request.attempt);
    let numbers: Vec<u32> = seen.iter().map(|e| e.request.attempt).collect();
    let expected_numbers: Vec<u32> = (1..=seen.len() as u32).collect();
    if numbers != expected_numbers {
        return Err(format!(
            "the receiver saw attempts {numbers:?}, expected each of 1..={} once",
            seen.len()
        ));
    }
    let logged: Vec<i64> = attempts
        .iter()
        .map(|a| a["attempt"].as_i64().unwrap_or(0))
        .collect();
    let expected_logged: Vec<i64> = (1..=seen.len() as i64).collect();
    if logged != expected_logged {
        return Err(format!(
            "hookd logged attempts {logged:?}, the receiver saw {numbers:?}"
        ));
    }
    if delivery["attempt_count"] != attempts.len() {
        return Err(format!(
            "attempt_count = {} but {} logged",
            delivery["attempt_count"],
            attempts.len()
        ));
    }
    for (exchange, attempt) in seen.iter().zip(attempts) {
        check_attempt(exchange, attempt)
            .map_err(|problem| format!("attempt {}: {problem}", exchange.request.attempt))?;
    }
    for (pair, exchange) in attempts.windows(2).zip(&seen) {
        check_retry_delay(exchange, &pair[0], &pair[1])?;
    }
    let behaviours: Vec<Behaviour> = seen.iter().map(|e| e.behaviour).collect();
    let expected = expected_state(&behaviours, disabled)?;
    match delivery["state"] == expected {
        true => Ok(()),
        false => Err(format!(
            "state {} but the receiver did {behaviours:?}: expected {expected}",
            delivery["state"]
        )),
    }
}

/// The terminal state the policy gives a delivery whose attempts met `behaviours`, in order.
fn expected_state(behaviours: &[Behaviour], disabled: bool) -> Result<&'static str, String> {
    let last = behaviours.len().saturating_sub(1);
    for (index, behaviour) in behaviours.iter().enumerate() {
        let end = match behaviour {
            Behaviour::Ok | Behaviour::SlowBody | Behaviour::HugeBody => "delivered",
            Behaviour::Gone => "held",
            _ => continue,
        };
        return match index == last {
            true => Ok(end),
            false => Err(format!(
                "attempted again after {behaviour:?}: {behaviours:?}"
            )),
        };
    }
    match behaviours.len() {
        MAX_ATTEMPTS => Ok("dead"),
        n if n > MAX_ATTEMPTS => Err(format!("{n} attempts, more than {MAX_ATTEMPTS}")),
        // Failures only and attempts left: only a disabled subscription stops the retries.
        _ if disabled => Ok("held"),
        n => Err(format!(
            "{n} failed attempts of {MAX_ATTEMPTS} and no reason to stop: {behaviours:?}"
        )),
    }
}

/// One logged attempt against what the receiver did.
fn check_attempt(exchange: &Exchange, attempt: &Value) -> Result<(), String> {
    let status = attempt["status"].as_i64();
    let class = attempt["error_class"].as_str();
    let excerpt = attempt["response_excerpt"].as_str();
    let duration = attempt["duration_ms"].as_i64().unwrap_or(0);
    let mismatch = || {
        format!(
            "the receiver did {:?}; hookd logged status {status:?}, class {class:?}, error {}, \
             excerpt {:?}, {duration} ms",
            exchange.behaviour,
            attempt["error"],
            excerpt.map(|e| e.chars().take(80).collect::<String>()),
        )
    };
    if let Some(body_attempt) = exchange.body_attempt
        && body_attempt != u64::from(exchange.request.attempt)
    {
        return Err(format!(
            "signed body says attempt {body_attempt}, header says {}",
            exchange.request.attempt
        ));
    }
    let ok = match exchange.behaviour {
        Behaviour::Ok
        | Behaviour::ServerError
        | Behaviour::Unavailable
        | Behaviour::TooManyRequests { .. }
        | Behaviour::Gone => {
            let code = status_of(exchange.behaviour);
            status == Some(code)
                && class == (code != 200).then_some("http")
                && excerpt == exchange.answer_body.as_deref()
        }
        // The timeout cuts both: no status was ever complete.
        Behaviour::Hang | Behaviour::SlowHeaders => {
            status.is_none()
                && class == Some("timeout")
                && duration >= TIMEOUT_MS
                && exchange.hookd_hung_up
        }
        // Below HTTP: no status; an HTTP-level error (the connection was up).
        Behaviour::Reset | Behaviour::Garbage => {
            status.is_none() && class == Some("http") && attempt["error"].is_string()
        }
        // The 200 arrived at once: delivered. The timeout still ends the body read, so the drip
        // cannot hold the request slot; the excerpt is what arrived by then.
        Behaviour::SlowBody => {
            status == Some(200)
                && class.is_none()
                && exchange.hookd_hung_up
                && excerpt.is_some_and(|e| {
                    e.len() as u64 <= exchange.body_bytes_written && e.bytes().all(|b| b == b'd')
                })
        }
        // Read up to the excerpt's limit, then hung up: never the whole body.
        Behaviour::HugeBody => {
            status == Some(200)
                && class.is_none()
                && exchange.hookd_hung_up
                && exchange.body_bytes_written < HUGE_BODY_BOUND
                && excerpt.is_some_and(|e| e.len() == MAX_EXCERPT && e.bytes().all(|b| b == b'x'))
        }
    };
    match ok {
        true => Ok(()),
        false => Err(format!(
            "{} (huge/drip body bytes written: {}, hookd hung up: {})",
            mismatch(),
            exchange.body_bytes_written,
            exchange.hookd_hung_up
        )),
    }
}

fn status_of(behaviour: Behaviour) -> i64 {
    match behaviour {
        Behaviour::ServerError => 500,
        Behaviour::Unavailable => 503,
        Behaviour::TooManyRequests { .. } => 429,
        Behaviour::Gone => 410,
        _ => 200,
    }
}

/// The retry after `exchange` (logged as `before`) started no earlier than the policy allows: the
/// `Retry-After` clamped to the policy's delays, or the scheduled delay less its 20% jitter.
///
/// Measured on hookd's clock, which stamps both attempts and schedules the retry: the harness's
/// clock only moves forward (1 ms per reading), so the retry's start minus the failed attempt's
/// start is at least the delay hookd added to the time it finished.
fn check_retry_delay(exchange: &Exchange, before: &Value, after: &Value) -> Result<(), String> {
    let (min, max) = RETRY_AFTER_CLAMP_MS;
    let attempt = exchange.request.attempt as usize;
    let delay = match exchange.behaviour {
        Behaviour::Unavailable => 1_000i64.clamp(min, max),
        Behaviour::TooManyRequests { retry_after: true } => 0i64.clamp(min, max),
        _ => RETRY_DELAYS_MS[attempt - 1] * 8 / 10,
    };
    let waited = started_ms(after) - started_ms(before);
    match waited >= delay {
        true => Ok(()),
        false => Err(format!(
            "attempt {} started {waited} ms after attempt {attempt} ({:?}); the policy says at \
             least {delay} ms after it finished",
            attempt + 1,
            exchange.behaviour
        )),
    }
}

fn started_ms(attempt: &Value) -> i64 {
    hookd_core::time::parse_rfc3339_ms(attempt["started_at"].as_str().unwrap_or("")).unwrap_or(0)
}
