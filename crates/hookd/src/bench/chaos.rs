//! Chaos scenarios of `hookd bench`: nodes are killed with SIGKILL while events are published, and the
//! run checks that every acknowledged event reached every matching subscription, that duplicates are
//! only the deliveries in flight at a kill, and that nothing stays leased.
//!
//! - `cluster`: two nodes on one PostgreSQL database; one is killed and restarted (`--kills` times).
//! - `crash`: one node (SQLite or PostgreSQL) killed at random moments, at least 10 times.

use super::node::{Node, NodeSpec};
use super::receiver::{Behaviour, Receiver, unix_us};
use super::{API_KEY, BenchArgs, Deployment, Latency, Report, load, round};
use hookd_core::EventFilter;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Short timeouts and leases so that a killed node's deliveries come back within seconds.
const FAST_RECOVERY: &[(&str, &str)] = &[
    ("HOOKD_DELIVERY_TIMEOUT_MS", "5000"),
    ("HOOKD_LEASE_MARGIN_MS", "10000"),
    ("HOOKD_RESCUE_INTERVAL_MS", "500"),
    ("HOOKD_HEARTBEAT_INTERVAL_MS", "500"),
    ("HOOKD_NODE_TIMEOUT_MS", "2000"),
    ("HOOKD_POLL_INTERVAL_MS", "200"),
    ("HOOKD_SHUTDOWN_GRACE_MS", "1000"),
];
/// The longest publish→receipt time allowed for any delivery, a killed node's included: one lease
/// (5 s timeout + 10 s margin). A delivery that waited for a lease to run out fails the check.
const LEASE_BOUND_MS: f64 = 15_000.0;
/// `cluster`: the longest time from a kill to the last re-delivery of what the killed node held:
/// the node timeout (2 s) plus one rescue interval (0.5 s), plus 1.5 s for the heartbeat's age at
/// the kill and the next claim and request on a loaded machine. The surviving nodes rescue, and
/// they are never killed. (In `crash` the rescuer is the next run of the killed node, which may be
/// killed in turn before it sends what it took over: there only [`LEASE_BOUND_MS`] applies.)
const CLUSTER_REDELIVERY_BOUND_MS: u64 = 4_000;
/// How long after a kill a request the killed node had already written may still arrive.
const KILL_SLACK_US: u64 = 500_000;
/// What a killed node can have sent without recording it: its requests in flight (256) plus the
/// outcomes waiting in its recorder (channel of 4 × 512, plus the batch being written).
const UNRECORDED_BOUND: u64 = 256 + 4 * 512 + 512;
const EVENT_TYPES: [&str; 5] = ["chaos.t0", "chaos.t1", "chaos.t2", "chaos.t3", "chaos.t4"];
const FILTERS: [&[&str]; 6] = [
    &["chaos.t0"],
    &["chaos.t1"],
    &["chaos.*"],
    &["*"],
    &["chaos.t2", "chaos.t3"],
    &["chaos.t4"],
];

/// The nodes of a run, each restartable at a fixed address.
struct Cluster {
    specs: Vec<NodeSpec>,
    nodes: Vec<Option<Node>>,
}

impl Cluster {
    async fn start(
        deployment: &Deployment,
        count: usize,
        role: &'static str,
    ) -> anyhow::Result<Self> {
        let mut specs = Vec::new();
        let mut nodes = Vec::new();
        for _ in 0..count {
            let mut env = deployment.env.clone();
            env.extend(
                FAST_RECOVERY
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string())),
            );
            let spec = NodeSpec {
                data_dir: deployment.dir.clone(),
                database: deployment.database.clone(),
                role,
                api_key: API_KEY.into(),
                env,
                listen: Some(free_address()?),
            };
            nodes.push(Some(Node::start(&spec).await?));
            specs.push(spec);
        }
        Ok(Self { specs, nodes })
    }

    fn urls(&self) -> Vec<String> {
        self.specs
            .iter()
            .filter_map(|s| s.listen.map(|a| format!("http://{a}")))
            .collect()
    }

    async fn kill(&mut self, index: usize) -> u64 {
        let at = unix_us();
        if let Some(node) = self.nodes[index].take() {
            node.kill().await;
        }
        at
    }

    async fn restart(&mut self, index: usize) -> anyhow::Result<()> {
        self.nodes[index] = Some(Node::start(&self.specs[index]).await?);
        Ok(())
    }

    async fn stop(mut self) {
        for node in self.nodes.iter_mut().filter_map(Option::take) {
            node.stop().await;
        }
    }
}

