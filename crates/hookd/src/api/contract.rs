//! The exact contract on top of the generated OpenAPI document: the error answers every operation
//! can give (401 and 429 on authenticated routes, the body and header limits, 503 while the store
//! is unavailable), each with the error schema, and the limits the server enforces written into
//! the schemas from the same constants the server checks (`schemathesis --checks all` in CI
//! holds the two to each other).

use super::events::{MAX_BATCH_EVENTS, MAX_IDEMPOTENCY_KEY_LEN};
use super::pagination::MAX_LIMIT;
use crate::ops::{
    MAX_DESCRIPTION_LEN, MAX_FILTERS, MAX_OVERLAP_SECONDS, MAX_OWNER_LEN, MAX_TIMEOUT_MS,
    MIN_TIMEOUT_MS,
};
use hookd_core::event_type::MAX_EVENT_TYPE_LEN;
use hookd_core::ids::MAX_CLIENT_EVENT_ID_LEN;
use hookd_core::url::MAX_URL_LEN;
use serde_json::{Value, json};

/// Adds the error answers and the limits to `doc` (the document as JSON).
pub fn apply(doc: &mut Value) {
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, operation) in item.iter_mut() {
                if matches!(method.as_str(), "get" | "post" | "put" | "patch" | "delete") {
                    add_error_answers(path, operation);
                    limit_parameters(operation);
                }
            }
        }
    }
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for (schema, property, limits) in property_limits() {
            if let Some(target) = schemas
                .get_mut(schema)
                .and_then(|s| s.pointer_mut(&format!("/properties/{property}")))
                .and_then(Value::as_object_mut)
            {
                merge(target, limits);
            }
        }
    }
}

/// Every status an operation can answer beyond its own: which ones depends on whether it needs an
/// API key, takes a JSON body, or reads query parameters or a path id.
fn add_error_answers(path: &str, operation: &mut Value) {
    let secured = operation
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());
    let has_body = operation.get("requestBody").is_some();
    let parameters: Vec<String> = operation
        .get("parameters")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|p| p.get("in").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let mut add = |status: &str, description: &str, headers: Option<Value>| {
        if !responses.contains_key(status) {
            responses.insert(status.to_owned(), error_answer(description, headers));
        }
    };
    add(
        "431",
        "Request headers over their limit (100 fields, 32 KiB).",
        None,
    );
    if secured {
        add(
            "401",
            "Missing, malformed, unknown or revoked API key.",
            Some(json!({"WWW-Authenticate": {"schema": {"type": "string"}}})),
        );
        add(
            "429",
            "Too many failed authentications from this address.",
            Some(retry_after()),
        );
    }
    if secured || path.starts_with("/webhooks/") {
        add(
            "503",
            "The store is unavailable; nothing was written. Retry later.",
            Some(retry_after()),
        );
    }
    if has_body {
        add("400", "The body is not JSON, or nests too deeply.", None);
        add(
            "408",
            "The body did not arrive within the body timeout.",
            None,
        );
        add(
            "413",
            "The body is over its limit (the message states it).",
            None,
        );
        add("415", "The body is not declared as JSON.", None);
        add("422", "A field is invalid (`field` names it).", None);
    }
    if parameters.iter().any(|p| p == "query" || p == "header") {
        add("422", "A parameter is invalid (`field` names it).", None);
    }
    if parameters.iter().any(|p| p == "path") {
        add("404", "No such resource.", None);
    }
}

fn error_answer(description: &str, headers: Option<Value>) -> Value {
    let mut answer = json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    });
    if let Some(headers) = headers {
        answer["headers"] = headers;
    }
    answer
}

