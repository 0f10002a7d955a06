//! `/api/event-types`: the catalog of event types.

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery};
use super::{ApiState, rfc3339};
use crate::ops::{EventTypeChanges, EventTypeDraft, TypeDocs};
use crate::store::EventTypeRow;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeInfo {
    pub name: String,
    pub description: String,
    pub archived: bool,
    /// JSON Schema (draft 2020-12) of `data` for every version without its own, if any.
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Value>,
    /// JSON Schemas of `data` for particular envelope versions.
    #[schema(value_type = Object)]
    pub version_schemas: BTreeMap<String, Value>,
    /// Example `data` objects, each valid against `schema`.
    #[schema(value_type = Vec<Object>)]
    pub examples: Vec<Value>,
    /// What a publish does with an event its schema refuses: `off`, `warn` (accept, count, log)
    /// or `enforce` (refuse with 422).
    pub validate: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeList {
    pub data: Vec<EventTypeInfo>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateEventType {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema (draft 2020-12) of `data` for every version without its own. References must
    /// stay within the schema (`#/$defs/...`); `pattern` uses a linear-time regex dialect (no
    /// look-around or backreferences).
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Value>,
    /// Schemas for particular envelope versions, e.g. `{"2.0": {...}}`.
    #[schema(value_type = Option<Object>)]
    pub version_schemas: Option<BTreeMap<String, Value>>,
    /// Up to 10 example `data` objects; each must pass `schema`.
    #[schema(value_type = Option<Vec<Object>>)]
    pub examples: Option<Vec<Value>>,
    /// `off` (default), `warn` or `enforce`.
    pub validate: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateEventType {
    pub description: Option<String>,
    /// `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub schema: Option<Option<Value>>,
    /// Replaces every per-version schema; `null` removes them.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub version_schemas: Option<Option<BTreeMap<String, Value>>>,
    /// Replaces the examples; `null` removes them.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub examples: Option<Option<Vec<Value>>>,
    pub validate: Option<String>,
}

/// Distinguishes a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListEventTypes {
    /// Include archived types.
    pub include_archived: Option<bool>,
}

impl From<EventTypeRow> for EventTypeInfo {
    fn from(row: EventTypeRow) -> Self {
        let docs = TypeDocs::of(&row);
        Self {
            name: row.name,
            description: row.description,
            archived: row.archived_at.is_some(),
            schema: docs.schema,
            version_schemas: docs.version_schemas,
            examples: docs.examples,
            validate: row.validate,
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
        }
    }
}

/// The event-type catalog.
#[utoipa::path(get, path = "/api/event-types", tag = "event-types", params(ListEventTypes),
    security(("api_key" = [])), responses((status = 200, body = EventTypeList)))]
pub async fn list(
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<ListEventTypes>,
) -> Result<Json<EventTypeList>, ApiError> {
    let rows = state
        .store
        .admin
        .list_event_types(query.include_archived.unwrap_or(false))
        .await?;
    Ok(Json(EventTypeList {
        data: rows.into_iter().map(EventTypeInfo::from).collect(),
    }))
}

/// One type of the catalog, with its schemas and examples.
#[utoipa::path(get, path = "/api/event-types/{name}", tag = "event-types",
    security(("api_key" = [])), params(("name" = String, Path)),
    responses((status = 200, body = EventTypeInfo), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Json<EventTypeInfo>, ApiError> {
    let row = state
        .store
        .admin
        .get_event_type(&name)
        .await?
        .ok_or(ApiError::NotFound("event type"))?;
    Ok(Json(row.into()))
}

/// Add a type to the catalog (or bring back an archived one), optionally with a JSON Schema for
/// its `data`, examples and a validation mode.
#[utoipa::path(post, path = "/api/event-types", tag = "event-types", request_body = CreateEventType,
    security(("api_key" = [])),
    responses((status = 201, body = EventTypeInfo), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    ApiJson(input): ApiJson<CreateEventType>,
) -> Result<(StatusCode, Json<EventTypeInfo>), ApiError> {
    let draft = EventTypeDraft {
        name: input.name,
        description: input.description,
        schema: input.schema,
        version_schemas: input.version_schemas,
        examples: input.examples,
        validate: input.validate,
    };
    let stored = state.ops.create_event_type(draft).await?;
    Ok((StatusCode::CREATED, Json(stored.into())))
}

/// Change a type's description, schemas, examples or validation mode. A new schema must be valid
/// and every example must pass it.
#[utoipa::path(patch, path = "/api/event-types/{name}", tag = "event-types",
    request_body = UpdateEventType, security(("api_key" = [])), params(("name" = String, Path)),
    responses((status = 200, body = EventTypeInfo), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<ApiState>,
    Path(name): Path<String>,
    ApiJson(input): ApiJson<UpdateEventType>,
) -> Result<Json<EventTypeInfo>, ApiError> {
    let changes = EventTypeChanges {
        description: input.description,
        schema: input.schema,
        version_schemas: input.version_schemas,
        examples: input.examples,
        validate: input.validate,
    };
    let row = state.ops.update_event_type(&name, changes).await?;
    Ok(Json(row.into()))
}

/// Archive a type: it leaves the catalog listing; events of that type can still be published unless
/// `strict_event_types` is on.
#[utoipa::path(delete, path = "/api/event-types/{name}", tag = "event-types",
    security(("api_key" = [])), params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn archive(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    match state
        .store
        .admin
        .archive_event_type(&name, state.clock.now_ms())
        .await?
    {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::NotFound("event type")),
    }
}
