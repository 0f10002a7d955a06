//! Test harness: a real hookd API (and delivery worker) on port 0 over a fresh store, a JSON HTTP
//! client, and a recording webhook receiver.
//!
//! The store is chosen by `HOOKD_TEST_BACKEND`: `sqlite` (the default) gives each test a fresh SQLite
//! file; `postgres` gives each test a fresh database on the server at `HOOKD_TEST_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/`), dropped when the test is done (see [`pg`]). The
//! same tests run against both; the few properties that need backend-specific means to be tested
//! (taking the database's locks, seeding an old schema) get them from [`StoreLock`] and friends.
#![allow(dead_code)]

pub mod browser;
pub mod chaos;
pub mod pg;
pub mod receiver;
pub mod wait;

pub use receiver::{Answer, Received, Receiver, now_unix};

use hookd::config::Config;
use hookd::ids::{Clock, DynClock, ManualClock, SystemClock};
use hookd::store::Store;
use hookd::store::postgres::PgStore;
use hookd::store::sqlite::SqliteStore;
use hookd::worker::Worker;
use hookd_core::RetryPolicy;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::sync::{Notify, watch};

pub const TEST_KEY: &str = "hookd_test_key_for_integration_tests_only";

pub struct TestApp {
    pub address: SocketAddr,
    pub waker: Arc<Notify>,
    pub key: String,
    pub client: reqwest::Client,
    pub store: Store,
    pub config: Config,
    /// Keeps the data directory alive for the app's lifetime (None when the caller owns it).
    _data: Option<TempDir>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    stop_worker: Option<watch::Sender<bool>>,
    worker: Option<tokio::task::JoinHandle<()>>,
}

/// The store the suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// `HOOKD_TEST_BACKEND`: `sqlite` (default) or `postgres`.
pub fn backend() -> Backend {
    match std::env::var("HOOKD_TEST_BACKEND").as_deref() {
        Err(_) | Ok("") | Ok("sqlite") => Backend::Sqlite,
        Ok("postgres") => Backend::Postgres,
        Ok(other) => panic!("HOOKD_TEST_BACKEND={other:?}: expected sqlite or postgres"),
    }
}

/// Whether a PostgreSQL-only test (named `pg_only_…`: several nodes sharing one database) can run.
/// On any other backend it writes "skipped: <test> needs HOOKD_TEST_BACKEND=postgres" straight to
/// the run's stderr (past the test harness's output capture, so the skip shows even though the
/// test is counted as passed), and the test returns at once.
pub fn postgres_or_skip() -> bool {
    runs_on(Backend::Postgres, "postgres")
}

/// The same for `sqlite_only_…` tests (properties of a data dir only one process uses).
pub fn sqlite_or_skip() -> bool {
    runs_on(Backend::Sqlite, "sqlite")
}

/// True on `wanted`; otherwise says on stderr (shown without `--nocapture`) that the test is skipped.
fn runs_on(wanted: Backend, name: &str) -> bool {
    if backend() == wanted {
        return true;
    }
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("a backend-specific test");
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {test} needs HOOKD_TEST_BACKEND={name}"
    );
    false
}

/// Development-mode config on a fresh temporary data dir, with a known API key, and a delivery
/// worker tuned for tests: a short retry schedule (5 attempts, 20 ms doubling) and fast polling.
/// With the postgres backend it also names a fresh database, which lives as long as `data_dir`.
pub fn test_config(data_dir: PathBuf) -> Config {
    let database_url = match backend() {
        Backend::Sqlite => None,
        Backend::Postgres => Some(pg::fresh_database(&data_dir)),
    };
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url,
        // Small pools: tests run in parallel against one server (100 connections by default).
        database_max_connections: 5,
        data_dir,
        dev: true,
        api_key: Some(TEST_KEY.into()),
        retry: Some(RetryPolicy::Exponential {
            max_attempts: 5,
            base_delay_ms: 20,
            max_delay_ms: 200,
        }),
        poll_interval_ms: 100,
        rescue_interval_ms: 100,
        shutdown_grace_ms: 2_000,
        // Tests send many bad keys on purpose; `auth::failed_authentication_is_limited` tests the limit.
        auth_failures_per_minute: 10_000,
        ..Config::default()
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let data = TempDir::new().unwrap();
    let mut config = test_config(data.path().to_path_buf());
    tweak(&mut config);
    let mut app = spawn_on(config).await;
    app._data = Some(data);
    app
}

