//! `v1a` key discovery and rotation: the public key set of a subscription (no API key: public keys
//! are public, so receivers fetch them themselves) and the rotation of its Ed25519 key pair.

use super::ApiState;
use super::error::{ApiError, ErrorBody};
use super::extract::OptionalJson;
use super::webhooks::PublicKeyView;
use axum::Json;
use axum::extract::{Path, State};
use hookd_core::whole_number;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The public keys that verify a subscription's `v1a` signatures now.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeySet {
    /// The current key first, then a rotated-out key that still signs (during its overlap).
    pub keys: Vec<PublicKeyView>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateSigningKey {
    /// How long the old key keeps signing too (default 86,400; 0 stops it at once).
    #[serde(default, deserialize_with = "whole_number::deserialize")]
    pub overlap_seconds: Option<i64>,
    /// The new key pair (`whsk_…`); generated when absent.
    pub signing_key: Option<String>,
}

/// The `v1a` public keys of subscription `{id}`, for receivers to verify with. No API key. 404 for
/// an unknown subscription and for one that has never had a signing key alike.
#[utoipa::path(get, path = "/webhooks/{id}/keys", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = KeySet), (status = 404, body = ErrorBody)))]
pub async fn key_set(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<KeySet>, ApiError> {
    let keys = state.ops.public_keys(&id).await?;
    if keys.is_empty() {
        return Err(ApiError::from(crate::ops::OpsError::NotFound("webhook")));
    }
    Ok(Json(KeySet {
        keys: keys.into_iter().map(PublicKeyView::from).collect(),
    }))
}

/// Replace the `v1a` key pair; the old one keeps signing during the overlap (deliveries then carry
/// both signatures). Does not change `signature_schemes`.
#[utoipa::path(post, path = "/api/webhooks/{id}/rotate-signing-key", tag = "webhooks",
    params(("id" = String, Path)), request_body = RotateSigningKey, security(("api_key" = [])),
    responses((status = 200, body = KeySet), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn rotate(
    State(state): State<ApiState>,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<RotateSigningKey>,
) -> Result<Json<KeySet>, ApiError> {
    state
        .ops
        .rotate_signing_key(&id, body.overlap_seconds, body.signing_key)
        .await?;
    let keys = state.ops.public_keys(&id).await?;
    Ok(Json(KeySet {
        keys: keys.into_iter().map(PublicKeyView::from).collect(),
    }))
}
