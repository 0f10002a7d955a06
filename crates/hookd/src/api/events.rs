//! `/api/events`: publishing (single and batch), reading events and their deliveries.

use super::access::scoped_owner;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery};
use super::pagination::{self, PageOf};
use super::{ApiState, parse_rfc3339, rfc3339};
use crate::auth::Access;
use crate::ops::EventDraft;
use crate::store::{DeliveryRow, EventQuery, EventRow, Published};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use hookd_core::EventType;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::{IntoParams, ToSchema};

pub const MAX_BATCH_EVENTS: usize = 1_000;
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// An event to publish: the original webhook specification's envelope without the fields hookd
/// fills in.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishEvent {
    /// The event type, e.g. `order.created`.
    pub event: String,
    /// Any JSON object. Stored and delivered as `JSON.stringify(JSON.parse(data))` would write it
    /// (integers beyond 2^53 kept as written); a duplicate key or a lone surrogate escape is refused.
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
    /// Your id for the event (`[A-Za-z0-9_-]`, 1–64): publishing the same id again is a no-op.
    pub id: Option<String>,
    /// Schema version of `data` (default `1.0`).
    pub version: Option<String>,
    /// `false`: attempt once, never retry (default `true`).
    pub retryable: Option<bool>,
    /// Publish to one owner (your customer's id, 1–200 characters): the event goes to that
    /// owner's subscriptions only. Without it, the event goes to the subscriptions that have no
    /// owner. Not part of the delivered body.
    pub owner: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishBatch {
    /// 1 to 1,000 events, published all-or-nothing.
    pub events: Vec<PublishEvent>,
}

/// The outcome of publishing one event.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishResult {
    pub id: String,
    /// The event type.
    pub event: String,
    pub timestamp: String,
    /// Deliveries queued for active subscriptions.
    pub deliveries: u64,
    /// True when the id or `Idempotency-Key` matched an earlier event: nothing new was created.
    pub duplicate: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResult {
    pub events: Vec<PublishResult>,
}

