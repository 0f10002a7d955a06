//! `/api/webhooks`: subscriptions (the original webhook specification calls them webhooks).

use super::access::scoped_owner;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery};
use super::pagination::{self, PageOf};
use super::{ApiState, rfc3339};
use crate::auth::Access;
use crate::ops::{PublicKey, SubscriptionChanges, SubscriptionDraft, public_keys_at};
use crate::store::{SubscriptionQuery, SubscriptionRow, UnixMs};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hookd_core::RetryPolicy;
use hookd_core::whole_number;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where deliveries are POSTed. `https` unless development mode or `allow_http` is on.
    pub url: String,
    /// Event types to receive: exact names, `*`, or prefixes such as `order.*`.
    pub events: Vec<String>,
    pub description: Option<String>,
    /// A signing secret to use, generated when absent: `whsec_` + base64 of 24–64 bytes (the
    /// Standard Webhooks form), or any other string of 16–256 characters without control characters,
    /// whose UTF-8 bytes are then the HMAC key of both signatures.
    pub secret: Option<String>,
    /// Free-form JSON object kept with the subscription.
    pub metadata: Option<Value>,
    /// Retry policy: `{"max_attempts", "base_delay_ms", "max_delay_ms"}`, `{"schedule_ms": [...]}` or
    /// `{"preset": "standard_webhooks"}`. Default: 5 attempts, 2 s doubling.
    #[schema(value_type = Option<Object>)]
    pub retry: Option<RetryPolicy>,
    /// Per-attempt timeout, 1,000–60,000 ms (default 10,000).
    #[serde(default, deserialize_with = "whole_number::deserialize")]
    pub timeout_ms: Option<i64>,
    /// Extra headers sent with every delivery (cannot override hookd's own).
    pub headers: Option<BTreeMap<String, String>>,
    /// The subscriber's id in your system (1–200 characters); portal sessions for this owner see and
    /// manage this subscription.
    pub owner: Option<String>,
    /// What `X-Webhook-Signature` signs: `body` (the default; the body as sent, which is what
    /// `JSON.stringify(req.body)` gives back) or `python_sorted` (Python's
    /// `json.dumps(body, sort_keys=True)`).
    #[schema(value_type = Option<String>)]
    pub legacy_signature: Option<String>,
    /// A content filter: only events whose envelope it matches are delivered, e.g.
    /// `{"data.amount": {"$gte": 100}, "data.region": {"$in": ["eu", "uk"]}}`. Paths start with
    /// `data`, `event`, `version` or `id`; operators `$eq`, `$ne`, `$gt`, `$gte`, `$lt`, `$lte`,
    /// `$in`, `$nin`, `$exists`, `$and`, `$or`, `$not`; at most 32 levels and 100 conditions.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    /// Which `webhook-signature` schemes sign deliveries: `["v1"]` (the default: HMAC-SHA256 with
    /// the secret), `["v1a"]` (Ed25519 only; `X-Webhook-Signature`, an HMAC, is then not sent) or
    /// `["v1", "v1a"]`. With `v1a`, hookd generates the key pair unless `signing_key` is given;
    /// receivers fetch the public key from `GET /webhooks/{id}/keys`.
    pub signature_schemes: Option<Vec<String>>,
    /// An Ed25519 key pair to sign `v1a` with, as Standard Webhooks writes it: `whsk_` + base64 of
    /// the 32-byte seed, or of the seed followed by its 32-byte public key.
    pub signing_key: Option<String>,
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
    #[serde(default, deserialize_with = "whole_number::present")]
    #[schema(value_type = Option<i64>)]
    pub timeout_ms: Option<Option<i64>>,
    /// Replaces all custom headers (`{}` removes them).
    pub headers: Option<BTreeMap<String, String>>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub owner: Option<Option<String>>,
    /// `body` or `python_sorted`.
    pub legacy_signature: Option<String>,
    /// A content filter (see `CreateWebhook`); `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Option<Value>>,
    /// `["v1"]`, `["v1a"]` or `["v1", "v1a"]` (see `CreateWebhook`); turning `v1a` on generates a
    /// key pair if the subscription has none.
    pub signature_schemes: Option<Vec<String>>,
    /// Replaces the `v1a` key pair at once (`whsk_…`); to keep the old one signing for a while, use
    /// `POST /api/webhooks/{id}/rotate-signing-key`.
    pub signing_key: Option<String>,
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
    /// What `X-Webhook-Signature` signs: `body` or `python_sorted`.
    pub legacy_signature: String,
    /// The content filter, if any.
    #[schema(value_type = Option<Object>)]
    pub filter: Option<Value>,
    /// While a rotated-out secret still signs: until when.
    pub previous_secret_expires_at: Option<String>,
    /// `v1`, `v1a`, or both.
    pub signature_schemes: Vec<String>,
    /// The `v1a` public keys: the current one, and a rotated-out one with its `not_after`.
    pub public_keys: Vec<PublicKeyView>,
    pub created_at: String,
    pub updated_at: String,
}

