//! Actions on one subscription: send a test event, rotate its secret, enable/disable, recover.

use super::error::{ApiError, ErrorBody};
use super::events::{PublishResult, publish_result};
use super::extract::{ApiJson, OptionalJson};
use super::webhooks::Webhook;
use super::{ApiState, parse_rfc3339, rfc3339};
use crate::ops::TestPayload;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hookd_core::whole_number;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the old secret keeps signing too (default 86,400; 0 stops it at once).
    #[serde(default, deserialize_with = "whole_number::deserialize")]
    pub overlap_seconds: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecret {
    pub secret: String,
    /// Until when the previous secret also signs; null without overlap.
    pub previous_secret_expires_at: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnableWebhook {
    /// Re-queue the deliveries held while the subscription was disabled.
    pub replay: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Enabled {
    pub webhook: Webhook,
    /// Held deliveries re-queued.
    pub replayed: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Recover {
    /// RFC 3339: re-queue deliveries that failed at or after this time.
    pub since: String,
    /// RFC 3339: and before this time (default: now).
    pub until: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Recovered {
    pub recovered: u64,
}

/// Publish a `webhook.test` event to this subscription only, through the normal pipeline.
#[utoipa::path(post, path = "/api/webhooks/{id}/test", tag = "webhooks", params(("id" = String, Path)),
    security(("api_key" = [])),
    responses((status = 202, body = PublishResult), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "The subscription is disabled.")))]
pub async fn send_test(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<PublishResult>), ApiError> {
    let published = state
        .ops
        .send_test_event(&id, TestPayload::Standard)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(publish_result(&published))))
}

/// Replace the signing secret; the old one keeps signing during the overlap.
#[utoipa::path(post, path = "/api/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path)), request_body = RotateSecret, security(("api_key" = [])),
    responses((status = 200, body = RotatedSecret), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn rotate_secret(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<RotateSecret>,
) -> Result<Json<RotatedSecret>, ApiError> {
    let rotated = state.ops.rotate_secret(&id, body.overlap_seconds).await?;
    Ok(Json(RotatedSecret {
        secret: rotated.secret,
        previous_secret_expires_at: rotated.previous_secret_expires_at.map(rfc3339),
    }))
}

/// Enable a subscription; with `{"replay": true}` re-queue what was held while it was disabled.
#[utoipa::path(post, path = "/api/webhooks/{id}/enable", tag = "webhooks",
    params(("id" = String, Path)), request_body = EnableWebhook, security(("api_key" = [])),
    responses((status = 200, body = Enabled), (status = 404, body = ErrorBody)))]
pub async fn enable(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<EnableWebhook>,
) -> Result<Json<Enabled>, ApiError> {
    let replay = body.replay.unwrap_or(false);
    let (row, replayed) = state.ops.enable_subscription(&id, replay).await?;
    Ok(Json(Enabled {
        webhook: row.into(),
        replayed,
    }))
}

/// Disable a subscription: its queued deliveries, and new matching events, are held.
#[utoipa::path(post, path = "/api/webhooks/{id}/disable", tag = "webhooks",
    params(("id" = String, Path)), security(("api_key" = [])),
    responses((status = 200, body = Webhook), (status = 404, body = ErrorBody)))]
pub async fn disable(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Webhook>, ApiError> {
    let row = state.ops.disable_subscription(&id).await?;
    Ok(Json(row.into()))
}

/// Re-queue every failed or dead delivery of this subscription that failed in the range.
#[utoipa::path(post, path = "/api/webhooks/{id}/recover", tag = "webhooks",
    params(("id" = String, Path)), request_body = Recover, security(("api_key" = [])),
    responses((status = 202, body = Recovered), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn recover(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<Recover>,
) -> Result<(StatusCode, Json<Recovered>), ApiError> {
    let since = parse_rfc3339("since", &input.since)?;
    let until = input
        .until
        .map(|u| parse_rfc3339("until", &u))
        .transpose()?;
    let recovered = state.ops.recover(&id, since, until).await?;
    Ok((StatusCode::ACCEPTED, Json(Recovered { recovered })))
}