fn free_address() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// Subscriptions with a mix of filters; returns (path, filters) for computing the expected set.
async fn subscribe_all(
    url: &str,
    receiver: &Receiver,
    count: usize,
) -> anyhow::Result<Vec<(String, Vec<EventFilter>)>> {
    let client = load::http_client();
    let mut subscriptions = Vec::new();
    for i in 0..count {
        let path = format!("/chaos/{i}");
        let filters = FILTERS[i % FILTERS.len()];
        let response = client
            .post(format!("{url}/api/webhooks"))
            .bearer_auth(API_KEY)
            .header("content-type", "application/json")
            .body(json!({"url": receiver.url(&path), "events": filters}).to_string())
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "subscribe: {}",
            response.status()
        );
        let created: Value = serde_json::from_slice(&response.bytes().await?)?;
        receiver.configure(
            &path,
            Behaviour::Ok,
            created["secret"].as_str().unwrap_or_default(),
        );
        let parsed = filters
            .iter()
            .map(|f| EventFilter::parse(f))
            .collect::<Result<_, _>>()?;
        subscriptions.push((path, parsed));
    }
    Ok(subscriptions)
}

/// Publishes `total` events with client ids, round-robin over `urls`. A failed request (node down) is
/// retried with the same id on the next node — publishing is idempotent — for up to 20 s. Returns
/// the acknowledged (id, type) pairs.
async fn publish_all(
    urls: Arc<Vec<String>>,
    total: usize,
    publishers: usize,
    rate: Option<f64>,
    run: String,
) -> (Vec<(String, String)>, u64, HashMap<String, u64>) {
    let client = load::http_client();
    let next = Arc::new(AtomicUsize::new(0));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let acked_at = Arc::new(Mutex::new(HashMap::new()));
    let failures = Arc::new(AtomicUsize::new(0));
    let period = rate.map(|r| Duration::from_secs_f64(publishers as f64 / r));
    let mut tasks = Vec::new();
    for _ in 0..publishers.max(1) {
        let (client, urls, next) = (client.clone(), urls.clone(), next.clone());
        let (acknowledged, failures, run) = (acknowledged.clone(), failures.clone(), run.clone());
        let acked_at = acked_at.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return;
                }
                if let Some(period) = period {
                    tokio::time::sleep(period).await;
                }
                let id = format!("{run}-{n}");
                let event_type = EVENT_TYPES[n % EVENT_TYPES.len()];
                let body = json!({"event": event_type, "id": id,
                                  "data": {"n": n, "sent_us": unix_us()}})
                .to_string();
                let deadline = Instant::now() + Duration::from_secs(20);
                let mut attempt = 0;
                while Instant::now() < deadline {
                    let url = &urls[(n + attempt) % urls.len()];
                    attempt += 1;
                    let sent = client
                        .post(format!("{url}/api/events"))
                        .bearer_auth(API_KEY)
                        .header("content-type", "application/json")
                        .timeout(Duration::from_secs(5))
                        .body(body.clone())
                        .send()
                        .await;
                    if sent.is_ok_and(|r| r.status().is_success()) {
                        acked_at.lock().await.insert(id.clone(), unix_us());
                        acknowledged
                            .lock()
                            .await
                            .push((id.clone(), event_type.to_owned()));
                        break;
                    }
                    failures.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let acknowledged = acknowledged.lock().await.clone();
    let acked_at = acked_at.lock().await.clone();
    (
        acknowledged,
        failures.load(Ordering::Relaxed) as u64,
        acked_at,
    )
}

/// For each kill, how long after it the last delivery the killed node held arrived (ms): a
/// delivery of an event acknowledged before a kill that first arrived more than [`KILL_SLACK_US`]
/// after it counts for the first such kill (the node that took it died then; the nodes that
/// survive deliver within milliseconds). Kills that held nothing are left out.
fn redelivery_after_kills(
    expected: &HashSet<(String, String)>,
    arrivals: &HashMap<(String, String), Vec<u64>>,
    acked_at: &HashMap<String, u64>,
    kills: &[u64],
) -> Vec<u64> {
    let mut last_per_kill: HashMap<u64, u64> = HashMap::new();
    for key in expected {
        let (Some(first), Some(acked)) = (
            arrivals.get(key).and_then(|times| times.iter().min()),
            acked_at.get(&key.1),
        ) else {
            continue;
        };
        let held_by = kills
            .iter()
            .filter(|kill| **kill > *acked && first.saturating_sub(**kill) > KILL_SLACK_US)
            .min();
        if let Some(kill) = held_by {
            let waited = (first - kill) / 1_000;
            let slot = last_per_kill.entry(*kill).or_default();
            *slot = (*slot).max(waited);
        }
    }
    let mut waits: Vec<u64> = last_per_kill.into_values().collect();
    waits.sort_unstable();
    waits
}

/// Every (path, event id) the acknowledged events must reach.
fn expected_deliveries(
    acknowledged: &[(String, String)],
    subscriptions: &[(String, Vec<EventFilter>)],
) -> HashSet<(String, String)> {
    let mut expected = HashSet::new();
    for (id, event_type) in acknowledged {
        for (path, filters) in subscriptions {
            if hookd_core::event_type::any_matches(filters, event_type) {
                expected.insert((path.clone(), id.clone()));
            }
        }
    }
    expected
}

/// Waits until every expected delivery arrived (or no progress for `timeout`).
async fn wait_for(receiver: &Receiver, expected: &HashSet<(String, String)>, timeout: Duration) {
    let mut last = 0;
    let mut progress = Instant::now();
    loop {
        let arrivals = receiver.arrivals();
        let missing = expected
            .iter()
            .filter(|k| !arrivals.contains_key(*k))
            .count();
        if missing == 0 || progress.elapsed() > timeout {
            return;
        }
        let have = expected.len() - missing;
        if have > last {
            last = have;
            progress = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Duplicates, and those not explained by a kill between two consecutive arrivals.
fn analyse_duplicates(arrivals: &HashMap<(String, String), Vec<u64>>, kills: &[u64]) -> (u64, u64) {
    let mut duplicates = 0;
    let mut unexplained = 0;
    for times in arrivals.values() {
        let mut sorted = times.clone();
        sorted.sort_unstable();
        for pair in sorted.windows(2) {
            duplicates += 1;
            // A request written just before the kill can reach the receiver a moment after it.
            let explained = kills
                .iter()
                .any(|k| pair[0] <= k + KILL_SLACK_US && *k < pair[1]);
            if !explained {
                unexplained += 1;
            }
        }
    }
    (duplicates, unexplained)
}

/// Deliveries still leased or queued, read from the API once the leases have had time to expire.
async fn leftover(url: &str) -> anyhow::Result<(i64, i64)> {
    tokio::time::sleep(Duration::from_secs(16)).await;
    let client = load::http_client();
    let response = client
        .get(format!("{url}/api/webhooks/metrics"))
        .bearer_auth(API_KEY)
        .send()
        .await?;
    let metrics: Value = serde_json::from_slice(&response.bytes().await?)?;
    Ok((
        metrics["inFlight"].as_i64().unwrap_or(-1),
        metrics["pending"].as_i64().unwrap_or(-1),
    ))
}

#[allow(clippy::too_many_arguments)]
fn chaos_report(
    name: &str,
    deployment: &Deployment,
    subscriptions: usize,
    published: usize,
    acknowledged: usize,
    publish_failures: u64,
    expected: &HashSet<(String, String)>,
    arrivals: &HashMap<(String, String), Vec<u64>>,
    acked_at: &HashMap<String, u64>,
    kills: &[u64],
    started_us: u64,
    stuck: (i64, i64),
    max_in_flight: u64,
    redelivery_bound_ms: Option<u64>,
    receiver: &Receiver,
) -> Report {
    let signature_checks = receiver.signature_checks.load(Ordering::Relaxed);
    let signature_failures = receiver.signature_failures.load(Ordering::Relaxed);
    let delivered = expected
        .iter()
        .filter(|k| arrivals.contains_key(*k))
        .count() as u64;
    let (duplicates, unexplained) = analyse_duplicates(arrivals, kills);
    let last_us = arrivals
        .values()
        .flatten()
        .copied()
        .max()
        .unwrap_or(started_us);
    let drain_seconds = last_us.saturating_sub(started_us) as f64 / 1e6;
    let lost = expected.len() as u64 - delivered;
    let bound = kills.len() as u64 * max_in_flight;
    let mut failed = Vec::new();
    if lost > 0 {
        failed.push(format!("{lost} acknowledged deliveries never arrived"));
    }
    if unexplained > 0 {
        failed.push(format!("{unexplained} duplicates not explained by a kill"));
    }
    if duplicates > bound {
        failed.push(format!(
            "{duplicates} duplicates exceed the in-flight bound {bound}"
        ));
    }
    let waits = redelivery_after_kills(expected, arrivals, acked_at, kills);
    let (latencies, _, _) = receiver.take_latencies();
    let latency = Latency::from_sorted_us(&latencies);
    if latency.max > LEASE_BOUND_MS {
        failed.push(format!(
            "a delivery took {} ms from publish to receipt (bound {LEASE_BOUND_MS} ms)",
            latency.max
        ));
    }
    if let (Some(bound), Some(slowest)) = (redelivery_bound_ms, waits.last())
        && *slowest > bound
    {
        failed.push(format!(
            "a killed node's delivery was sent again {slowest} ms after the kill (bound {bound} ms)"
        ));
    }
    if stuck.0 != 0 || stuck.1 != 0 {
        failed.push(format!(
            "left behind: {} in flight, {} pending",
            stuck.0, stuck.1
        ));
    }
    Report {
        scenario: name.into(),
        backend: deployment.backend(),
        subscriptions,
        events_published: acknowledged as u64,
        events_rejected: (published - acknowledged) as u64,
        deliveries_expected: expected.len() as u64,
        deliveries: delivered,
        deliveries_per_sec: round(delivered as f64 / drain_seconds.max(1e-9)),
        drain_seconds: round(drain_seconds),
        latency_ms: latency,
        lost,
        duplicates,
        extra: json!({
            "publish_to_receipt_bound_ms": LEASE_BOUND_MS,
            "kill_to_last_redelivery_bound_ms": redelivery_bound_ms,
            "kills_that_held_deliveries": waits.len(),
            "kill_to_last_redelivery_ms_median": waits.get(waits.len() / 2),
            "kill_to_last_redelivery_ms_max": waits.last(),
            "kills": kills.len(),
            "publish_requests_refused_during_kills": publish_failures,
            "duplicates_explained_by_kills": duplicates - unexplained,
            "duplicates_unexplained": unexplained,
            "duplicate_bound": bound,
            "in_flight_after_drain": stuck.0,
            "pending_after_drain": stuck.1,
        }),
        failed_checks: failed,
        signature_checks,
        signature_failures,
        ..Report::default()
    }
}

/// Two nodes on one PostgreSQL database under a steady load; node 2 is SIGKILLed and restarted at
/// once, `--kills` times (1 by default).
pub async fn cluster(args: &BenchArgs, receiver: &Arc<Receiver>) -> anyhow::Result<Report> {
    anyhow::ensure!(
        args.database.is_some(),
        "the cluster scenario needs --database postgres://..."
    );
    receiver.reset();
    receiver.keep_arrivals.store(true, Ordering::Relaxed);
    let deployment = Deployment::new(args, "cluster").await?;
    let mut cluster = Cluster::start(&deployment, 2, "all").await?;
    let urls = Arc::new(cluster.urls());
    let subscriptions = subscribe_all(&urls[0], receiver, 24).await?;
    let kill_count = args.kills.unwrap_or(1).max(1);
    let rate = args.rate.unwrap_or(1_000.0);
    let total = args
        .events
        .unwrap_or((rate * (kill_count as f64 + 3.0)) as u64) as usize;
    let started_us = unix_us();
    let run = format!("c{}", started_us % 1_000_000);
    let publishing = tokio::spawn(publish_all(
        urls.clone(),
        total,
        args.publishers,
        Some(rate),
        run,
    ));
    // Kill node 2 (`--kills` times, 1 by default) from 1.5 s into the publishing, restarting it at
    // once each time.
    let mut kills = Vec::new();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    for _ in 0..kill_count {
        kills.push(cluster.kill(1).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
        cluster.restart(1).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (acknowledged, failures, acked_at) = publishing.await?;
    let expected = expected_deliveries(&acknowledged, &subscriptions);
    wait_for(receiver, &expected, args.drain_timeout).await;
    let stuck = leftover(&urls[0]).await?;
    let report = chaos_report(
        "cluster",
        &deployment,
        subscriptions.len(),
        total,
        acknowledged.len(),
        failures,
        &expected,
        &receiver.arrivals(),
        &acked_at,
        &kills,
        started_us,
        stuck,
        UNRECORDED_BOUND,
        Some(CLUSTER_REDELIVERY_BOUND_MS),
        receiver,
    );
    cluster.stop().await;
    deployment.remove().await;
    Ok(report)
}

/// One node killed with SIGKILL at random moments (at least 10 times) under a steady publish load,
/// restarted each time on the same data.
pub async fn crash(args: &BenchArgs, receiver: &Arc<Receiver>) -> anyhow::Result<Report> {
    receiver.reset();
    receiver.keep_arrivals.store(true, Ordering::Relaxed);
    let deployment = Deployment::new(args, "crash").await?;
    let cluster = Arc::new(Mutex::new(Cluster::start(&deployment, 1, "all").await?));
    let urls = Arc::new(cluster.lock().await.urls());
    let subscriptions = subscribe_all(&urls[0], receiver, 6).await?;
    let kill_count = args.kills.unwrap_or(10).max(10);
    let rate = args.rate.unwrap_or(300.0);
    let total = args
        .events
        .unwrap_or((rate * (kill_count as f64 * 1.2 + 2.0)) as u64) as usize;
    let started_us = unix_us();
    let run = format!("k{}", started_us % 1_000_000);
    let publishing = tokio::spawn(publish_all(
        urls.clone(),
        total,
        args.publishers,
        Some(rate),
        run,
    ));
    let mut kills = Vec::new();
    for k in 0..kill_count {
        // A pseudo-random moment: 300–1,300 ms after the node came back.
        let jitter = (unix_us() ^ (k as u64 * 7919)) % 1_000;
        tokio::time::sleep(Duration::from_millis(300 + jitter)).await;
        let mut nodes = cluster.lock().await;
        kills.push(nodes.kill(0).await);
        nodes.restart(0).await?;
    }
    let (acknowledged, failures, acked_at) = publishing.await?;
    let expected = expected_deliveries(&acknowledged, &subscriptions);
    wait_for(receiver, &expected, args.drain_timeout).await;
    let stuck = leftover(&urls[0]).await?;
    let report = chaos_report(
        "crash",
        &deployment,
        subscriptions.len(),
        total,
        acknowledged.len(),
        failures,
        &expected,
        &receiver.arrivals(),
        &acked_at,
        &kills,
        started_us,
        stuck,
        UNRECORDED_BOUND,
        None,
        receiver,
    );
    if let Ok(cluster) = Arc::try_unwrap(cluster) {
        cluster.into_inner().stop().await;
    }
    deployment.remove().await;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_explained_only_by_a_kill_between_arrivals() {
        let us = |ms: u64| ms * 1_000_000;
        let mut arrivals = HashMap::new();
        arrivals.insert(("/a".to_owned(), "1".to_owned()), vec![us(1), us(3)]);
        arrivals.insert(("/a".to_owned(), "2".to_owned()), vec![us(4), us(5)]);
        arrivals.insert(("/a".to_owned(), "3".to_owned()), vec![us(6)]);
        assert_eq!(analyse_duplicates(&arrivals, &[us(2)]), (2, 1));
        assert_eq!(
            analyse_duplicates(&arrivals, &[us(2), us(4) + 1]),
            (2, 0),
            "slack after a kill"
        );
        assert_eq!(analyse_duplicates(&arrivals, &[us(2), us(3) + 2]), (2, 1));
    }

    #[test]
    fn each_late_delivery_counts_for_the_first_kill_after_its_event() {
        let key = |id: &str| ("/p".to_owned(), id.to_owned());
        let expected: HashSet<_> = ["a", "b", "c", "d"].into_iter().map(key).collect();
        let arrivals = HashMap::from([
            (key("a"), vec![1_200_000]), // 1.2 s after the kill at 0: held by it
            (key("b"), vec![100_000, 3_000_000]), // arrived 0.1 s after the kill: not held
            (key("c"), vec![4_500_000]), // acked after the first kill: the second's
            (key("d"), vec![2_600_000]), // acked before both, last kill before arrival
        ]);
        let acked_at = HashMap::from([
            ("a".to_owned(), 0),
            ("b".to_owned(), 0),
            ("c".to_owned(), 1_500_000),
            ("d".to_owned(), 0),
        ]);
        let kills = [1, 2_000_000];
        assert_eq!(
            redelivery_after_kills(&expected, &arrivals, &acked_at, &kills),
            vec![2_500, 2_599]
        );
    }

    #[test]
    fn expected_set_follows_the_filters() {
        let subscriptions = vec![
            (
                "/x".to_owned(),
                vec![EventFilter::parse("chaos.t0").unwrap()],
            ),
            (
                "/y".to_owned(),
                vec![EventFilter::parse("chaos.*").unwrap()],
            ),
        ];
        let acknowledged = vec![
            ("e1".to_owned(), "chaos.t0".to_owned()),
            ("e2".to_owned(), "chaos.t1".to_owned()),
        ];
        let expected = expected_deliveries(&acknowledged, &subscriptions);
        assert_eq!(expected.len(), 3);
        assert!(expected.contains(&("/x".to_owned(), "e1".to_owned())));
        assert!(!expected.contains(&("/x".to_owned(), "e2".to_owned())));
    }
}
