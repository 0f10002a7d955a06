//! `hookd webhooks …`: subscriptions, their secrets and `v1a` keys.

use super::commands::{cell, parse_headers, parse_json, set};
use super::output::{self, Column};
use super::{ApiClient, ClientArgs, ClientError, with_query};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

const WEBHOOK_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("URL", "url"),
    ("EVENTS", "events"),
    ("ACTIVE", "active"),
    ("FAILURES", "failure_count"),
    ("CREATED", "created_at"),
];

const KEY_COLUMNS: &[Column] = &[
    ("KID", "kid"),
    ("PUBLIC KEY", "public_key"),
    ("NOT BEFORE", "not_before"),
    ("NOT AFTER", "not_after"),
];

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Subscribe an endpoint to event types.
    Create {
        /// The endpoint URL.
        endpoint: String,
        /// Event types, comma-separated (`order.created,payment.*` or `*`).
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
        /// A description shown in the dashboard and the portal.
        #[arg(long)]
        description: Option<String>,
        /// Bring your own secret: `whsec_...`, or any string of 16 to 256 visible characters;
        /// generated otherwise.
        #[arg(long)]
        secret: Option<String>,
        /// Signature schemes, comma-separated: `v1` (HMAC, the default), `v1a` (Ed25519), or both.
        #[arg(long, value_delimiter = ',')]
        signature_schemes: Option<Vec<String>>,
        /// The customer (owner) this endpoint belongs to: it gets the events published to it.
        #[arg(long)]
        owner: Option<String>,
        /// Metadata as a JSON object.
        #[arg(long)]
        metadata: Option<String>,
        /// Retry policy as JSON, e.g. '{"preset":"standard_webhooks"}'.
        #[arg(long)]
        retry: Option<String>,
        /// Per-attempt timeout in ms (1,000 to 60,000; default: the server's).
        #[arg(long)]
        timeout_ms: Option<i64>,
        /// A custom header `Name: value` (repeatable).
        #[arg(long = "header")]
        headers: Vec<String>,
    },
    /// List subscriptions, newest first.
    List {
        /// Only active (true) or only disabled (false) subscriptions.
        #[arg(long)]
        active: Option<bool>,
        /// Only this owner's subscriptions.
        #[arg(long)]
        owner: Option<String>,
        /// Page size, 1 to 250.
        #[arg(long)]
        limit: Option<u32>,
        /// `next_cursor` from the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one subscription.
    Get {
        /// The subscription id (`wh_...`).
        id: String,
    },
    /// Change an endpoint's settings.
    Update {
        /// The subscription id (`wh_...`).
        id: String,
        /// New endpoint URL.
        #[arg(long)]
        endpoint: Option<String>,
        /// New event types, comma-separated (replaces the old ones).
        #[arg(long, value_delimiter = ',')]
        events: Option<Vec<String>>,
        /// New description.
        #[arg(long)]
        description: Option<String>,
        /// New metadata as a JSON object.
        #[arg(long)]
        metadata: Option<String>,
        /// Enable (true) or disable (false) the subscription.
        #[arg(long)]
        active: Option<bool>,
        /// New retry policy as JSON.
        #[arg(long)]
        retry: Option<String>,
        /// New per-attempt timeout in ms (1,000 to 60,000).
        #[arg(long)]
        timeout_ms: Option<i64>,
        /// Signature schemes, comma-separated (`v1`, `v1a`); turning `v1a` on makes a key pair.
        #[arg(long, value_delimiter = ',')]
        signature_schemes: Option<Vec<String>>,
    },
    /// Delete a subscription and its deliveries.
    Delete {
        /// The subscription id (`wh_...`).
        id: String,
    },
    /// Enable a disabled subscription.
    Enable {
        /// The subscription id (`wh_...`).
        id: String,
        /// Re-queue the deliveries held while it was disabled.
        #[arg(long)]
        replay: bool,
    },
    /// Disable a subscription: matching events are held, not sent.
    Disable {
        /// The subscription id (`wh_...`).
        id: String,
    },
    /// Show the signing secret.
    Secret {
        /// The subscription id (`wh_...`).
        id: String,
    },
    /// Replace the signing secret; the old one keeps signing during the overlap.
    RotateSecret {
        /// The subscription id (`wh_...`).
        id: String,
        /// How long the old secret keeps signing too.
        #[arg(long)]
        overlap_seconds: Option<i64>,
    },
    /// Show the Ed25519 public keys that verify this endpoint's `v1a` signatures.
    PublicKey {
        /// The subscription id (`wh_...`).
        id: String,
    },
    /// Replace the `v1a` key pair; the old one keeps signing during the overlap.
    RotateSigningKey {
        /// The subscription id (`wh_...`).
        id: String,
        /// How long the old key keeps signing too.
        #[arg(long)]
        overlap_seconds: Option<i64>,
    },
    /// Send a `webhook.test` event to this endpoint.
    Test {
        /// The subscription id (`wh_...`).
        id: String,
    },
    /// Re-queue failed and dead deliveries since a time.
    Recover {
        /// The subscription id (`wh_...`).
        id: String,
        /// RFC 3339: deliveries that failed at or after this time.
        #[arg(long)]
        since: String,
        /// RFC 3339: and before this time (default: now).
        #[arg(long)]
        until: Option<String>,
    },
    /// What the inbound endpoint received for this subscription.
    Received {
        /// The subscription id (`wh_...`).
        id: String,
    },
}