/// An Ed25519 public key that verifies `v1a` signatures.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublicKeyView {
    /// `kid_` + 16 hex digits, derived from the key.
    pub kid: String,
    /// `whpk_` + base64 of the 32-byte key.
    pub public_key: String,
    /// RFC 3339: since when it signs.
    pub not_before: String,
    /// RFC 3339: when a rotated-out key stops signing; null for the current key.
    pub not_after: Option<String>,
}

impl From<PublicKey> for PublicKeyView {
    fn from(key: PublicKey) -> Self {
        Self {
            kid: key.kid,
            public_key: key.public_key,
            not_before: rfc3339(key.not_before),
            not_after: key.not_after.map(rfc3339),
        }
    }
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
        // Every stored key, a rotated-out one even after its `not_after`: the key set at
        // `GET /webhooks/{id}/keys` is the one that drops it.
        let public_keys = public_keys_at(&row, UnixMs::MIN)
            .into_iter()
            .map(PublicKeyView::from)
            .collect();
        Self {
            id: row.id,
            url: row.url.to_string(),
            events: row.events.iter().map(ToString::to_string).collect(),
            description: row.description,
            metadata: row.metadata,
            active: row.active,
            disabled_reason: row.disabled_reason,
            failure_count: row.failure_count,
            retry: row.retry_policy,
            timeout_ms: row.timeout_ms,
            headers: row.headers,
            owner: row.owner,
            legacy_signature: row.legacy_signature.as_str().to_owned(),
            filter: row
                .filter
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok()),
            previous_secret_expires_at: row.previous_secret_expires_at.map(rfc3339),
            signature_schemes: row
                .signature_schemes
                .names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            public_keys,
            created_at: rfc3339(row.created_at),
            updated_at: rfc3339(row.updated_at),
        }
    }
}

impl From<CreateWebhook> for SubscriptionDraft {
    fn from(input: CreateWebhook) -> Self {
        Self {
            url: input.url,
            events: input.events,
            description: input.description,
            secret: input.secret,
            metadata: input.metadata,
            retry: input.retry,
            timeout_ms: input.timeout_ms,
            headers: input.headers,
            owner: input.owner,
            legacy_signature: input.legacy_signature,
            filter: input.filter,
            signature_schemes: input.signature_schemes,
            signing_key: input.signing_key,
        }
    }
}

impl From<UpdateWebhook> for SubscriptionChanges {
    fn from(input: UpdateWebhook) -> Self {
        Self {
            url: input.url,
            events: input.events,
            description: input.description,
            metadata: input.metadata,
            active: input.active,
            retry: input.retry,
            timeout_ms: input.timeout_ms,
            headers: input.headers,
            owner: input.owner,
            legacy_signature: input.legacy_signature,
            filter: input.filter,
            signature_schemes: input.signature_schemes,
            signing_key: input.signing_key,
        }
    }
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
    State(state): State<ApiState>,
    axum::Extension(access): axum::Extension<Access>,
    ApiJson(mut input): ApiJson<CreateWebhook>,
) -> Result<(StatusCode, Json<WebhookCreated>), ApiError> {
    input.owner = scoped_owner(&access, input.owner)?;
    let row = state.ops.create_subscription(input.into()).await?;
    let secret = row.secret.clone();
    Ok((
        StatusCode::CREATED,
        Json(WebhookCreated {
            webhook: row.into(),
            secret,
        }),
    ))
}

/// The most subscriptions one `POST /api/webhooks/batch` creates.
pub const MAX_BATCH_WEBHOOKS: usize = 1_000;

/// Subscriptions to create together.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhooks {
    /// 1 to 1,000 subscriptions, each as `POST /api/webhooks` takes it, created all-or-nothing.
    pub webhooks: Vec<CreateWebhook>,
}

/// The subscriptions created, in the order given, each with its signing secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhooksCreated {
    pub webhooks: Vec<WebhookCreated>,
}