fn retry_after() -> Value {
    json!({"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}})
}

/// Parameter limits: page sizes, times, the idempotency key.
fn limit_parameters(operation: &mut Value) {
    let Some(parameters) = operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for parameter in parameters {
        let name = parameter
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let Some(schema) = parameter.get_mut("schema").and_then(Value::as_object_mut) else {
            continue;
        };
        let limits = match name.as_str() {
            "limit" => json!({"minimum": 1, "maximum": MAX_LIMIT}),
            "since" | "until" => json!({"format": "date-time"}),
            "Idempotency-Key" => json!({
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_IDEMPOTENCY_KEY_LEN,
                "pattern": "^[\\x21-\\x7e]+$",
            }),
            _ => continue,
        };
        merge(schema, limits);
    }
}

/// An event type name: letters, digits, `_`, `.`, `-`.
const EVENT_TYPE_PATTERN: &str = "^[A-Za-z0-9_.-]+$";
/// An event filter: a name, `*`, or a name followed by `.*`.
const EVENT_FILTER_PATTERN: &str = "^(\\*|[A-Za-z0-9_-][A-Za-z0-9_.-]*(\\.\\*)?|[A-Za-z0-9_.-]+)$";

/// `(schema, property, keywords)` for every field whose limit the server enforces.
fn property_limits() -> Vec<(&'static str, &'static str, Value)> {
    let url = json!({"minLength": 1, "maxLength": MAX_URL_LEN});
    let owner = json!({"minLength": 1, "maxLength": MAX_OWNER_LEN});
    let description = json!({"maxLength": MAX_DESCRIPTION_LEN});
    let timeout = json!({"minimum": MIN_TIMEOUT_MS, "maximum": MAX_TIMEOUT_MS});
    let filters = json!({
        "minItems": 1,
        "maxItems": MAX_FILTERS,
        "items": {"type": "string", "minLength": 1, "maxLength": MAX_EVENT_TYPE_LEN,
                  "pattern": EVENT_FILTER_PATTERN},
    });
    let event_type = json!({
        "minLength": 1, "maxLength": MAX_EVENT_TYPE_LEN, "pattern": EVENT_TYPE_PATTERN,
    });
    let time = json!({"format": "date-time"});
    vec![
        ("CreateWebhook", "url", url.clone()),
        ("CreateWebhook", "events", filters.clone()),
        ("CreateWebhook", "owner", owner.clone()),
        ("CreateWebhook", "description", description.clone()),
        ("CreateWebhook", "timeout_ms", timeout.clone()),
        ("UpdateWebhook", "url", url),
        ("UpdateWebhook", "events", filters),
        ("UpdateWebhook", "owner", owner.clone()),
        ("UpdateWebhook", "description", description.clone()),
        ("UpdateWebhook", "timeout_ms", timeout),
        ("PublishEvent", "event", event_type.clone()),
        (
            "PublishEvent",
            "id",
            json!({"minLength": 1, "maxLength": MAX_CLIENT_EVENT_ID_LEN,
                   "pattern": "^[A-Za-z0-9_-]+$"}),
        ),
        (
            "PublishEvent",
            "version",
            json!({"minLength": 1, "maxLength": crate::ops::MAX_VERSION_LEN}),
        ),
        (
            "PublishBatch",
            "events",
            json!({"minItems": 1, "maxItems": MAX_BATCH_EVENTS}),
        ),
        ("CreateEventType", "name", event_type),
        ("CreateEventType", "description", description),
        ("CreatePortalSession", "owner", owner),
        (
            "CreatePortalSession",
            "capabilities",
            json!({"minItems": 1, "maxItems": 2, "uniqueItems": true,
                   "items": {"type": "string", "enum": ["read", "manage"]}}),
        ),
        (
            "CreatePortalSession",
            "ttl_seconds",
            json!({"minimum": 1, "maximum": crate::ops::MAX_PORTAL_TTL_SECONDS}),
        ),
        (
            "RotateSecret",
            "overlap_seconds",
            json!({"minimum": 0, "maximum": MAX_OVERLAP_SECONDS}),
        ),
        ("Recover", "since", time.clone()),
        ("Recover", "until", time.clone()),
        ("DeadLetterSelection", "since", time.clone()),
        ("DeadLetterSelection", "until", time),
    ]
}

/// Sets each keyword of `limits` on `target`.
fn merge(target: &mut serde_json::Map<String, Value>, limits: Value) {
    if let Value::Object(limits) = limits {
        for (key, value) in limits {
            target.insert(key, value);
        }
    }
}