pub async fn webhooks(args: &ClientArgs, command: WebhooksCommand) -> Result<(), ClientError> {
    let api = ApiClient::new(args);
    let json = args.json;
    match command {
        WebhooksCommand::Create {
            endpoint,
            events,
            description,
            secret,
            signature_schemes,
            owner,
            metadata,
            retry,
            timeout_ms,
            headers,
        } => {
            let mut body = json!({"url": endpoint, "events": events});
            set(&mut body, "description", description.map(Value::from));
            set(&mut body, "secret", secret.map(Value::from));
            set(&mut body, "owner", owner.map(Value::from));
            set(
                &mut body,
                "signature_schemes",
                signature_schemes.map(Value::from),
            );
            set(
                &mut body,
                "metadata",
                metadata.map(|m| parse_json("metadata", &m)).transpose()?,
            );
            set(
                &mut body,
                "retry",
                retry.map(|r| parse_json("retry", &r)).transpose()?,
            );
            set(&mut body, "timeout_ms", timeout_ms.map(Value::from));
            if !headers.is_empty() {
                body["headers"] = Value::Object(parse_headers(&headers)?);
            }
            let created = api.post("/api/webhooks", &body).await?;
            output::print(json, &created, output::record);
        }
        WebhooksCommand::List {
            active,
            owner,
            limit,
            cursor,
        } => {
            let path = with_query(
                "/api/webhooks",
                &[
                    ("active", active.map(|a| a.to_string())),
                    ("owner", owner),
                    ("limit", limit.map(|l| l.to_string())),
                    ("cursor", cursor),
                ],
            );
            let page = api.get(&path).await?;
            output::print(json, &page, |p| output::page(p, WEBHOOK_COLUMNS));
        }
        WebhooksCommand::Get { id } => {
            let webhook = api.get(&format!("/api/webhooks/{id}")).await?;
            output::print(json, &webhook, output::record);
        }
        WebhooksCommand::Update {
            id,
            endpoint,
            events,
            description,
            metadata,
            active,
            retry,
            timeout_ms,
            signature_schemes,
        } => {
            let mut body = json!({});
            set(&mut body, "url", endpoint.map(Value::from));
            set(&mut body, "events", events.map(Value::from));
            set(&mut body, "description", description.map(Value::from));
            set(
                &mut body,
                "metadata",
                metadata.map(|m| parse_json("metadata", &m)).transpose()?,
            );
            set(&mut body, "active", active.map(Value::from));
            set(
                &mut body,
                "retry",
                retry.map(|r| parse_json("retry", &r)).transpose()?,
            );
            set(&mut body, "timeout_ms", timeout_ms.map(Value::from));
            set(
                &mut body,
                "signature_schemes",
                signature_schemes.map(Value::from),
            );
            let updated = api
                .call(
                    Method::PATCH,
                    &format!("/api/webhooks/{id}"),
                    Some(&body),
                    &[],
                )
                .await?;
            output::print(json, &updated, output::record);
        }
        WebhooksCommand::Delete { id } => {
            api.call(Method::DELETE, &format!("/api/webhooks/{id}"), None, &[])
                .await?;
            let done = json!({"deleted": id});
            output::print(json, &done, |_| format!("deleted {id}"));
        }
        WebhooksCommand::Enable { id, replay } => {
            let body = json!({"replay": replay});
            let enabled = api
                .post(&format!("/api/webhooks/{id}/enable"), &body)
                .await?;
            output::print(json, &enabled, |v| {
                format!(
                    "enabled {id}; {} replayed",
                    output::count(&v["replayed"], "held delivery", "held deliveries")
                )
            });
        }
        WebhooksCommand::Disable { id } => {
            let disabled = api
                .post(&format!("/api/webhooks/{id}/disable"), &json!({}))
                .await?;
            output::print(json, &disabled, |_| format!("disabled {id}"));
        }
        WebhooksCommand::Secret { id } => {
            let secret = api.get(&format!("/api/webhooks/{id}/secret")).await?;
            output::print(json, &secret, output::record);
        }
        WebhooksCommand::RotateSecret {
            id,
            overlap_seconds,
        } => {
            let mut body = json!({});
            set(
                &mut body,
                "overlap_seconds",
                overlap_seconds.map(Value::from),
            );
            let rotated = api
                .post(&format!("/api/webhooks/{id}/rotate-secret"), &body)
                .await?;
            output::print(json, &rotated, output::record);
        }
        WebhooksCommand::PublicKey { id } => {
            let keys = api.get(&format!("/webhooks/{id}/keys")).await?;
            output::print(json, &keys, key_table);
        }
        WebhooksCommand::RotateSigningKey {
            id,
            overlap_seconds,
        } => {
            let mut body = json!({});
            set(
                &mut body,
                "overlap_seconds",
                overlap_seconds.map(Value::from),
            );
            let keys = api
                .post(&format!("/api/webhooks/{id}/rotate-signing-key"), &body)
                .await?;
            output::print(json, &keys, key_table);
        }
        WebhooksCommand::Test { id } => {
            let sent = api
                .post(&format!("/api/webhooks/{id}/test"), &json!({}))
                .await?;
            output::print(json, &sent, |v| {
                format!("test event {} queued", cell(&v["id"]))
            });
        }
        WebhooksCommand::Recover { id, since, until } => {
            let mut body = json!({"since": since});
            set(&mut body, "until", until.map(Value::from));
            let recovered = api
                .post(&format!("/api/webhooks/{id}/recover"), &body)
                .await?;
            output::print(json, &recovered, |v| {
                format!(
                    "{} re-queued",
                    output::count(&v["recovered"], "delivery", "deliveries")
                )
            });
        }
        WebhooksCommand::Received { id } => {
            let page = api.get(&format!("/api/webhooks/{id}/received")).await?;
            output::print(json, &page, |p| {
                output::page(
                    p,
                    &[
                        ("MESSAGE-ID", "message_id"),
                        ("TYPE", "event_type"),
                        ("RECEIVED", "received_at"),
                    ],
                )
            });
        }
    }
    Ok(())
}

/// A key set (`{"keys": [...]}`) as a table.
fn key_table(value: &Value) -> String {
    let keys = value["keys"].as_array().cloned().unwrap_or_default();
    output::table(&keys, KEY_COLUMNS)
}
