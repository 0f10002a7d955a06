//! Tests of the real `hookd` binary: zero-config start, the one-time admin key, offline key management,
//! configuration errors, `migrate` and `openapi`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader, Lines};
use tokio::process::{Child, Command};

// The API suite's polling helper, shared rather than copied.
#[path = "api/common/wait.rs"]
#[allow(dead_code)]
mod wait;

const BIN: &str = env!("CARGO_BIN_EXE_hookd");

/// A `hookd` command with a clean environment (no inherited `HOOKD_*`), run in `dir`.
fn hookd(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

struct Server {
    child: Child,
    address: SocketAddr,
    stdout: Lines<BufReader<tokio::process::ChildStdout>>,
    /// Kept open so that the server can keep logging.
    _stderr: Lines<BufReader<tokio::process::ChildStderr>>,
}

/// Starts `hookd serve` and waits for its "listening" log line.
async fn start(mut command: Command) -> Server {
    hookd::server::install_crypto_provider();
    let mut child = command.spawn().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let line = stderr
                .next_line()
                .await
                .unwrap()
                .expect("hookd exited before listening");
            if let Some(rest) = line.split("address=").nth(1) {
                return rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        }
    })
    .await
    .expect("hookd did not start listening");
    Server {
        child,
        address,
        stdout,
        _stderr: stderr,
    }
}

impl Server {
    /// SIGTERM, then wait for a clean exit; returns what remained on stdout.
    async fn terminate(mut self) -> String {
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
        drain(&mut self.stdout).await
    }

    async fn status_with_key(&self, key: &str) -> u16 {
        reqwest::Client::new()
            .get(format!("http://{}/api/webhooks", self.address))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }
}

async fn drain<R: AsyncRead + Unpin>(lines: &mut Lines<BufReader<R>>) -> String {
    let mut text = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        text.push_str(&line);
        text.push('\n');
    }
    text
}

fn find_key(text: &str) -> Option<String> {
    text.split_whitespace()
        .find(|word| word.starts_with("hookd_"))
        .map(str::to_owned)
}

async fn run(command: &mut Command) -> (bool, String, String) {
    let output = command.output().await.unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn zero_config_start_prints_the_admin_key_once() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut command = hookd(dir.path());
    command.args(["serve", "--listen", "127.0.0.1:0"]);
    let mut server = start(command).await;
    let first_line = tokio::time::timeout(Duration::from_secs(5), async {
        let mut seen = String::new();
        while let Some(line) = server.stdout.next_line().await.unwrap() {
            seen.push_str(&line);
            if let Some(key) = find_key(&seen) {
                return key;
            }
        }
        panic!("no key on stdout: {seen}");
    })
    .await
    .unwrap();
    let key = first_line;
    assert_eq!(server.status_with_key(&key).await, 200);
    assert_eq!(server.status_with_key("hookd_wrong").await, 401);
    let rest = server.terminate().await;
    assert!(find_key(&rest).is_none());
    assert!(
        dir.path().join("hookd-data/hookd.db").exists(),
        "data lives in ./hookd-data by default"
    );

    let mut command = hookd(dir.path());
    command.args(["serve", "--listen", "127.0.0.1:0"]);
    let server = start(command).await;
    assert_eq!(
        server.status_with_key(&key).await,
        200,
        "the key survives restarts"
    );
    let stdout = server.terminate().await;
    assert!(find_key(&stdout).is_none(), "printed again: {stdout}");
}

#[tokio::test]
async fn environment_configures_data_dir_listen_and_key() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("elsewhere");
    let mut command = hookd(dir.path());
    command
        .arg("serve")
        .env("HOOKD_LISTEN", "127.0.0.1:0")
        .env("HOOKD_DATA_DIR", &data)
        .env("HOOKD_API_KEY", "hookd_from_environment");
    let server = start(command).await;
    assert_eq!(server.status_with_key("hookd_from_environment").await, 200);
    let stdout = server.terminate().await;
    assert!(
        find_key(&stdout).is_none(),
        "no admin key when one is configured"
    );
    assert!(data.join("hookd.db").exists());
    assert!(!dir.path().join("hookd-data").exists());
}

