//! `hookd listen`: a local receiver for development, like `stripe listen`. It verifies every
//! delivery, prints it, and optionally forwards it to your app, answering hookd with your app's status
//! (so hookd's retries behave as they would in production).

use super::{ApiClient, ClientArgs, ClientError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hookd_verify::Verifier;
use serde_json::{Value, json};
use std::io::Write;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct ListenArgs {
    /// Port to listen on (127.0.0.1).
    #[arg(long, default_value_t = 9000)]
    pub port: u16,
    /// The subscription's secret. Without it, `listen` subscribes itself on the server (which must
    /// allow loopback URLs, e.g. `hookd serve --dev`) and unsubscribes on exit.
    #[arg(long, env = "HOOKD_LISTEN_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// An Ed25519 public key (`whpk_...`) that verifies `v1a` signatures (repeatable); with it and
    /// no `--secret`, only `v1a` signatures are accepted.
    #[arg(long = "public-key")]
    pub public_keys: Vec<String>,
    /// Event types to subscribe to when subscribing itself (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub events: Vec<String>,
    /// Forward each delivery (same headers and body) to this URL.
    #[arg(long)]
    pub forward_to: Option<String>,
}

struct Listener {
    verifier: Verifier,
    forward_to: Option<String>,
    http: reqwest::Client,
}

pub async fn run(client: &ClientArgs, args: ListenArgs) -> Result<(), ClientError> {
    crate::runtime::install_crypto_provider();
    let socket = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .map_err(|e| ClientError::Usage(format!("cannot listen on port {}: {e}", args.port)))?;
    let address = socket
        .local_addr()
        .map_err(|e| ClientError::Usage(e.to_string()))?;
    let api = ApiClient::new(client);
    let (secret, subscription) = match args.secret {
        Some(secret) => (Some(secret), None),
        None if !args.public_keys.is_empty() => (None, None),
        None => {
            let body = json!({"url": format!("http://{address}/"), "events": args.events,
                              "description": "hookd listen"});
            let created = api.post("/api/webhooks", &body).await?;
            let id = created["id"].as_str().unwrap_or_default().to_owned();
            println!(
                "Subscribed {id} to {} on {}",
                args.events.join(","),
                client.url
            );
            (created["secret"].as_str().map(str::to_owned), Some(id))
        }
    };
    let verifier = super::verify::verifier_for(secret.as_slice(), &args.public_keys)?;
    let state = Arc::new(Listener {
        verifier,
        forward_to: args.forward_to.clone(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default(),
    });
    // The signal handlers are installed before "Ready" is printed: a signal sent from then on is
    // always caught.
    let shutdown = crate::runtime::shutdown_or_hangup_signal();
    println!("Ready: listening on http://{address}/ (Ctrl-C to stop)");
    if let Some(target) = &args.forward_to {
        println!("Forwarding to {target}");
    }
    let app = Router::new()
        .fallback(axum::routing::post(receive))
        .with_state(state);
    let served = axum::serve(socket, app)
        // SIGHUP too: closing the terminal must not leave the subscription behind.
        .with_graceful_shutdown(shutdown)
        .await;
    if let Some(id) = subscription {
        let _ = api
            .call(
                reqwest::Method::DELETE,
                &format!("/api/webhooks/{id}"),
                None,
                &[],
            )
            .await;
        // After a hangup the terminal is gone: a failed write must not stop the clean-up.
        let _ = writeln!(std::io::stdout(), "Unsubscribed {id}");
    }
    served.map_err(|e| ClientError::Usage(e.to_string()))
}

async fn receive(
    State(listener): State<Arc<Listener>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
    };
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let event_type = parsed["event"].as_str().unwrap_or("-");
    let verdict = listener.verifier.verify(&headers, &body, now);
    let label = match &verdict {
        Ok(_) => "verified".to_owned(),
        Err(error) => format!("INVALID: {error}"),
    };
    // Written without `println!`, which panics once the terminal is gone (after a hangup).
    let _ = writeln!(
        std::io::stdout(),
        "--> {event_type} {} attempt {} [{label}]\n{}",
        header("webhook-id"),
        header("x-webhook-attempt"),
        serde_json::to_string_pretty(&parsed)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).into())
    );
    if verdict.is_err() {
        return (
            StatusCode::UNAUTHORIZED,
            r#"{"error":"invalid signature"}"#.into(),
        );
    }
    let Some(target) = &listener.forward_to else {
        return (StatusCode::OK, r#"{"received":true}"#.into());
    };
    let mut request = listener.http.post(target).body(body.clone());
    for (name, value) in headers.iter() {
        let forwarded = name.as_str().starts_with("webhook-")
            || name.as_str().starts_with("x-webhook-")
            || name == "content-type"
            || name == "user-agent";
        if forwarded {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            let _ = writeln!(std::io::stdout(), "<-- {} from {target}", status.as_u16());
            let text = response.text().await.unwrap_or_default();
            (
                StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
                text,
            )
        }
        Err(error) => {
            let _ = writeln!(
                std::io::stdout(),
                "<-- forwarding to {target} failed: {error}"
            );
            (
                StatusCode::BAD_GATEWAY,
                r#"{"error":"forward failed"}"#.into(),
            )
        }
    }
}
