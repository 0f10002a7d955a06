//! The HTTP API: routing, authentication, and the wire types (request and response bodies).
//!
//! Handlers parse input, call the use cases (`ops/`) for anything that changes state or the store
//! for reads, and map results to JSON. They hold no SQL and no business rules.

pub mod access;
pub mod actions;
pub mod api_keys;
mod contract;
pub mod deliveries;
pub mod error;
pub mod event_types;
pub mod events;
pub mod extract;
pub mod health;
pub mod inbound;
pub mod keys;
pub mod metrics;
pub mod openapi;
pub mod openapi_webhooks;
pub mod owners;
pub mod pagination;
pub mod portal;
pub mod webhooks;

use crate::auth::Authenticator;
use crate::ids::DynClock;
use crate::ops::Ops;
use crate::store::Store;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use error::ApiError;

/// Limits and policies of the API itself (the operations' own are in [`crate::ops::OpsSettings`]).
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Largest request body of `POST /api/events/batch`.
    pub max_batch_bytes: usize,
    /// Serve the management API (false on worker-only nodes: health and metrics only).
    pub serve_api: bool,
    /// `/metrics` without an API key.
    pub public_metrics: bool,
    /// Base of absolute portal links (`public_url`); else they are built from the request's host.
    pub public_url: Option<String>,
}

/// Everything a handler may touch. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    /// The use cases; everything that changes state goes through them.
    pub ops: Ops,
    /// The same store as `ops.store`, for reads.
    pub store: Store,
    /// The same clock as `ops.clock`.
    pub clock: DynClock,
    pub auth: Authenticator,
    pub settings: ApiSettings,
}

/// Body limit for management routes (subscriptions, event types).
const SMALL_BODY_LIMIT: usize = 64 * 1024;
/// Room for the envelope around an event's `data` on `POST /api/events`.
const ENVELOPE_ALLOWANCE: usize = 16 * 1024;

/// The API's routes, with their state. The caller adds the fallbacks ([`route_not_found`],
/// [`method_not_allowed`]) once every other router is merged in, so that they answer for all.
pub fn router(state: ApiState) -> Router {
    let settings = state.settings.clone();
    let max_payload_bytes = state.ops.settings.max_payload_bytes;
    let auth = middleware::from_fn_with_state(state.clone(), require_api_key);
    let metrics_route = match settings.public_metrics {
        true => get(metrics::prometheus_text),
        false => get(metrics::prometheus_text).layer(auth.clone()),
    };
    let mut app = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", metrics_route)
        .route("/openapi.json", get(openapi::serve));
    if settings.serve_api {
        app = app
            .nest(
                "/api",
                management_routes(&settings, max_payload_bytes).layer(auth),
            )
            .route(
                "/webhooks/{id}",
                post(inbound::receive).layer(body_limit(inbound::MAX_INBOUND_BYTES)),
            )
            .route("/webhooks/{id}/keys", get(keys::key_set));
    }
    app.with_state(state)
}

fn management_routes(settings: &ApiSettings, max_payload_bytes: usize) -> Router<ApiState> {
    Router::new()
        .route("/webhooks", post(webhooks::create).get(webhooks::list))
        .route("/webhooks/subscribe", post(webhooks::subscribe))
        .route("/webhooks/metrics", get(metrics::summary))
        .route(
            "/webhooks/{id}",
            get(webhooks::get_one)
                .patch(webhooks::update)
                .delete(webhooks::remove),
        )
        .route("/webhooks/{id}/secret", get(webhooks::secret))
        .route(
            "/webhooks/{id}/deliveries",
            get(deliveries::list_for_webhook),
        )
        .route("/webhooks/{id}/received", get(inbound::list))
        .route("/webhooks/{id}/test", post(actions::send_test))
        .route("/webhooks/{id}/rotate-secret", post(actions::rotate_secret))
        .route("/webhooks/{id}/rotate-signing-key", post(keys::rotate))
        .route("/webhooks/{id}/enable", post(actions::enable))
        .route("/webhooks/{id}/disable", post(actions::disable))
        .route("/webhooks/{id}/recover", post(actions::recover))
        .route(
            "/webhooks/deliveries/{id}/retry",
            post(deliveries::retry_via_webhooks_path),
        )
        .route("/deliveries", get(deliveries::list))
        .route("/deliveries/{id}", get(deliveries::get_one))
        .route("/owners", get(owners::list))
        .route(
            "/owners/{owner}",
            get(owners::get_one).delete(owners::erase),
        )
        .route("/deliveries/{id}/retry", post(deliveries::retry))
        .route("/dead-letters", get(deliveries::list_dead))
        .route("/dead-letters/redrive", post(deliveries::redrive_many))
        .route("/dead-letters/{id}/redrive", post(deliveries::redrive_one))
        .route(
            "/event-types",
            get(event_types::list).post(event_types::create),
        )
        .route(
            "/event-types/{name}",
            get(event_types::get_one)
                .patch(event_types::update)
                .delete(event_types::archive),
        )
        .layer(body_limit(SMALL_BODY_LIMIT))
        .route(
            "/events",
            post(events::publish)
                .get(events::list)
                .layer(body_limit(max_payload_bytes + ENVELOPE_ALLOWANCE)),
        )
        .route(
            "/events/batch",
            post(events::publish_batch).layer(body_limit(settings.max_batch_bytes)),
        )
        .route(
            "/webhooks/batch",
            post(webhooks::create_batch).layer(body_limit(settings.max_batch_bytes)),
        )
        .route("/events/{id}", get(events::get_one))
        .route("/portal/sessions", post(portal::create))
        .route("/api-keys", post(api_keys::create).get(api_keys::list))
        .route("/api-keys/{id}", axum::routing::delete(api_keys::revoke))
        .fallback(route_not_found)
}

