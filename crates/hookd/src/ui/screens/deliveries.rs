//! The delivery log with its filters, and its live tail (server-sent events).

use super::{Page, S, non_empty, parse_time, visible_subscriptions};
use crate::ops::{decode_cursor, encode_cursor};
use crate::store::ui::{DeliveryListRow, DeliverySearch};
use crate::store::{DeliveryState, SubscriptionRow};
use crate::ui::session::Session;
use crate::ui::views::Ctx;
use crate::ui::{UiError, UiState, render};
use askama::Template;
use axum::extract::{Extension, Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use std::time::Duration;

#[derive(Deserialize, Default, Clone, serde::Serialize)]
pub(super) struct LogQuery {
    /// The operator's owner filter (a portal session is always scoped to its own owner).
    owner: Option<String>,
    state: Option<String>,
    endpoint: Option<String>,
    event_type: Option<String>,
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
}

impl LogQuery {
    fn search(&self, session: &Session, limit: u32) -> Result<DeliverySearch, UiError> {
        let state = non_empty(&self.state)
            .map(|s| {
                DeliveryState::parse(&s)
                    .ok_or_else(|| UiError::BadRequest(format!("unknown state {s:?}")))
            })
            .transpose()?;
        let status = non_empty(&self.status)
            .map(|s| {
                s.parse::<i64>()
                    .map_err(|_| UiError::BadRequest("status: not a number".into()))
            })
            .transpose()?;
        Ok(DeliverySearch {
            owner: session
                .viewer
                .owner()
                .map(str::to_owned)
                .or_else(|| non_empty(&self.owner)),
            subscription_id: non_empty(&self.endpoint),
            state,
            event_type: non_empty(&self.event_type),
            status,
            since: parse_time("since", self.since.as_deref().unwrap_or(""))?,
            until: parse_time("until", self.until.as_deref().unwrap_or(""))?,
            after: decode_cursor(non_empty(&self.cursor).as_deref())?,
            limit,
        })
    }

    /// The same filters with another cursor, as a query string.
    fn with_cursor(&self, cursor: Option<String>) -> String {
        let mut copy = self.clone();
        copy.cursor = cursor;
        copy.q = None;
        serde_urlencoded::to_string(&copy).unwrap_or_default()
    }
}

#[derive(Template)]
#[template(path = "deliveries.html")]
struct DeliveriesPage {
    ctx: Ctx,
    filters: LogQuery,
    rows: Vec<DeliveryListRow>,
    next: Option<String>,
    endpoints: Vec<SubscriptionRow>,
    states: Vec<&'static str>,
    stream_query: String,
}

const STATES: [&str; 6] = [
    "pending",
    "in_flight",
    "delivered",
    "failed",
    "dead",
    "held",
];

pub(super) async fn deliveries(
    State(state): State<UiState>,
    Extension(session): S,
    Query(filters): Query<LogQuery>,
) -> Page {
    let base = session.viewer.base();
    // An exact id goes straight to its page (scoping is checked there).
    if let Some(q) = non_empty(&filters.q) {
        let target = match q.split('_').next() {
            Some("dlv") => format!("{base}/deliveries/{q}"),
            Some("evt") => format!("{base}/events/{q}"),
            Some("wh") => format!("{base}/endpoints/{q}"),
            _ => {
                return Err(UiError::BadRequest(
                    "search takes an exact id: dlv_…, evt_… or wh_…".into(),
                ));
            }
        };
        return Ok(Redirect::to(&target).into_response());
    }
    let page = state
        .store
        .ui
        .search_deliveries(filters.search(&session, 50)?)
        .await?;
    let next = page
        .next
        .as_ref()
        .map(|c| filters.with_cursor(Some(encode_cursor(c))));
    let page = DeliveriesPage {
        ctx: Ctx::new(&state, &session, "deliveries", "Deliveries"),
        stream_query: filters.with_cursor(None),
        filters,
        rows: page.items,
        next,
        endpoints: visible_subscriptions(&state, &session).await?,
        states: STATES.to_vec(),
    };
    Ok(render(&page))
}

#[derive(Template)]
#[template(path = "delivery_row.html")]
struct DeliveryRowFragment<'a> {
    base: &'static str,
    row: &'a DeliveryListRow,
}

/// `GET …/deliveries/stream`: new deliveries matching the filters, as server-sent events whose data
/// is a rendered table row. Polls the store once a second (an indexed query on `created_at`) and ends
/// after an hour; the browser reconnects by itself.
pub(super) async fn live_tail(
    State(state): State<UiState>,
    Extension(session): S,
    Query(filters): Query<LogQuery>,
) -> Result<Response, UiError> {
    let mut search = filters.search(&session, 100)?;
    search.after = None;
    let base = session.viewer.base();
    let started = state.clock.now_ms();
    let seen: Vec<String> = Vec::new();
    let initial = (state, search, started, seen, 0u32);
    let stream = futures_util::stream::unfold(
        initial,
        move |(state, search, since, mut seen, ticks)| async move {
            if ticks >= 3600 {
                return None;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let mut query = search.clone();
            query.since = Some(search.since.map_or(since, |s| s.max(since)));
            let rows = state
                .store
                .ui
                .search_deliveries(query)
                .await
                .map(|p| p.items)
                .unwrap_or_default();
            let fresh: Vec<&DeliveryListRow> = rows
                .iter()
                .rev()
                .filter(|r| !seen.contains(&r.delivery.id))
                .collect();
            let html: String = fresh
                .iter()
                .filter_map(|row| DeliveryRowFragment { base, row }.render().ok())
                .collect();
            let newest = rows.first().map_or(since, |r| r.delivery.created_at);
            seen = rows
                .iter()
                .filter(|r| r.delivery.created_at == newest)
                .map(|r| r.delivery.id.clone())
                .collect();
            let event = match html.is_empty() {
                true => SseEvent::default().comment("tick"),
                false => SseEvent::default().event("rows").data(html),
            };
            Some((
                Ok::<_, std::convert::Infallible>(event),
                (state, search, newest, seen, ticks + 1),
            ))
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
