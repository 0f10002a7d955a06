//! Event schemas: a JSON Schema (draft 2020-12) for an event type's `data`, per envelope version,
//! compiled once and cached per node.
//!
//! Bounded cost: schemas never fetch anything (remote `$ref`s are refused when a schema is set, and
//! the validator's retriever fails every fetch); `pattern` and `patternProperties` run on the
//! `regex` crate, which matches in time linear in the input (no backtracking), so a pathological
//! pattern cannot stall a publish; an event is at most `max_payload_bytes`.
//!
//! Cache: each node keeps the compiled schemas of a type for [`SCHEMA_RECHECK_MS`]; after that, the
//! next publish of the type reads the type's `updated_at` and recompiles only if it changed. A
//! change made on this node takes effect at once; one made on another node (PostgreSQL) within
//! [`SCHEMA_RECHECK_MS`].

use super::{Ops, OpsError};
use crate::store::UnixMs;
use jsonschema::{Draft, PatternOptions, Retrieve, Uri, Validator};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How long a node trusts its compiled schemas of a type before checking the type's version.
pub const SCHEMA_RECHECK_MS: i64 = 5_000;
/// Most violations one refused event lists.
pub const MAX_VIOLATIONS: usize = 20;
/// The key of the schema that applies to every version without its own.
pub const ANY_VERSION: &str = "*";

/// What a publish does with an event its schema refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ValidateMode {
    /// Schemas are documentation only.
    #[default]
    Off,
    /// Accept the event; count and log the violation (never the payload).
    Warn,
    /// Refuse the event (422).
    Enforce,
}

impl ValidateMode {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "off" => Some(Self::Off),
            "warn" => Some(Self::Warn),
            "enforce" => Some(Self::Enforce),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Warn => "warn",
            Self::Enforce => "enforce",
        }
    }
}

/// One way `data` fails its schema: where in `data` (a JSON pointer), which keyword, and where in
/// the schema. Never the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub path: String,
    pub keyword: String,
    pub schema_path: String,
}

/// Fails every fetch: hookd never loads a schema from a URL or a file.
struct NoFetch;

impl Retrieve for NoFetch {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Err(format!("{uri}: hookd does not fetch schemas").into())
    }
}

/// Compiles a schema, refusing one that is invalid or refers outside itself. `field` names it in
/// errors.
pub fn compile(schema: &Value, field: &str) -> Result<Validator, OpsError> {
    if !schema.is_object() && !schema.is_boolean() {
        return Err(OpsError::invalid(
            "invalid_schema",
            field,
            "must be a JSON Schema (an object or a boolean)",
        ));
    }
    if let Some(at) = find_remote_ref(schema, String::new()) {
        return Err(OpsError::invalid(
            "invalid_schema",
            format!("{field}{at}"),
            "only references within the schema (\"#...\") are allowed: hookd never fetches schemas",
        ));
    }
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .with_pattern_options(PatternOptions::regex())
        .with_retriever(NoFetch)
        .build(schema)
        .map_err(|e| {
            OpsError::invalid(
                "invalid_schema",
                format!("{field}{}", e.instance_path().as_str()),
                format!("is not a valid JSON Schema ({})", e.kind().keyword()),
            )
        })
}

/// The JSON pointer (within the schema) of the first `$ref` or `$dynamicRef` that does not start
/// with `#`.
fn find_remote_ref(value: &Value, at: String) -> Option<String> {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let here = format!("{at}/{key}");
                let is_ref = matches!(key.as_str(), "$ref" | "$dynamicRef");
                if is_ref && inner.as_str().is_some_and(|r| !r.starts_with('#')) {
                    return Some(here);
                }
                if let Some(found) = find_remote_ref(inner, here) {
                    return Some(found);
                }
            }
            None
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| find_remote_ref(item, format!("{at}/{index}"))),
        _ => None,
    }
}

