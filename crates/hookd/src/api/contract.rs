//! The exact contract on top of the generated OpenAPI document: the error answers every operation
//! can give (401 and 429 on authenticated routes, the body and header limits, 503 while the store
//! is unavailable), each with the error schema, and the limits the server enforces written into
//! the schemas from the same constants the server checks (`schemathesis --checks all` in CI
//! holds the two to each other).

use super::events::{MAX_BATCH_EVENTS, MAX_IDEMPOTENCY_KEY_LEN};
use super::pagination::MAX_LIMIT;
use crate::ops::{
    CURSOR_PATTERN, MAX_DESCRIPTION_LEN, MAX_FILTERS, MAX_OVERLAP_SECONDS, MAX_OWNER_LEN,
    MAX_TIMEOUT_MS, MIN_TIMEOUT_MS,
};
use hookd_core::SignatureSchemes;
use hookd_core::content_filter::{MAX_CONDITIONS, MAX_DEPTH, MAX_PATH_SEGMENTS};
use hookd_core::event_type::MAX_EVENT_TYPE_LEN;
use hookd_core::ids::MAX_CLIENT_EVENT_ID_LEN;
use hookd_core::retry::{MAX_ATTEMPTS_LIMIT, MAX_DELAY_LIMIT_MS, MIN_DELAY_MS};
use hookd_core::secret::{MAX_TEXT_CHARS, MIN_TEXT_CHARS};
use hookd_core::url::{MAX_URL_LEN, URL_PATTERN};
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
        schemas.extend(content_filter_schemas());
        schemas.insert("RetryPolicy".into(), retry_policy_schema());
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
        add(
            "403",
            "The API key's scopes do not allow this request, or the key is bound to an owner and \
             the request spans every owner.",
            None,
        );
    }
    if secured || path.starts_with("/webhooks/") {
        add(
            "503",
            "The store is unavailable; nothing was written. Retry later.",
            Some(retry_after()),
        );
    }
    if path == "/api/events" || path == "/api/events/batch" {
        add(
            "409",
            "An event with this id (or `Idempotency-Key`) was already published with another \
             type or data.",
            None,
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
            "cursor" => json!({"pattern": CURSOR_PATTERN}),
            "type" | "event_type" => event_type_limits(),
            "state" => json!({"enum": crate::store::DeliveryState::ALL.map(|s| s.as_str())}),
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

fn event_type_limits() -> Value {
    json!({"minLength": 1, "maxLength": MAX_EVENT_TYPE_LEN, "pattern": EVENT_TYPE_PATTERN})
}

/// A JSON Schema, as an event type's `schema` holds it: an object or a boolean.
fn json_schema(nullable: bool) -> Value {
    let types = match nullable {
        true => json!(["object", "boolean", "null"]),
        false => json!(["object", "boolean"]),
    };
    json!({"type": types})
}

/// The grammar of a content filter (`hookd_core::content_filter`), as schemas: a filter object
/// maps paths and `$and`/`$or`/`$not` to conditions; a condition is a literal (anything but an
/// object with a `$` key) or an object of known operators.
fn content_filter_schemas() -> serde_json::Map<String, Value> {
    let filter_ref = json!({"$ref": "#/components/schemas/ContentFilter"});
    let filters = json!({"type": "array", "minItems": 1, "items": filter_ref});
    let operators_ref = json!({"$ref": "#/components/schemas/FilterOperators"});
    let path_pattern =
        format!("^([$](and|or|not)|event|version|id|data([.][^.]+){{0,{MAX_PATH_SEGMENTS}}})$");
    let comparable = json!({"type": ["number", "string"]});
    let values = json!({"type": "array", "minItems": 1, "maxItems": MAX_CONDITIONS});
    let mut schemas = serde_json::Map::new();
    schemas.insert(
        "ContentFilter".into(),
        json!({
            "description": format!(
                "A content filter: every key must hold. Keys are paths (`data`, `data.a.b`, \
                 `event`, `version`, `id`) or `$and`/`$or` (lists of filters) and `$not` (a \
                 filter). At most {MAX_DEPTH} levels of nesting and {MAX_CONDITIONS} conditions \
                 (each `$in`/`$nin` value counts as one)."
            ),
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": path_pattern},
            "properties": {"$and": filters, "$or": filters, "$not": filter_ref},
            "additionalProperties": {"$ref": "#/components/schemas/FilterCondition"},
        }),
    );
    schemas.insert(
        "FilterCondition".into(),
        json!({
            "description": "A literal (shorthand for `$eq`; any value except an object with a \
                            key starting with `$`) or an object of operators.",
            "anyOf": [
                {"type": ["null", "boolean", "number", "string", "array"]},
                {"type": "object", "propertyNames": {"not": {"pattern": "^[$]"}}},
                operators_ref,
            ],
        }),
    );
    schemas.insert(
        "FilterOperators".into(),
        json!({
            "type": "object",
            "minProperties": 1,
            "additionalProperties": false,
            "properties": {
                "$eq": {}, "$ne": {},
                "$gt": comparable, "$gte": comparable, "$lt": comparable, "$lte": comparable,
                "$in": values, "$nin": values,
                "$exists": {"type": "boolean"},
                "$not": operators_ref,
            },
        }),
    );
    schemas
}

/// The three shapes of a retry policy (`hookd_core::retry`); a key of another shape may be present
/// only as `null`.
fn retry_policy_schema() -> Value {
    let delay = json!({"type": "integer", "minimum": MIN_DELAY_MS, "maximum": MAX_DELAY_LIMIT_MS});
    let absent = json!({"type": "null"});
    json!({
        "description": "`{max_attempts, base_delay_ms, max_delay_ms?}` (delays double from the \
                        base, each capped at `max_delay_ms`, by default one hour or the base if \
                        longer), `{schedule_ms: [...]}` (one delay per retry) or \
                        `{preset: \"standard_webhooks\"}`.",
        "oneOf": [
            {
                "type": "object",
                "additionalProperties": false,
                "required": ["max_attempts", "base_delay_ms"],
                "properties": {
                    "max_attempts": {"type": "integer", "minimum": 1, "maximum": MAX_ATTEMPTS_LIMIT},
                    "base_delay_ms": delay,
                    "max_delay_ms": {"anyOf": [delay, absent]},
                    "schedule_ms": absent, "preset": absent,
                },
            },
            {
                "type": "object",
                "additionalProperties": false,
                "required": ["schedule_ms"],
                "properties": {
                    "schedule_ms": {"type": "array", "maxItems": MAX_ATTEMPTS_LIMIT - 1,
                                    "items": delay},
                    "max_attempts": absent, "base_delay_ms": absent, "max_delay_ms": absent,
                    "preset": absent,
                },
            },
            {
                "type": "object",
                "additionalProperties": false,
                "required": ["preset"],
                "properties": {
                    "preset": {"type": "string", "enum": ["standard_webhooks"]},
                    "max_attempts": absent, "base_delay_ms": absent, "max_delay_ms": absent,
                    "schedule_ms": absent,
                },
            },
        ],
    })
}

/// A signing secret a caller brings: `whsec_` and the canonical standard base64 of 24 to 64 bytes,
/// or any other string of 16 to 256 characters without control characters.
fn secret_schema() -> Value {
    let b64 = "[A-Za-z0-9+/]";
    json!({"anyOf": [
        {"type": "string", "pattern": format!(
            "^whsec_({b64}{{4}}){{8,21}}({b64}[AQgw]==)?$|^whsec_({b64}{{4}}){{8,20}}{b64}{{2}}[AEIMQUYcgkosw048]=$"
        )},
        {"type": "string", "minLength": MIN_TEXT_CHARS, "maxLength": MAX_TEXT_CHARS,
         "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f]*$", "not": {"pattern": "^whsec_"}},
        {"type": "null"},
    ]})
}

/// An Ed25519 key pair a caller brings: `whsk_` and the canonical standard base64 of its 32-byte
/// seed. The 64-byte form (seed and public key) is accepted too when its public half belongs to the
/// seed, which a pattern cannot state, so the document names only the seed form.
fn signing_key_schema() -> Value {
    json!({"type": ["string", "null"],
           "pattern": "^whsk_[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=?$"})
}

/// Custom delivery headers (`hookd_core::headers`): token names other than hookd's own (in any
/// case), visible-ASCII values.
fn custom_headers_schema() -> Value {
    use hookd_core::headers::{
        MAX_CUSTOM_HEADERS, MAX_HEADER_VALUE_LEN, RESERVED, RESERVED_PREFIXES,
    };
    let any_case = |name: &str| -> String {
        name.chars()
            .map(|c| match c.is_ascii_alphabetic() {
                true => format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase()),
                false => regex_escape(c),
            })
            .collect()
    };
    let names: Vec<String> = RESERVED.iter().map(|n| any_case(n)).collect();
    let prefixes: Vec<String> = RESERVED_PREFIXES.iter().map(|p| any_case(p)).collect();
    json!({
        "type": ["object", "null"],
        "maxProperties": MAX_CUSTOM_HEADERS,
        "propertyNames": {
            "pattern": "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$",
            "not": {"pattern": format!("^({})$|^({})", names.join("|"), prefixes.join("|"))},
        },
        "additionalProperties": {"type": "string", "maxLength": MAX_HEADER_VALUE_LEN,
                                 "pattern": "^[\\x20-\\x7e\\t]*$"},
    })
}

fn regex_escape(c: char) -> String {
    match c.is_ascii_alphanumeric() {
        true => c.to_string(),
        false => format!("[{c}]"),
    }
}

/// `(schema, property, keywords)` for every field whose limit the server enforces.
fn property_limits() -> Vec<(&'static str, &'static str, Value)> {
    let url = json!({"minLength": 1, "maxLength": MAX_URL_LEN, "pattern": URL_PATTERN});
    let filter =
        json!({"anyOf": [{"$ref": "#/components/schemas/ContentFilter"}, {"type": "null"}]});
    let retry = json!({"anyOf": [{"$ref": "#/components/schemas/RetryPolicy"}, {"type": "null"}]});
    let version_schemas = json!({
        "type": ["object", "null"],
        "propertyNames": {"minLength": 1, "maxLength": crate::ops::MAX_VERSION_LEN,
                          "not": {"const": "*"}},
        "additionalProperties": json_schema(false),
    });
    let metadata = json!({"type": ["object", "null"], "description": format!(
        "Free-form JSON object kept with the subscription, at most {} bytes of JSON.",
        crate::ops::MAX_METADATA_BYTES
    )});
    let examples = json!({"type": ["array", "null"], "maxItems": crate::ops::MAX_EXAMPLES,
                          "items": {"type": "object"}});
    let legacy_signature =
        json!({"type": ["string", "null"], "enum": ["body", "python_sorted", null]});
    let validate = json!({"type": ["string", "null"], "enum": ["off", "warn", "enforce", null]});
    let schemes = json!({
        "type": ["array", "null"],
        "items": {"type": "string", "enum": SignatureSchemes::NAMES},
        "enum": [["v1"], ["v1a"], ["v1", "v1a"], ["v1a", "v1"], null],
    });
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
        ("CreateWebhook", "filter", filter.clone()),
        ("CreateWebhook", "headers", custom_headers_schema()),
        ("CreateWebhook", "metadata", metadata.clone()),
        ("CreateWebhook", "retry", retry.clone()),
        ("CreateWebhook", "secret", secret_schema()),
        (
            "CreateWebhook",
            "legacy_signature",
            legacy_signature.clone(),
        ),
        ("UpdateWebhook", "url", url),
        ("UpdateWebhook", "events", filters),
        ("UpdateWebhook", "owner", owner.clone()),
        ("UpdateWebhook", "description", description.clone()),
        ("UpdateWebhook", "timeout_ms", timeout),
        ("UpdateWebhook", "filter", filter),
        ("UpdateWebhook", "headers", custom_headers_schema()),
        ("UpdateWebhook", "metadata", metadata),
        ("UpdateWebhook", "retry", retry),
        ("UpdateWebhook", "legacy_signature", legacy_signature),
        ("CreateWebhook", "signature_schemes", schemes.clone()),
        ("UpdateWebhook", "signature_schemes", schemes),
        ("CreateWebhook", "signing_key", signing_key_schema()),
        ("UpdateWebhook", "signing_key", signing_key_schema()),
        ("RotateSigningKey", "signing_key", signing_key_schema()),
        (
            "RotateSigningKey",
            "overlap_seconds",
            json!({"minimum": 0, "maximum": MAX_OVERLAP_SECONDS}),
        ),
        ("PublishEvent", "event", event_type.clone()),
        ("PublishEvent", "owner", owner.clone()),
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
        ("CreateEventType", "description", description.clone()),
        ("CreateEventType", "validate", validate.clone()),
        ("CreateEventType", "schema", json_schema(true)),
        ("CreateEventType", "examples", examples.clone()),
        ("UpdateEventType", "examples", examples),
        (
            "CreateEventType",
            "version_schemas",
            version_schemas.clone(),
        ),
        ("UpdateEventType", "version_schemas", version_schemas),
        ("UpdateEventType", "description", description),
        ("UpdateEventType", "validate", validate),
        ("UpdateEventType", "schema", json_schema(true)),
        ("EventTypeInfo", "schema", json_schema(true)),
        ("DeadLetterSelection", "event_type", event_type_limits()),
        ("CreatePortalSession", "owner", owner.clone()),
        (
            "CreatePortalSession",
            "capabilities",
            json!({"items": {"type": "string", "enum": ["read", "manage"]},
                   "enum": [["read"], ["read", "manage"], ["manage", "read"]]}),
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
        (
            "CreateApiKey",
            "name",
            json!({"minLength": 1, "maxLength": crate::ops::MAX_KEY_NAME_LEN}),
        ),
        (
            "CreateApiKey",
            "scopes",
            json!({"type": ["array", "null"], "minItems": 1,
                   "items": {"type": "string", "enum": hookd_core::scopes::Scope::NAMES}}),
        ),
        ("CreateApiKey", "owner", owner),
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
