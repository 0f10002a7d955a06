//! The inbound endpoint (the original webhook specification's `POST /webhooks/:id`): verifies a
//! webhook sent to subscription `{id}` with that subscription's secret(s) and records each
//! verified `webhook-id` once. It lets two hookd instances be wired together and lets users check
//! a signature online. No API key: the signature is the authentication.

use super::error::{ApiError, ErrorBody};
use super::extract::ApiQuery;
use super::pagination::{self, PageOf};
use super::{ApiState, rfc3339};
use crate::ids::new_id;
use crate::store::ReceiptRow;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use hookd_core::SigningSecret;
use hookd_verify::{Verifier, VerifyError};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Largest body the inbound endpoint reads.
pub const MAX_INBOUND_BYTES: usize = 512 * 1024;

#[derive(Debug, Serialize, ToSchema)]
pub struct ReceivedAck {
    pub received: bool,
    /// True when this `webhook-id` was already received (acknowledged, not recorded again).
    pub duplicate: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Receipt {
    pub id: String,
    /// The sender's message id, its `webhook-id` header (for a hookd sender: the event id).
    /// Named `message_id` because `webhook_id` means a subscription everywhere else in the API.
    pub message_id: String,
    pub event_type: Option<String>,
    pub received_at: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListReceipts {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

fn unauthorized(error: VerifyError) -> ApiError {
    ApiError::SignatureInvalid(error.to_string())
}

/// Checks the request: Standard Webhooks headers when present (any current secret may match, the
/// timestamp must be within 5 minutes), otherwise the original specification's hex
/// `X-Webhook-Signature` with the current secret. Returns the webhook id to deduplicate on.
fn verify(
    secrets: &[&str],
    headers: &HeaderMap,
    body: &[u8],
    now_ms: i64,
) -> Result<String, ApiError> {
    if headers.contains_key("webhook-signature") || headers.contains_key("webhook-id") {
        // A secret of the subscriber's own (not `whsec_`) keys the HMAC with its UTF-8 bytes.
        let keyed = |text: &str| match SigningSecret::parse(text) {
            Ok(secret) => secret.standard_webhooks_form(),
            Err(_) => text.to_owned(),
        };
        let (first, rest) = secrets.split_first().ok_or(ApiError::Internal)?;
        let mut verifier = Verifier::new(&keyed(first)).map_err(unauthorized)?;
        for secret in rest {
            verifier = verifier.with_secret(&keyed(secret)).map_err(unauthorized)?;
        }
        let verified = verifier
            .verify(headers, body, now_ms.div_euclid(1_000))
            .map_err(unauthorized)?;
        return Ok(verified.msg_id);
    }
    let Some(signature) = headers
        .get("x-webhook-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return Err(unauthorized(VerifyError::MissingHeader(
            "webhook-signature",
        )));
    };
    let id = headers
        .get("x-webhook-id")
        .and_then(|v| v.to_str().ok())
        .ok_or(unauthorized(VerifyError::MissingHeader("x-webhook-id")))?;
    let matched = secrets
        .iter()
        .any(|secret| hookd_verify::verify_hex(secret, signature, body).is_ok());
    match matched {
        true => Ok(id.to_owned()),
        false => Err(unauthorized(VerifyError::NoMatchingSignature)),
    }
}

/// Receive a webhook for subscription `{id}`: 200 when the signature verifies, 401 when it does not
/// (or is stale), 404 for an unknown subscription.
#[utoipa::path(post, path = "/webhooks/{id}", tag = "inbound", params(("id" = String, Path)),
    request_body(content = Object, description = "The webhook payload, verified byte for byte"),
    responses((status = 200, body = ReceivedAck), (status = 401, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn receive(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ReceivedAck>, ApiError> {
    let subscription = state
        .store
        .subscriptions
        .get_subscription(&id)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    let now = state.clock.now_ms();
    let mut secrets = vec![subscription.secret.as_str()];
    if let (Some(previous), Some(until)) = (
        &subscription.previous_secret,
        subscription.previous_secret_expires_at,
    ) && until > now
    {
        secrets.push(previous);
    }
    let webhook_id = verify(&secrets, &headers, &body, now)?;
    let event_type = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("event").and_then(|e| e.as_str()).map(str::to_owned));
    let recorded = state
        .store
        .admin
        .record_receipt(ReceiptRow {
            id: new_id("rcv", now),
            subscription_id: subscription.id,
            webhook_id,
            event_type,
            received_at: now,
        })
        .await?;
    Ok(Json(ReceivedAck {
        received: true,
        duplicate: !recorded,
    }))
}

/// What the inbound endpoint received for a subscription, newest first.
#[utoipa::path(get, path = "/api/webhooks/{id}/received", tag = "inbound",
    params(("id" = String, Path), ListReceipts), security(("api_key" = [])),
    responses((status = 200, body = PageOf<Receipt>), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<ListReceipts>,
) -> Result<Json<PageOf<Receipt>>, ApiError> {
    let limit = pagination::limit(query.limit)?;
    let after = pagination::decode_cursor(query.cursor.as_deref())?;
    if state
        .store
        .subscriptions
        .get_subscription(&id)
        .await?
        .is_none()
    {
        return Err(ApiError::NotFound("webhook"));
    }
    let page = state.store.admin.list_receipts(&id, after, limit).await?;
    Ok(Json(PageOf {
        data: page
            .items
            .into_iter()
            .map(|r| Receipt {
                id: r.id,
                message_id: r.webhook_id,
                event_type: r.event_type,
                received_at: rfc3339(r.received_at),
            })
            .collect(),
        next_cursor: page.next.as_ref().map(pagination::encode_cursor),
    }))
}
