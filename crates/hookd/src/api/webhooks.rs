//! `/api/webhooks`: subscriptions (the original webhook specification calls them webhooks).

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery};
use super::pagination::{self, PageOf};
use super::{AppState, rfc3339};
use crate::ids::{new_id, random_bytes};
use crate::store::{SubscriptionPatch, SubscriptionQuery, SubscriptionRow};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hookd_core::{EndpointUrl, EventFilter, RetryPolicy, SigningSecret};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

pub const MAX_FILTERS: usize = 100;
pub const MAX_DESCRIPTION_LEN: usize = 1024;
pub const MAX_METADATA_BYTES: usize = 4 * 1024;
pub const MIN_TIMEOUT_MS: i64 = 1_000;
pub const MAX_TIMEOUT_MS: i64 = 60_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where deliveries are POSTed. `https` unless development mode or `allow_http` is on.
    pub url: String,
    /// Event types to receive: exact names, `*`, or prefixes such as `order.*`.
    pub events: Vec<String>,
    pub description: Option<String>,
    /// A signing secret to use (`whsec_` + base64 of 24–64 bytes); generated when absent.
    pub secret: Option<String>,
    /// Free-form JSON object kept with the subscription.
    pub metadata: Option<Value>,
    /// Retry policy: `{"max_attempts", "base_delay_ms", "max_delay_ms"}`, `{"schedule_ms": [...]}` or
    /// `{"preset": "standard_webhooks"}`. Default: 5 attempts, 2 s doubling.
    #[schema(value_type = Option<Object>)]
    pub retry: Option<RetryPolicy>,
    /// Per-attempt timeout, 1,000–60,000 ms (default 10,000).
    pub timeout_ms: Option<i64>,
    /// Extra headers sent with every delivery (cannot override hookd's own).
    pub headers: Option<BTreeMap<String, String>>,
    /// The subscriber's id in your system (1–200 characters); portal sessions for this owner see and
    /// manage this subscription.
    pub owner: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Option<Value>>,
    pub active: Option<bool>,
    /// `null` returns to the server default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub retry: Option<Option<RetryPolicy>>,
    /// `null` returns to the server default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub timeout_ms: Option<Option<i64>>,
    /// Replaces all custom headers (`{}` removes them).
    pub headers: Option<BTreeMap<String, String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub owner: Option<Option<String>>,
}

/// Distinguishes a field sent as `null` (`Some(None)`) from one left out (`None`).
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A subscription. Never carries the secret (see `GET /api/webhooks/{id}/secret`).
#[derive(Debug, Serialize, ToSchema)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    pub active: bool,
    /// Why the subscription is disabled, when it is.
    pub disabled_reason: Option<String>,
    /// Consecutive deliveries that ended dead; reset by a success.
    pub failure_count: i64,
    /// The subscription's retry policy, or null for the server default.
    #[schema(value_type = Option<Object>)]
    pub retry: Option<RetryPolicy>,
    /// Per-attempt timeout in ms, or null for the server default.
    pub timeout_ms: Option<i64>,
    pub headers: BTreeMap<String, String>,
    /// The subscriber's id in your system, if set.
    pub owner: Option<String>,
    /// While a rotated-out secret still signs: until when.
    pub previous_secret_expires_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A new subscription, with its signing secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    pub webhook: Webhook,
    pub secret: String,
}

/// The original webhook specification's answer to `POST /api/webhooks/subscribe`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscribeResponse {
    pub id: String,
    pub secret: String,
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookSecret {
    pub secret: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListWebhooks {
    /// Only active (true) or only disabled (false) subscriptions.
    pub active: Option<bool>,
    /// Only this owner's subscriptions.
    pub owner: Option<String>,
    /// Page size, 1–250 (default 50).
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

impl From<SubscriptionRow> for Webhook {
    fn from(row: SubscriptionRow) -> Self {
        Self {
            id: row.id,
            url: row.url,
            events: row.events,
            description: row.description,
            metadata: row.metadata,
            active: row.active,
            disabled_reason: row.disabled_reason,
            failure_count: row.failure_count,
            retry: row.retry_policy,
            timeout_ms: row.timeout_ms,
            headers: row.headers,
            owner: row.owner,
            previous_secret_expires_at: row.previous_secret_expires_at.map(rfc3339),
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
        }
    }
}

fn parse_url(state: &AppState, raw: &str) -> Result<String, ApiError> {
    EndpointUrl::parse(raw, &state.settings.url_policy)
        .map(|url| url.as_str().to_owned())
        .map_err(|e| ApiError::invalid("invalid_url", "url", e))
}

/// Validates filters and returns them normalised (as written, duplicates removed, order kept).
fn parse_filters(raw: Vec<String>) -> Result<Vec<String>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::invalid(
            "invalid_event_filter",
            "events",
            "must list at least one event type (use \"*\" for all)",
        ));
    }
    if raw.len() > MAX_FILTERS {
        return Err(ApiError::invalid(
            "invalid_event_filter",
            "events",
            format!("at most {MAX_FILTERS} filters"),
        ));
    }
    let mut filters: Vec<String> = Vec::with_capacity(raw.len());
    for (index, text) in raw.into_iter().enumerate() {
        let filter = EventFilter::parse(&text).map_err(|e| {
            ApiError::invalid("invalid_event_filter", format!("events[{index}]"), e)
        })?;
        let normalised = filter.to_string();
        if !filters.contains(&normalised) {
            filters.push(normalised);
        }
    }
    Ok(filters)
}

