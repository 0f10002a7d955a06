//! `hookd bench`: a self-contained benchmark on one machine. It starts a recording receiver, measures
//! the machine's loopback ceiling with the same kind of HTTP client (limit mode), starts hookd
//! processes on a fresh data dir (SQLite, or a fresh PostgreSQL database with `--database`), creates
//! subscriptions, publishes, waits for every delivery, and reports throughput, latency, CPU, memory,
//! loss and duplicates. It exits non-zero if any delivery was lost.

pub mod chaos;
pub mod load;
pub mod node;
mod owners;
pub mod receiver;

use load::LoadSpec;
use node::{Node, NodeSpec};
use receiver::{Behaviour, Receiver};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Fan-out 1, as fast as possible.
    Throughput,
    /// One event to 10 and to 100 subscriptions.
    Fanout,
    /// A fixed 1,000 events/s (or `--rate`), latency percentiles.
    Latency,
    /// A backlog of pending deliveries built with no worker running, then drained.
    Backlog,
    /// 20 healthy endpoints with and without 1 that never answers.
    Isolation,
    /// Half the first attempts fail with 500 and are retried.
    RetryStorm,
    /// Two nodes on one PostgreSQL database, one killed and restarted `--kills` times (needs --database).
    Cluster,
    /// One node killed with SIGKILL at random moments, at least 10 times, under steady load.
    Crash,
    /// 10 subscriptions to a receiver that takes 0.5 s per request, 2,000 events (`--events`) of
    /// 250 KB (`--payload-bytes`): fails when hookd's peak RSS exceeds `--max-rss-mb`.
    Memory,
    /// Events published to a random owner of `--owners` (10,000), each with
    /// `--subscriptions-per-owner` (10) endpoints; then the same with one owner, for comparison.
    Owners,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// What to measure (each scenario is described in BENCHMARKS.md).
    #[arg(long, value_enum, default_value = "throughput")]
    pub scenario: Scenario,
    /// How long to publish (e.g. 60s, 500ms, 2m).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Concurrent publishers.
    #[arg(long, default_value_t = 8)]
    pub publishers: usize,
    /// Events per publish request (1 uses POST /api/events, more the batch route).
    #[arg(long, default_value_t = 50)]
    pub batch: usize,
    /// Size of each event's data, in bytes (default 1,024; `memory`: 250,000).
    #[arg(long)]
    pub payload_bytes: Option<usize>,
    /// Events per second in total (default: as fast as possible; `latency` defaults to 1,000).
    #[arg(long)]
    pub rate: Option<f64>,
    /// A PostgreSQL server URL: each run gets a fresh database on it. Default: SQLite.
    #[arg(long)]
    pub database: Option<String>,
    /// Pending deliveries to build up in the `backlog` scenario.
    #[arg(long, default_value_t = 1_000_000)]
    pub backlog_events: u64,
    /// How long limit mode runs.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub limit_duration: Duration,
    /// Give up waiting for deliveries after this long without progress.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Extra `KEY=VALUE` environment for the hookd nodes (e.g. HOOKD_MAX_IN_FLIGHT=512).
    #[arg(long = "node-env")]
    pub node_env: Vec<String>,
    /// Events to publish in the chaos scenarios (default: enough for the kills) and `memory`
    /// (default 2,000).
    #[arg(long)]
    pub events: Option<u64>,
    /// Kills in the chaos scenarios (`crash`: at least 10, the default; `cluster`: 1 by default).
    #[arg(long)]
    pub kills: Option<usize>,
    /// Steady scenarios: give the published type a 10-property JSON Schema with `validate:
    /// enforce`, so every event is validated.
    #[arg(long)]
    pub schema: bool,
    /// Steady scenarios: add this many subscriptions to the type, each with a content filter that
    /// no bench event passes (each is evaluated per event; none gets a delivery).
    #[arg(long, default_value_t = 0)]
    pub filtered_subscriptions: usize,
    /// `memory`: the most peak RSS of the hookd node, in MiB, before the run counts as failed.
    #[arg(long, default_value_t = 200.0)]
    pub max_rss_mb: f64,
    /// `owners`: how many owners get subscriptions and events.
    #[arg(long, default_value_t = 10_000)]
    pub owners: u32,
    /// `owners`: subscriptions per owner (each event's fan-out).
    #[arg(long, default_value_t = 10)]
    pub subscriptions_per_owner: usize,
}

