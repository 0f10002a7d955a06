//! The OpenAPI 3.1 document, generated from the handlers' annotations and served at `/openapi.json`.
//! `tests/openapi.rs` keeps the checked-in copy (`openapi.json` at the repo root) in step.

use super::pagination::PageOf;
use super::{
    actions, deliveries, error, event_types, events, health, inbound, metrics, portal, webhooks,
};
use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "hookd", description = "Webhook delivery server"),
    paths(
        health::healthz, health::readyz,
        webhooks::create, webhooks::subscribe, webhooks::list, webhooks::get_one,
        webhooks::secret, webhooks::update, webhooks::remove,
        events::publish, events::publish_batch, events::get_one, events::list,
        event_types::list, event_types::create, event_types::archive,
        deliveries::list_for_webhook, deliveries::get_one, deliveries::retry,
        deliveries::retry_via_webhooks_path, deliveries::list_dead, deliveries::redrive_one,
        deliveries::redrive_many,
        actions::send_test, actions::rotate_secret, actions::enable, actions::disable,
        actions::recover,
        metrics::summary,
        inbound::receive, inbound::list,
        portal::create,
    ),
    components(schemas(
        error::ErrorBody, PageOf<webhooks::Webhook>, PageOf<events::Event>,
        PageOf<events::Delivery>, PageOf<deliveries::DeadLetter>, PageOf<inbound::Receipt>,
    )),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

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

pub async fn serve() -> Json<serde_json::Value> {
    Json(serde_json::from_str(&document()).unwrap_or_default())
}