/// Create up to 1,000 subscriptions all-or-nothing, in one transaction: if one is invalid, none is
/// stored and the error names it (`webhooks[3].url`).
#[utoipa::path(post, path = "/api/webhooks/batch", tag = "webhooks", request_body = CreateWebhooks,
    security(("api_key" = [])),
    responses(
        (status = 201, body = WebhooksCreated),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ))]
pub async fn create_batch(
    State(state): State<ApiState>,
    axum::Extension(access): axum::Extension<Access>,
    ApiJson(input): ApiJson<CreateWebhooks>,
) -> Result<(StatusCode, Json<WebhooksCreated>), ApiError> {
    if input.webhooks.is_empty() || input.webhooks.len() > MAX_BATCH_WEBHOOKS {
        return Err(ApiError::invalid(
            "invalid_batch",
            "webhooks",
            format!("must hold 1 to {MAX_BATCH_WEBHOOKS} subscriptions"),
        ));
    }
    let mut drafts = Vec::with_capacity(input.webhooks.len());
    for mut webhook in input.webhooks {
        webhook.owner = scoped_owner(&access, webhook.owner)?;
        drafts.push(webhook.into());
    }
    let rows = state.ops.create_subscriptions(drafts, "webhooks").await?;
    Ok((
        StatusCode::CREATED,
        Json(WebhooksCreated {
            webhooks: rows
                .into_iter()
                .map(|row| {
                    let secret = row.secret.clone();
                    WebhookCreated {
                        webhook: row.into(),
                        secret,
                    }
                })
                .collect(),
        }),
    ))
}

/// The original webhook specification's registration route: same input as `POST /api/webhooks`, answers `{id, secret, message}`.
#[utoipa::path(post, path = "/api/webhooks/subscribe", tag = "webhooks", request_body = CreateWebhook,
    security(("api_key" = [])),
    responses((status = 201, body = SubscribeResponse), (status = 422, body = ErrorBody)))]
pub async fn subscribe(
    State(state): State<ApiState>,
    axum::Extension(access): axum::Extension<Access>,
    ApiJson(mut input): ApiJson<CreateWebhook>,
) -> Result<(StatusCode, Json<SubscribeResponse>), ApiError> {
    input.owner = scoped_owner(&access, input.owner)?;
    let row = state.ops.create_subscription(input.into()).await?;
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
    State(state): State<ApiState>,
    axum::Extension(access): axum::Extension<Access>,
    ApiQuery(query): ApiQuery<ListWebhooks>,
) -> Result<Json<PageOf<Webhook>>, ApiError> {
    let limit = pagination::limit(query.limit)?;
    let after = pagination::decode_cursor(query.cursor.as_deref())?;
    let page = state
        .store
        .subscriptions
        .list_subscriptions(SubscriptionQuery {
            active: query.active,
            owner: scoped_owner(&access, query.owner)?,
            after,
            limit,
        })
        .await?;
    Ok(Json(PageOf {
        data: page.items.into_iter().map(Webhook::from).collect(),
        next_cursor: page.next.as_ref().map(pagination::encode_cursor),
    }))
}

async fn load(state: &ApiState, id: &str) -> Result<SubscriptionRow, ApiError> {
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
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Webhook>, ApiError> {
    Ok(Json(load(&state, &id).await?.into()))
}

/// A subscription's signing secret.
#[utoipa::path(get, path = "/api/webhooks/{id}/secret", tag = "webhooks", security(("api_key" = [])),
    params(("id" = String, Path)),
    responses((status = 200, body = WebhookSecret), (status = 404, body = ErrorBody)))]
pub async fn secret(
    State(state): State<ApiState>,
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
    State(state): State<ApiState>,
    axum::Extension(access): axum::Extension<Access>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<UpdateWebhook>,
) -> Result<Json<Webhook>, ApiError> {
    if access.owner.is_some() {
        match &input.owner {
            None => {}
            Some(None) => {
                return Err(ApiError::Forbidden(
                    "an API key bound to an owner cannot remove a subscription's owner",
                ));
            }
            Some(named) => {
                scoped_owner(&access, named.clone())?;
            }
        }
    }
    let patch = state.ops.parse_changes(input.into())?;
    let row = state.ops.update_subscription(&id, patch).await?;
    Ok(Json(row.into()))
}

/// Delete a subscription and its deliveries.
#[utoipa::path(delete, path = "/api/webhooks/{id}", tag = "webhooks", security(("api_key" = [])),
    params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn remove(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.ops.delete_subscription(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
