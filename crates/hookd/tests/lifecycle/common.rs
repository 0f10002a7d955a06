//! The real `hookd` binary on a data dir the test owns: start it, talk to its API, stop it, run
//! its offline commands.

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const BIN: &str = env!("CARGO_BIN_EXE_hookd");
pub const KEY: &str = "hookd_lifecycle_test_key_0123456789abcdef";

/// A `hookd` command with a clean environment (no inherited `HOOKD_*`) and the test's API key.
pub fn hookd() -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .env("HOOKD_API_KEY", KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs a `hookd` command to its end: (success, stdout, stderr).
pub async fn run(args: &[&str]) -> (bool, String, String) {
    let output = hookd().args(args).output().await.unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A running `hookd serve --dev` and what it logged so far.
pub struct Server {
    child: Child,
    pub base: String,
    pub client: reqwest::Client,
    logs: Arc<Mutex<String>>,
}

/// An API answer.
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Value,
}

impl Server {
    /// Starts `hookd serve --dev` on `data_dir` and waits until it listens.
    pub async fn start(data_dir: &Path) -> Self {
        hookd::server::install_crypto_provider();
        let mut child = hookd()
            .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .spawn()
            .unwrap();
        let logs = Arc::new(Mutex::new(String::new()));
        let (listening, address) = tokio::sync::oneshot::channel::<SocketAddr>();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let collected = logs.clone();
        tokio::spawn(async move {
            let mut listening = Some(listening);
            while let Ok(Some(line)) = stderr.next_line().await {
                if let Some(rest) = line.split("address=").nth(1)
                    && let Some(sender) = listening.take()
                {
                    let _ = sender.send(rest.split_whitespace().next().unwrap().parse().unwrap());
                }
                let mut logs = collected.lock().unwrap();
                logs.push_str(&line);
                logs.push('\n');
            }
        });
        let address = tokio::time::timeout(Duration::from_secs(30), address)
            .await
            .expect("hookd did not start listening")
            .unwrap_or_else(|_| panic!("hookd exited before listening: {}", logs.lock().unwrap()));
        Self {
            child,
            base: format!("http://{address}"),
            client: reqwest::Client::new(),
            logs,
        }
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// SIGTERM, then a clean exit.
    pub async fn stop(mut self) {
        let pid = self.child.id().unwrap().to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("hookd did not stop on SIGTERM")
            .unwrap();
        assert!(exit.success(), "exit status {exit}");
    }

    pub async fn request(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Reply {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(KEY);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        Reply {
            status,
            retry_after,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    /// Subscribes `url` to every event, retrying quickly (50 attempts, 50 ms to 1 s apart) so that
    /// a receiver that comes back gets everything within a second or two.
    pub async fn subscribe(&self, url: &str) -> String {
        let body = json!({
            "url": url,
            "events": ["*"],
            "retry": {"max_attempts": 50, "base_delay_ms": 50, "max_delay_ms": 1000},
        });
        let reply = self
            .request(reqwest::Method::POST, "/api/webhooks", Some(body))
            .await;
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    /// Publishes one event whose `data` holds `filler` bytes of text.
    pub async fn publish(&self, filler: usize) -> Reply {
        let body = json!({"event": "order.created", "data": {"note": "x".repeat(filler)}});
        self.request(reqwest::Method::POST, "/api/events", Some(body))
            .await
    }

    /// The state of each delivery of event `id` (none if the event is unknown).
    pub async fn delivery_states(&self, id: &str) -> Vec<String> {
        let reply = self
            .request(reqwest::Method::GET, &format!("/api/events/{id}"), None)
            .await;
        match reply.status {
            200 => reply.body["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["state"].as_str().unwrap().to_owned())
                .collect(),
            404 => Vec::new(),
            other => panic!("GET /api/events/{id}: {other} {}", reply.body),
        }
    }
}

/// The `webhook-id` of each request `path` received.
pub fn received_ids(receiver: &crate::receiver::Receiver, path: &str) -> Vec<String> {
    receiver
        .received(path)
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect()
}

/// The mode bits of `path` (not following a symbolic link).
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}