/// The credentials of `Authorization: Bearer <key>`; the scheme's name is case-insensitive
/// (RFC 9110, section 11.1), so `bearer` and `BEARER` are accepted too.
pub fn bearer_token(header_value: &str) -> Option<&str> {
    let (scheme, rest) = header_value.trim_start().split_once(' ')?;
    match scheme.eq_ignore_ascii_case("bearer") {
        true => Some(rest.trim()),
        false => None,
    }
}

/// A route's body limit, and the limit's value for its 413 message ([`extract::BodyLimit`]).
fn body_limit(
    bytes: usize,
) -> tower::layer::util::Stack<
    axum::Extension<extract::BodyLimit>,
    tower::layer::util::Stack<DefaultBodyLimit, tower::layer::util::Identity>,
> {
    tower::ServiceBuilder::new()
        .layer(DefaultBodyLimit::max(bytes))
        .layer(axum::Extension(extract::BodyLimit(bytes)))
        .into_inner()
}

/// Most header fields in one request (the listener's parser allows more, so that a request over
/// this limit gets a JSON answer).
pub const MAX_HEADER_FIELDS: usize = 100;
/// Most bytes of header names and values in one request.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// 431 with the API's error body for a request whose headers are over [`MAX_HEADER_FIELDS`] or
/// [`MAX_HEADER_BYTES`].
pub async fn limit_headers(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADER_FIELDS || bytes > MAX_HEADER_BYTES {
        return ApiError::HeadersTooLarge(format!(
            "request headers are over their limit of {MAX_HEADER_FIELDS} fields \
             and {MAX_HEADER_BYTES} bytes"
        ))
        .into_response();
    }
    next.run(request).await
}

/// The answer for a path that matches no route.
pub async fn route_not_found() -> ApiError {
    ApiError::RouteNotFound
}

/// The answer for a known path with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// Every `/api/...` request needs `Authorization: Bearer <key>` with a configured or stored,
/// unrevoked key. Unknown `/api` paths answer 401 too, so that routes are not probed anonymously.
/// The key's [`Access`](crate::auth::Access) is then checked against the route
/// ([`access::check_route`]) and handed to the handler as a request extension.
async fn require_api_key(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let client = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip());
    let header_value = request.headers().get(header::AUTHORIZATION).cloned();
    match authenticate(&state, header_value).await {
        Ok(access) => authorize(&state, access, request, next).await,
        Err(ApiError::Unauthorized(message)) => match client {
            // Failed attempts are limited per client address: a brute-force gets 429s.
            Some(ip) if !state.auth.failures.record_failure(ip) => {
                tracing::warn!(%ip, "too many failed authentications");
                Err(ApiError::TooManyRequests(
                    "too many failed authentications from this address; retry later",
                ))
            }
            _ => Err(ApiError::Unauthorized(message)),
        },
        Err(other) => Err(other),
    }
}

/// Checks an authenticated request against its route and passes it on with its access. A path that
/// matches no route goes on to the fallback (404), whatever the key's scopes.
async fn authorize(
    state: &ApiState,
    access: crate::auth::Access,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    use axum::RequestExt;
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|path| path.as_str().to_owned());
    if let Some(route) = route {
        let param = request
            .extract_parts::<axum::extract::RawPathParams>()
            .await
            .ok()
            .and_then(|params| params.iter().next().map(|(_, value)| value.to_owned()));
        let method = request.method().clone();
        access::check_route(state, &access, &method, &route, param).await?;
    }
    request.extensions_mut().insert(access);
    Ok(next.run(request).await)
}

async fn authenticate(
    state: &ApiState,
    header_value: Option<axum::http::HeaderValue>,
) -> Result<crate::auth::Access, ApiError> {
    let header_value = header_value.ok_or(ApiError::Unauthorized(
        "missing API key: send Authorization: Bearer <key>",
    ))?;
    let presented = header_value
        .to_str()
        .ok()
        .and_then(bearer_token)
        .filter(|key| !key.is_empty())
        .ok_or(ApiError::Unauthorized(
            "malformed Authorization header: expected Bearer <key>",
        ))?;
    match state.auth.authenticate(presented).await? {
        Some(principal) => Ok(principal.access()),
        None => Err(ApiError::Unauthorized("invalid or revoked API key")),
    }
}

pub use hookd_core::time::rfc3339_ms as rfc3339;

/// Parses an RFC 3339 timestamp from a query or body field into Unix milliseconds.
pub fn parse_rfc3339(field: &str, raw: &str) -> Result<i64, ApiError> {
    hookd_core::time::parse_rfc3339_ms(raw)
        .map_err(|e| ApiError::invalid("invalid_timestamp", field, format!("not RFC 3339: {e}")))
}
