//! The event-type catalog: add a type (with its schemas, examples and validation mode) and change
//! one. Schemas and examples are checked here, before anything is written.

use super::schemas::{self, ANY_VERSION, ValidateMode};
use super::{MAX_VERSION_LEN, Ops, OpsError};
use crate::store::{EventTypeRow, StoreError};
use hookd_core::EventType;
use serde_json::Value;
use std::collections::BTreeMap;

pub const MAX_TYPE_DESCRIPTION_LEN: usize = 1024;
/// Largest schema document of a type (all versions), and largest examples list, as JSON text.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
pub const MAX_EXAMPLES: usize = 10;

/// A new catalog entry as an edge received it.
#[derive(Debug, Default)]
pub struct EventTypeDraft {
    pub name: String,
    pub description: Option<String>,
    /// The schema of `data` for every version without its own.
    pub schema: Option<Value>,
    /// Schemas for particular envelope versions.
    pub version_schemas: Option<BTreeMap<String, Value>>,
    /// Example `data` objects; each must pass `schema`.
    pub examples: Option<Vec<Value>>,
    /// `off` (default), `warn` or `enforce`.
    pub validate: Option<String>,
}

/// Changes to a type: `None` leaves a field as it is; `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct EventTypeChanges {
    pub description: Option<String>,
    pub schema: Option<Option<Value>>,
    /// Replaces every per-version schema.
    pub version_schemas: Option<Option<BTreeMap<String, Value>>>,
    pub examples: Option<Option<Vec<Value>>>,
    pub validate: Option<String>,
}

/// A type's schemas and examples, parsed from its row.
#[derive(Debug, Default, Clone)]
pub struct TypeDocs {
    pub schema: Option<Value>,
    pub version_schemas: BTreeMap<String, Value>,
    pub examples: Vec<Value>,
}

impl TypeDocs {
    /// Reads a row's JSON columns (written by this module, so they parse; anything else reads as
    /// absent).
    pub fn of(row: &EventTypeRow) -> Self {
        let mut version_schemas: BTreeMap<String, Value> = row
            .schemas
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        let schema = version_schemas.remove(ANY_VERSION);
        let examples = row
            .examples
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or_default();
        Self {
            schema,
            version_schemas,
            examples,
        }
    }
}

impl Ops {
    /// Adds a type to the catalog (or brings back an archived one).
    pub async fn create_event_type(&self, draft: EventTypeDraft) -> Result<EventTypeRow, OpsError> {
        let name = EventType::parse(&draft.name)
            .map_err(|e| OpsError::invalid("invalid_event_type", "name", e))?;
        let docs = TypeDocs {
            schema: draft.schema.filter(|s| !s.is_null()),
            version_schemas: draft.version_schemas.unwrap_or_default(),
            examples: draft.examples.unwrap_or_default(),
        };
        let now = self.clock.now_ms();
        let mut row = EventTypeRow {
            name: name.into_string(),
            description: parse_type_description(draft.description.unwrap_or_default())?,
            created_at: now,
            archived_at: None,
            schemas: None,
            examples: None,
            validate: parse_mode(draft.validate.as_deref())?.as_str().to_owned(),
            updated_at: now,
        };
        write_docs(&mut row, &docs)?;
        let stored = match self.store.admin.add_event_type(row).await {
            Ok(stored) => stored,
            Err(StoreError::Conflict(message)) => {
                return Err(OpsError::Conflict {
                    code: "event_type_exists",
                    message,
                });
            }
            Err(other) => return Err(other.into()),
        };
        self.schemas.forget(&stored.name);
        Ok(stored)
    }

    /// Changes a type's description, schemas, examples or validation mode.
    pub async fn update_event_type(
        &self,
        name: &str,
        changes: EventTypeChanges,
    ) -> Result<EventTypeRow, OpsError> {
        let mut row = self
            .store
            .admin
            .get_event_type(name)
            .await?
            .ok_or(OpsError::NotFound("event type"))?;
        let mut docs = TypeDocs::of(&row);
        if let Some(description) = changes.description {
            row.description = parse_type_description(description)?;
        }
        if let Some(schema) = changes.schema {
            docs.schema = schema.filter(|s| !s.is_null());
        }
        if let Some(version_schemas) = changes.version_schemas {
            docs.version_schemas = version_schemas.unwrap_or_default();
        }
        if let Some(examples) = changes.examples {
            docs.examples = examples.unwrap_or_default();
        }
        if let Some(mode) = changes.validate {
            row.validate = parse_mode(Some(&mode))?.as_str().to_owned();
        }
        write_docs(&mut row, &docs)?;
        let expected = row.updated_at;
        row.updated_at = self.clock.now_ms().max(expected + 1);
        if !self.store.admin.update_event_type(&row, expected).await? {
            return Err(OpsError::Conflict {
                code: "event_type_changed",
                message: format!("event type {name:?} changed meanwhile; read it and retry"),
            });
        }
        self.schemas.forget(name);
        Ok(row)
    }
}

