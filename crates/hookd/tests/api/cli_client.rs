//! The `hookd` client commands, run as the real binary against a live server.

use crate::common::*;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_hookd");

struct Output {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Output {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

fn command(app: &TestApp) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .env("HOOKD_URL", format!("http://{}", app.address))
        .env("HOOKD_API_KEY", &app.key)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

async fn hookd(app: &TestApp, args: &[&str]) -> Output {
    let output = command(app).args(args).output().await.unwrap();
    Output {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs the command with `--json` and returns its parsed output (asserting success).
async fn hookd_json(app: &TestApp, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let output = hookd(app, &all).await;
    assert!(output.ok, "{args:?}: {}", output.stderr);
    output.json()
}

/// Runs the command as a table and returns stdout (asserting success).
async fn hookd_table(app: &TestApp, args: &[&str]) -> String {
    let output = hookd(app, args).await;
    assert!(output.ok, "{args:?}: {}", output.stderr);
    output.stdout
}

#[tokio::test]
async fn webhook_commands() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let url = receiver.url("/h");
    let created = hookd_json(
        &app,
        &[
            "webhooks",
            "create",
            &url,
            "--events",
            "order.*,payment.failed",
            "--description",
            "cli",
            "--header",
            "X-Team: billing",
            "--timeout-ms",
            "5000",
        ],
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["events"], json!(["order.*", "payment.failed"]));
    assert_eq!(created["headers"], json!({"x-team": "billing"}));
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));

    let table = hookd_table(&app, &["webhooks", "list"]).await;
    assert!(table.starts_with("ID "), "{table}");
    assert!(
        table.contains(&id) && table.contains("order.*,payment.failed"),
        "{table}"
    );
    let listed = hookd_json(&app, &["webhooks", "list", "--active", "true"]).await;
    assert_eq!(listed["data"][0]["id"], id.as_str());

    let got = hookd_table(&app, &["webhooks", "get", &id]).await;
    assert!(got.contains("description") && got.contains("cli"), "{got}");
    let updated = hookd_json(
        &app,
        &[
            "webhooks",
            "update",
            &id,
            "--events",
            "*",
            "--description",
            "changed",
        ],
    )
    .await;
    assert_eq!(updated["events"], json!(["*"]));
    assert_eq!(updated["description"], "changed");

    let secret = hookd_json(&app, &["webhooks", "secret", &id]).await;
    assert_eq!(secret["secret"], created["secret"]);
    let rotated = hookd_json(
        &app,
        &["webhooks", "rotate-secret", &id, "--overlap-seconds", "60"],
    )
    .await;
    assert_ne!(rotated["secret"], created["secret"]);

    let test = hookd_table(&app, &["webhooks", "test", &id]).await;
    assert!(test.contains("queued"), "{test}");
    let request = receiver.wait_for("/h", 1).await.remove(0);
    assert_eq!(request.json()["event"], "webhook.test");
    assert_eq!(request.header("x-team"), "billing");

    let disabled = hookd_table(&app, &["webhooks", "disable", &id]).await;
    assert!(disabled.contains("disabled"));
    assert_eq!(
        hookd_json(&app, &["webhooks", "get", &id]).await["active"],
        false
    );
    let enabled = hookd_json(&app, &["webhooks", "enable", &id, "--replay"]).await;
    assert_eq!(enabled["webhook"]["active"], true);
    let recovered = hookd_json(
        &app,
        &[
            "webhooks",
            "recover",
            &id,
            "--since",
            "2000-01-01T00:00:00Z",
        ],
    )
    .await;
    assert_eq!(recovered["recovered"], 0);
    let received = hookd_json(&app, &["webhooks", "received", &id]).await;
    assert_eq!(received["data"], json!([]));