/// Starts the API for `config` (whose data dir, and so its database, the caller owns).
pub async fn spawn_on(config: Config) -> TestApp {
    let store = hookd::server::open_store(&config).await.unwrap();
    spawn_with_store(config, store).await
}

/// A clock that follows the real time but moves forward at least 1 ms on every reading, so that
/// rows created one after another always have distinct, ordered timestamps, and leases and retry
/// times pass as they would in production.
pub struct TickingClock(AtomicI64);

impl Clock for TickingClock {
    fn now_ms(&self) -> i64 {
        let wall = SystemClock.now_ms();
        let mut last = self.0.load(Ordering::SeqCst);
        loop {
            let next = (last + 1).max(wall);
            match self
                .0
                .compare_exchange(last, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return next,
                Err(seen) => last = seen,
            }
        }
    }
}

/// The API and (unless `role` is `api`) a background delivery worker, on the system clock (at
/// least 1 ms per reading: [`TickingClock`]).
pub async fn spawn_with_store(config: Config, store: Store) -> TestApp {
    let clock: DynClock = Arc::new(TickingClock(AtomicI64::new(SystemClock.now_ms())));
    let mut app = spawn_api(config.clone(), store.clone(), clock.clone()).await;
    if !config.role.runs_worker() {
        return app;
    }
    let (stop_worker, stopped) = watch::channel(false);
    app.worker = Some(hookd::server::spawn_worker(
        &config,
        store,
        clock,
        app.waker.clone(),
        stopped,
    ));
    app.stop_worker = Some(stop_worker);
    app
}

/// The API without a background worker, on a manual clock, and a worker the test steps by hand
/// (`worker.run_once()`), moving time with `clock.advance_ms`.
pub async fn spawn_stepped(tweak: impl FnOnce(&mut Config)) -> (TestApp, Arc<Worker>, ManualClock) {
    let data = TempDir::new().unwrap();
    let mut config = test_config(data.path().to_path_buf());
    tweak(&mut config);
    let store = hookd::server::open_store(&config).await.unwrap();
    let clock = ManualClock::new(SystemClock.now_ms());
    let dyn_clock: DynClock = Arc::new(clock.clone());
    let mut app = spawn_api(config.clone(), store.clone(), dyn_clock.clone()).await;
    app._data = Some(data);
    let worker = Worker::new(
        store,
        dyn_clock,
        config.worker_config("wrk_test".into()),
        app.waker.clone(),
    );
    (app, worker, clock)
}

