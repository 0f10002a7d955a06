//! The event catalog and one event: its envelope, its fan-out, and replaying it.

use super::endpoint::TestForm;
use super::{
    Notice, Page, S, load_subscription, matches_type, non_empty, require_manage, type_example,
    visible_subscriptions,
};
use crate::ops::{ReplayOutcome, TypeDocs};
use crate::store::DeliveryRow;
use crate::ui::session::Session;
use crate::ui::views::{self, Ctx};
use crate::ui::{UiError, UiState, render};
use askama::Template;
use axum::extract::{Extension, Form, Path, State};
use serde::Deserialize;

struct CatalogItem {
    name: String,
    description: String,
    /// The type's first example, else a stand-in (pretty JSON).
    example: String,
    /// The schema of `data`, pretty JSON; empty without one.
    schema: String,
    /// Per-version schemas: (version, pretty JSON).
    version_schemas: Vec<(String, String)>,
    validate: String,
    endpoints: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "catalog.html")]
struct CatalogPage {
    ctx: Ctx,
    items: Vec<CatalogItem>,
}

pub(super) async fn catalog(State(state): State<UiState>, Extension(session): S) -> Page {
    let subs = visible_subscriptions(&state, &session).await?;
    let items = state
        .store
        .admin
        .list_event_types(false)
        .await?
        .into_iter()
        .map(|t| {
            let docs = TypeDocs::of(&t);
            let pretty =
                |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
            CatalogItem {
                example: type_example(&t),
                schema: docs.schema.as_ref().map(pretty).unwrap_or_default(),
                version_schemas: docs
                    .version_schemas
                    .iter()
                    .map(|(version, schema)| (version.clone(), pretty(schema)))
                    .collect(),
                validate: t.validate.clone(),
                endpoints: subs
                    .iter()
                    .filter(|s| matches_type(&s.events, &t.name))
                    .map(|s| (s.id.clone(), s.url.to_string()))
                    .collect(),
                name: t.name,
                description: t.description,
            }
        })
        .collect();
    let page = CatalogPage {
        ctx: Ctx::new(&state, &session, "events", "Event catalog"),
        items,
    };
    Ok(render(&page))
}

#[derive(Deserialize)]
pub(super) struct SendExampleForm {
    endpoint: String,
    payload: String,
}

/// "Send example": a test event of this type with the example as `data`, to one endpoint (as the
/// endpoint page's test form sends it).
pub(super) async fn send_example(
    State(state): State<UiState>,
    Extension(session): S,
    Path(name): Path<String>,
    Form(form): Form<SendExampleForm>,
) -> Page {
    let test = TestForm {
        event_type: name,
        payload: form.payload,
    };
    super::endpoint::send_test(
        State(state),
        Extension(session),
        Path(form.endpoint),
        Form(test),
    )
    .await
}

#[derive(Template)]
#[template(path = "event.html")]
struct EventPage {
    ctx: Ctx,
    event: crate::store::EventRow,
    envelope: String,
    fanout: Vec<(DeliveryRow, String)>,
    /// Active endpoints the event may be replayed to: those whose filters match its type...
    subscribed: Vec<ReplayTarget>,
    /// ...and, if the operator picks one, those whose filters do not.
    others: Vec<ReplayTarget>,
}

struct ReplayTarget {
    id: String,
    url: String,
    /// It has a delivery of this event already (a replay re-queues that one).
    delivered_before: bool,
}

/// An event and its deliveries that the viewer may see; for a portal viewer with none, "not found".
async fn load_event(
    state: &UiState,
    session: &Session,
    id: &str,
) -> Result<(crate::store::EventRow, Vec<(DeliveryRow, String)>), UiError> {
    let event = state
        .store
        .deliveries
        .get_event(id)
        .await?
        .ok_or(UiError::NotFound("event"))?;
    let mut visible = Vec::new();
    for delivery in state.store.deliveries.deliveries_for_event(id).await? {
        if let Some(sub) = state
            .store
            .subscriptions
            .get_subscription(&delivery.subscription_id)
            .await?
            && session.viewer.sees(&sub)
        {
            visible.push((delivery, sub.url.to_string()));
        }
    }
    if session.viewer.is_portal() && visible.is_empty() {
        return Err(UiError::NotFound("event"));
    }
    Ok((event, visible))
}