/// Every way `data` fails `validator` (at most [`MAX_VIOLATIONS`]).
pub fn violations(validator: &Validator, data: &Value) -> Vec<Violation> {
    validator
        .iter_errors(data)
        .take(MAX_VIOLATIONS)
        .map(|error| Violation {
            path: error.instance_path().as_str().to_owned(),
            keyword: error.kind().keyword().to_owned(),
            schema_path: error.schema_path().as_str().to_owned(),
        })
        .collect()
}

/// A type's schemas as compiled on this node.
pub struct TypeSchemas {
    pub mode: ValidateMode,
    /// By envelope version; [`ANY_VERSION`] for the rest.
    validators: HashMap<String, Arc<Validator>>,
    /// The type's `updated_at` when these were compiled (0 when the type is not in the catalog).
    version: i64,
    checked_at: UnixMs,
}

impl TypeSchemas {
    /// The schema an event of `version` must follow, if any.
    pub fn for_version(&self, version: &str) -> Option<&Validator> {
        self.validators
            .get(version)
            .or_else(|| self.validators.get(ANY_VERSION))
            .map(|v| v.as_ref())
    }
}

/// The compiled schemas of every type this node published lately.
#[derive(Default)]
pub struct SchemaCache {
    types: Mutex<HashMap<String, Arc<TypeSchemas>>>,
}

impl SchemaCache {
    fn get(&self, name: &str) -> Option<Arc<TypeSchemas>> {
        self.lock().get(name).cloned()
    }

    fn put(&self, name: &str, schemas: Arc<TypeSchemas>) {
        self.lock().insert(name.to_owned(), schemas);
    }