    let deleted = hookd_table(&app, &["webhooks", "delete", &id]).await;
    assert!(deleted.contains(&id));
    let missing = hookd(&app, &["webhooks", "get", &id]).await;
    assert!(!missing.ok);
    assert!(
        missing.stderr.contains("webhook not found"),
        "{}",
        missing.stderr
    );
    let invalid = hookd(&app, &["webhooks", "create", "ftp://x", "--events", "*"]).await;
    assert!(!invalid.ok);
    assert!(
        invalid.stderr.contains("scheme must be http or https"),
        "{}",
        invalid.stderr
    );
}

#[tokio::test]
async fn event_delivery_and_dead_letter_commands() {
    let app = spawn_app_with(|c| {
        c.retry = Some(hookd_core::RetryPolicy::Exponential {
            max_attempts: 1,
            base_delay_ms: 10,
            max_delay_ms: 10,
        })
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.script("/h", [Answer::Status(500)]);
    let sub = app.subscribe(&receiver.url("/h"), &["order.*"]).await;
    let sub_id = sub["id"].as_str().unwrap();

    let published = hookd_json(
        &app,
        &[
            "events",
            "publish",
            "--type",
            "order.created",
            "--data",
            r#"{"orderId":"ORD-1"}"#,
            "--id",
            "ord-1",
        ],
    )
    .await;
    assert_eq!(published["id"], "ord-1");
    assert_eq!(published["deliveries"], 1);
    let again = hookd_table(
        &app,
        &[
            "events",
            "publish",
            "--type",
            "order.created",
            "--data",
            r#"{"orderId":"ORD-1"}"#,
            "--id",
            "ord-1",
        ],
    )
    .await;
    assert!(again.contains("already published"), "{again}");
    assert!(again.contains("1 delivery queued"), "{again}");
    let bad = hookd(
        &app,
        &[
            "events",
            "publish",
            "--type",
            "order.created",
            "--data",
            "{nope",
        ],
    )
    .await;
    assert!(!bad.ok && bad.stderr.contains("--data"), "{}", bad.stderr);

    app.wait_for_delivery_state("ord-1", "dead").await;
    let event = hookd_json(&app, &["events", "get", "ord-1"]).await;
    assert_eq!(event["data"], json!({"orderId": "ORD-1"}));
    let event_table = hookd_table(&app, &["events", "get", "ord-1"]).await;
    assert!(event_table.contains("dead"), "{event_table}");
    let events = hookd_json(&app, &["events", "list", "--type", "order.created"]).await;
    assert_eq!(events["data"].as_array().unwrap().len(), 1);
    assert!(
        hookd_table(&app, &["events", "list"])
            .await
            .contains("ord-1")
    );

    let deliveries = hookd_json(&app, &["deliveries", "list", "--webhook", sub_id]).await;
    let delivery_id = deliveries["data"][0]["id"].as_str().unwrap().to_owned();
    let detail = hookd_table(&app, &["deliveries", "get", &delivery_id]).await;
    assert!(detail.contains("HTTP 500"), "{detail}");
    let dead = hookd_table(&app, &["dead-letters", "list"]).await;
    assert!(
        dead.contains(&delivery_id) && dead.contains("order.created"),
        "{dead}"
    );

    let redriven = hookd_json(&app, &["dead-letters", "redrive", "--webhook", sub_id]).await;
    assert_eq!(redriven["redriven"], 1);
    app.wait_for_delivery_state("ord-1", "delivered").await;
    let retried = hookd_table(&app, &["deliveries", "retry", &delivery_id]).await;
    assert!(retried.contains("queued"));
    receiver.wait_for("/h", 3).await;

    let metrics = hookd_json(&app, &["metrics", "--webhook", sub_id]).await;
    assert_eq!(metrics["total"], 1);
    assert!(
        hookd_table(&app, &["metrics"])
            .await
            .contains("successRate")
    );
}

#[tokio::test]
async fn event_type_commands() {
    let app = spawn_app().await;
    let added = hookd_json(
        &app,
        &[
            "event-types",
            "add",
            "plan.renewed",
            "--description",
            "Renewed",
        ],
    )
    .await;
    assert_eq!(added["name"], "plan.renewed");
    let table = hookd_table(&app, &["event-types", "list"]).await;
    assert!(table.contains("plan.renewed") && table.contains("Renewed"));
    assert!(
        hookd_table(&app, &["event-types", "archive", "plan.renewed"])
            .await
            .contains("archived")
    );
    let listed = hookd_json(&app, &["event-types", "list"]).await;
    assert!(!listed.to_string().contains("plan.renewed"));
    let all = hookd_json(&app, &["event-types", "list", "--include-archived"]).await;
    assert!(all.to_string().contains("plan.renewed"));
    let duplicate = hookd(&app, &["event-types", "add", "order.created"]).await;
    assert!(
        !duplicate.ok && duplicate.stderr.contains("event_type_exists"),
        "{}",
        duplicate.stderr
    );
}

#[tokio::test]
async fn event_types_get_a_schema_from_a_file() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("schema.json");
    let schema_json = json!({"type": "object", "required": ["plan"]});
    std::fs::write(&schema, schema_json.to_string()).unwrap();
    let examples = dir.path().join("examples.json");
    std::fs::write(&examples, r#"[{"plan": "pro"}]"#).unwrap();
    let schema_path = schema.to_str().unwrap();
    let examples_path = examples.to_str().unwrap();
    let added = hookd_json(
        &app,
        &[
            "event-types",
            "add",
            "plan.changed",
            "--schema",
            schema_path,
        ],
    )
    .await;
    assert_eq!(added["schema"], schema_json);
    assert_eq!(added["validate"], "off");
    let set = hookd_json(
        &app,
        &[
            "event-types",
            "set",
            "plan.changed",
            "--examples",
            examples_path,
            "--validate",
            "enforce",
        ],
    )
    .await;
    assert_eq!(set["validate"], "enforce");
    assert_eq!(set["examples"], json!([{"plan": "pro"}]));
    assert_eq!(set["schema"], schema_json, "set keeps what it is not given");
    let refused = app
        .post("/api/events", json!({"event": "plan.changed", "data": {}}))
        .await;
    refused.assert_error(422, "schema_mismatch");

    std::fs::write(&schema, r#"{"type": "object", "required": ["sku"]}"#).unwrap();
    let output = hookd(
        &app,
        &[
            "event-types",
            "set",
            "plan.changed",
            "--schema",
            schema_path,
        ],
    )
    .await;
    assert!(
        !output.ok && output.stderr.contains("invalid_example"),
        "the example no longer fits: {}",
        output.stderr
    );
    let cleared = hookd_json(
        &app,
        &["event-types", "set", "plan.changed", "--clear-schema"],
    )
    .await;
    assert_eq!(cleared["schema"], Value::Null);
    let shown = hookd_json(&app, &["event-types", "get", "plan.changed"]).await;
    assert_eq!(shown["schema"], Value::Null);
    assert_eq!(shown["validate"], "enforce");
}

#[tokio::test]
async fn client_errors_are_clear() {
    let app = spawn_app().await;
    let mut wrong_key = command(&app);
    let output = wrong_key
        .env("HOOKD_API_KEY", "hookd_wrong")
        .args(["webhooks", "list"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid or revoked API key"));
    let down = Command::new(BIN)
        .env_clear()
        .args([
            "webhooks",
            "list",
            "--url",
            "http://127.0.0.1:9",
            "--api-key",
            "k",
        ])
        .output()
        .await
        .unwrap();
    assert!(!down.status.success());
    assert!(String::from_utf8_lossy(&down.stderr).contains("cannot reach hookd"));
}

/// What a running `hookd listen` printed so far.
struct Printed {
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    seen: String,
}

impl Printed {
    fn of(child: &mut tokio::process::Child) -> Self {
        let stdout = child.stdout.take().expect("stdout is piped");
        Self {
            lines: BufReader::new(stdout).lines(),
            seen: String::new(),
        }
    }

    /// Reads lines until `needle` was printed (within 20 s); returns everything printed so far.
    async fn read_until(&mut self, needle: &str) -> String {
        let (lines, seen) = (&mut self.lines, &mut self.seen);
        tokio::time::timeout(Duration::from_secs(20), async {
            while !seen.contains(needle) {
                let line = lines.next_line().await.unwrap().expect("listen exited");
                seen.push_str(&line);
                seen.push('\n');
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {needle:?} in:\n{}", self.seen));
        self.seen.clone()
    }
}

#[tokio::test]
async fn listen_verifies_prints_and_forwards() {
    let app = spawn_app().await;
    let forward = Receiver::start().await;
    let port = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap().port()
    };
    let port_text = port.to_string();
    let mut child = command(&app)
        .args([
            "listen",
            "--port",
            &port_text,
            "--events",
            "order.*",
            "--forward-to",
            &forward.url("/app"),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut output = Printed::of(&mut child);
    let mut read_until = async |needle: &str| output.read_until(needle).await;
    let ready = read_until("Ready").await;
    assert!(ready.contains("Subscribed wh_"), "{ready}");

    let published = app
        .post(
            "/api/events",
            json!({"event": "order.created", "data": {"orderId": "ORD-7"}}),
        )
        .await;
    let event_id = published.body["id"].as_str().unwrap().to_owned();
    let printed = read_until("<-- 200").await;
    assert!(
        printed.contains(&format!(
            "--> order.created {event_id} attempt 1 [verified]"
        )),
        "{printed}"
    );
    assert!(printed.contains("\"orderId\": \"ORD-7\""), "{printed}");
    let forwarded = forward.wait_for("/app", 1).await.remove(0);
    assert_eq!(forwarded.header("webhook-id"), event_id);
    assert!(!forwarded.header("webhook-signature").is_empty());
    assert_eq!(forwarded.json()["data"]["orderId"], "ORD-7");
    app.wait_for_delivery_state(&event_id, "delivered").await;

    // A forged request is refused with 401.
    let forged = app
        .client
        .post(format!("http://127.0.0.1:{port}/"))
        .header("webhook-id", "msg_x")
        .header("webhook-timestamp", "1")
        .header("webhook-signature", "v1,AAAA")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    read_until("INVALID").await;

    // Ctrl-C (SIGTERM here) unsubscribes.
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    read_until("Unsubscribed").await;
    let _ = child.wait().await;
    let remaining = app.get("/api/webhooks").await.body;
    assert_eq!(remaining["data"], json!([]));
}

#[tokio::test]
async fn listen_unsubscribes_when_its_terminal_closes() {
    let app = spawn_app().await;
    let port = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap().port()
    };
    let mut child = command(&app)
        .args(["listen", "--port", &port.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("Ready") {
                return;
            }
        }
        panic!("listen exited before it was ready");
    })
    .await
    .expect("listen did not get ready");
    let subscribed = app.get("/api/webhooks").await.body;
    assert_eq!(subscribed["data"].as_array().unwrap().len(), 1);

    // The terminal goes away: its output is gone, and the process gets SIGHUP.
    drop(lines);
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("listen did not exit on SIGHUP")
        .unwrap();
    assert!(
        status.code().is_some(),
        "listen exited by itself, not killed by the signal"
    );
    let remaining = app.get("/api/webhooks").await.body;
    assert_eq!(remaining["data"], json!([]), "the subscription was removed");
}

#[tokio::test]
async fn verify_prints_json_with_the_json_flag() {
    let run = |extra: &'static str| async move {
        let mut args = vec![
            "--json",
            "verify",
            "--secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ];
        args.extend([
            "-H",
            "webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek",
            "-H",
            "webhook-timestamp: 1614265330",
            "-H",
            "webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "--now",
            "1614265330",
        ]);
        let mut child = Command::new(BIN)
            .env_clear()
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(format!(r#"{{"test": 243223231{extra}}}"#).as_bytes())
            .await
            .unwrap();
        drop(stdin);
        let output = child.wait_with_output().await.unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let json: Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
        (output.status.success(), json)
    };
    let (ok, valid) = run("4").await;
    assert!(ok);
    assert_eq!(valid["valid"], true);
    assert_eq!(valid["webhook_id"], "msg_p5jXN8AQM9LWM0D4loKWxJek");
    assert_eq!(valid["timestamp"], 1614265330);
    let (ok, invalid) = run("5").await;
    assert!(!ok, "an invalid signature still exits non-zero");
    assert_eq!(invalid["valid"], false);
    assert!(
        invalid["error"].as_str().unwrap().contains("no signature"),
        "{invalid}"
    );
}

#[tokio::test]
async fn verify_command_checks_signatures_offline() {
    let app = spawn_app().await;
    let run = |args: Vec<String>, body: &'static str| async move {
        let mut child = Command::new(BIN)
            .env_clear()
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(body.as_bytes()).await.unwrap();
        drop(stdin);
        let output = child.wait_with_output().await.unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr),
        )
    };
    let vector = |signature: &str, now: &str| -> Vec<String> {
        [
            "verify",
            "--secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "-H",
            "webhook-id: msg_p5jXN8AQM9LWM0D4loKWxJek",
            "-H",
            "webhook-timestamp: 1614265330",
            "-H",
            &format!("webhook-signature: {signature}"),
            "--now",
            now,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let good = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    let (ok, text) = run(vector(good, "1614265330"), r#"{"test": 2432232314}"#).await;
    assert!(ok, "{text}");
    assert!(
        text.contains("valid: webhook-id msg_p5jXN8AQM9LWM0D4loKWxJek"),
        "{text}"
    );
    let (ok, text) = run(vector(good, "1614265330"), r#"{"test": 2432232315}"#).await;
    assert!(!ok && text.contains("no signature"), "{text}");
    let (ok, text) = run(vector(good, "1614266000"), r#"{"test": 2432232314}"#).await;
    assert!(!ok && text.contains("older"), "{text}");
    let hex = hookd_verify::sign_hex("whsec_x", b"{}");
    let legacy: Vec<String> = [
        "verify",
        "--secret",
        "whsec_x",
        "-H",
        &format!("X-Webhook-Signature: {hex}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let (ok, text) = run(legacy, "{}").await;
    assert!(ok, "{text}");
    drop(app);
}

/// Runs `hookd verify` over a captured delivery with the given key flags.
async fn verify_captured(request: &Received, flags: &[&str]) -> (bool, String) {
    let mut args: Vec<String> = vec!["verify".into()];
    args.extend(flags.iter().map(|s| s.to_string()));
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        args.push("-H".into());
        args.push(format!("{name}: {}", request.header(name)));
    }
    let mut child = Command::new(BIN)
        .env_clear()
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::AsyncWriteExt;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&request.body).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

#[tokio::test]
async fn v1a_keys_are_shown_rotated_and_verified_from_the_command_line() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let url = receiver.url("/ed");
    let created = hookd_json(
        &app,
        &[
            "webhooks",
            "create",
            &url,
            "--events",
            "order.*",
            "--signature-schemes",
            "v1a",
        ],
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let keys = hookd_json(&app, &["webhooks", "public-key", &id]).await;
    let public_key = keys["keys"][0]["public_key"].as_str().unwrap().to_owned();
    let table = hookd_table(&app, &["webhooks", "public-key", &id]).await;
    assert!(
        table.contains(&public_key) && table.contains("KID"),
        "{table}"
    );

    app.publish(json!({"event": "order.created", "data": {"n": 1}}))
        .await;
    let request = receiver.wait_for("/ed", 1).await.remove(0);
    let (ok, text) = verify_captured(&request, &["--public-key", &public_key]).await;
    assert!(ok, "{text}");
    let stranger = hookd_verify::SigningKeyPair::from_seed(&[3; 32]).public_key();
    let (ok, text) = verify_captured(&request, &["--public-key", &stranger]).await;
    assert!(!ok && text.contains("no signature"), "{text}");

    let rotated = hookd_json(
        &app,
        &[
            "webhooks",
            "rotate-signing-key",
            &id,
            "--overlap-seconds",
            "60",
        ],
    )
    .await;
    assert_eq!(rotated["keys"].as_array().unwrap().len(), 2);
    assert_eq!(rotated["keys"][1]["public_key"], public_key.as_str());
}

#[tokio::test]
async fn verify_reads_a_secret_of_the_subscribers_choosing_as_hookd_does() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    // 64 hex characters: also valid base64, so reading it as base64 would give the wrong key.
    let secret = "3f1c2b9a8e7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170615ab";
    app.subscribe_with(json!({"url": receiver.url("/hex"), "events": ["*"], "secret": secret}))
        .await;
    app.publish(json!({"event": "order.created", "data": {"n": 1}}))
        .await;
    let request = receiver.wait_for("/hex", 1).await.remove(0);
    let (ok, text) = verify_captured(&request, &["--secret", secret]).await;
    assert!(ok, "{text}");
    let (ok, text) = verify_captured(&request, &["--secret", &secret.replace('3', "4")]).await;
    assert!(!ok, "{text}");
}

#[tokio::test]
async fn listen_verifies_v1a_with_a_public_key_and_no_secret() {
    let app = spawn_app().await;
    let pair = hookd_verify::SigningKeyPair::from_seed(&[5; 32]);
    let port = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap().port()
    };
    let port_text = port.to_string();
    let public_key = pair.public_key();
    let mut child = command(&app)
        .args(["listen", "--port", &port_text, "--public-key", &public_key])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut output = Printed::of(&mut child);
    let mut read_until = async |needle: &str| output.read_until(needle).await;
    let ready = read_until("Ready").await;
    assert!(!ready.contains("Subscribed"), "{ready}");
    app.subscribe_with(
        json!({"url": format!("http://127.0.0.1:{port}/"), "events": ["*"],
                              "signature_schemes": ["v1a"], "signing_key": pair.to_text()}),
    )
    .await;
    let event_id = app
        .publish(json!({"event": "order.created", "data": {"n": 1}}))
        .await;
    let printed = read_until("[verified]").await;
    assert!(printed.contains(&event_id), "{printed}");
    app.wait_for_delivery_state(&event_id, "delivered").await;
    let _ = child.kill().await;
}

#[tokio::test]
async fn owner_commands_publish_list_and_erase() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let url = receiver.url("/acme");
    hookd_json(
        &app,
        &[
            "webhooks", "create", &url, "--events", "*", "--owner", "acme",
        ],
    )
    .await;
    hookd_json(
        &app,
        &[
            "webhooks",
            "create",
            "http://127.0.0.1:1/x",
            "--events",
            "*",
            "--owner",
            "glo bex",
        ],
    )
    .await;
    let listed = hookd_json(&app, &["webhooks", "list", "--owner", "acme"]).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    let published = hookd_json(
        &app,
        &[
            "events",
            "publish",
            "--type",
            "order.created",
            "--owner",
            "acme",
        ],
    )
    .await;
    assert_eq!(published["deliveries"], 1);
    receiver.wait_for("/acme", 1).await;
    let table = hookd_table(&app, &["owners", "list"]).await;
    assert!(
        table.contains("acme") && table.contains("glo bex"),
        "{table}"
    );
    let one = hookd_json(&app, &["owners", "get", "glo bex"]).await;
    assert_eq!(one["subscriptions"], 1);
    let refused = hookd(&app, &["owners", "delete", "acme"]).await;
    assert!(
        !refused.ok && refused.stderr.contains("--yes"),
        "{}",
        refused.stderr
    );
    let erased = hookd_json(&app, &["owners", "delete", "acme", "--yes"]).await;
    assert_eq!(erased["subscriptions"], 1);
    assert_eq!(erased["events"], 1);
    let gone = hookd(&app, &["owners", "get", "acme"]).await;
    assert!(!gone.ok);
}