async fn spawn_api(config: Config, store: Store, clock: DynClock) -> TestApp {
    hookd::server::install_crypto_provider();
    // Warnings and errors show in a failing test's output (RUST_LOG for more).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_ansi(false)
        .with_test_writer()
        .try_init();
    let waker = Arc::new(Notify::new());
    let state = hookd::server::app_state(&config, store.clone(), clock, waker.clone());
    let listener = tokio::net::TcpListener::bind(config.listen).await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let limits = config.connection_limits();
    let server = tokio::spawn(async move {
        hookd::server::serve_with(listener, state, limits, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    TestApp {
        address,
        waker,
        stop_worker: None,
        worker: None,
        key: config.api_key.clone().unwrap_or_default(),
        client: reqwest::Client::new(),
        store,
        config,
        _data: None,
        stop: Some(stop),
        server: Some(server),
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Asserts an error reply: status, stable code, and JSON shape.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.body["code"], code, "body: {}", self.body);
        assert!(
            self.body["error"].as_str().is_some_and(|m| !m.is_empty()),
            "error message missing: {}",
            self.body
        );
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// Sends a request with the app's key and, if given, a JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        into_reply(request.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None).await
    }

    /// POSTs raw bytes with the given content type.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        let request = self
            .client
            .post(self.url(path))
            .bearer_auth(&self.key)
            .header("content-type", content_type)
            .body(body);
        into_reply(request.send().await.unwrap()).await
    }

    /// Stops only the delivery worker (gracefully), leaving the API up.
    pub async fn stop_worker(&mut self) {
        if let Some(stop) = self.stop_worker.take() {
            let _ = stop.send(true);
        }
        if let Some(worker) = self.worker.take() {
            worker.await.unwrap();
        }
    }

    /// Polls `GET path` until `check` accepts the body (at most [`wait::DEFAULT_LIMIT`]).
    pub async fn eventually(&self, path: &str, check: impl Fn(&Value) -> bool) -> Value {
        wait::until(wait::DEFAULT_LIMIT, async || {
            let reply = self.get(path).await;
            match check(&reply.body) {
                true => Ok(reply.body),
                false => Err(format!("GET {path}: {}", reply.body)),
            }
        })
        .await
    }

    /// The deliveries of event `event_id` (as `GET /api/events/{id}` lists them), once `check`
    /// accepts them.
    pub async fn wait_for_deliveries(
        &self,
        event_id: &str,
        check: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let event = self
            .eventually(&format!("/api/events/{event_id}"), |body| {
                body["deliveries"]
                    .as_array()
                    .is_some_and(|deliveries| check(deliveries))
            })
            .await;
        event["deliveries"].as_array().unwrap().clone()
    }

    /// The first delivery of event `event_id`, in full (`GET /api/deliveries/{id}`, with its
    /// attempts), once it is in `state`.
    pub async fn wait_for_delivery_state(&self, event_id: &str, state: &str) -> Value {
        let deliveries = self
            .wait_for_deliveries(event_id, |deliveries| {
                deliveries.first().is_some_and(|d| d["state"] == state)
            })
            .await;
        let id = deliveries[0]["id"].as_str().unwrap();
        let delivery = self.get(&format!("/api/deliveries/{id}")).await;
        assert_eq!(delivery.status, 200, "{}", delivery.body);
        delivery.body
    }

    /// Creates a subscription and returns its JSON (with the secret).
    pub async fn subscribe(&self, url: &str, events: &[&str]) -> Value {
        self.subscribe_with(serde_json::json!({"url": url, "events": events}))
            .await
    }

    /// Creates a subscription from a full request body (a timeout, headers, an owner...) and
    /// returns its JSON (with the secret).
    pub async fn subscribe_with(&self, body: Value) -> Value {
        let reply = self.post("/api/webhooks", body).await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.body
    }

    /// Publishes one event (`POST /api/events`, which must accept it) and returns its id.
    pub async fn publish(&self, event: Value) -> String {
        let reply = self.post("/api/events", event).await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    /// Publishes each event in a request of its own, all at once (one task each), and returns the
    /// statuses in the order of `events`.
    pub async fn publish_concurrently(&self, events: Vec<Value>) -> Vec<u16> {
        let tasks: Vec<_> = events
            .into_iter()
            .map(|event| {
                let request = self
                    .client
                    .post(self.url("/api/events"))
                    .bearer_auth(&self.key)
                    .json(&event);
                tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
            })
            .collect();
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.unwrap());
        }
        statuses
    }

    /// Publishes events in batches of at most 1,000 (`POST /api/events/batch`, which must accept
    /// each batch).
    pub async fn publish_batches(&self, events: Vec<Value>) {
        for batch in events.chunks(1_000) {
            let reply = self
                .post("/api/events/batch", serde_json::json!({ "events": batch }))
                .await;
            assert_eq!(reply.status, 202, "{}", reply.body);
        }
    }

    /// Stops the worker (gracefully) and the server, and waits for both.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop_worker.take() {
            let _ = stop.send(true);
        }
        if let Some(worker) = self.worker.take() {
            worker.await.unwrap();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap();
        }
    }
}

