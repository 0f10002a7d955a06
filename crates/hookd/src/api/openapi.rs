//! The OpenAPI 3.1 document, generated from the handlers' annotations and served at `/openapi.json`.
//! `tests/openapi.rs` keeps the checked-in copy (`openapi.json` at the repo root) in step. The
//! served document adds a `webhooks` section built from the event-type catalog.

use super::ApiState;
use super::error::ApiError;
use super::pagination::PageOf;
use super::{
    actions, api_keys, deliveries, error, event_types, events, health, inbound, keys, metrics,
    owners, portal, webhooks,
};
use axum::Json;
use axum::extract::State;
use utoipa::openapi::RefOr;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "hookd", description = "Webhook delivery server"),
    paths(
        health::healthz, health::readyz,
        webhooks::create, webhooks::create_batch, webhooks::subscribe, webhooks::list, webhooks::get_one,
        webhooks::secret, webhooks::update, webhooks::remove,
        events::publish, events::publish_batch, events::get_one, events::list,
        event_types::list, event_types::create, event_types::get_one, event_types::update,
        event_types::archive,
        deliveries::list_for_webhook, deliveries::get_one, deliveries::retry,
        deliveries::retry_via_webhooks_path, deliveries::list_dead, deliveries::redrive_one,
        deliveries::redrive_many,
        actions::send_test, actions::rotate_secret, actions::enable, actions::disable,
        actions::recover,
        keys::key_set, keys::rotate,
        owners::list, owners::get_one, owners::erase, deliveries::list,
        metrics::summary,
        inbound::receive, inbound::list,
        portal::create,
        api_keys::create, api_keys::list, api_keys::revoke,
    ),
    components(schemas(
        error::ErrorBody, PageOf<webhooks::Webhook>, PageOf<events::Event>,
        PageOf<events::Delivery>, PageOf<deliveries::DeadLetter>, PageOf<inbound::Receipt>,
        PageOf<deliveries::LoggedDelivery>,
    )),
    modifiers(&BearerAuth, &ValidOperations),
)]
pub struct ApiDoc;

/// What OpenAPI 3.1 requires and the annotations leave out: every response has a description (the
/// status's reason phrase when none is given), and operation ids are unique (a handler name used
/// by several modules, such as `list`, is prefixed with its tag: `event_types_list`).
struct ValidOperations;

impl Modify for ValidOperations {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let mut seen: std::collections::HashMap<String, usize> = Default::default();
        for item in openapi.paths.paths.values() {
            for operation in operations(item) {
                if let Some(id) = &operation.operation_id {
                    *seen.entry(id.clone()).or_default() += 1;
                }
            }
        }
        for item in openapi.paths.paths.values_mut() {
            for operation in operations_mut(item) {
                let tag = operation.tags.as_ref().and_then(|t| t.first()).cloned();
                if let (Some(id), Some(tag)) = (&mut operation.operation_id, tag)
                    && seen.get(id.as_str()).copied().unwrap_or(0) > 1
                {
                    *id = format!("{}_{id}", tag.replace('-', "_"));
                }
                for (status, response) in operation.responses.responses.iter_mut() {
                    if let RefOr::T(response) = response
                        && response.description.is_empty()
                    {
                        response.description = reason(status);
                    }
                }
            }
        }
    }
}

fn operations(item: &PathItem) -> impl Iterator<Item = &Operation> {
    [
        &item.get,
        &item.put,
        &item.post,
        &item.delete,
        &item.options,
        &item.head,
        &item.patch,
        &item.trace,
    ]
    .into_iter()
    .flatten()
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

fn reason(status: &str) -> String {
    status
        .parse::<u16>()
        .ok()
        .and_then(|code| axum::http::StatusCode::from_u16(code).ok())
        .and_then(|code| code.canonical_reason())
        .unwrap_or("Response")
        .to_owned()
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document as JSON text (pretty, stable order), as checked in.
pub fn document() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut value = serde_json::to_value(&doc).unwrap_or_default();
    super::contract::apply(&mut value);
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// The document with its `webhooks` section built from the current catalog
/// ([`super::openapi_webhooks`]).
pub async fn serve(State(state): State<ApiState>) -> Result<Json<serde_json::Value>, ApiError> {
    let mut document: serde_json::Value = serde_json::from_str(&document()).unwrap_or_default();
    let types = state.store.admin.list_event_types(false).await?;
    super::openapi_webhooks::add_to_document(&mut document, &types);
    Ok(Json(document))
}