fn parse_description(raw: Option<String>) -> Result<Option<String>, ApiError> {
    match raw {
        Some(text) if text.chars().count() > MAX_DESCRIPTION_LEN => Err(ApiError::invalid(
            "invalid_field",
            "description",
            format!("must be at most {MAX_DESCRIPTION_LEN} characters"),
        )),
        other => Ok(other),
    }
}

fn parse_metadata(raw: Option<Value>) -> Result<Option<Value>, ApiError> {
    match raw {
        None | Some(Value::Null) => Ok(None),
        Some(value @ Value::Object(_)) if value.to_string().len() <= MAX_METADATA_BYTES => {
            Ok(Some(value))
        }
        Some(Value::Object(_)) => Err(ApiError::invalid(
            "invalid_field",
            "metadata",
            format!("must be at most {MAX_METADATA_BYTES} bytes of JSON"),
        )),
        Some(_) => Err(ApiError::invalid(
            "invalid_field",
            "metadata",
            "must be a JSON object",
        )),
    }
}

fn parse_secret(raw: Option<String>) -> Result<SigningSecret, ApiError> {
    match raw {
        Some(text) => SigningSecret::parse(&text)
            .map_err(|e| ApiError::invalid("invalid_secret", "secret", e)),
        None => Ok(SigningSecret::from_key(&random_bytes::<32>())),
    }
}

fn parse_retry(raw: Option<RetryPolicy>) -> Result<Option<RetryPolicy>, ApiError> {
    match raw {
        Some(policy) => match policy.validate() {
            Ok(()) => Ok(Some(policy)),
            Err(e) => Err(ApiError::invalid("invalid_retry_policy", "retry", e)),
        },
        None => Ok(None),
    }
}

fn parse_timeout(raw: Option<i64>) -> Result<Option<i64>, ApiError> {
    match raw {
        Some(ms) if !(MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&ms) => Err(ApiError::invalid(
            "invalid_timeout",
            "timeout_ms",
            format!("must be {MIN_TIMEOUT_MS} to {MAX_TIMEOUT_MS}"),
        )),
        other => Ok(other),
    }
}

pub const MAX_OWNER_LEN: usize = 200;

/// An owner id: 1–200 printable characters without spaces at either end.
pub fn parse_owner(raw: Option<String>) -> Result<Option<String>, ApiError> {
    match raw {
        None => Ok(None),
        Some(text)
            if !text.is_empty()
                && text.chars().count() <= MAX_OWNER_LEN
                && text.trim() == text
                && !text.chars().any(char::is_control) =>
        {
            Ok(Some(text))
        }
        Some(_) => Err(ApiError::invalid(
            "invalid_owner",
            "owner",
            format!(
                "must be 1 to {MAX_OWNER_LEN} characters, no control characters or outer spaces"
            ),
        )),
    }
}

fn parse_headers(raw: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ApiError> {
    hookd_core::headers::parse_custom_headers(&raw)
        .map_err(|e| ApiError::invalid("invalid_headers", "headers", e))
}

pub async fn insert_new(
    state: &AppState,
    input: CreateWebhook,
) -> Result<SubscriptionRow, ApiError> {
    let url = parse_url(state, &input.url)?;
    let events = parse_filters(input.events)?;
    let secret = parse_secret(input.secret)?;
    let now = state.clock.now_ms();
    let mut row = SubscriptionRow::new(
        new_id("wh", now),
        url,
        events,
        secret.as_str().to_owned(),
        now,
    );
    row.description = parse_description(input.description)?;
    row.metadata = parse_metadata(input.metadata)?;
    row.retry_policy = parse_retry(input.retry)?;
    row.timeout_ms = parse_timeout(input.timeout_ms)?;
    row.headers = parse_headers(input.headers.unwrap_or_default())?;
    row.owner = parse_owner(input.owner)?;
    state.store.subscriptions.insert_subscription(&row).await?;
    tracing::info!(webhook = %row.id, "subscription created");
    Ok(row)
}

/// Create a subscription; the answer carries its signing secret.
#[utoipa::path(post, path = "/api/webhooks", tag = "webhooks", request_body = CreateWebhook,
    security(("api_key" = [])),
    responses(
        (status = 201, body = WebhookCreated),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<CreateWebhook>,
) -> Result<(StatusCode, Json<WebhookCreated>), ApiError> {
    let row = insert_new(&state, input).await?;
    let secret = row.secret.clone();
    Ok((
        StatusCode::CREATED,
        Json(WebhookCreated {
            webhook: row.into(),
            secret,
        }),
    ))
}

/// The original webhook specification's registration route: same input as `POST /api/webhooks`, answers `{id, secret, message}`.
#[utoipa::path(post, path = "/api/webhooks/subscribe", tag = "webhooks", request_body = CreateWebhook,
    security(("api_key" = [])),
    responses((status = 201, body = SubscribeResponse), (status = 422, body = ErrorBody)))]