/// One delivery of an event to one subscription.
#[derive(Debug, Serialize, ToSchema)]
pub struct Delivery {
    pub id: String,
    pub event_id: String,
    pub webhook_id: String,
    /// pending, in_flight, delivered, failed, dead or held.
    pub state: String,
    /// Attempts made so far, over every run: a retry or redrive starts a new retry schedule, and
    /// the attempt numbers continue.
    pub attempt_count: i64,
    pub next_attempt_at: Option<String>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A stored event: the original webhook specification's envelope (without the per-attempt fields).
#[derive(Debug, Serialize, ToSchema)]
pub struct Event {
    pub id: String,
    pub event: String,
    pub version: String,
    pub timestamp: String,
    #[schema(value_type = Object)]
    pub data: Box<RawValue>,
    pub retryable: bool,
    /// The owner it was published to; null: published to the subscriptions without an owner.
    pub owner: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventWithDeliveries {
    #[serde(flatten)]
    pub event: Event,
    pub deliveries: Vec<Delivery>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListEvents {
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Only events at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Only events before this RFC 3339 time.
    pub until: Option<String>,
    /// Only events published to this owner.
    pub owner: Option<String>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl From<DeliveryRow> for Delivery {
    fn from(row: DeliveryRow) -> Self {
        Self {
            id: row.id,
            event_id: row.event_id,
            webhook_id: row.subscription_id,
            state: row.state.as_str().to_owned(),
            attempt_count: row.attempts_before + row.attempts,
            next_attempt_at: row.next_attempt_at.map(rfc3339),
            last_status: row.last_status,
            last_error: row.last_error,
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
        }
    }
}

impl TryFrom<EventRow> for Event {
    type Error = ApiError;
    fn try_from(row: EventRow) -> Result<Self, ApiError> {
        let data = RawValue::from_string(row.data).map_err(|error| {
            tracing::error!(event = %row.id, %error, "stored event data is not JSON");
            ApiError::Internal
        })?;
        Ok(Self {
            id: row.id,
            event: row.event_type,
            version: row.version,
            timestamp: rfc3339(row.created_at),
            data,
            retryable: row.retryable,
            owner: row.owner,
        })
    }
}

pub fn publish_result(published: &Published) -> PublishResult {
    PublishResult {
        id: published.event.id.clone(),
        event: published.event.event_type.clone(),
        timestamp: rfc3339(published.event.created_at),
        deliveries: published.deliveries,
        duplicate: !published.created,
    }
}

impl From<PublishEvent> for EventDraft {
    fn from(input: PublishEvent) -> Self {
        Self {
            event_type: input.event,
            data: Box::<str>::from(input.data).into(),
            id: input.id,
            version: input.version,
            retryable: input.retryable,
            idempotency_key: None,
            owner: input.owner,
        }
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| {
            !k.is_empty()
                && k.len() <= MAX_IDEMPOTENCY_KEY_LEN
                && k.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::invalid(
                "invalid_idempotency_key",
                "Idempotency-Key",
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"),
            )
        })?;
    Ok(Some(key.to_owned()))
}

/// Publish one event. Answers 202 once the event and its deliveries are durably committed; 200 with
/// the original when the id or `Idempotency-Key` was seen before.
#[utoipa::path(post, path = "/api/events", tag = "events", request_body = PublishEvent,
    security(("api_key" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "Deduplicates retries of this request")),
    responses(
        (status = 202, body = PublishResult, description = "Stored; deliveries queued"),
        (status = 200, body = PublishResult, description = "Duplicate: the original event"),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn publish(
    State(state): State<ApiState>,
    axum::Extension(access): axum::Extension<Access>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<PublishEvent>,
) -> Result<(StatusCode, Json<PublishResult>), ApiError> {
    let mut draft = EventDraft {
        idempotency_key: idempotency_key(&headers)?,
        ..input.into()
    };
    draft.owner = scoped_owner(&access, draft.owner)?;
    let event = state
        .ops
        .prepare_event(draft, "", state.clock.now_ms())
        .await?;
    let published = state.ops.publish(vec![event]).await?;
    let Some(first) = published.first() else {
        tracing::error!("publish returned no result");
        return Err(ApiError::Internal);
    };
    let status = match first.created {
        true => StatusCode::ACCEPTED,
        false => StatusCode::OK,
    };
    Ok((status, Json(publish_result(first))))
}

/// Publish up to 1,000 events all-or-nothing: if one is invalid, none is stored.
#[utoipa::path(post, path = "/api/events/batch", tag = "events", request_body = PublishBatch,
    security(("api_key" = [])),
    responses(
        (status = 202, body = BatchResult),
        (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn publish_batch(
    State(state): State<ApiState>,
    axum::Extension(access): axum::Extension<Access>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<PublishBatch>,
) -> Result<(StatusCode, Json<BatchResult>), ApiError> {
    if headers.contains_key("idempotency-key") {
        return Err(ApiError::BadRequest {
            code: "idempotency_key_unsupported",
            message: "Idempotency-Key is not supported on batches; give each event an id".into(),
        });
    }
    if input.events.is_empty() || input.events.len() > MAX_BATCH_EVENTS {
        return Err(ApiError::invalid(
            "invalid_batch",
            "events",
            format!("must hold 1 to {MAX_BATCH_EVENTS} events"),
        ));
    }
    let now = state.clock.now_ms();
    let mut events = Vec::with_capacity(input.events.len());
    for (index, event) in input.events.into_iter().enumerate() {
        let field = format!("events[{index}].");
        let mut draft = EventDraft::from(event);
        draft.owner = scoped_owner(&access, draft.owner)?;
        events.push(state.ops.prepare_event(draft, &field, now).await?);
    }
    let published = state.ops.publish(events).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(BatchResult {
            events: published.iter().map(publish_result).collect(),
        }),
    ))
}

/// One event with the state of each of its deliveries.
#[utoipa::path(get, path = "/api/events/{id}", tag = "events", security(("api_key" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = EventWithDeliveries), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<EventWithDeliveries>, ApiError> {
    let row = state
        .store
        .deliveries
        .get_event(&id)
        .await?
        .ok_or(ApiError::NotFound("event"))?;
    let deliveries = state.store.deliveries.deliveries_for_event(&id).await?;
    Ok(Json(EventWithDeliveries {
        event: row.try_into()?,
        deliveries: deliveries.into_iter().map(Delivery::from).collect(),
    }))
}

/// List events, newest first, optionally by type and time range.
#[utoipa::path(get, path = "/api/events", tag = "events", params(ListEvents),
    security(("api_key" = [])),
    responses((status = 200, body = PageOf<Event>), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    axum::Extension(access): axum::Extension<Access>,
    ApiQuery(query): ApiQuery<ListEvents>,
) -> Result<Json<PageOf<Event>>, ApiError> {
    let event_type = query
        .event_type
        .map(|t| {
            EventType::parse(&t).map_err(|e| ApiError::invalid("invalid_event_type", "type", e))
        })
        .transpose()?;
    let page = state
        .store
        .deliveries
        .list_events(EventQuery {
            event_type: event_type.map(EventType::into_string),
            owner: scoped_owner(&access, query.owner)?,
            since: query
                .since
                .map(|s| parse_rfc3339("since", &s))
                .transpose()?,
            until: query
                .until
                .map(|u| parse_rfc3339("until", &u))
                .transpose()?,
            after: pagination::decode_cursor(query.cursor.as_deref())?,
            limit: pagination::limit(query.limit)?,
        })
        .await?;
    Ok(Json(PageOf {
        data: page
            .items
            .into_iter()
            .map(Event::try_from)
            .collect::<Result<_, _>>()?,
        next_cursor: page.next.as_ref().map(pagination::encode_cursor),
    }))
}