fn parse_type_description(description: String) -> Result<String, OpsError> {
    match description.chars().count() > MAX_TYPE_DESCRIPTION_LEN {
        true => Err(OpsError::invalid(
            "invalid_field",
            "description",
            format!("must be at most {MAX_TYPE_DESCRIPTION_LEN} characters"),
        )),
        false => Ok(description),
    }
}

fn parse_mode(raw: Option<&str>) -> Result<ValidateMode, OpsError> {
    match raw {
        None => Ok(ValidateMode::Off),
        Some(text) => ValidateMode::parse(text).ok_or_else(|| {
            OpsError::invalid(
                "invalid_field",
                "validate",
                "must be \"off\", \"warn\" or \"enforce\"",
            )
        }),
    }
}

/// Checks every schema and example, then stores them in `row`'s JSON columns.
fn write_docs(row: &mut EventTypeRow, docs: &TypeDocs) -> Result<(), OpsError> {
    let mut all = serde_json::Map::new();
    let default = match &docs.schema {
        Some(schema) => {
            let validator = schemas::compile(schema, "schema")?;
            all.insert(ANY_VERSION.into(), schema.clone());
            Some(validator)
        }
        None => None,
    };
    for (version, schema) in &docs.version_schemas {
        let field = format!("version_schemas.{version}");
        if version.is_empty() || version.chars().count() > MAX_VERSION_LEN || version == ANY_VERSION
        {
            return Err(OpsError::invalid(
                "invalid_field",
                field,
                format!("a version is 1 to {MAX_VERSION_LEN} characters (not \"*\")"),
            ));
        }
        schemas::compile(schema, &field)?;
        all.insert(version.clone(), schema.clone());
    }
    let schemas_text = (!all.is_empty()).then(|| Value::Object(all).to_string());
    if schemas_text
        .as_ref()
        .is_some_and(|t| t.len() > MAX_SCHEMA_BYTES)
    {
        return Err(OpsError::invalid(
            "invalid_schema",
            "schema",
            format!("the schemas are over {MAX_SCHEMA_BYTES} bytes of JSON"),
        ));
    }
    check_examples(&docs.examples, default.as_ref())?;
    row.schemas = schemas_text;
    row.examples = match docs.examples.is_empty() {
        true => None,
        false => Some(Value::Array(docs.examples.clone()).to_string()),
    };
    Ok(())
}

fn check_examples(
    examples: &[Value],
    schema: Option<&jsonschema::Validator>,
) -> Result<(), OpsError> {
    if examples.len() > MAX_EXAMPLES {
        return Err(OpsError::invalid(
            "invalid_example",
            "examples",
            format!("at most {MAX_EXAMPLES} examples"),
        ));
    }
    if Value::Array(examples.to_vec()).to_string().len() > MAX_SCHEMA_BYTES {
        return Err(OpsError::invalid(
            "invalid_example",
            "examples",
            format!("the examples are over {MAX_SCHEMA_BYTES} bytes of JSON"),
        ));
    }
    for (index, example) in examples.iter().enumerate() {
        let field = format!("examples[{index}]");
        if !example.is_object() {
            return Err(OpsError::invalid(
                "invalid_example",
                field,
                "must be a JSON object (an event's data)",
            ));
        }
        let Some(schema) = schema else { continue };
        if let Some(first) = schemas::violations(schema, example).first() {
            return Err(OpsError::invalid(
                "invalid_example",
                format!("{field}{}", first.path.replace('/', ".")),
                format!(
                    "does not match the schema ({} at {})",
                    first.keyword, first.schema_path
                ),
            ));
        }
    }
    Ok(())
}
