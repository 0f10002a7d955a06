//! The OpenAPI 3.1 `webhooks` section, built from the event-type catalog when `/openapi.json` is
//! served: one entry per (unarchived) type, describing the request hookd sends for it: the
//! envelope, the signature headers, and `data` from the type's schema (per version when versions
//! have their own), with the type's examples.
//!
//! The checked-in `openapi.json` is the document without this section (it depends on the catalog
//! of a running server). Each type's schemas go under `components.schemas` as
//! `{type}.data` and `{type}.data.v{version}`; their local references (`#/$defs/...`) are rewritten
//! to point there, so they resolve inside the document.

use crate::ops::TypeDocs;
use crate::store::EventTypeRow;
use serde_json::{Map, Value, json};

/// The `webhooks` section and the data schemas it refers to (for `components.schemas`).
pub fn webhooks_section(types: &[EventTypeRow]) -> (Map<String, Value>, Map<String, Value>) {
    let mut webhooks = Map::new();
    let mut schemas = Map::new();
    for row in types.iter().filter(|row| row.archived_at.is_none()) {
        let docs = TypeDocs::of(row);
        let envelope = envelope_for(&row.name, &docs, &mut schemas);
        webhooks.insert(row.name.clone(), operation(row, &docs, envelope));
    }
    (webhooks, schemas)
}

/// Adds `webhooks` and the data schemas to a document.
pub fn add_to_document(document: &mut Value, types: &[EventTypeRow]) {
    let (webhooks, schemas) = webhooks_section(types);
    let Some(root) = document.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(components)) = root.get_mut("components") {
        let entry = components
            .entry("schemas")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(existing) = entry {
            existing.extend(schemas);
        }
    }
    root.insert("webhooks".into(), Value::Object(webhooks));
}

fn operation(row: &EventTypeRow, docs: &TypeDocs, envelope: Value) -> Value {
    let mut content = json!({ "schema": envelope });
    if !docs.examples.is_empty() {
        let examples: Map<String, Value> = docs
            .examples
            .iter()
            .enumerate()
            .map(|(index, data)| {
                let body = json!({
                    "id": "evt_01J9Z8Q5Z5KZ3N6W8X4Y2V1T0S",
                    "timestamp": "2026-01-01T00:00:00Z",
                    "event": row.name,
                    "version": "1.0",
                    "data": data,
                    "attempt": 1,
                    "retryable": true,
                });
                (format!("example{}", index + 1), json!({ "value": body }))
            })
            .collect();
        content["examples"] = Value::Object(examples);
    }
    let description = match row.description.is_empty() {
        true => format!("Sent for each `{}` event.", row.name),
        false => row.description.clone(),
    };
    json!({
        "post": {
            "summary": row.name,
            "description": description,
            "operationId": format!("webhook.{}", row.name),
            "tags": ["webhook events"],
            "parameters": signature_headers(),
            "requestBody": {
                "required": true,
                "content": { "application/json": content },
            },
            "responses": {
                "2XX": { "description": "Received: any 2xx ends the delivery." },
                "410": { "description": "Gone: hookd disables the subscription." },
                "default": {
                    "description": "Anything else (or no answer in time) is retried with backoff; \
                                    429 and 503 may carry Retry-After."
                }
            }
        }
    })
}

fn header(name: &str, description: &str) -> Value {
    json!({
        "name": name,
        "in": "header",
        "required": true,
        "description": description,
        "schema": { "type": "string" }
    })
}

fn signature_headers() -> Value {
    json!([
        header("webhook-id", "The event id (Standard Webhooks)."),
        header(
            "webhook-timestamp",
            "Unix seconds when this attempt was signed."
        ),
        header(
            "webhook-signature",
            "`v1,` + base64 HMAC-SHA256 of `{webhook-id}.{webhook-timestamp}.{body}`; \
             space-separated when a rotated-out secret still signs."
        ),
        header("x-webhook-id", "The event id (original specification)."),
        header("x-webhook-timestamp", "Same as webhook-timestamp."),
        header(
            "x-webhook-signature",
            "`sha256=` + hex HMAC-SHA256 of the body."
        ),
        header("x-webhook-attempt", "1-based attempt number."),
    ])
}

/// The envelope schema, with `data` referring to the type's schema (one branch per version that
/// has its own, plus one for every other version).
fn envelope_for(name: &str, docs: &TypeDocs, schemas: &mut Map<String, Value>) -> Value {
    let default_data = match &docs.schema {
        Some(schema) => {
            let key = format!("{name}.data");
            let data_ref = component_ref(&key);
            schemas.insert(key.clone(), relocate_refs(schema, &key));
            data_ref
        }
        None => json!({ "type": "object" }),
    };
    if docs.version_schemas.is_empty() {
        return envelope(name, json!({ "type": "string" }), default_data);
    }
    let mut branches = Vec::new();
    let versions: Vec<&String> = docs.version_schemas.keys().collect();
    for (version, schema) in &docs.version_schemas {
        let key = format!("{name}.data.v{}", component_safe(version));
        schemas.insert(key.clone(), relocate_refs(schema, &key));
        branches.push(envelope(
            name,
            json!({ "const": version }),
            component_ref(&key),
        ));
    }
    branches.push(envelope(
        name,
        json!({ "type": "string", "not": { "enum": versions } }),
        default_data,
    ));
    json!({ "oneOf": branches })
}

fn envelope(name: &str, version: Value, data: Value) -> Value {
    json!({
        "type": "object",
        "required": ["id", "timestamp", "event", "version", "data", "attempt", "retryable"],
        "properties": {
            "id": { "type": "string", "description": "The event id." },
            "timestamp": { "type": "string", "format": "date-time" },
            "event": { "const": name },
            "version": version,
            "data": data,
            "attempt": { "type": "integer", "minimum": 1 },
            "retryable": { "type": "boolean" }
        }
    })
}

fn component_ref(key: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{key}") })
}

/// A version as it may appear in a component name (`[A-Za-z0-9._-]`).
fn component_safe(version: &str) -> String {
    version
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                true => c,
                false => '_',
            },
        )
        .collect()
}

/// Rewrites the schema's local references (`#...`) to point below its place in the document.
fn relocate_refs(schema: &Value, key: &str) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let moved = match (k.as_str(), v.as_str()) {
                        ("$ref" | "$dynamicRef", Some(r)) if r.starts_with('#') => {
                            let rest = r.trim_start_matches('#');
                            Value::String(format!("#/components/schemas/{key}{rest}"))
                        }
                        _ => relocate_refs(v, key),
                    };
                    (k.clone(), moved)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| relocate_refs(v, key)).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_references_are_moved_under_the_component() {
        let schema = json!({"$defs": {"money": {"type": "number"}},
                            "properties": {"a": {"$ref": "#/$defs/money"}, "b": {"$ref": "#"}}});
        let moved = relocate_refs(&schema, "t.data");
        assert_eq!(
            moved["properties"]["a"]["$ref"],
            "#/components/schemas/t.data/$defs/money"
        );
        assert_eq!(
            moved["properties"]["b"]["$ref"],
            "#/components/schemas/t.data"
        );
    }
}