#[tokio::test]
async fn api_keys_are_managed_offline_and_revocation_is_immediate() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let mut command = hookd(dir.path());
    command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir", data_arg]);
    let server = start(command).await;

    let (ok, stdout, _) =
        run(hookd(dir.path()).args(["api-keys", "create", "--name", "ci", "--data-dir", data_arg]))
            .await;
    assert!(ok);
    let key = find_key(&stdout).expect("key printed");
    assert_eq!(server.status_with_key(&key).await, 200);

    let (ok, listed, _) =
        run(hookd(dir.path()).args(["api-keys", "list", "--json", "--data-dir", data_arg])).await;
    assert!(ok);
    let keys: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let ci = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "ci")
        .cloned()
        .unwrap();
    assert!(!listed.contains(&key), "listing never shows a key");
    assert_eq!(ci["revoked_at"], serde_json::Value::Null);
    let (ok, table, _) =
        run(hookd(dir.path()).args(["api-keys", "list", "--data-dir", data_arg])).await;
    assert!(ok);
    assert!(table.contains("ci") && table.contains("admin") && table.contains("active"));

    let id = ci["id"].as_str().unwrap();
    let (ok, _, _) =
        run(hookd(dir.path()).args(["api-keys", "revoke", id, "--data-dir", data_arg])).await;
    assert!(ok);
    assert_eq!(server.status_with_key(&key).await, 401);
    let (ok, _, stderr) =
        run(hookd(dir.path()).args(["api-keys", "revoke", id, "--data-dir", data_arg])).await;
    assert!(!ok, "revoking twice fails");
    assert!(stderr.contains(id), "{stderr}");
    server.terminate().await;
}

#[tokio::test]
async fn api_keys_created_offline_carry_scopes_and_an_owner() {
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let mut command = hookd(dir.path());
    command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir", data_arg]);
    let server = start(command).await;
    let create = |extra: &[&str]| {
        let mut args = vec!["api-keys", "create", "--data-dir", data_arg];
        args.extend_from_slice(extra);
        let mut command = hookd(dir.path());
        command.args(args);
        command
    };

    let (ok, stdout, stderr) = run(&mut create(&[
        "--name", "feed", "--scope", "publish", "--owner", "acme",
    ]))
    .await;
    assert!(ok, "{stderr}");
    let publish_key = find_key(&stdout).expect("key printed");
    assert_eq!(
        server.status_with_key(&publish_key).await,
        403,
        "a publish key cannot list subscriptions"
    );
    let (ok, stdout, _) = run(&mut create(&["--name", "reader", "--scope", "read"])).await;
    assert!(ok);
    let read_key = find_key(&stdout).expect("key printed");
    assert_eq!(server.status_with_key(&read_key).await, 200);

    let (ok, listed, _) =
        run(hookd(dir.path()).args(["api-keys", "list", "--json", "--data-dir", data_arg])).await;
    assert!(ok);
    let keys: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let feed = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "feed")
        .cloned()
        .unwrap();
    assert_eq!(feed["scopes"], serde_json::json!(["publish"]));
    assert_eq!(feed["owner"], "acme");
    let (ok, table, _) =
        run(hookd(dir.path()).args(["api-keys", "list", "--data-dir", data_arg])).await;
    assert!(ok);
    assert!(table.contains("SCOPES") && table.contains("publish") && table.contains("acme"));

    for (bad, field) in [
        (&["--scope", "root"][..], "scopes"),
        (&["--owner", " acme"][..], "owner"),
    ] {
        let (ok, _, stderr) = run(&mut create(bad)).await;
        assert!(!ok, "{bad:?}");
        assert!(stderr.contains(field), "{stderr}");
    }
    server.terminate().await;
}

#[tokio::test]
async fn unknown_config_key_is_an_error_naming_it() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("hookd.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:0\"\nretries = 3\n").unwrap();
    let (ok, _, stderr) =
        run(hookd(dir.path()).args(["serve", "--config", file.to_str().unwrap()])).await;
    assert!(!ok);
    assert!(stderr.contains("retries"), "{stderr}");
}

#[tokio::test]
async fn a_retention_shorter_than_the_retry_schedule_refuses_to_start() {
    let dir = tempfile::TempDir::new().unwrap();
    // The default policy retries after 2, 4, 8 and 16 s: up to 36 s with jitter.
    let (ok, _, stderr) = run(hookd(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", "d"])
        .env("HOOKD_RETENTION_DELIVERED_MS", "30000"))
    .await;
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("retention_delivered_ms (30000 ms, 30 s)")
            && stderr.contains("36000 ms, 36 s: the default retry policy"),
        "{stderr}"
    );
    let mut command = hookd(dir.path());
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", "d"])
        .env("HOOKD_RETENTION_DELIVERED_MS", "36000")
        .env("HOOKD_RETENTION_DEAD_MS", "604800000");
    start(command).await.terminate().await;
}