pub(super) async fn event(
    State(state): State<UiState>,
    Extension(session): S,
    Path(id): Path<String>,
) -> Page {
    let (event, fanout) = load_event(&state, &session, &id).await?;
    let timestamp = hookd_core::time::rfc3339_ms(event.created_at);
    let envelope = hookd_core::envelope::Envelope {
        id: &event.id,
        timestamp: &timestamp,
        event_type: &event.event_type,
        version: &event.version,
        data_json: &event.data,
        attempt: 1,
        retryable: event.retryable,
    }
    .encode();
    let (mut subscribed, mut others) = (Vec::new(), Vec::new());
    for sub in visible_subscriptions(&state, &session).await? {
        // An event is never sent to another owner's endpoint, so those are not offered.
        if !sub.active || sub.owner != event.owner {
            continue;
        }
        let target = ReplayTarget {
            delivered_before: fanout.iter().any(|(d, _)| d.subscription_id == sub.id),
            id: sub.id,
            url: sub.url.to_string(),
        };
        match matches_type(&sub.events, &event.event_type) {
            true => subscribed.push(target),
            false => others.push(target),
        }
    }
    let page = EventPage {
        ctx: Ctx::new(&state, &session, "events", format!("Event {id}")),
        envelope: views::pretty_json(&String::from_utf8_lossy(&envelope)),
        event,
        fanout,
        subscribed,
        others,
    };
    Ok(render(&page))
}

#[derive(Deserialize)]
pub(super) struct ReplayForm {
    /// One delivery of this event; absent (and no `endpoint`): every visible one.
    delivery: Option<String>,
    /// One endpoint, whether or not it had a delivery of this event (or subscribes to its type).
    endpoint: Option<String>,
}

/// Replays an event to one endpoint: re-queues its delivery of the event if it has one, else
/// creates one (the endpoint was created after the event, or does not subscribe to its type and
/// the operator picked it anyway).
async fn replay_to_endpoint(
    state: &UiState,
    session: &Session,
    event_id: &str,
    endpoint: &str,
) -> Page {
    let sub = load_subscription(state, session, endpoint).await?;
    let (title, delivery) = match state.ops.replay_to_endpoint(event_id, &sub).await? {
        ReplayOutcome::Requeued(row) => ("Replay queued", row),
        ReplayOutcome::Created(row) => ("New delivery queued", row),
        ReplayOutcome::InFlight(delivery_id) => {
            let notice = Notice::new(
                session,
                false,
                "An attempt is in flight; try again when it ends",
            )
            .line("Delivery", delivery_id);
            return Ok(render(&notice));
        }
        ReplayOutcome::EndpointDisabled => {
            return Ok(render(&Notice::new(
                session,
                false,
                "The endpoint is disabled: enable it first",
            )));
        }
        ReplayOutcome::OtherOwner => {
            return Ok(render(&Notice::new(
                session,
                false,
                "The endpoint belongs to another owner than the event: it is never sent there",
            )));
        }
        // Created meanwhile by another request, or disabled meanwhile.
        ReplayOutcome::EndpointChanged => {
            return Ok(render(&Notice::new(
                session,
                false,
                "The endpoint changed meanwhile; reload and try again",
            )));
        }
    };
    let notice = Notice::new(session, true, title)
        .line("Endpoint", sub.url.to_string())
        .line("Delivery", delivery.id);
    Ok(render(&notice))
}

pub(super) async fn replay(
    State(state): State<UiState>,
    Extension(session): S,
    Path(id): Path<String>,
    Form(form): Form<ReplayForm>,
) -> Page {
    require_manage(&session)?;
    let (_, fanout) = load_event(&state, &session, &id).await?;
    if let Some(endpoint) = non_empty(&form.endpoint) {
        return replay_to_endpoint(&state, &session, &id, &endpoint).await;
    }
    let wanted = non_empty(&form.delivery);
    let chosen: Vec<String> = fanout
        .into_iter()
        .map(|(delivery, _)| delivery.id)
        .filter(|id| wanted.as_ref().is_none_or(|w| w == id))
        .collect();
    let (queued, busy) = state.ops.replay_deliveries(&chosen).await?;
    let notice = Notice::new(
        &session,
        busy == 0,
        format!("Replay queued for {queued} endpoint(s)"),
    )
    .line("In flight, skipped", busy.to_string());
    Ok(render(&notice))
}
