//! Deliveries, their attempt logs, manual retries, and the dead-letter queue.

use super::access::{require_own_subscription, scoped_owner};
use super::error::{ApiError, ErrorBody};
use super::events::{Delivery, Event};
use super::extract::{ApiJson, ApiQuery};
use super::pagination::{self, PageOf};
use super::{ApiState, parse_rfc3339, rfc3339};
use crate::auth::Access;
use crate::store::ui::DeliverySearch;
use crate::store::{AttemptRow, DeadLetterFilter, DeliveryQuery, DeliveryState, RetryResult};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hookd_core::EventType;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// One attempt from the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct Attempt {
    pub id: String,
    /// 1-based attempt number within the delivery's current run.
    pub attempt: i64,
    pub started_at: String,
    pub duration_ms: i64,
    /// The `webhook-timestamp` sent (Unix seconds).
    pub request_timestamp: i64,
    pub status: Option<i64>,
    /// At most 4 KiB of the response body.
    pub response_excerpt: Option<String>,
    /// The response headers in the order received: at most 32 (4 KiB), values cut at 256 bytes,
    /// credential-like values (cookies, authorization, tokens) replaced by `[redacted]`. Null
    /// without a response (and for attempts logged before hookd recorded headers).
    pub response_headers: Option<Vec<ResponseHeader>>,
    pub error: Option<String>,
    /// dns, connect, tls, timeout, http, blocked; null on success.
    pub error_class: Option<String>,
}

