//! Actions on one subscription: send a test event, rotate its secret, enable/disable, recover.

use super::error::{ApiError, ErrorBody};
use super::events::PublishResult;
use super::extract::{ApiJson, OptionalJson};
use super::webhooks::Webhook;
use super::{AppState, parse_rfc3339, rfc3339};
use crate::ids::{new_id, random_bytes};
use crate::store::NewEvent;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hookd_core::SigningSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub const DEFAULT_OVERLAP_SECONDS: i64 = 24 * 3600;
pub const MAX_OVERLAP_SECONDS: i64 = 30 * 24 * 3600;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// How long the old secret keeps signing too (default 86,400; 0 stops it at once).
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
    responses((status = 202, body = PublishResult), (status = 404, body = ErrorBody)))]
pub async fn send_test(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<PublishResult>), ApiError> {
    let subscription = state
        .store
        .subscriptions
        .get_subscription(&id)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    let now = state.clock.now_ms();
    let data = serde_json::json!({
        "message": "Test event",
        "webhook_id": subscription.id,
        "sent_at": rfc3339(now),
    });
    let event = NewEvent {
        id: new_id("evt", now),
        event_type: "webhook.test".into(),
        version: "1.0".into(),
        data: data.to_string(),
        retryable: true,
        idempotency_key: None,
        created_at: now,
        only_subscription: Some(subscription.id),
    };
    let published = state.store.publisher.publish(vec![event]).await?;
    let first = published.first().ok_or(ApiError::Internal)?;
    state.waker.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(super::events::publish_result(first)),
    ))
}

/// Replace the signing secret; the old one keeps signing during the overlap.
#[utoipa::path(post, path = "/api/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path)), request_body = RotateSecret, security(("api_key" = [])),
    responses((status = 200, body = RotatedSecret), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<RotateSecret>,
) -> Result<Json<RotatedSecret>, ApiError> {
    let overlap = body.overlap_seconds.unwrap_or(DEFAULT_OVERLAP_SECONDS);
    if !(0..=MAX_OVERLAP_SECONDS).contains(&overlap) {
        return Err(ApiError::invalid(
            "invalid_field",
            "overlap_seconds",
            format!("must be 0 to {MAX_OVERLAP_SECONDS}"),
        ));
    }
    let now = state.clock.now_ms();
    let secret = SigningSecret::from_key(&random_bytes::<32>());
    let previous_expires_at = (overlap > 0).then(|| now + overlap * 1_000);
    let row = state
        .store
        .subscriptions
        .rotate_secret(&id, secret.as_str(), previous_expires_at, now)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    tracing::info!(webhook = %id, overlap, "secret rotated");
    Ok(Json(RotatedSecret {
        secret: row.secret,
        previous_secret_expires_at: row.previous_secret_expires_at.map(rfc3339),
    }))
}

/// Enable a subscription; with `{"replay": true}` re-queue what was held while it was disabled.
#[utoipa::path(post, path = "/api/webhooks/{id}/enable", tag = "webhooks",
    params(("id" = String, Path)), request_body = EnableWebhook, security(("api_key" = [])),
    responses((status = 200, body = Enabled), (status = 404, body = ErrorBody)))]
pub async fn enable(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<EnableWebhook>,
) -> Result<Json<Enabled>, ApiError> {
    let replay = body.replay.unwrap_or(false);
    let (row, replayed) = state
        .store
        .subscriptions
        .set_subscription_active(&id, true, None, replay, state.clock.now_ms())
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    if replayed > 0 {
        state.waker.notify_one();
    }
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
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Webhook>, ApiError> {
    let (row, _) = state
        .store
        .subscriptions
        .set_subscription_active(
            &id,
            false,
            Some("disabled by operator".into()),
            false,
            state.clock.now_ms(),
        )
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    Ok(Json(row.into()))
}

/// Re-queue every failed or dead delivery of this subscription that failed in the range.
#[utoipa::path(post, path = "/api/webhooks/{id}/recover", tag = "webhooks",
    params(("id" = String, Path)), request_body = Recover, security(("api_key" = [])),
    responses((status = 202, body = Recovered), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn recover(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<Recover>,
) -> Result<(StatusCode, Json<Recovered>), ApiError> {
    let since = parse_rfc3339("since", &input.since)?;
    let until = input
        .until
        .map(|u| parse_rfc3339("until", &u))
        .transpose()?;
    if state
        .store
        .subscriptions
        .get_subscription(&id)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound("webhook"));
    }
    let recovered = state
        .store
        .deliveries
        .recover(&id, since, until, state.clock.now_ms())
        .await?;
    if recovered > 0 {
        state.waker.notify_one();
    }
    Ok((StatusCode::ACCEPTED, Json(Recovered { recovered })))
}
