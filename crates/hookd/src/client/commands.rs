//! Client subcommands: each maps to one API route and prints its answer.

use super::output::{self, Column};
use super::{ApiClient, ClientArgs, ClientError, with_query};
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Map, Value, json};

const EVENT_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("TYPE", "event"),
    ("VERSION", "version"),
    ("TIMESTAMP", "timestamp"),
];
const DELIVERY_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("EVENT", "event_id"),
    ("WEBHOOK", "webhook_id"),
    ("STATE", "state"),
    ("ATTEMPTS", "attempt_count"),
    ("LAST STATUS", "last_status"),
    ("NEXT ATTEMPT", "next_attempt_at"),
];
const DEAD_LETTER_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("EVENT", "event_id"),
    ("TYPE", "event"),
    ("WEBHOOK", "webhook_id"),
    ("ATTEMPTS", "attempt_count"),
    ("LAST ERROR", "last_error"),
    ("FAILED AT", "failed_at"),
];
const ATTEMPT_COLUMNS: &[Column] = &[
    ("#", "attempt"),
    ("STARTED", "started_at"),
    ("MS", "duration_ms"),
    ("STATUS", "status"),
    ("ERROR", "error"),
];

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Publish one event.
    Publish {
        /// The event type.
        #[arg(long = "type")]
        event_type: String,
        /// The `data` object as JSON.
        #[arg(long, default_value = "{}")]
        data: String,
        /// Your idempotent id for the event.
        #[arg(long)]
        id: Option<String>,
        /// Schema version of `data` (default `1.0`).
        #[arg(long)]
        version: Option<String>,
        /// Attempt once, never retry.
        #[arg(long)]
        no_retry: bool,
        /// Sent as the `Idempotency-Key` header: a retry of this publish returns the original.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Publish to this owner's endpoints only.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Show an event and its deliveries.
    Get {
        /// The event id.
        id: String,
    },
    /// List events, newest first.
    List {
        /// Only events of this type.
        #[arg(long = "type")]
        event_type: Option<String>,
        /// RFC 3339: only events at or after this time.
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339: only events before this time.
        #[arg(long)]
        until: Option<String>,
        /// Page size, 1 to 250.
        #[arg(long)]
        limit: Option<u32>,
        /// `next_cursor` from the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// A subscription's deliveries.
    List {
        /// The subscription id (`wh_...`).
        #[arg(long)]
        webhook: String,
        /// Only this state: pending, in_flight, delivered, failed, dead or held.
        #[arg(long)]
        state: Option<String>,
        /// Page size, 1 to 250.
        #[arg(long)]
        limit: Option<u32>,
        /// `next_cursor` from the previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// A delivery and its attempts.
    Get {
        /// The delivery id (`dlv_...`).
        id: String,
    },
    /// Re-queue a delivery now.
    Retry {
        /// The delivery id (`dlv_...`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    /// List dead deliveries, newest first.
    List {
        /// Only this subscription's.
        #[arg(long)]
        webhook: Option<String>,
        /// Only this event type's.
        #[arg(long)]
        event_type: Option<String>,
        /// RFC 3339: died at or after this time.
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339: died before this time.
        #[arg(long)]
        until: Option<String>,
        /// Page size, 1 to 250.
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Re-queue one dead letter (by id) or all matching the filters.
    Redrive {
        /// The dead delivery's id (`dlv_...`); without it, every one matching the filters.
        id: Option<String>,
        /// Only this subscription's.
        #[arg(long)]
        webhook: Option<String>,
        /// Only this event type's.
        #[arg(long)]
        event_type: Option<String>,
        /// RFC 3339: died at or after this time.
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339: died before this time.
        #[arg(long)]
        until: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventTypesCommand {
    /// List the event-type catalog.
    List {
        /// Include archived types.
        #[arg(long)]
        include_archived: bool,
    },
    /// Add a type to the catalog (or bring back an archived one).
    Add {
        /// The type's name (`[a-zA-Z0-9_.-]`, up to 128 characters).
        name: String,
        /// What the event means.
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        schema: SchemaArgs,
    },
    /// Change a type's description, schema (from a file), examples or validation mode.
    Set {
        /// The type's name.
        name: String,
        /// What the event means.
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        schema: SchemaArgs,
        /// Remove the type's schema.
        #[arg(long, conflicts_with = "schema")]
        clear_schema: bool,
    },
    /// Show one type with its schemas and examples.
    Get {
        /// The type's name.
        name: String,
    },
    /// Archive a type: it leaves the catalog's list, its events stay.
    Archive {
        /// The type's name.
        name: String,
    },
}

/// A type's schema and examples, read from files, and its validation mode.
#[derive(Debug, clap::Args)]
pub struct SchemaArgs {
    /// A file holding the JSON Schema (draft 2020-12) of the events' `data` (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub schema: Option<std::path::PathBuf>,
    /// A file holding a JSON array of example `data` objects.
    #[arg(long, value_name = "FILE")]
    pub examples: Option<std::path::PathBuf>,
    /// off, warn or enforce.
    #[arg(long)]
    pub validate: Option<String>,
}

impl SchemaArgs {
    /// Adds the given fields to a request body.
    fn apply(self, body: &mut Value) -> Result<(), ClientError> {
        set(
            body,
            "schema",
            self.schema
                .map(|p| read_json_file("schema", &p))
                .transpose()?,
        );
        set(
            body,
            "examples",
            self.examples
                .map(|p| read_json_file("examples", &p))
                .transpose()?,
        );
        set(body, "validate", self.validate.map(Value::from));
        Ok(())
    }
}

fn read_json_file(flag: &str, path: &std::path::Path) -> Result<Value, ClientError> {
    let text = match path.as_os_str() == "-" {
        true => std::io::read_to_string(std::io::stdin()),
        false => std::fs::read_to_string(path),
    }
    .map_err(|e| ClientError::Usage(format!("--{flag} {}: {e}", path.display())))?;
    parse_json(flag, &text)
}

pub(super) fn parse_json(flag: &str, text: &str) -> Result<Value, ClientError> {
    serde_json::from_str(text)
        .map_err(|e| ClientError::Usage(format!("--{flag} is not valid JSON: {e}")))
}

pub(super) fn parse_headers(raw: &[String]) -> Result<Map<String, Value>, ClientError> {
    raw.iter()
        .map(|line| {
            let (name, value) = line.split_once(':').ok_or_else(|| {
                ClientError::Usage(format!("--header {line:?}: expected 'Name: value'"))
            })?;
            Ok((
                name.trim().to_owned(),
                Value::String(value.trim().to_owned()),
            ))
        })
        .collect()
}

/// Inserts `key: value` when `value` is set.
pub(super) fn set(body: &mut Value, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        body[key] = value;
    }
}

pub(super) fn cell(value: &Value) -> String {
    value
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| value.to_string())
}

pub async fn events(args: &ClientArgs, command: EventsCommand) -> Result<(), ClientError> {
    let api = ApiClient::new(args);
    let json = args.json;
    match command {
        EventsCommand::Publish {
            event_type,
            data,
            id,
            version,
            no_retry,
            idempotency_key,
            owner,
        } => {
            let mut body = json!({"event": event_type, "data": parse_json("data", &data)?});
            set(&mut body, "owner", owner.map(Value::from));
            set(&mut body, "id", id.map(Value::from));
            set(&mut body, "version", version.map(Value::from));
            if no_retry {
                body["retryable"] = Value::Bool(false);
            }
            let headers: Vec<(&str, String)> = idempotency_key
                .map(|key| ("idempotency-key", key))
                .into_iter()
                .collect();
            let published = api
                .call(Method::POST, "/api/events", Some(&body), &headers)
                .await?;
            output::print(json, &published, |v| {
                let verb = match v["duplicate"].as_bool() {
                    Some(true) => "already published",
                    _ => "published",
                };
                format!(
                    "{verb} {} ({}): {} queued",
                    cell(&v["id"]),
                    cell(&v["event"]),
                    output::count(&v["deliveries"], "delivery", "deliveries")
                )
            });
        }
        EventsCommand::Get { id } => {
            let event = api.get(&format!("/api/events/{id}")).await?;
            output::print(json, &event, |v| {
                let mut summary = v.clone();
                if let Some(object) = summary.as_object_mut() {
                    object.remove("deliveries");
                }
                let deliveries = v["deliveries"].as_array().cloned().unwrap_or_default();
                format!(
                    "{}\n\n{}",
                    output::record(&summary),
                    output::table(&deliveries, DELIVERY_COLUMNS)
                )
            });
        }
        EventsCommand::List {
            event_type,
            since,
            until,
            limit,
            cursor,
        } => {
            let path = with_query(
                "/api/events",
                &[
                    ("type", event_type),
                    ("since", since),
                    ("until", until),
                    ("limit", limit.map(|l| l.to_string())),
                    ("cursor", cursor),
                ],
            );
            let page = api.get(&path).await?;
            output::print(json, &page, |p| output::page(p, EVENT_COLUMNS));
        }
    }
    Ok(())
}

pub async fn deliveries(args: &ClientArgs, command: DeliveriesCommand) -> Result<(), ClientError> {
    let api = ApiClient::new(args);
    let json = args.json;
    match command {
        DeliveriesCommand::List {
            webhook,
            state,
            limit,
            cursor,
        } => {
            let path = with_query(
                &format!("/api/webhooks/{webhook}/deliveries"),
                &[
                    ("state", state),
                    ("limit", limit.map(|l| l.to_string())),
                    ("cursor", cursor),
                ],
            );
            let page = api.get(&path).await?;
            output::print(json, &page, |p| output::page(p, DELIVERY_COLUMNS));
        }
        DeliveriesCommand::Get { id } => {
            let delivery = api.get(&format!("/api/deliveries/{id}")).await?;
            output::print(json, &delivery, |v| {
                let mut summary = v.clone();
                if let Some(object) = summary.as_object_mut() {
                    object.remove("attempts");
                    object.remove("event");
                }
                let attempts = v["attempts"].as_array().cloned().unwrap_or_default();
                format!(
                    "{}\n\n{}",
                    output::record(&summary),
                    output::table(&attempts, ATTEMPT_COLUMNS)
                )
            });
        }
        DeliveriesCommand::Retry { id } => {
            let queued = api
                .post(&format!("/api/deliveries/{id}/retry"), &json!({}))
                .await?;
            output::print(json, &queued, |_| format!("retry of {id} queued"));
        }
    }
    Ok(())
}

pub async fn dead_letters(
    args: &ClientArgs,
    command: DeadLettersCommand,
) -> Result<(), ClientError> {
    let api = ApiClient::new(args);
    let json = args.json;
    match command {
        DeadLettersCommand::List {
            webhook,
            event_type,
            since,
            until,
            limit,
        } => {
            let path = with_query(
                "/api/dead-letters",
                &[
                    ("webhook_id", webhook),
                    ("event_type", event_type),
                    ("since", since),
                    ("until", until),
                    ("limit", limit.map(|l| l.to_string())),
                ],
            );
            let page = api.get(&path).await?;
            output::print(json, &page, |p| output::page(p, DEAD_LETTER_COLUMNS));
        }
        DeadLettersCommand::Redrive {
            id: Some(id),
            webhook: None,
            event_type: None,
            since: None,
            until: None,
        } => {
            let queued = api
                .post(&format!("/api/dead-letters/{id}/redrive"), &json!({}))
                .await?;
            output::print(json, &queued, |_| format!("redrove {id}"));
        }
        DeadLettersCommand::Redrive { id: Some(_), .. } => {
            return Err(ClientError::Usage(
                "give either a dead letter id or filters, not both".into(),
            ));
        }
        DeadLettersCommand::Redrive {
            id: None,
            webhook,
            event_type,
            since,
            until,
        } => {
            let mut body = json!({});
            set(&mut body, "webhook_id", webhook.map(Value::from));
            set(&mut body, "event_type", event_type.map(Value::from));
            set(&mut body, "since", since.map(Value::from));
            set(&mut body, "until", until.map(Value::from));
            let done = api.post("/api/dead-letters/redrive", &body).await?;
            output::print(json, &done, |v| {
                format!(
                    "{} re-queued",
                    output::count(&v["redriven"], "dead letter", "dead letters")
                )
            });
        }
    }
    Ok(())
}

pub async fn event_types(args: &ClientArgs, command: EventTypesCommand) -> Result<(), ClientError> {
    let api = ApiClient::new(args);
    let json = args.json;
    match command {
        EventTypesCommand::List { include_archived } => {
            let path = with_query(
                "/api/event-types",
                &[("include_archived", include_archived.then(|| "true".into()))],
            );
            let list = api.get(&path).await?;
            output::print(json, &list, |v| {
                output::page(
                    v,
                    &[
                        ("NAME", "name"),
                        ("DESCRIPTION", "description"),
                        ("ARCHIVED", "archived"),
                    ],
                )
            });
        }
        EventTypesCommand::Add {
            name,
            description,
            schema,
        } => {
            let mut body = json!({"name": name});
            set(&mut body, "description", description.map(Value::from));
            schema.apply(&mut body)?;
            let added = api.post("/api/event-types", &body).await?;
            output::print(json, &added, output::record);
        }
        EventTypesCommand::Set {
            name,
            description,
            schema,
            clear_schema,
        } => {
            let mut body = json!({});
            set(&mut body, "description", description.map(Value::from));
            schema.apply(&mut body)?;
            if clear_schema {
                body["schema"] = Value::Null;
            }
            let path = format!("/api/event-types/{name}");
            let updated = api.call(Method::PATCH, &path, Some(&body), &[]).await?;
            output::print(json, &updated, output::record);
        }
        EventTypesCommand::Get { name } => {
            let found = api.get(&format!("/api/event-types/{name}")).await?;
            output::print(json, &found, output::record);
        }
        EventTypesCommand::Archive { name } => {
            api.call(
                Method::DELETE,
                &format!("/api/event-types/{name}"),
                None,
                &[],
            )
            .await?;
            output::print(json, &json!({"archived": name}), |_| {
                format!("archived {name}")
            });
        }
    }
    Ok(())
}

pub async fn metrics(args: &ClientArgs, webhook: Option<String>) -> Result<(), ClientError> {
    let api = ApiClient::new(args);
    let path = with_query("/api/webhooks/metrics", &[("webhook", webhook)]);
    let metrics = api.get(&path).await?;
    output::print(args.json, &metrics, output::record);
    Ok(())
}