pub async fn subscribe(
    State(state): State<AppState>,
    ApiJson(input): ApiJson<CreateWebhook>,
) -> Result<(StatusCode, Json<SubscribeResponse>), ApiError> {
    let row = insert_new(&state, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(SubscribeResponse {
            id: row.id,
            secret: row.secret,
            message: "Webhook registered successfully".into(),
        }),
    ))
}

/// List subscriptions, newest first.
#[utoipa::path(get, path = "/api/webhooks", tag = "webhooks", params(ListWebhooks),
    security(("api_key" = [])),
    responses((status = 200, body = PageOf<Webhook>), (status = 422, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListWebhooks>,
) -> Result<Json<PageOf<Webhook>>, ApiError> {
    let limit = pagination::limit(query.limit)?;
    let after = pagination::decode_cursor(query.cursor.as_deref())?;
    let page = state
        .store
        .subscriptions
        .list_subscriptions(SubscriptionQuery {
            active: query.active,
            owner: query.owner,
            after,
            limit,
        })
        .await?;
    Ok(Json(PageOf {
        data: page.items.into_iter().map(Webhook::from).collect(),
        next_cursor: page.next.as_ref().map(pagination::encode_cursor),
    }))
}

async fn load(state: &AppState, id: &str) -> Result<SubscriptionRow, ApiError> {
    state
        .store
        .subscriptions
        .get_subscription(id)
        .await?
        .ok_or(ApiError::NotFound("webhook"))
}

/// One subscription.
#[utoipa::path(get, path = "/api/webhooks/{id}", tag = "webhooks", security(("api_key" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = Webhook), (status = 404, body = ErrorBody)))]
pub async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Webhook>, ApiError> {
    Ok(Json(load(&state, &id).await?.into()))
}

/// A subscription's signing secret.
#[utoipa::path(get, path = "/api/webhooks/{id}/secret", tag = "webhooks", security(("api_key" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = WebhookSecret), (status = 404, body = ErrorBody)))]
pub async fn secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<WebhookSecret>, ApiError> {
    let row = load(&state, &id).await?;
    Ok(Json(WebhookSecret { secret: row.secret }))
}

/// Change a subscription's url, events, description, metadata or active flag.
#[utoipa::path(patch, path = "/api/webhooks/{id}", tag = "webhooks", request_body = UpdateWebhook,
    security(("api_key" = [])), params(("id" = String, Path)),
    responses((status = 200, body = Webhook), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<UpdateWebhook>,
) -> Result<Json<Webhook>, ApiError> {
    let patch = parse_patch(&state, input)?;
    let row = state
        .store
        .subscriptions
        .update_subscription(&id, patch, state.clock.now_ms())
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    Ok(Json(row.into()))
}

/// Validates an update into a store patch.
pub fn parse_patch(state: &AppState, input: UpdateWebhook) -> Result<SubscriptionPatch, ApiError> {
    Ok(SubscriptionPatch {
        url: input.url.map(|u| parse_url(state, &u)).transpose()?,
        events: input.events.map(parse_filters).transpose()?,
        description: input.description.map(parse_description).transpose()?,
        metadata: input.metadata.map(parse_metadata).transpose()?,
        active: input.active,
        retry_policy: input.retry.map(parse_retry).transpose()?,
        timeout_ms: input.timeout_ms.map(parse_timeout).transpose()?,
        headers: input.headers.map(parse_headers).transpose()?,
        owner: input.owner.map(parse_owner).transpose()?,
    })
}

/// Delete a subscription and its deliveries.
#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "webhooks", security(("api_key" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    match state.store.subscriptions.delete_subscription(&id).await? {
        true => {
            tracing::info!(webhook = %id, "subscription deleted");
            Ok(StatusCode::NO_CONTENT)
        }
        false => Err(ApiError::NotFound("webhook")),
    }
}