    /// Drops a type's entry: the next publish of it reads the catalog.
    pub fn forget(&self, name: &str) {
        self.lock().remove(name);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<TypeSchemas>>> {
        // A panic while holding the lock cannot leave the map half-written (one insert or remove).
        self.types.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Compiles the stored schemas of a type (a JSON object by version). A stored schema was checked
/// when it was set; should one fail now, it is skipped and logged.
pub fn compile_stored(name: &str, schemas: Option<&str>) -> HashMap<String, Arc<Validator>> {
    let Some(text) = schemas else {
        return HashMap::new();
    };
    let parsed: HashMap<String, Value> = match serde_json::from_str(text) {
        Ok(parsed) => parsed,
        Err(error) => {
            tracing::error!(event_type = name, %error, "stored schemas are not a JSON object");
            return HashMap::new();
        }
    };
    parsed
        .into_iter()
        .filter_map(|(version, schema)| match compile(&schema, "schema") {
            Ok(validator) => Some((version, Arc::new(validator))),
            Err(error) => {
                tracing::error!(event_type = name, version, %error, "stored schema does not compile");
                None
            }
        })
        .collect()
}

impl Ops {
    /// The compiled schemas of `name`, from this node's cache while fresh.
    pub async fn type_schemas(
        &self,
        name: &str,
        now: UnixMs,
    ) -> Result<Arc<TypeSchemas>, OpsError> {
        let cached = self.schemas.get(name);
        if let Some(cached) = &cached
            && now - cached.checked_at < SCHEMA_RECHECK_MS
        {
            return Ok(cached.clone());
        }
        let row = self.store.admin.get_event_type(name).await?;
        let version = row.as_ref().map_or(0, |r| r.updated_at);
        let fresh = match (cached, row) {
            (Some(cached), _) if cached.version == version => TypeSchemas {
                mode: cached.mode,
                validators: cached.validators.clone(),
                version,
                checked_at: now,
            },
            (_, Some(row)) => TypeSchemas {
                mode: ValidateMode::parse(&row.validate).unwrap_or_default(),
                validators: compile_stored(name, row.schemas.as_deref()),
                version,
                checked_at: now,
            },
            (_, None) => TypeSchemas {
                mode: ValidateMode::Off,
                validators: HashMap::new(),
                version,
                checked_at: now,
            },
        };
        let fresh = Arc::new(fresh);
        self.schemas.put(name, fresh.clone());
        Ok(fresh)
    }

    /// Checks an event's `data` against its type's schema for `version`: refuses it under `enforce`,
    /// counts and logs it under `warn`.
    pub(super) async fn check_schema(
        &self,
        event_type: &str,
        version: &str,
        data: &str,
        field: &str,
        now: UnixMs,
    ) -> Result<(), OpsError> {
        let schemas = self.type_schemas(event_type, now).await?;
        if schemas.mode == ValidateMode::Off {
            return Ok(());
        }
        let Some(validator) = schemas.for_version(version) else {
            return Ok(());
        };
        let data: Value = serde_json::from_str(data).map_err(|_| {
            OpsError::invalid(
                "invalid_field",
                format!("{field}data"),
                "must be a JSON object",
            )
        })?;
        let violations = violations(validator, &data);
        if violations.is_empty() {
            return Ok(());
        }
        match schemas.mode {
            ValidateMode::Enforce => {
                // Labelled by type: only catalog types have schemas, so the label is bounded.
                metrics::counter!("hookd_schema_rejections_total", "event_type" => event_type.to_owned())
                    .increment(1);
                Err(OpsError::SchemaMismatch {
                    field: format!("{field}data"),
                    violations,
                })
            }
            _ => {
                metrics::counter!("hookd_schema_warnings_total", "event_type" => event_type.to_owned())
                    .increment(1);
                let first = &violations[0];
                tracing::warn!(
                    event_type,
                    version,
                    path = %first.path,
                    keyword = %first.keyword,
                    violations = violations.len(),
                    "event does not match its schema (validate: warn)"
                );
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_schema_is_compiled_and_reports_each_path_and_keyword() {
        let schema = json!({
            "type": "object",
            "required": ["amount"],
            "properties": {
                "amount": {"type": "integer", "minimum": 0},
                "code": {"type": "string", "pattern": "^[A-Z]{3}$"}
            }
        });
        let validator = compile(&schema, "schema").unwrap();
        assert!(violations(&validator, &json!({"amount": 3, "code": "EUR"})).is_empty());
        let found = violations(&validator, &json!({"amount": -1, "code": "eur"}));
        let pairs: Vec<(&str, &str)> = found
            .iter()
            .map(|v| (v.path.as_str(), v.keyword.as_str()))
            .collect();
        assert!(pairs.contains(&("/amount", "minimum")), "{pairs:?}");
        assert!(pairs.contains(&("/code", "pattern")), "{pairs:?}");
        let missing = violations(&validator, &json!({}));
        assert_eq!(missing[0].keyword, "required");
    }

    #[test]
    fn bad_schemas_are_refused() {
        let cases = [
            (json!({"type": "integer", "minimum": "zero"}), "schema"),
            (json!({"type": "nonsense"}), "schema"),
            (json!(3), "schema"),
            (json!({"$ref": "https://example.com/s.json"}), "schema/$ref"),
            (
                json!({"properties": {"a": {"$ref": "other.json#/x"}}}),
                "schema/properties/a/$ref",
            ),
            (json!({"pattern": "(?<=a)b"}), "schema"),
        ];
        for (schema, field) in cases {
            match compile(&schema, "schema") {
                Err(OpsError::Invalid {
                    code, field: at, ..
                }) => {
                    assert_eq!(code, "invalid_schema");
                    assert!(at.starts_with(field), "{schema}: {at}");
                }
                Err(other) => panic!("{schema}: {other}"),
                Ok(_) => panic!("{schema} should be refused"),
            }
        }
        assert!(compile(&json!({"$defs": {"a": {}}, "$ref": "#/$defs/a"}), "schema").is_ok());
    }

    #[test]
    fn a_pathological_pattern_runs_in_linear_time() {
        // Catastrophic for a backtracking engine; linear for `regex`.
        let validator = compile(&json!({"type": "string", "pattern": "^(a+)+$"}), "s").unwrap();
        let input = Value::String(format!("{}!", "a".repeat(50_000)));
        assert_eq!(violations(&validator, &input).len(), 1);
    }
}
