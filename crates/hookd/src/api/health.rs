//! Liveness and readiness probes (no authentication).

use super::ApiState;
use super::error::ApiError;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, description = "Process is up")))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The store answers.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Store reachable"),
    (status = 503, description = "Store unavailable", body = super::error::ErrorBody),
))]
pub async fn readyz(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    state.store.admin.ping().await?;
    Ok(Json(json!({"status": "ready"})))
}