#[tokio::test]
async fn config_file_is_read_and_flags_override_it() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("hookd.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:1\"\napi_key = \"hookd_from_file\"\ndata_dir = \"filedata\"\n",
    )
    .unwrap();
    let mut command = hookd(dir.path());
    command.args([
        "serve",
        "--config",
        file.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ]);
    let server = start(command).await;
    assert_ne!(server.address.port(), 1, "the flag wins over the file");
    assert_eq!(server.status_with_key("hookd_from_file").await, 200);
    server.terminate().await;
    assert!(dir.path().join("filedata/hookd.db").exists());
}

#[tokio::test]
async fn migrate_and_openapi_commands() {
    let dir = tempfile::TempDir::new().unwrap();
    let (ok, stdout, stderr) = run(hookd(dir.path()).args(["migrate", "--data-dir", "d"])).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("is at migration 18"), "{stdout}");
    assert!(dir.path().join("d/hookd.db").exists());
    let (ok, stdout, _) = run(hookd(dir.path()).arg("openapi")).await;
    assert!(ok);
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let (ok, _, stderr) = run(hookd(dir.path()).arg("no-such-command")).await;
    assert!(!ok);
    assert!(stderr.contains("no-such-command"), "{stderr}");
}

#[tokio::test]
async fn worker_role_serves_health_and_metrics_but_not_the_api() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut command = hookd(dir.path());
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--role", "worker"])
        .env("HOOKD_API_KEY", "hookd_k")
        .env("HOOKD_PUBLIC_METRICS", "true");
    let server = start(command).await;
    let client = reqwest::Client::new();
    let get = |path: &str| {
        client
            .get(format!("http://{}{path}", server.address))
            .bearer_auth("hookd_k")
            .send()
    };
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    assert_eq!(get("/metrics").await.unwrap().status(), 200);
    assert_eq!(get("/api/webhooks").await.unwrap().status(), 404);
    server.terminate().await;
}

/// A full scenario with debug logging: no secret, API key or payload may appear in the logs.
#[tokio::test]
async fn debug_logs_never_contain_secrets_or_payloads() {
    let dir = tempfile::TempDir::new().unwrap();
    let api_key = "hookd_log_test_key_0123456789";
    let mut command = hookd(dir.path());
    command
        .args(["serve", "--dev", "--listen", "127.0.0.1:0"])
        .env("HOOKD_API_KEY", api_key)
        .env("RUST_LOG", "debug");
    let mut server = start(command).await;
    let client = reqwest::Client::new();
    let base = format!("http://{}", server.address);
    // A receiver: hookd itself (the inbound endpoint), so the delivery is verified too.
    let created: serde_json::Value = json_reply(
        client
            .post(format!("{base}/api/webhooks"))
            .json(&serde_json::json!({"url": "http://127.0.0.1:9/placeholder", "events": ["*"]})),
        api_key,
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    client
        .patch(format!("{base}/api/webhooks/{id}"))
        .bearer_auth(api_key)
        .json(&serde_json::json!({"url": format!("{base}/webhooks/{id}")}))
        .send()
        .await
        .unwrap();
    let marker = "PAYLOAD-MARKER-7f3a9c";
    let published: serde_json::Value = json_reply(
        client
            .post(format!("{base}/api/events"))
            .json(&serde_json::json!({"event": "order.created", "data": {"note": marker}})),
        api_key,
    )
    .await;
    let event_id = published["id"].as_str().unwrap();
    wait::until_every(wait::DEFAULT_LIMIT, Duration::from_millis(50), async || {
        let event: serde_json::Value =
            json_reply(client.get(format!("{base}/api/events/{event_id}")), api_key).await;
        match event["deliveries"][0]["state"] == "delivered" {
            true => Ok(()),
            false => Err(format!("not delivered: {event}")),
        }
    })
    .await;
    let rotated: serde_json::Value = json_reply(
        client.post(format!("{base}/api/webhooks/{id}/rotate-secret")),
        api_key,
    )
    .await;
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    client
        .get(format!("{base}/api/webhooks"))
        .bearer_auth("hookd_wrong_key_for_the_log_test")
        .send()
        .await
        .unwrap();
    let pid = server.child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(15), server.child.wait()).await;
    let logs = drain(&mut server._stderr).await;
    assert!(
        logs.contains("DEBUG"),
        "debug logging was on: {}",
        &logs[..logs.len().min(500)]
    );
    for (what, needle) in [
        ("API key", api_key),
        ("wrong API key", "hookd_wrong_key_for_the_log_test"),
        ("secret", secret.as_str()),
        ("secret body", secret.trim_start_matches("whsec_")),
        ("rotated secret", new_secret.trim_start_matches("whsec_")),
        ("payload", marker),
    ] {
        assert!(!logs.contains(needle), "the {what} appears in the logs");
    }
}

