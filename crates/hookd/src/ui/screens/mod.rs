//! The screens, mounted under `/ui` (operators) and `/portal` (one owner). Every handler takes the
//! request's [`Session`]; every query is scoped by its viewer (`viewer.owner()` in SQL, or
//! `viewer.sees(subscription)` for one row by id), and every action checks `viewer.can_manage()`.

mod api_keys;
mod dead_letters;
mod deliveries;
mod delivery;
mod endpoint;
mod endpoints;
mod events;
mod overview;
mod owners;

use super::session::Session;
use super::views;
use super::{UiError, UiState};
use crate::ops::TypeDocs;
use crate::store::{DeliveryRow, EventTypeRow, SubscriptionQuery, SubscriptionRow};
use askama::Template;
use axum::Router;
use axum::extract::Extension;
use axum::response::Response;
use axum::routing::{get, post};
use hookd_core::EventFilter;
use serde::Deserialize;

pub use api_keys::api_keys;

pub fn routes() -> Router<UiState> {
    Router::new()
        .route("/", get(overview::overview))
        .route(
            "/endpoints",
            get(endpoints::endpoints).post(endpoints::create_endpoint),
        )
        .route("/endpoints/new", get(endpoints::new_endpoint))
        .route("/endpoints/filter-test", post(endpoints::test_filter))
        .route(
            "/endpoints/{id}",
            get(endpoint::endpoint).post(endpoints::update_endpoint),
        )
        .route("/endpoints/{id}/edit", get(endpoints::edit_endpoint))
        .route("/endpoints/{id}/enable", post(endpoints::enable_endpoint))
        .route("/endpoints/{id}/disable", post(endpoints::disable_endpoint))
        .route("/endpoints/{id}/delete", post(endpoints::delete_endpoint))
        .route("/endpoints/{id}/secret", post(endpoint::reveal_secret))
        .route("/endpoints/{id}/rotate", post(endpoint::rotate_secret))
        .route("/endpoints/{id}/signatures", post(endpoint::set_schemes))
        .route(
            "/endpoints/{id}/rotate-signing-key",
            post(endpoint::rotate_signing_key),
        )
        .route("/endpoints/{id}/test", post(endpoint::send_test))
        .route("/owners", get(owners::owners))
        .route("/deliveries", get(deliveries::deliveries))
        .route("/deliveries/stream", get(deliveries::live_tail))
        .route("/deliveries/{id}", get(delivery::delivery))
        .route("/deliveries/{id}/retry", post(delivery::retry))
        .route("/dead-letters", get(dead_letters::dead_letters))
        .route("/dead-letters/redrive", post(dead_letters::redrive_many))
        .route("/dead-letters/recover", post(dead_letters::recover))
        .route(
            "/dead-letters/recover/{job}",
            get(dead_letters::recovery_progress),
        )
        .route("/events", get(events::catalog))
        .route(
            "/events/types/{name}/send-example",
            post(events::send_example),
        )
        .route("/events/{id}", get(events::event))
        .route("/events/{id}/replay", post(events::replay))
}

type S = Extension<Session>;
type Page = Result<Response, UiError>;

/// Most subscriptions a page reads at once where it needs all of them (selects, the catalog).
const MAX_LISTED_SUBSCRIPTIONS: u32 = 250;

fn require_manage(session: &Session) -> Result<(), UiError> {
    match session.viewer.can_manage() {
        true => Ok(()),
        false => Err(UiError::Forbidden("this portal session is read-only")),
    }
}

/// One subscription by id, if the viewer may see it; otherwise "not found", exactly as if it did not
/// exist (so that guessing ids reveals nothing).
async fn load_subscription(
    state: &UiState,
    session: &Session,
    id: &str,
) -> Result<SubscriptionRow, UiError> {
    match state.store.subscriptions.get_subscription(id).await? {
        Some(row) if session.viewer.sees(&row) => Ok(row),
        _ => Err(UiError::NotFound("endpoint")),
    }
}

async fn load_delivery(
    state: &UiState,
    session: &Session,
    id: &str,
) -> Result<(DeliveryRow, SubscriptionRow), UiError> {
    let delivery = state
        .store
        .deliveries
        .get_delivery(id)
        .await?
        .ok_or(UiError::NotFound("delivery"))?;
    let subscription = load_subscription(state, session, &delivery.subscription_id)
        .await
        .map_err(|_| UiError::NotFound("delivery"))?;
    Ok((delivery, subscription))
}

async fn visible_subscriptions(
    state: &UiState,
    session: &Session,
) -> Result<Vec<SubscriptionRow>, UiError> {
    let page = state
        .store
        .subscriptions
        .list_subscriptions(SubscriptionQuery {
            owner: session.viewer.owner().map(str::to_owned),
            limit: MAX_LISTED_SUBSCRIPTIONS,
            ..Default::default()
        })
        .await?;
    Ok(page.items)
}

/// Interprets a `datetime-local` value (or RFC 3339) as UTC.
fn parse_time(field: &str, raw: &str) -> Result<Option<i64>, UiError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let text = match raw.len() {
        16 => format!("{raw}:00Z"),
        19 => format!("{raw}Z"),
        _ => raw.to_owned(),
    };
    hookd_core::time::parse_rfc3339_ms(&text)
        .map(Some)
        .map_err(|_| UiError::BadRequest(format!("{field}: not a date and time ({raw})")))
}

fn non_empty(raw: &Option<String>) -> Option<String> {
    raw.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// A follow-up form: action URL, button label, hidden fields.
type Confirm = (String, String, Vec<(String, String)>);

/// A short result shown in place (htmx) after an action.
#[derive(Template)]
#[template(path = "notice.html")]
struct Notice {
    ok: bool,
    title: String,
    lines: Vec<(String, String)>,
    pre: Option<String>,
    /// A follow-up form: action URL, button label, hidden fields.
    confirm: Option<Confirm>,
    csrf: String,
}

impl Notice {
    fn new(session: &Session, ok: bool, title: impl Into<String>) -> Self {
        Self {
            ok,
            title: title.into(),
            lines: Vec::new(),
            pre: None,
            confirm: None,
            csrf: session.csrf.clone(),
        }
    }

    fn line(mut self, key: &str, value: impl Into<String>) -> Self {
        self.lines.push((key.to_owned(), value.into()));
        self
    }
}

#[derive(Deserialize)]
struct CursorQuery {
    cursor: Option<String>,
}

fn matches_type(filters: &[EventFilter], event_type: &str) -> bool {
    hookd_core::event_type::any_matches(filters, event_type)
}

/// A type's example `data` as pretty JSON: its first catalog example, else a stand-in.
fn type_example(row: &EventTypeRow) -> String {
    match TypeDocs::of(row).examples.first() {
        Some(example) => serde_json::to_string_pretty(example).unwrap_or_default(),
        None => views::example_payload(&row.name),
    }
}

/// What an endpoint's test forms start from: the first catalog type its filters subscribe to
/// (preferring one with a catalog example) and that type's example `data`.
fn catalog_example(types: &[EventTypeRow], filters: &[EventFilter]) -> Option<(String, String)> {
    types
        .iter()
        .filter(|t| matches_type(filters, &t.name))
        .min_by_key(|t| TypeDocs::of(t).examples.is_empty())
        .map(|t| (t.name.clone(), type_example(t)))
}