/// One response header of an attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResponseHeader {
    /// Lowercase.
    pub name: String,
    pub value: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetail {
    #[serde(flatten)]
    pub delivery: Delivery,
    pub event: Event,
    /// Every attempt, oldest first (as many as `attempt_count`).
    pub attempts: Vec<Attempt>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetryQueued {
    pub message: String,
    pub delivery: Delivery,
}

/// A delivery in the log across all subscriptions, with its event's type.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedDelivery {
    #[serde(flatten)]
    pub delivery: Delivery,
    /// The event's type.
    pub event: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchDeliveries {
    /// Only deliveries to this owner's subscriptions.
    pub owner: Option<String>,
    /// Only this subscription's.
    pub webhook_id: Option<String>,
    /// pending, in_flight, delivered, failed, dead or held.
    pub state: Option<String>,
    /// Only deliveries of events of this type.
    pub event_type: Option<String>,
    /// Created at or after (RFC 3339).
    pub since: Option<String>,
    /// Created before (RFC 3339).
    pub until: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// A dead letter: a delivery whose attempts are exhausted.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadLetter {
    #[serde(flatten)]
    pub delivery: Delivery,
    /// The event's type.
    pub event: String,
    /// When it died.
    pub failed_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Redriven {
    /// Deliveries re-queued.
    pub redriven: u64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListDeliveries {
    /// pending, in_flight, delivered, failed, dead or held.
    pub state: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterSelection {
    /// Only this subscription's dead letters.
    pub webhook_id: Option<String>,
    /// Only this event type's.
    pub event_type: Option<String>,
    /// Died at or after (RFC 3339).
    pub since: Option<String>,
    /// Died before (RFC 3339).
    pub until: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListDeadLetters {
    /// Only this subscription's dead letters.
    pub webhook_id: Option<String>,
    /// Only this event type's.
    pub event_type: Option<String>,
    /// Died at or after (RFC 3339).
    pub since: Option<String>,
    /// Died before (RFC 3339).
    pub until: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl From<AttemptRow> for Attempt {
    fn from(row: AttemptRow) -> Self {
        Self {
            id: row.id,
            attempt: row.attempt,
            started_at: rfc3339(row.started_at),
            duration_ms: row.duration_ms,
            request_timestamp: row.request_timestamp,
            status: row.status,
            response_excerpt: row.response_excerpt,
            response_headers: row.response_headers.map(|headers| {
                headers
                    .into_iter()
                    .map(|(name, value)| ResponseHeader { name, value })
                    .collect()
            }),
            error: row.error,
            error_class: row.error_class,
        }
    }
}

fn parse_state(raw: Option<String>) -> Result<Option<DeliveryState>, ApiError> {
    raw.map(|text| {
        DeliveryState::parse(&text).ok_or_else(|| {
            ApiError::invalid(
                "invalid_query",
                "state",
                "must be pending, in_flight, delivered, failed, dead or held",
            )
        })
    })
    .transpose()
}

fn parse_selection(
    webhook_id: Option<String>,
    event_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
) -> Result<DeadLetterFilter, ApiError> {
    let event_type = event_type
        .map(|t| {
            EventType::parse(&t)
                .map(EventType::into_string)
                .map_err(|e| ApiError::invalid("invalid_event_type", "event_type", e))
        })
        .transpose()?;
    Ok(DeadLetterFilter {
        subscription_id: webhook_id,
        event_type,
        since: since.map(|s| parse_rfc3339("since", &s)).transpose()?,
        until: until.map(|u| parse_rfc3339("until", &u)).transpose()?,
    })
}

/// Deliveries across all subscriptions, newest first, by owner, subscription, state, event type and
/// time range.
#[utoipa::path(get, path = "/api/deliveries", tag = "deliveries", params(SearchDeliveries),
    security(("api_key" = [])),
    responses((status = 200, body = PageOf<LoggedDelivery>), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    axum::Extension(access): axum::Extension<Access>,
    ApiQuery(query): ApiQuery<SearchDeliveries>,
) -> Result<Json<PageOf<LoggedDelivery>>, ApiError> {
    let selection = parse_selection(query.webhook_id, query.event_type, query.since, query.until)?;
    let search = DeliverySearch {
        owner: scoped_owner(&access, query.owner)?,
        subscription_id: selection.subscription_id,
        state: parse_state(query.state)?,
        event_type: selection.event_type,
        status: None,
        since: selection.since,
        until: selection.until,
        after: pagination::decode_cursor(query.cursor.as_deref())?,
        limit: pagination::limit(query.limit)?,
    };
    let page = state.store.ui.search_deliveries(search).await?;
    Ok(Json(PageOf {
        data: page
            .items
            .into_iter()
            .map(|row| LoggedDelivery {
                delivery: row.delivery.into(),
                event: row.event_type,
            })
            .collect(),
        next_cursor: page.next.as_ref().map(pagination::encode_cursor),
    }))
}

/// A subscription's deliveries, newest first.
#[utoipa::path(get, path = "/api/webhooks/{id}/deliveries", tag = "deliveries",
    params(("id" = String, Path), ListDeliveries), security(("api_key" = [])),
    responses((status = 200, body = PageOf<Delivery>), (status = 404, body = ErrorBody)))]
pub async fn list_for_webhook(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<ListDeliveries>,
) -> Result<Json<PageOf<Delivery>>, ApiError> {
    let limit = pagination::limit(query.limit)?;
    let after = pagination::decode_cursor(query.cursor.as_deref())?;
    let delivery_state = parse_state(query.state)?;
    if state
        .store
        .subscriptions
        .get_subscription(&id)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound("webhook"));
    }
    let page = state
        .store
        .deliveries
        .list_deliveries(DeliveryQuery {
            subscription_id: Some(id),
            state: delivery_state,
            after,
            limit,
        })
        .await?;
    Ok(Json(PageOf {
        data: page.items.into_iter().map(Delivery::from).collect(),
        next_cursor: page.next.as_ref().map(pagination::encode_cursor),
    }))
}

/// One delivery with its event and every attempt.
#[utoipa::path(get, path = "/api/deliveries/{id}", tag = "deliveries", params(("id" = String, Path)),
    security(("api_key" = [])),
    responses((status = 200, body = DeliveryDetail), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<DeliveryDetail>, ApiError> {
    let delivery = state
        .store
        .deliveries
        .get_delivery(&id)
        .await?
        .ok_or(ApiError::NotFound("delivery"))?;
    let event = state
        .store
        .deliveries
        .get_event(&delivery.event_id)
        .await?
        .ok_or(ApiError::Internal)?;
    let attempts = state.store.deliveries.list_attempts(&id).await?;
    Ok(Json(DeliveryDetail {
        delivery: delivery.into(),
        event: event.try_into()?,
        attempts: attempts.into_iter().map(Attempt::from).collect(),
    }))
}

/// Re-queue one delivery now, with a fresh attempt budget (any state but in flight).
#[utoipa::path(post, path = "/api/deliveries/{id}/retry", tag = "deliveries",
    params(("id" = String, Path)), security(("api_key" = [])),
    responses((status = 202, body = RetryQueued), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn retry(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<RetryQueued>), ApiError> {
    retry_answer(state.ops.retry_delivery(&id).await?)
}

/// The answer to a retry or a redrive of one delivery.
fn retry_answer(result: RetryResult) -> Result<(StatusCode, Json<RetryQueued>), ApiError> {
    match result {
        RetryResult::Requeued(row) => Ok((
            StatusCode::ACCEPTED,
            Json(RetryQueued {
                message: "Retry queued".into(),
                delivery: row.into(),
            }),
        )),
        RetryResult::InFlight => Err(ApiError::Conflict {
            code: "delivery_in_flight",
            message: "an attempt is in flight; retry after it finishes".into(),
        }),
        RetryResult::NotFound => Err(ApiError::NotFound("delivery")),
    }
}

/// The original webhook specification's retry route; same as `POST /api/deliveries/{id}/retry`.
#[utoipa::path(post, path = "/api/webhooks/deliveries/{id}/retry", tag = "deliveries",
    params(("id" = String, Path)), security(("api_key" = [])),
    responses((status = 202, body = RetryQueued), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn retry_via_webhooks_path(
    state: State<ApiState>,
    id: Path<String>,
) -> Result<(StatusCode, Json<RetryQueued>), ApiError> {
    retry(state, id).await
}

/// The dead-letter queue, most recently dead first.
#[utoipa::path(get, path = "/api/dead-letters", tag = "dead-letters", params(ListDeadLetters),
    security(("api_key" = [])),
    responses((status = 200, body = PageOf<DeadLetter>), (status = 422, body = ErrorBody)))]
pub async fn list_dead(
    State(state): State<ApiState>,
    axum::Extension(access): axum::Extension<Access>,
    ApiQuery(query): ApiQuery<ListDeadLetters>,
) -> Result<Json<PageOf<DeadLetter>>, ApiError> {
    require_own_subscription(&state, &access, query.webhook_id.as_deref()).await?;
    let limit = pagination::limit(query.limit)?;
    let after = pagination::decode_cursor(query.cursor.as_deref())?;
    let filter = parse_selection(query.webhook_id, query.event_type, query.since, query.until)?;
    let page = state
        .store
        .deliveries
        .list_dead_letters(filter, after, limit)
        .await?;
    Ok(Json(PageOf {
        data: page
            .items
            .into_iter()
            .map(|row| DeadLetter {
                failed_at: rfc3339(row.delivery.updated_at),
                event: row.event_type,
                delivery: row.delivery.into(),
            })
            .collect(),
        next_cursor: page.next.as_ref().map(pagination::encode_cursor),
    }))
}

/// Re-queue one dead letter.
#[utoipa::path(post, path = "/api/dead-letters/{id}/redrive", tag = "dead-letters",
    params(("id" = String, Path)), security(("api_key" = [])),
    responses((status = 202, body = RetryQueued), (status = 404, body = ErrorBody)))]
pub async fn redrive_one(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<RetryQueued>), ApiError> {
    retry_answer(state.ops.redrive_dead_letter(&id).await?)
}

/// Re-queue every dead letter matching the filters (all of them with an empty body).
#[utoipa::path(post, path = "/api/dead-letters/redrive", tag = "dead-letters",
    request_body = DeadLetterSelection, security(("api_key" = [])),
    responses((status = 202, body = Redriven), (status = 422, body = ErrorBody)))]
pub async fn redrive_many(
    State(state): State<ApiState>,
    axum::Extension(access): axum::Extension<Access>,
    ApiJson(selection): ApiJson<DeadLetterSelection>,
) -> Result<(StatusCode, Json<Redriven>), ApiError> {
    require_own_subscription(&state, &access, selection.webhook_id.as_deref()).await?;
    let filter = parse_selection(
        selection.webhook_id,
        selection.event_type,
        selection.since,
        selection.until,
    )?;
    let redriven = state.ops.redrive_dead_letters(filter).await?;
    Ok((StatusCode::ACCEPTED, Json(Redriven { redriven })))
}
