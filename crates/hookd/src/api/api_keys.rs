//! `/api/api-keys`: create, list and revoke API keys (admin scope, no owner). A key is shown once,
//! in the answer that creates it; only its SHA-256 is stored.

use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use super::{ApiState, rfc3339};
use crate::ops::KeyRequest;
use crate::store::ApiKeyRow;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// What the key is for, shown in listings (1–100 characters).
    pub name: String,
    /// What the key may do: `admin` (everything, the default), `publish` (`POST /api/events` and
    /// `/api/events/batch`), `read` (`GET` routes). A key may hold several.
    pub scopes: Option<Vec<String>>,
    /// Binds the key to one owner: it publishes to, sees and manages only that owner's
    /// subscriptions, deliveries and events.
    pub owner: Option<String>,
}

/// An API key as listed: never the key itself nor its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// The key's first characters, to tell keys apart.
    pub prefix: String,
    pub scopes: Vec<String>,
    /// The owner the key is bound to, if any.
    pub owner: Option<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

/// A new API key, with the key itself: shown this once, never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyCreated {
    #[serde(flatten)]
    pub api_key: ApiKey,
    /// The key, to send as `Authorization: Bearer <key>`.
    pub key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub data: Vec<ApiKey>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(row: ApiKeyRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            prefix: row.prefix,
            scopes: row.scopes.names().into_iter().map(str::to_owned).collect(),
            owner: row.owner,
            created_at: rfc3339(row.created_at),
            revoked_at: row.revoked_at.map(rfc3339),
        }
    }
}

/// Create an API key; the answer carries the key, shown only this once.
#[utoipa::path(post, path = "/api/api-keys", tag = "api-keys", request_body = CreateApiKey,
    security(("api_key" = [])),
    responses((status = 201, body = ApiKeyCreated), (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    ApiJson(input): ApiJson<CreateApiKey>,
) -> Result<(StatusCode, Json<ApiKeyCreated>), ApiError> {
    let request = KeyRequest {
        name: input.name,
        scopes: input.scopes,
        owner: input.owner,
    };
    let created = state.ops.create_api_key(request).await?;
    Ok((
        StatusCode::CREATED,
        Json(ApiKeyCreated {
            api_key: created.row.into(),
            key: created.key,
        }),
    ))
}

/// Every API key, revoked ones included, oldest first. The configured key is not listed.
#[utoipa::path(get, path = "/api/api-keys", tag = "api-keys", security(("api_key" = [])),
    responses((status = 200, body = ApiKeyList)))]
pub async fn list(State(state): State<ApiState>) -> Result<Json<ApiKeyList>, ApiError> {
    let rows = state.store.admin.list_api_keys().await?;
    Ok(Json(ApiKeyList {
        data: rows.into_iter().map(ApiKey::from).collect(),
    }))
}

/// Revoke an API key: it is refused from the next request on, on every node.
#[utoipa::path(delete, path = "/api/api-keys/{id}", tag = "api-keys",
    params(("id" = String, Path)), security(("api_key" = [])),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.ops.revoke_api_key(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
