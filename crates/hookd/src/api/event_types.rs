//! `/api/event-types`: the catalog of event types.

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery};
use super::{ApiState, rfc3339};
use crate::store::{EventTypeRow, StoreError};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hookd_core::EventType;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub const MAX_DESCRIPTION_LEN: usize = 1024;

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeInfo {
    pub name: String,
    pub description: String,
    pub archived: bool,
    pub created_at: String,
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
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListEventTypes {
    /// Include archived types.
    pub include_archived: Option<bool>,
}

impl From<EventTypeRow> for EventTypeInfo {
    fn from(row: EventTypeRow) -> Self {
        Self {
            name: row.name,
            description: row.description,
            archived: row.archived_at.is_some(),
            created_at: rfc3339(row.created_at),
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

/// Add a type to the catalog (or bring back an archived one).
#[utoipa::path(post, path = "/api/event-types", tag = "event-types", request_body = CreateEventType,
    security(("api_key" = [])),
    responses((status = 201, body = EventTypeInfo), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    ApiJson(input): ApiJson<CreateEventType>,
) -> Result<(StatusCode, Json<EventTypeInfo>), ApiError> {
    let name = EventType::parse(&input.name)
        .map_err(|e| ApiError::invalid("invalid_event_type", "name", e))?;
    let description = input.description.unwrap_or_default();
    if description.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(ApiError::invalid(
            "invalid_field",
            "description",
            format!("must be at most {MAX_DESCRIPTION_LEN} characters"),
        ));
    }
    let row = EventTypeRow {
        name: name.into_string(),
        description,
        created_at: state.clock.now_ms(),
        archived_at: None,
    };
    match state.store.admin.add_event_type(row).await {
        Ok(stored) => Ok((StatusCode::CREATED, Json(stored.into()))),
        Err(StoreError::Conflict(message)) => Err(ApiError::Conflict {
            code: "event_type_exists",
            message,
        }),
        Err(other) => Err(other.into()),
    }
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