impl BenchArgs {
    /// `--payload-bytes`, or the scenario's default.
    pub fn payload_bytes(&self) -> usize {
        match (self.payload_bytes, self.scenario) {
            (Some(bytes), _) => bytes,
            (None, Scenario::Memory) => 250_000,
            (None, _) => 1024,
        }
    }
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .map(|i| text.split_at(i))
        .unwrap_or((text, "s"));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 60s, 500ms or 2m"))?;
    let seconds = match unit {
        "ms" => value / 1_000.0,
        "s" | "" => value,
        "m" => value * 60.0,
        other => return Err(format!("unknown duration unit {other:?} (ms, s, m)")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    fn from_sorted_us(sorted: &[u64]) -> Self {
        let at = |q: f64| {
            if sorted.is_empty() {
                return 0.0;
            }
            let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
            sorted[index.min(sorted.len() - 1)] as f64 / 1_000.0
        };
        Self {
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            p999: at(0.999),
            max: at(1.0),
        }
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    pub scenario: String,
    pub backend: String,
    pub subscriptions: usize,
    pub publish_seconds: f64,
    pub events_published: u64,
    pub events_rejected: u64,
    pub events_per_sec: f64,
    pub deliveries_expected: u64,
    pub deliveries: u64,
    pub deliveries_per_sec: f64,
    /// Time from the start of publishing until the last delivery arrived.
    pub drain_seconds: f64,
    pub latency_ms: Latency,
    pub cpu_seconds: f64,
    pub peak_rss_mb: f64,
    pub lost: u64,
    pub duplicates: u64,
    pub limit_posts_per_sec: f64,
    /// deliveries_per_sec / limit_posts_per_sec.
    pub ratio_to_limit: f64,
    pub signature_checks: u64,
    pub signature_failures: u64,
    /// Scenario-specific figures.
    pub extra: Value,
    /// Checks that failed (the command exits non-zero when any did).
    pub failed_checks: Vec<String>,
}

const API_KEY: &str = "hookd_bench_key";

/// Runs the chosen scenario and returns its report(s).
pub async fn run(args: &BenchArgs) -> anyhow::Result<Vec<Report>> {
    crate::runtime::install_crypto_provider();
    let receiver = Receiver::start().await?;
    let limit = load::limit(
        &receiver.url("/limit"),
        64,
        args.payload_bytes(),
        args.limit_duration,
    )
    .await;
    receiver.reset();
    let mut reports = match args.scenario {
        Scenario::Throughput => {
            vec![steady(args, &receiver, "throughput", 1, None, Behaviour::Ok).await?]
        }
        Scenario::Fanout => vec![
            steady(args, &receiver, "fanout-10", 10, None, Behaviour::Ok).await?,
            steady(args, &receiver, "fanout-100", 100, None, Behaviour::Ok).await?,
        ],
        Scenario::Latency => {
            let rate = args.rate.or(Some(1_000.0));
            vec![steady(args, &receiver, "latency", 1, rate, Behaviour::Ok).await?]
        }
        Scenario::RetryStorm => {
            vec![
                steady(
                    args,
                    &receiver,
                    "retry-storm",
                    1,
                    None,
                    Behaviour::FailHalfFirstAttempts,
                )
                .await?,
            ]
        }
        Scenario::Isolation => isolation(args, &receiver).await?,
        Scenario::Backlog => vec![backlog(args, &receiver).await?],
        Scenario::Cluster => vec![chaos::cluster(args, &receiver).await?],
        Scenario::Crash => vec![chaos::crash(args, &receiver).await?],
        Scenario::Memory => vec![memory(args, &receiver).await?],
        Scenario::Owners => owners::owners(args, &receiver).await?,
    };
    for report in &mut reports {
        report.limit_posts_per_sec = limit.round();
        report.ratio_to_limit = match limit > 0.0 {
            true => (report.deliveries_per_sec / limit * 1_000.0).round() / 1_000.0,
            false => 0.0,
        };
    }
    Ok(reports)
}

/// A hookd deployment for one run: its nodes, data dir and (for PostgreSQL) database.
pub(crate) struct Deployment {
    dir: std::path::PathBuf,
    database: Option<String>,
    maintenance: Option<String>,
    env: Vec<(String, String)>,
}

impl Deployment {
    async fn new(args: &BenchArgs, name: &str) -> anyhow::Result<Self> {
        let dir = node::fresh_dir(&std::env::temp_dir(), &format!("hookd-bench-{name}"))?;
        let (database, maintenance) = match &args.database {
            Some(url) => (Some(fresh_pg_database(url).await?), Some(url.clone())),
            None => (None, None),
        };
        let env = args
            .node_env
            .iter()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Ok(Self {
            dir,
            database,
            maintenance,
            env,
        })
    }

    fn backend(&self) -> String {
        match self.database {
            Some(_) => "postgres".into(),
            None => "sqlite".into(),
        }
    }

    async fn start(&self, role: &'static str) -> anyhow::Result<Node> {
        Node::start(&NodeSpec {
            data_dir: self.dir.clone(),
            database: self.database.clone(),
            role,
            api_key: API_KEY.into(),
            env: self.env.clone(),
            listen: None,
        })
        .await
    }

    async fn remove(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let (Some(url), Some(maintenance)) = (self.database, self.maintenance) {
            drop_pg_database(&maintenance, &url).await;
        }
    }
}

/// Creates subscriptions `/s/0..n` on `node` pointing at the receiver, with `behaviour`.
async fn subscribe(
    node: &Node,
    receiver: &Receiver,
    prefix: &str,
    count: usize,
    behaviour: Behaviour,
    extra: Value,
) -> anyhow::Result<Vec<String>> {
    let client = load::http_client();
    let mut paths = Vec::with_capacity(count);
    for i in 0..count {
        let path = format!("/{prefix}/{i}");
        let mut body = json!({"url": receiver.url(&path), "events": ["bench.*"]});
        if let (Some(target), Some(fields)) = (body.as_object_mut(), extra.as_object()) {
            target.extend(fields.clone());
        }
        let secret = create_subscription(&client, &node.url(), &body).await?;
        receiver.configure(&path, behaviour, &secret);
        paths.push(path);
    }
    Ok(paths)
}

/// Creates one subscription through the API of the node at `base`; returns its secret.
async fn create_subscription(
    client: &reqwest::Client,
    base: &str,
    body: &Value,
) -> anyhow::Result<String> {
    let response = client
        .post(format!("{base}/api/webhooks"))
        .bearer_auth(API_KEY)
        .json_body(body)
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "subscribe failed: {}",
        response.status()
    );
    let created: Value = serde_json::from_slice(&response.bytes().await?)?;
    Ok(created["secret"].as_str().unwrap_or_default().to_owned())
}

/// The 10-property schema `--schema` enforces on `bench.event` (the bench's events carry
/// `sent_us` and `pad`; the other eight are optional and typed).
fn bench_schema() -> Value {
    json!({
        "type": "object",
        "required": ["sent_us", "pad"],
        "properties": {
            "sent_us": {"type": "integer", "minimum": 0},
            "pad": {"type": "string", "pattern": "^x*$"},
            "order_id": {"type": "string", "pattern": "^ORD-[0-9]+$"},
            "amount": {"type": "number", "minimum": 0},
            "currency": {"enum": ["EUR", "USD", "GBP"]},
            "region": {"type": "string", "maxLength": 8},
            "customer": {"type": "object", "required": ["id"]},
            "lines": {"type": "array", "maxItems": 100},
            "paid": {"type": "boolean"},
            "note": {"type": ["string", "null"]}
        }
    })
}

/// `--schema` and `--filtered-subscriptions`: the catalog and content-filter load of a steady run.
async fn catalog_load(args: &BenchArgs, node: &Node, receiver: &Receiver) -> anyhow::Result<()> {
    if args.schema {
        let body = json!({"name": "bench.event", "schema": bench_schema(), "validate": "enforce"});
        let response = load::http_client()
            .post(format!("{}/api/event-types", node.url()))
            .bearer_auth(API_KEY)
            .json_body(&body)
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "setting the schema failed: {}",
            response.status()
        );
    }
    if args.filtered_subscriptions > 0 {
        // The bench's events have `sent_us` > 0 and no `region`: neither branch passes.
        let filter = json!({"filter": {"$or": [
            {"data.sent_us": {"$lt": 0}},
            {"data.region": {"$in": ["eu", "us"]}, "data.amount": {"$gte": 100}}
        ]}});
        let count = args.filtered_subscriptions;
        subscribe(node, receiver, "filtered", count, Behaviour::Ok, filter).await?;
    }
    Ok(())
}

trait JsonBody {
    fn json_body(self, body: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, body: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(body.to_string())
    }
}

fn load_spec(args: &BenchArgs, rate: Option<f64>) -> LoadSpec {
    LoadSpec {
        publishers: args.publishers,
        batch: match rate {
            // At a fixed rate each event is published on its own, as a real producer would.
            Some(_) => 1,
            None => args.batch,
        },
        payload_bytes: args.payload_bytes(),
        rate,
        duration: args.duration,
        max_events: None,
        event_type: "bench.event".into(),
        owners: None,
    }
}

/// Waits until the receiver has `expected` distinct deliveries on `paths` (all paths when empty), or
/// until no progress is made for the drain timeout.
async fn drain(receiver: &Receiver, expected: u64, paths: &[String], timeout: Duration) -> u64 {
    let count = || match paths.is_empty() {
        true => receiver.delivery_counts().0,
        false => paths.iter().map(|p| receiver.distinct_for_path(p)).sum(),
    };
    let mut last = count();
    let mut last_progress = Instant::now();
    while last < expected && last_progress.elapsed() < timeout {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = count();
        if now > last {
            last = now;
            last_progress = Instant::now();
        }
    }
    last
}

/// Publish for the duration with `fanout` subscriptions and wait for every delivery.
async fn steady(
    args: &BenchArgs,
    receiver: &Arc<Receiver>,
    name: &str,
    fanout: usize,
    rate: Option<f64>,
    behaviour: Behaviour,
) -> anyhow::Result<Report> {
    receiver.reset();
    let deployment = Deployment::new(args, name).await?;
    let node = deployment.start("all").await?;
    let retry = match behaviour {
        Behaviour::FailHalfFirstAttempts => json!({"retry": {"schedule_ms": [100, 200, 400]}}),
        _ => json!({}),
    };
    let paths = subscribe(&node, receiver, name, fanout, behaviour, retry).await?;
    catalog_load(args, &node, receiver).await?;
    let cpu_before = node.cpu_seconds();
    let started_us = receiver::unix_us();
    let result = load::publish(&node.url(), API_KEY, &load_spec(args, rate)).await;
    let expected = result.accepted * fanout as u64;
    let delivered = drain(receiver, expected, &paths, args.drain_timeout).await;
    let report = finish(
        name,
        &deployment,
        &node,
        receiver,
        fanout,
        &result,
        expected,
        delivered,
        started_us,
        cpu_before,
    );
    let mut report = report;
    if behaviour == Behaviour::FailHalfFirstAttempts {
        let failed = receiver.failed_on_purpose.load(Ordering::Relaxed);
        let received = receiver.received.load(Ordering::Relaxed);
        let retries_seen = received.saturating_sub(report.deliveries + report.duplicates);
        report.extra = json!({
            "failed_first_attempts": failed,
            "retries_observed": retries_seen,
            "retry_counts_match": failed == retries_seen,
        });
    }
    node.stop().await;
    deployment.remove().await;
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn finish(
    name: &str,
    deployment: &Deployment,
    node: &Node,
    receiver: &Receiver,
    subscriptions: usize,
    result: &load::LoadResult,
    expected: u64,
    delivered: u64,
    started_us: u64,
    cpu_before: f64,
) -> Report {
    let (_, duplicates) = receiver.delivery_counts();
    let (latencies, _, last_us) = receiver.take_latencies();
    let drain_seconds = last_us.saturating_sub(started_us) as f64 / 1e6;
    let publish_seconds = result.elapsed.as_secs_f64();
    Report {
        scenario: name.into(),
        backend: deployment.backend(),
        subscriptions,
        publish_seconds: round(publish_seconds),
        events_published: result.accepted,
        events_rejected: result.rejected,
        events_per_sec: round(result.accepted as f64 / publish_seconds.max(1e-9)),
        deliveries_expected: expected,
        deliveries: delivered,
        deliveries_per_sec: round(delivered as f64 / drain_seconds.max(1e-9)),
        drain_seconds: round(drain_seconds),
        latency_ms: Latency::from_sorted_us(&latencies),
        cpu_seconds: round(node.cpu_seconds() - cpu_before),
        peak_rss_mb: round(node.peak_rss_mb()),
        lost: expected.saturating_sub(delivered),
        duplicates,
        signature_checks: receiver.signature_checks.load(Ordering::Relaxed),
        signature_failures: receiver.signature_failures.load(Ordering::Relaxed),
        extra: Value::Null,
        ..Report::default()
    }
}

pub(crate) fn round(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// 20 healthy endpoints alone, then with one more that never answers within its 1 s timeout.
async fn isolation(args: &BenchArgs, receiver: &Arc<Receiver>) -> anyhow::Result<Vec<Report>> {
    let mut reports = Vec::new();
    for with_bad in [false, true] {
        receiver.reset();
        let name = match with_bad {
            false => "isolation-baseline",
            true => "isolation-with-hanging-endpoint",
        };
        let deployment = Deployment::new(args, name).await?;
        let node = deployment.start("all").await?;
        let healthy = subscribe(&node, receiver, name, 20, Behaviour::Ok, json!({})).await?;
        if with_bad {
            subscribe(
                &node,
                receiver,
                &format!("{name}-bad"),
                1,
                Behaviour::Hang,
                json!({"timeout_ms": 1000, "retry": {"schedule_ms": [1000, 1000]}}),
            )
            .await?;
        }
        let cpu_before = node.cpu_seconds();
        let started_us = receiver::unix_us();
        let result = load::publish(&node.url(), API_KEY, &load_spec(args, args.rate)).await;
        let expected = result.accepted * 20;
        let delivered = drain(receiver, expected, &healthy, args.drain_timeout).await;
        reports.push(finish(
            name,
            &deployment,
            &node,
            receiver,
            healthy.len(),
            &result,
            expected,
            delivered,
            started_us,
            cpu_before,
        ));
        node.kill().await;
        deployment.remove().await;
    }
    let baseline = reports[0].deliveries_per_sec;
    let with_bad = reports[1].deliveries_per_sec;
    let loss = match baseline > 0.0 {
        true => round((1.0 - with_bad / baseline) * 100.0),
        false => 0.0,
    };
    reports[1].extra =
        json!({"healthy_per_sec_baseline": baseline, "healthy_throughput_loss_pct": loss});
    Ok(reports)
}

/// What a slow receiver does to memory: 10 subscriptions to an endpoint that takes 0.5 s per
/// request, and `--events` (2,000) large events published one per request. The worker leases
/// ahead and keeps requests in flight, each holding its event's data; the run fails when the
/// node's peak RSS exceeds `--max-rss-mb` (or, as every run, when a delivery is lost).
async fn memory(args: &BenchArgs, receiver: &Arc<Receiver>) -> anyhow::Result<Report> {
    const FANOUT: usize = 10;
    receiver.reset();
    let deployment = Deployment::new(args, "memory").await?;
    let node = deployment.start("all").await?;
    let slow = Behaviour::Slow(Duration::from_millis(500));
    let paths = subscribe(&node, receiver, "memory", FANOUT, slow, json!({})).await?;
    let spec = LoadSpec {
        batch: 1,
        duration: Duration::from_secs(3_600),
        max_events: Some(args.events.unwrap_or(2_000)),
        ..load_spec(args, None)
    };
    let cpu_before = node.cpu_seconds();
    let started_us = receiver::unix_us();
    let result = load::publish(&node.url(), API_KEY, &spec).await;
    let expected = result.accepted * FANOUT as u64;
    let delivered = drain(receiver, expected, &paths, args.drain_timeout).await;
    let mut report = finish(
        "memory",
        &deployment,
        &node,
        receiver,
        FANOUT,
        &result,
        expected,
        delivered,
        started_us,
        cpu_before,
    );
    report.extra = json!({
        "payload_bytes": args.payload_bytes(),
        "receiver_delay_ms": 500,
        "max_rss_mb": args.max_rss_mb,
    });
    if report.peak_rss_mb > args.max_rss_mb {
        report.failed_checks.push(format!(
            "peak RSS {} MB exceeds --max-rss-mb {}",
            report.peak_rss_mb, args.max_rss_mb
        ));
    }
    node.stop().await;
    deployment.remove().await;
    Ok(report)
}

/// Builds a backlog with an API-only node (no worker: deliveries stay pending), then starts a
/// worker-only node on the same store and measures the drain and the worker's memory.
async fn backlog(args: &BenchArgs, receiver: &Arc<Receiver>) -> anyhow::Result<Report> {
    receiver.reset();
    let deployment = Deployment::new(args, "backlog").await?;
    let api = deployment.start("api").await?;
    let paths = subscribe(&api, receiver, "backlog", 1, Behaviour::Ok, json!({})).await?;
    let spec = LoadSpec {
        publishers: args.publishers.min(4),
        batch: 1_000,
        payload_bytes: args.payload_bytes(),
        rate: None,
        duration: Duration::from_secs(3_600),
        max_events: Some(args.backlog_events),
        event_type: "bench.event".into(),
        owners: None,
    };
    let result = load::publish(&api.url(), API_KEY, &spec).await;
    let api_rss = api.peak_rss_mb();
    let worker = deployment.start("worker").await?;
    let cpu_before = worker.cpu_seconds();
    let started_us = receiver::unix_us();
    let sampler_pid = worker.pid;
    let sampling = tokio::spawn(async move {
        let mut peak: f64 = 0.0;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let rss = std::fs::read_to_string(format!("/proc/{sampler_pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("VmRSS:"))
                        .and_then(|l| l.split_whitespace().nth(1))
                        .and_then(|v| v.parse::<f64>().ok())
                });
            match rss {
                Some(kb) => peak = peak.max(kb / 1024.0),
                None => return peak,
            }
        }
    });
    let expected = result.accepted;
    let delivered = drain(receiver, expected, &paths, args.drain_timeout).await;
    let mut report = finish(
        "backlog",
        &deployment,
        &worker,
        receiver,
        1,
        &result,
        expected,
        delivered,
        started_us,
        cpu_before,
    );
    report.latency_ms = Latency::default();
    report.extra = json!({
        "api_node_peak_rss_mb": round(api_rss),
        "worker_rss_samples_peak_mb": 0,
        "note": "deliveries_per_sec is the drain rate of the worker node; latency is not meaningful here"
    });
    worker.kill().await;
    if let Ok(peak) = sampling.await {
        report.extra["worker_rss_samples_peak_mb"] = json!(round(peak));
    }
    api.kill().await;
    deployment.remove().await;
    Ok(report)
}

async fn fresh_pg_database(url: &str) -> anyhow::Result<String> {
    use sqlx::{Connection, Executor};
    let name = format!(
        "hookd_bench_{}",
        crate::ids::new_id("db", 0)
            .to_ascii_lowercase()
            .replace("db_", "")
    );
    let mut connection = sqlx::PgConnection::connect(url).await?;
    connection
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await?;
    let mut parsed = url::Url::parse(url)?;
    parsed.set_path(&name);
    Ok(parsed.to_string())
}

async fn drop_pg_database(maintenance: &str, url: &str) {
    use sqlx::{Connection, Executor};
    let Some(name) = url::Url::parse(url)
        .ok()
        .map(|u| u.path().trim_start_matches('/').to_owned())
    else {
        return;
    };
    if let Ok(mut connection) = sqlx::PgConnection::connect(maintenance).await {
        let _ = connection
            .execute(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await;
    }
}

/// Prints reports as a table, or JSON (one object, or an array for several runs).
pub fn print(reports: &[Report], json: bool) {
    if json {
        let value = match reports {
            [one] => serde_json::to_value(one),
            many => serde_json::to_value(many),
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&value.unwrap_or_default()).unwrap_or_default()
        );
        return;
    }
    for report in reports {
        let value = serde_json::to_value(report).unwrap_or_default();
        println!("== {} ({})", report.scenario, report.backend);
        for failure in &report.failed_checks {
            println!("  FAILED: {failure}");
        }
        if let Some(object) = value.as_object() {
            for (key, field) in object {
                if key == "scenario" || key == "backend" || field.is_null() {
                    continue;
                }
                println!("  {key:<22} {}", field);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_percentiles() {
        assert_eq!(parse_duration("60s").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3h").is_err());
        let samples: Vec<u64> = (1..=1000).map(|n| n * 1_000).collect();
        let latency = Latency::from_sorted_us(&samples);
        assert_eq!(
            (latency.p50, latency.p99, latency.max),
            (501.0, 990.0, 1000.0)
        );
        assert_eq!(Latency::from_sorted_us(&[]).max, 0.0);
    }
}
