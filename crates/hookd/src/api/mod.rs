//! The HTTP API: routing, authentication, and the wire types (request and response bodies).
//!
//! Handlers parse input into core types, call the store, and map results to JSON. They hold no SQL and
//! no business rules beyond input validation.

pub mod error;
pub mod event_types;
pub mod events;
pub mod extract;
pub mod health;
pub mod openapi;
pub mod pagination;
pub mod webhooks;

use crate::auth::Authenticator;
use crate::ids::DynClock;
use crate::store::DynStore;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};
use error::ApiError;
use hookd_core::UrlPolicy;

/// Limits and policies the handlers apply.
#[derive(Debug, Clone, Copy)]
pub struct ApiSettings {
    pub url_policy: UrlPolicy,
    /// Largest `data` of one event, in bytes.
    pub max_payload_bytes: usize,
    /// Largest request body of `POST /api/events/batch`.
    pub max_batch_bytes: usize,
    /// Publishing a type missing from the catalog is refused.
    pub strict_event_types: bool,
}

/// Everything a handler may touch. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    pub clock: DynClock,
    pub auth: Authenticator,
    pub settings: ApiSettings,
}

/// Body limit for management routes (subscriptions, event types).
const SMALL_BODY_LIMIT: usize = 64 * 1024;
/// Room for the envelope around an event's `data` on `POST /api/events`.
const ENVELOPE_ALLOWANCE: usize = 16 * 1024;

pub fn router(state: AppState) -> Router {
    let settings = state.settings;
    let api = Router::new()
        .route("/webhooks", post(webhooks::create).get(webhooks::list))
        .route("/webhooks/subscribe", post(webhooks::subscribe))
        .route(
            "/webhooks/{id}",
            get(webhooks::get_one)
                .patch(webhooks::update)
                .delete(webhooks::remove),
        )
        .route("/webhooks/{id}/secret", get(webhooks::secret))
        .route(
            "/event-types",
            get(event_types::list).post(event_types::create),
        )
        .route("/event-types/{name}", delete(event_types::archive))
        .layer(DefaultBodyLimit::max(SMALL_BODY_LIMIT))
        .route(
            "/events",
            post(events::publish)
                .get(events::list)
                .layer(DefaultBodyLimit::max(
                    settings.max_payload_bytes + ENVELOPE_ALLOWANCE,
                )),
        )
        .route(
            "/events/batch",
            post(events::publish_batch).layer(DefaultBodyLimit::max(settings.max_batch_bytes)),
        )
        .route("/events/{id}", get(events::get_one))
        .fallback(route_not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ));

    Router::new()
        .nest("/api", api)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi::serve))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn route_not_found() -> ApiError {
    ApiError::RouteNotFound
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Every `/api/...` request needs `Authorization: Bearer <key>` with a configured or stored,
/// unrevoked key. Unknown `/api` paths answer 401 too, so that routes are not probed anonymously.
async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header_value =
        request
            .headers()
            .get(header::AUTHORIZATION)
            .ok_or(ApiError::Unauthorized(
                "missing API key: send Authorization: Bearer <key>",
            ))?;
    let presented = header_value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .ok_or(ApiError::Unauthorized(
            "malformed Authorization header: expected Bearer <key>",
        ))?;
    match state.auth.authenticate(presented).await? {
        Some(_principal) => Ok(next.run(request).await),
        None => Err(ApiError::Unauthorized("invalid or revoked API key")),
    }
}

/// RFC 3339 UTC with milliseconds, e.g. `2025-01-15T10:30:00.000Z`.
pub fn rfc3339(unix_ms: i64) -> String {
    let nanos = i128::from(unix_ms) * 1_000_000;
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
        return String::new();
    };
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&format).unwrap_or_default()
}

/// Parses an RFC 3339 timestamp from a query or body field into Unix milliseconds.
pub fn parse_rfc3339(field: &str, raw: &str) -> Result<i64, ApiError> {
    let at = time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|e| ApiError::invalid("invalid_timestamp", field, format!("not RFC 3339: {e}")))?;
    Ok((at.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_736_937_000_123), "2025-01-15T10:30:00.123Z");
        assert_eq!(
            parse_rfc3339("since", "2025-01-15T10:30:00.123Z").unwrap(),
            1_736_937_000_123
        );
        assert_eq!(
            parse_rfc3339("since", "2025-01-15T11:30:00+01:00").unwrap(),
            1_736_937_000_000
        );
        assert!(parse_rfc3339("since", "yesterday").is_err());
    }
}
