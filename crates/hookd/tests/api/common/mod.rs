//! Test harness: a real hookd API (and delivery worker) on port 0 over a fresh SQLite file, a JSON
//! HTTP client, and a recording webhook receiver.
#![allow(dead_code)]

pub mod receiver;

pub use receiver::{Answer, Received, Receiver};

use hookd::config::Config;
use hookd::ids::{Clock, DynClock, ManualClock, SystemClock};
use hookd::store::DynStore;
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
    pub store: DynStore,
    pub config: Config,
    /// Keeps the data directory alive for the app's lifetime (None when the caller owns it).
    _data: Option<TempDir>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
    stop_worker: Option<watch::Sender<bool>>,
    worker: Option<tokio::task::JoinHandle<()>>,
}

/// Development-mode config on a fresh temporary data dir, with a known API key, and a delivery
/// worker tuned for tests: a short retry schedule (5 attempts, 20 ms doubling) and fast polling.
pub fn test_config(data_dir: PathBuf) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
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

/// Starts the API for `config` (whose data dir the caller owns).
pub async fn spawn_on(config: Config) -> TestApp {
    let store = hookd::server::open_store(&config).await.unwrap();
    spawn_with_store(config, store).await
}

/// A clock that starts at the real time and moves forward 1 ms on every reading, so that rows created
/// one after another always have distinct, ordered timestamps.
pub struct TickingClock(AtomicI64);

impl Clock for TickingClock {
    fn now_ms(&self) -> i64 {
        self.0.fetch_add(1, Ordering::SeqCst)
    }
}

/// The API and (unless `role` is `api`) a background delivery worker, on the system clock (ticking
/// 1 ms per reading).
pub async fn spawn_with_store(config: Config, store: DynStore) -> TestApp {
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

async fn spawn_api(config: Config, store: DynStore, clock: DynClock) -> TestApp {
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
    let server = tokio::spawn(async move {
        hookd::server::serve(listener, state, async {
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

    /// Polls `GET path` until `check` accepts the body (at most 20 s).
    pub async fn eventually(&self, path: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let reply = self.get(path).await;
            if check(&reply.body) {
                return reply.body;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting on {path}: {}",
                reply.body
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Creates a subscription and returns its JSON (with the secret).
    pub async fn subscribe(&self, url: &str, events: &[&str]) -> Value {
        let reply = self
            .post(
                "/api/webhooks",
                serde_json::json!({"url": url, "events": events}),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.body
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