impl Drop for TestApp {
    /// Stops what still runs, removes the data dir if the app owns it, and drops the PostgreSQL
    /// databases whose data dir is gone (this one's, and any left by tests that own their data dir).
    fn drop(&mut self) {
        if let Some(worker) = self.worker.take() {
            worker.abort();
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
        drop(self._data.take());
        pg::drop_orphaned_databases();
    }
}

/// A temporary data dir for a test that owns its data (and so its PostgreSQL database, if any):
/// dropping it removes the directory and drops the database at once.
pub struct TestDir(Option<TempDir>);

impl TestDir {
    pub fn new() -> Self {
        Self(Some(TempDir::new().unwrap()))
    }

    pub fn path(&self) -> PathBuf {
        self.0
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .unwrap_or_default()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        drop(self.0.take());
        pg::drop_orphaned_databases();
    }
}

// ---------------------------------------------------------------------------------------------
// Backend-specific means, for testing properties that every backend has
// ---------------------------------------------------------------------------------------------

/// Makes a store give up quickly (with 503) on a lock another connection holds: SQLite's busy
/// timeout, PostgreSQL's `lock_timeout`. Use as `spawn_app_with(short_lock_wait)`.
pub fn short_lock_wait(config: &mut Config) {
    config.sqlite_busy_timeout_ms = 200;
    if let Some(url) = &mut config.database_url {
        url.push_str("?options=-c%20lock_timeout%3D200");
    }
}

/// Another connection holding locks that keep every write of the app's store waiting: SQLite's
/// exclusive lock, or exclusive locks on PostgreSQL's `events` and `subscriptions` tables.
pub enum StoreLock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl StoreLock {
    pub async fn take(app: &TestApp) -> Self {
        use sqlx::{Connection, Executor};
        match &app.config.database_url {
            None => {
                let url = format!("sqlite://{}", app.config.database_path().display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                conn.execute("BEGIN EXCLUSIVE").await.unwrap();
                Self::Sqlite(conn)
            }
            Some(url) => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                // The URL may carry the app's short `lock_timeout`; the locker itself waits patiently
                // for the app's running statements (a worker's claim) to finish.
                conn.execute("SET lock_timeout = '10s'").await.unwrap();
                conn.execute("BEGIN").await.unwrap();
                conn.execute("LOCK TABLE events, subscriptions IN ACCESS EXCLUSIVE MODE")
                    .await
                    .unwrap();
                Self::Postgres(conn)
            }
        }
    }

    pub async fn release(self) {
        use sqlx::{Connection, Executor};
        match self {
            Self::Sqlite(mut conn) => {
                conn.execute("ROLLBACK").await.unwrap();
                conn.close().await.unwrap();
            }
            Self::Postgres(mut conn) => {
                conn.execute("ROLLBACK").await.unwrap();
                conn.close().await.unwrap();
            }
        }
    }
}

/// Reads a store's group-commit counters: (group commits, publish requests).
pub type PublisherStats = Box<dyn Fn() -> (u64, u64) + Send + Sync>;

/// Opens the configured store (as `open_store` does), keeping a handle on its publisher's counters.
pub async fn open_store_with_publisher_stats(config: &Config) -> (Store, PublisherStats) {
    match config.postgres_options() {
        Some(options) => {
            let store = PgStore::open(options).await.unwrap();
            let stats = store.stats();
            (store.into_store(), Box::new(move || stats.snapshot()))
        }
        None => {
            let store = SqliteStore::open(config.sqlite_options()).await.unwrap();
            let stats = store.stats();
            (store.into_store(), Box::new(move || stats.snapshot()))
        }
    }
}

/// The `id` of a JSON object (a subscription, an event, a delivery).
pub fn id_of(json: &Value) -> String {
    json["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {json}"))
        .to_owned()
}

pub async fn into_reply(response: reqwest::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let body = match bytes.is_empty() {
        true => Value::Null,
        false => serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into())),
    };
    Reply {
        status,
        headers,
        body,
    }
}