/// Sends an API request with `key` and returns its JSON reply.
async fn json_reply(request: reqwest::RequestBuilder, key: &str) -> serde_json::Value {
    request
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Creates a subscription on a running server and returns its id and secret.
async fn create_subscription(server: &Server, key: &str) -> (String, String) {
    let created: serde_json::Value = json_reply(
        reqwest::Client::new()
            .post(format!("http://{}/api/webhooks", server.address))
            .json(&serde_json::json!({"url": "https://example.com/hook", "events": ["*"]})),
        key,
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    (id, created["secret"].as_str().unwrap().to_owned())
}

async fn secret_of(server: &Server, key: &str, id: &str) -> String {
    let reply: serde_json::Value = json_reply(
        reqwest::Client::new().get(format!(
            "http://{}/api/webhooks/{id}/secret",
            server.address
        )),
        key,
    )
    .await;
    reply["secret"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn master_key_rotate_reencrypts_and_servers_keep_their_secrets() {
    const KEY: &str = "hookd_cli_rotation_test_key";
    let dir = tempfile::TempDir::new().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let serve = |master_key: Option<&str>| {
        let mut command = hookd(dir.path());
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", data_arg])
            .env("HOOKD_API_KEY", KEY);
        if let Some(master_key) = master_key {
            command.env("HOOKD_MASTER_KEY", master_key);
        }
        command
    };
    let key_file = data.join("master.key");

    // Keys in the data dir: the running server follows the rotation by itself.
    let server = start(serve(None)).await;
    let (id, secret) = create_subscription(&server, KEY).await;
    let old_key = std::fs::read_to_string(&key_file).unwrap();
    let (ok, stdout, stderr) =
        run(hookd(dir.path()).args(["master-key", "rotate", "--data-dir", data_arg])).await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("Re-encrypted 1 secret with master key"),
        "{stdout}"
    );
    assert!(stdout.contains("now holds the new key"), "{stdout}");
    let new_key = std::fs::read_to_string(&key_file).unwrap();
    assert_ne!(new_key, old_key);
    assert!(
        !stdout.contains(new_key.trim()),
        "a key file's key is not printed"
    );
    assert!(!data.join("master.key.next").exists());
    assert_eq!(secret_of(&server, KEY, &id).await, secret);
    server.terminate().await;
    let server = start(serve(None)).await;
    assert_eq!(secret_of(&server, KEY, &id).await, secret);
    server.terminate().await;

    // A configured key (HOOKD_MASTER_KEY): the new key is printed for the operator to install.
    let (ok, stdout, stderr) = run(hookd(dir.path())
        .args(["master-key", "rotate", "--data-dir", data_arg])
        .env("HOOKD_MASTER_KEY", new_key.trim()))
    .await;
    assert!(ok, "{stderr}");
    let installed = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("HOOKD_MASTER_KEY="))
        .unwrap_or_else(|| panic!("no key printed: {stdout}"))
        .to_owned();
    assert!(stdout.contains("restart every hookd node"), "{stdout}");
    assert!(stdout.contains("master.key.next"), "{stdout}");
    std::fs::remove_file(data.join("master.key.next")).unwrap();
    let server = start(serve(Some(&installed))).await;
    assert_eq!(secret_of(&server, KEY, &id).await, secret);
    server.terminate().await;

    // The server still configured with the retired key refuses to start, and says why.
    let (ok, _, stderr) = run(&mut serve(Some(new_key.trim()))).await;
    assert!(!ok);
    assert!(stderr.contains("does not have"), "{stderr}");

    let (ok, _, stderr) = run(hookd(dir.path()).args([
        "master-key",
        "rotate",
        "--data-dir",
        data_arg,
        "--new-key",
        "too-short",
    ]))
    .await;
    assert!(!ok);
    assert!(stderr.contains("--new-key"), "{stderr}");
}
