//! Test harness: a real hookd API on port 0 over a fresh SQLite file, and a JSON HTTP client.
#![allow(dead_code)]

use hookd::config::Config;
use hookd::ids::{Clock, DynClock, SystemClock};
use hookd::store::DynStore;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use tempfile::TempDir;
use tokio::sync::oneshot;

pub const TEST_KEY: &str = "hookd_test_key_for_integration_tests_only";

pub struct TestApp {
    pub address: SocketAddr,
    pub key: String,
    pub client: reqwest::Client,
    pub store: DynStore,
    pub config: Config,
    /// Keeps the data directory alive for the app's lifetime (None when the caller owns it).
    _data: Option<TempDir>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// Development-mode config on a fresh temporary data dir, with a known API key.
pub fn test_config(data_dir: PathBuf) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir,
        dev: true,
        api_key: Some(TEST_KEY.into()),
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

pub async fn spawn_with_store(config: Config, store: DynStore) -> TestApp {
    let clock: DynClock = Arc::new(TickingClock(AtomicI64::new(SystemClock.now_ms())));
    let state = hookd::server::app_state(&config, store.clone(), clock);
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

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
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
