//! The screens, mounted under `/ui` (operators) and `/portal` (one owner). Every handler takes the
//! request's [`Session`]; every query is scoped by its viewer (`viewer.owner()` in SQL, or
//! `viewer.sees(subscription)` for one row by id), and every action checks `viewer.can_manage()`.

use super::charts::{self, Range};
use super::jobs::{Progress, RECOVERY_STEP, Recovery, RecoveryRequest};
use super::session::Session;
use super::views::{self, Ctx};
use super::{UiError, UiState, ops_status, render};
use crate::ops::{
    OpsError, ReplayOutcome, SubscriptionChanges, SubscriptionDraft, TestPayload, decode_cursor,
    encode_cursor,
};
use crate::store::ui::{DeliveryListRow, DeliverySearch};
use crate::store::{
    ClaimedDelivery, DeadLetterFilter, DeliveryRow, DeliveryState, RetryResult, SubscriptionQuery,
    SubscriptionRow,
};
use askama::Template;
use axum::Router;
use axum::extract::{Extension, Form, Path, Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use hookd_core::EventFilter;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

pub fn routes() -> Router<UiState> {
    Router::new()
        .route("/", get(overview))
        .route("/endpoints", get(endpoints).post(create_endpoint))
        .route("/endpoints/new", get(new_endpoint))
        .route("/endpoints/{id}", get(endpoint).post(update_endpoint))
        .route("/endpoints/{id}/edit", get(edit_endpoint))
        .route("/endpoints/{id}/enable", post(enable_endpoint))
        .route("/endpoints/{id}/disable", post(disable_endpoint))
        .route("/endpoints/{id}/delete", post(delete_endpoint))
        .route("/endpoints/{id}/secret", post(reveal_secret))
        .route("/endpoints/{id}/rotate", post(rotate_secret))
        .route("/endpoints/{id}/test", post(send_test))
        .route("/deliveries", get(deliveries))
        .route("/deliveries/stream", get(live_tail))
        .route("/deliveries/{id}", get(delivery))
        .route("/deliveries/{id}/retry", post(retry))
        .route("/dead-letters", get(dead_letters))
        .route("/dead-letters/redrive", post(redrive_many))
        .route("/dead-letters/recover", post(recover))
        .route("/dead-letters/recover/{job}", get(recovery_progress))
        .route("/events", get(catalog))
        .route("/events/{id}", get(event))
        .route("/events/{id}/replay", post(replay))
}

type S = Extension<Session>;
type Page = Result<Response, UiError>;

/// Most subscriptions a page reads at once where it needs all of them (selects, the catalog).
const MAX_LISTED_SUBSCRIPTIONS: u32 = 250;
/// How long "Send test event" waits for the attempt's outcome before showing what it has.
const TEST_WAIT: Duration = Duration::from_secs(12);

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
    match state.store.get_subscription(id).await? {
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

// ---------------------------------------------------------------------------------------------
// 1. Overview
// ---------------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    ctx: Ctx,
    range: &'static str,
    ranges: Vec<&'static str>,
    summary: charts::Summary,
    series_json: String,
    backlog: Vec<(String, i64)>,
    failing: Vec<(String, String, usize, usize)>,
}

#[derive(Deserialize)]
struct RangeQuery {
    range: Option<String>,
}

async fn overview(
    State(state): State<UiState>,
    Extension(session): S,
    Query(q): Query<RangeQuery>,
) -> Page {
    let range = Range::parse(q.range.as_deref());
    let now = state.clock.now_ms();
    let owner = session.viewer.owner();
    let ui = state.store.ui();
    let samples = ui
        .attempt_samples(now - range.span_ms(), owner, None, charts::MAX_SAMPLES)
        .await?;
    let counts: HashMap<String, i64> = ui.backlog(owner).await?.into_iter().collect();
    let backlog = ["pending", "in_flight", "failed", "dead", "held"]
        .iter()
        .map(|s| (s.to_string(), counts.get(*s).copied().unwrap_or(0)))
        .collect();
    let mut failing = Vec::new();
    for (id, failures, total) in charts::failing_most(&samples, 5) {
        let url = state
            .store
            .get_subscription(&id)
            .await?
            .map(|s| s.url)
            .unwrap_or_default();
        failing.push((id, url, failures, total));
    }
    let page = OverviewPage {
        ctx: Ctx::new(&state, &session, "overview", "Overview"),
        range: range.label(),
        ranges: Range::ALL.iter().map(|r| r.label()).collect(),
        summary: charts::summarize(&samples, range),
        series_json: serde_json::to_string(&charts::series(&samples, range, now))
            .unwrap_or_default(),
        backlog,
        failing,
    };
    Ok(render(&page))
}

// ---------------------------------------------------------------------------------------------
// 2. Endpoints
// ---------------------------------------------------------------------------------------------

struct EndpointItem {
    id: String,
    url: String,
    owner: String,
    state: &'static str,
    reason: String,
    sparkline: String,
    failure_rate: String,
    last: String,
}

#[derive(Template)]
#[template(path = "endpoints.html")]
struct EndpointsPage {
    ctx: Ctx,
    items: Vec<EndpointItem>,
    next: Option<String>,
}

#[derive(Deserialize)]
struct CursorQuery {
    cursor: Option<String>,
}

async fn endpoints(
    State(state): State<UiState>,
    Extension(session): S,
    Query(q): Query<CursorQuery>,
) -> Page {
    let after = decode_cursor(q.cursor.as_deref())?;
    let now = state.clock.now_ms();
    let page = state
        .store
        .list_subscriptions(SubscriptionQuery {
            owner: session.viewer.owner().map(str::to_owned),
            after,
            limit: 50,
            ..Default::default()
        })
        .await?;
    let samples = state
        .store
        .ui()
        .attempt_samples(
            now - 24 * 3_600_000,
            session.viewer.owner(),
            None,
            charts::MAX_SAMPLES,
        )
        .await?;
    let stats = charts::per_subscription(&samples);
    let items = page
        .items
        .iter()
        .map(|row| {
            let (state_label, reason) = views::endpoint_state(row);
            let (total, failures, last) = stats.get(row.id.as_str()).copied().unwrap_or_default();
            EndpointItem {
                id: row.id.clone(),
                url: row.url.clone(),
                owner: row.owner.clone().unwrap_or_default(),
                state: state_label,
                reason,
                sparkline: charts::sparkline_points(&samples, &row.id, now),
                failure_rate: match total {
                    0 => "—".into(),
                    n => format!("{:.1}%", failures as f64 * 100.0 / n as f64),
                },
                last: match last {
                    0 => "none in 24 h".into(),
                    at => views::time(at),
                },
            }
        })
        .collect();
    let page = EndpointsPage {
        ctx: Ctx::new(&state, &session, "endpoints", "Endpoints"),
        items,
        next: page.next.as_ref().map(encode_cursor),
    };
    Ok(render(&page))
}

#[derive(Template)]
#[template(path = "endpoint_form.html")]
struct EndpointFormPage {
    ctx: Ctx,
    /// Empty for a new endpoint.
    id: String,
    form: EndpointForm,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
struct EndpointForm {
    #[serde(default)]
    url: String,
    #[serde(default)]
    events: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    retry: String,
    #[serde(default)]
    timeout_ms: String,
    #[serde(default)]
    headers: String,
}

impl EndpointForm {
    fn from_row(row: &SubscriptionRow) -> Self {
        Self {
            url: row.url.clone(),
            events: row.events.join(", "),
            description: row.description.clone().unwrap_or_default(),
            owner: row.owner.clone().unwrap_or_default(),
            retry: row
                .retry_policy
                .as_ref()
                .and_then(|p| serde_json::to_string(p).ok())
                .unwrap_or_default(),
            timeout_ms: row.timeout_ms.map(|t| t.to_string()).unwrap_or_default(),
            headers: match row.headers.is_empty() {
                true => String::new(),
                false => serde_json::to_string(&row.headers).unwrap_or_default(),
            },
        }
    }

    fn events(&self) -> Vec<String> {
        self.events
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn opt(text: &str) -> Option<String> {
        Some(text.trim())
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    }

    fn retry(&self) -> Result<Option<hookd_core::RetryPolicy>, String> {
        Self::opt(&self.retry)
            .map(|t| serde_json::from_str(&t).map_err(|e| format!("retry policy: {e}")))
            .transpose()
    }

    fn timeout(&self) -> Result<Option<i64>, String> {
        Self::opt(&self.timeout_ms)
            .map(|t| {
                t.parse()
                    .map_err(|_| "timeout: not a number of milliseconds".to_owned())
            })
            .transpose()
    }

    fn headers(&self) -> Result<BTreeMap<String, String>, String> {
        Self::opt(&self.headers)
            .map(|t| serde_json::from_str(&t).map_err(|e| format!("custom headers: {e}")))
            .transpose()
            .map(Option::unwrap_or_default)
    }
}

async fn new_endpoint(State(state): State<UiState>, Extension(session): S) -> Page {
    require_manage(&session)?;
    let page = EndpointFormPage {
        ctx: Ctx::new(&state, &session, "endpoints", "New endpoint"),
        id: String::new(),
        form: EndpointForm {
            events: "*".into(),
            ..Default::default()
        },
        error: None,
    };
    Ok(render(&page))
}

fn form_error(
    state: &UiState,
    session: &Session,
    id: &str,
    form: EndpointForm,
    error: String,
) -> Response {
    let title = if id.is_empty() {
        "New endpoint"
    } else {
        "Edit endpoint"
    };
    let page = EndpointFormPage {
        ctx: Ctx::new(state, session, "endpoints", title),
        id: id.to_owned(),
        form,
        error: Some(error),
    };
    (axum::http::StatusCode::UNPROCESSABLE_ENTITY, render(&page)).into_response()
}

async fn create_endpoint(
    State(state): State<UiState>,
    Extension(session): S,
    Form(form): Form<EndpointForm>,
) -> Page {
    require_manage(&session)?;
    let parsed = (|| Ok::<_, String>((form.retry()?, form.timeout()?, form.headers()?)))();
    let (retry, timeout_ms, headers) = match parsed {
        Ok(parts) => parts,
        Err(error) => return Ok(form_error(&state, &session, "", form, error)),
    };
    let owner = match session.viewer.owner() {
        Some(owner) => Some(owner.to_owned()),
        None => EndpointForm::opt(&form.owner),
    };
    let draft = SubscriptionDraft {
        url: form.url.trim().to_owned(),
        events: form.events(),
        description: EndpointForm::opt(&form.description),
        secret: None,
        metadata: None,
        retry,
        timeout_ms,
        headers: Some(headers),
        owner,
    };
    match state.ops.create_subscription(draft).await {
        Ok(row) => Ok(
            Redirect::to(&format!("{}/endpoints/{}", session.viewer.base(), row.id))
                .into_response(),
        ),
        Err(error) if ops_status(&error).is_client_error() => {
            Ok(form_error(&state, &session, "", form, error.to_string()))
        }
        Err(error) => Err(error.into()),
    }
}

async fn edit_endpoint(
    State(state): State<UiState>,
    Extension(session): S,
    Path(id): Path<String>,
) -> Page {
    let row = load_subscription(&state, &session, &id).await?;
    require_manage(&session)?;
    let page = EndpointFormPage {
        ctx: Ctx::new(&state, &session, "endpoints", "Edit endpoint"),
        id,
        form: EndpointForm::from_row(&row),
        error: None,
    };
    Ok(render(&page))
}

async fn update_endpoint(
    State(state): State<UiState>,
    Extension(session): S,
    Path(id): Path<String>,
    Form(form): Form<EndpointForm>,
) -> Page {
    require_manage(&session)?;
    load_subscription(&state, &session, &id).await?;
    let parsed = (|| Ok::<_, String>((form.retry()?, form.timeout()?, form.headers()?)))();
    let (retry, timeout_ms, headers) = match parsed {
        Ok(parts) => parts,
        Err(error) => return Ok(form_error(&state, &session, &id, form, error)),
    };
    let changes = SubscriptionChanges {
        url: Some(form.url.trim().to_owned()),
        events: Some(form.events()),
        description: Some(EndpointForm::opt(&form.description)),
        retry: Some(retry),
        timeout_ms: Some(timeout_ms),
        headers: Some(headers),
        // Only operators move a subscription between owners.
        owner: (!session.viewer.is_portal()).then(|| EndpointForm::opt(&form.owner)),
        ..Default::default()
    };
    let patch = match state.ops.parse_changes(changes) {
        Ok(patch) => patch,
        Err(error) => return Ok(form_error(&state, &session, &id, form, error.to_string())),
    };
    match state.ops.update_subscription(&id, patch).await {
        Ok(_) => {}
        Err(OpsError::NotFound(_)) => return Err(UiError::NotFound("endpoint")),
        Err(error) => return Err(error.into()),
    }
    Ok(Redirect::to(&format!("{}/endpoints/{id}", session.viewer.base())).into_response())
}

async fn enable_endpoint(
    State(state): State<UiState>,
    Extension(session): S,
    Path(id): Path<String>,
) -> Page {
    require_manage(&session)?;
    load_subscription(&state, &session, &id).await?;
    state.ops.enable_subscription(&id, true).await?;
    Ok(Redirect::to(&format!("{}/endpoints/{id}", session.viewer.base())).into_response())
}

async fn disable_endpoint(
    State(state): State<UiState>,
    Extension(session): S,
    Path(id): Path<String>,
) -> Page {
    require_manage(&session)?;
    load_subscription(&state, &session, &id).await?;
    state.ops.disable_subscription(&id).await?;
    Ok(Redirect::to(&format!("{}/endpoints/{id}", session.viewer.base())).into_response())
}

async fn delete_endpoint(
    State(state): State<UiState>,
    Extension(session): S,
    Path(id): Path<String>,
) -> Page {
    require_manage(&session)?;
    load_subscription(&state, &session, &id).await?;
    state.store.delete_subscription(&id).await?;
    Ok(Redirect::to(&format!("{}/endpoints", session.viewer.base())).into_response())
}

// ---------------------------------------------------------------------------------------------
// 3. Endpoint detail, 4. send test event
// ---------------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "endpoint.html")]
struct EndpointPage {
    ctx: Ctx,
    sub: SubscriptionRow,
    state_label: &'static str,
    reason: String,
    retry: String,
    headers: String,
    series_json: String,
    summary: charts::Summary,
    deliveries: Vec<DeliveryListRow>,
    event_types: Vec<String>,
    example: String,
    /// While a rotated-out secret still signs.
    previous_until: Option<String>,
}

async fn endpoint(
    State(state): State<UiState>,
    Extension(session): S,
    Path(id): Path<String>,
) -> Page {
    let sub = load_subscription(&state, &session, &id).await?;
    let now = state.clock.now_ms();
    let range = Range::Day;
    let samples = state
        .store
        .ui()
        .attempt_samples(now - range.span_ms(), None, Some(&id), charts::MAX_SAMPLES)
        .await?;
    let deliveries = state
        .store
        .ui()
        .search_deliveries(DeliverySearch {
            subscription_id: Some(id.clone()),
            limit: 20,
            ..Default::default()
        })
        .await?
        .items;
    let event_types: Vec<String> = state
        .store
        .list_event_types(false)
        .await?
        .into_iter()
        .map(|t| t.name)
        .filter(|name| matches_type(&sub.events, name))
        .collect();
    let (state_label, reason) = views::endpoint_state(&sub);
    let example = views::example_payload(event_types.first().map(String::as_str).unwrap_or(""));
    let page = EndpointPage {
        ctx: Ctx::new(&state, &session, "endpoints", format!("Endpoint {id}")),
        state_label,
        reason,
        retry: sub
            .retry_policy
            .as_ref()
            .and_then(|p| serde_json::to_string(p).ok())
            .unwrap_or_else(|| "server default".into()),
        headers: match sub.headers.is_empty() {
            true => "none".into(),
            false => serde_json::to_string(&sub.headers).unwrap_or_default(),
        },
        series_json: serde_json::to_string(&charts::series(&samples, range, now))
            .unwrap_or_default(),
        summary: charts::summarize(&samples, range),
        deliveries,
        event_types,
        example,
        previous_until: sub
            .previous_secret_expires_at
            .filter(|until| *until > now)
            .map(views::time),
        sub,
    };
    Ok(render(&page))
}

async fn reveal_secret(
    State(state): State<UiState>,
    Extension(session): S,
    Path(id): Path<String>,
) -> Page {
    let sub = load_subscription(&state, &session, &id).await?;
    tracing::info!(webhook = %id, "secret revealed in the dashboard");
    let mut notice = Notice::new(&session, true, "Signing secret");
    notice.pre = Some(sub.secret);
    Ok(render(&notice))
}

#[derive(Deserialize)]
struct RotateForm {
    overlap_seconds: i64,
}

async fn rotate_secret(
    State(state): State<UiState>,
    Extension(session): S,
    Path(id): Path<String>,
    Form(form): Form<RotateForm>,
) -> Page {
    require_manage(&session)?;
    load_subscription(&state, &session, &id).await?;
    let rotated = state
        .ops
        .rotate_secret(&id, Some(form.overlap_seconds))
        .await?;
    let mut notice = Notice::new(&session, true, "Secret rotated").line(
        "Previous secret signs until",
        rotated
            .previous_secret_expires_at
            .map(hookd_core::time::rfc3339_ms)
            .unwrap_or_else(|| "stopped now (no overlap)".into()),
    );
    notice.pre = Some(rotated.secret);
    Ok(render(&notice))
}

#[derive(Deserialize)]
struct TestForm {
    event_type: String,
    payload: String,
}

async fn send_test(
    State(state): State<UiState>,
    Extension(session): S,
    Path(id): Path<String>,
    Form(form): Form<TestForm>,
) -> Page {
    require_manage(&session)?;
    let sub = load_subscription(&state, &session, &id).await?;
    let event_type = hookd_core::EventType::parse(form.event_type.trim())
        .map_err(|e| UiError::BadRequest(format!("event type: {e}")))?;
    let data: serde_json::Value = serde_json::from_str(&form.payload)
        .map_err(|e| UiError::BadRequest(format!("payload is not JSON: {e}")))?;
    if !data.is_object() {
        return Err(UiError::BadRequest(
            "the payload must be a JSON object".into(),
        ));
    }
    if form.payload.len() > state.ops.settings.max_payload_bytes {
        return Err(UiError::BadRequest(
            "the payload is over the size limit".into(),
        ));
    }
    let payload = TestPayload::Custom { event_type, data };
    let published = state.ops.send_test_event(&sub.id, payload).await?;
    let event_id = published.event.id;
    let delivery = state
        .store
        .deliveries_for_event(&event_id)
        .await?
        .into_iter()
        .next()
        .ok_or(UiError::BadRequest(
            "the endpoint is disabled: nothing was sent".into(),
        ))?;
    // Wait (bounded) for the first attempt, so that its result shows here.
    let deadline = tokio::time::Instant::now() + TEST_WAIT;
    loop {
        let attempts = state.store.list_attempts(&delivery.id).await?;
        if let Some(last) = attempts.last() {
            let ok = last.status.is_some_and(|s| (200..300).contains(&s));
            let mut notice = Notice::new(
                &session,
                ok,
                if ok { "Delivered" } else { "Attempt failed" },
            )
            .line("Delivery", delivery.id.clone())
            .line("Status", views::opt(last.status))
            .line("Latency", format!("{} ms", last.duration_ms))
            .line("Error", last.error.clone().unwrap_or_else(|| "—".into()));
            notice.pre = last.response_excerpt.clone();
            return Ok(render(&notice));
        }
        if tokio::time::Instant::now() >= deadline {
            let notice = Notice::new(&session, true, "Queued; no attempt yet")
                .line("Delivery", delivery.id.clone());
            return Ok(render(&notice));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Delivery log and live tail
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize, Default, Clone, serde::Serialize)]
struct LogQuery {
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
            owner: session.viewer.owner().map(str::to_owned),
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

async fn deliveries(
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
        .ui()
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
async fn live_tail(
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
                .ui()
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

// ---------------------------------------------------------------------------------------------
// 6. Delivery detail
// ---------------------------------------------------------------------------------------------

struct AttemptView {
    row: crate::store::AttemptRow,
    started: String,
    /// The error class as shown (`DNS`, `connect`, `TLS`, `timeout`, `HTTP`, `blocked`) and what
    /// it means; `None` on success.
    class: Option<(&'static str, &'static str)>,
    request_headers: Vec<(String, String)>,
    body: String,
    curl: String,
}

#[derive(Template)]
#[template(path = "delivery.html")]
struct DeliveryPage {
    ctx: Ctx,
    delivery: DeliveryRow,
    sub: SubscriptionRow,
    event_type: String,
    attempts: Vec<AttemptView>,
    next_retry: String,
    retryable: bool,
}

/// The request an attempt sent, rebuilt: hookd signs deterministically from the event, the
/// subscription's secrets and the logged `webhook-timestamp`, so the headers and body are those that
/// were sent unless the secret was rotated since (then the signature shown is the current one's).
fn rebuild_request(
    event: &crate::store::EventRow,
    sub: &SubscriptionRow,
    attempt: &crate::store::AttemptRow,
) -> (Vec<(String, String)>, String, String) {
    let claimed = ClaimedDelivery {
        delivery_id: attempt.delivery_id.clone(),
        attempts: attempt.attempt - 1,
        event: event.clone(),
        subscription: std::sync::Arc::new(sub.clone()),
    };
    let attempt_number = u32::try_from(attempt.attempt.max(1)).unwrap_or(1);
    let Ok(prepared) =
        crate::worker::send::prepare(&claimed, attempt_number, attempt.request_timestamp * 1000)
    else {
        return (Vec::new(), String::new(), String::new());
    };
    let headers: Vec<(String, String)> = prepared
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = String::from_utf8_lossy(&prepared.body).into_owned();
    let mut curl = format!("curl -X POST {}", views::shell_quote(&prepared.url));
    for (name, value) in &headers {
        curl.push_str(&format!(
            " \\\n  -H {}",
            views::shell_quote(&format!("{name}: {value}"))
        ));
    }
    curl.push_str(&format!(
        " \\\n  --data-binary {}",
        views::shell_quote(&body)
    ));
    (headers, body, curl)
}

async fn delivery(
    State(state): State<UiState>,
    Extension(session): S,
    Path(id): Path<String>,
) -> Page {
    let (delivery, sub) = load_delivery(&state, &session, &id).await?;
    let event = state
        .store
        .get_event(&delivery.event_id)
        .await?
        .ok_or(UiError::NotFound("event"))?;
    let attempts = state
        .store
        .list_attempts(&id)
        .await?
        .into_iter()
        .rev()
        .map(|row| {
            let (request_headers, body, curl) = rebuild_request(&event, &sub, &row);
            AttemptView {
                started: views::time(row.started_at),
                class: row.error_class.as_deref().map(views::error_class),
                request_headers,
                body: views::pretty_json(&body),
                curl,
                row,
            }
        })
        .collect();
    let next_retry = match delivery.state {
        DeliveryState::Pending | DeliveryState::Failed => views::opt_time(delivery.next_attempt_at),
        _ => "—".into(),
    };
    let page = DeliveryPage {
        ctx: Ctx::new(&state, &session, "deliveries", format!("Delivery {id}")),
        retryable: delivery.state != DeliveryState::InFlight,
        event_type: event.event_type,
        attempts,
        next_retry,
        delivery,
        sub,
    };
    Ok(render(&page))
}

async fn retry(
    State(state): State<UiState>,
    Extension(session): S,
    Path(id): Path<String>,
) -> Page {
    require_manage(&session)?;
    load_delivery(&state, &session, &id).await?;
    let notice = match state.ops.retry_delivery(&id).await? {
        RetryResult::Requeued(_) => {
            Notice::new(&session, true, "Retry queued").line("Delivery", id)
        }
        RetryResult::InFlight => Notice::new(
            &session,
            false,
            "An attempt is in flight; try again when it ends",
        ),
        RetryResult::NotFound => return Err(UiError::NotFound("delivery")),
    };
    Ok(render(&notice))
}

// ---------------------------------------------------------------------------------------------
// 7. Dead letters
// ---------------------------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "dead_letters.html")]
struct DeadLettersPage {
    ctx: Ctx,
    groups: Vec<crate::store::ui::DeadLetterGroup>,
    rows: Vec<DeliveryListRow>,
    next: Option<String>,
    endpoints: Vec<SubscriptionRow>,
    event_types: Vec<String>,
}

async fn dead_letters(
    State(state): State<UiState>,
    Extension(session): S,
    Query(q): Query<CursorQuery>,
) -> Page {
    let owner = session.viewer.owner();
    let groups = state.store.ui().dead_letter_groups(owner, 50).await?;
    let page = state
        .store
        .ui()
        .search_deliveries(DeliverySearch {
            owner: owner.map(str::to_owned),
            state: Some(DeliveryState::Dead),
            after: decode_cursor(q.cursor.as_deref())?,
            limit: 50,
            ..Default::default()
        })
        .await?;
    let page = DeadLettersPage {
        ctx: Ctx::new(&state, &session, "dead", "Dead letters"),
        groups,
        rows: page.items,
        next: page.next.as_ref().map(encode_cursor),
        endpoints: visible_subscriptions(&state, &session).await?,
        event_types: state
            .store
            .list_event_types(false)
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect(),
    };
    Ok(render(&page))
}

#[derive(Deserialize)]
struct RedriveForm {
    endpoint: Option<String>,
    event_type: Option<String>,
    since: Option<String>,
    /// Absent: only count (the preview). Present: re-queue.
    confirm: Option<String>,
}

async fn redrive_many(
    State(state): State<UiState>,
    Extension(session): S,
    Form(form): Form<RedriveForm>,
) -> Page {
    require_manage(&session)?;
    let since = parse_time("since", form.since.as_deref().unwrap_or(""))?;
    // A portal redrive is always per subscription, over the owner's subscriptions only.
    let targets: Vec<Option<String>> = match (non_empty(&form.endpoint), session.viewer.is_portal())
    {
        (Some(id), _) => vec![Some(load_subscription(&state, &session, &id).await?.id)],
        (None, false) => vec![None],
        (None, true) => visible_subscriptions(&state, &session)
            .await?
            .into_iter()
            .map(|s| Some(s.id))
            .collect(),
    };
    let filter_for = |subscription_id: Option<String>| DeadLetterFilter {
        subscription_id,
        event_type: non_empty(&form.event_type),
        since,
        until: None,
    };
    let mut total: i64 = 0;
    for target in &targets {
        total += match form.confirm.is_some() {
            true => {
                state
                    .ops
                    .redrive_dead_letters(filter_for(target.clone()))
                    .await? as i64
            }
            false => {
                state
                    .store
                    .ui()
                    .count_redrivable(filter_for(target.clone()))
                    .await?
            }
        };
    }
    if form.confirm.is_some() {
        return Ok(render(&Notice::new(
            &session,
            true,
            format!("Re-queued {total} dead letters"),
        )));
    }
    let mut notice = Notice::new(&session, true, format!("{total} dead letters match"));
    if total > 0 {
        let fields = [
            ("endpoint", non_empty(&form.endpoint)),
            ("event_type", non_empty(&form.event_type)),
            ("since", non_empty(&form.since)),
            ("confirm", Some("1".into())),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
        .collect();
        notice.confirm = Some((
            format!("{}/dead-letters/redrive", session.viewer.base()),
            format!("Redrive {total}"),
            fields,
        ));
    }
    Ok(render(&notice))
}

#[derive(Deserialize)]
struct RecoverForm {
    endpoint: String,
    since: String,
    confirm: Option<String>,
}

/// "Recover failed since T" for one endpoint: a count first, then the re-queue.
async fn recover(
    State(state): State<UiState>,
    Extension(session): S,
    Form(form): Form<RecoverForm>,
) -> Page {
    require_manage(&session)?;
    let sub = load_subscription(&state, &session, form.endpoint.trim()).await?;
    let since =
        parse_time("since", &form.since)?.ok_or(UiError::BadRequest("since: required".into()))?;
    if form.confirm.is_none() {
        let count = state.store.ui().count_recoverable(&sub.id, since).await?;
        let mut notice = Notice::new(
            &session,
            true,
            format!(
                "{count} failed or dead deliveries since {}",
                views::time(since)
            ),
        );
        if count > 0 {
            notice.confirm = Some((
                format!("{}/dead-letters/recover", session.viewer.base()),
                format!("Recover {count}"),
                vec![
                    ("endpoint".into(), sub.id.clone()),
                    ("since".into(), form.since.clone()),
                    ("confirm".into(), "1".into()),
                ],
            ));
        }
        return Ok(render(&notice));
    }
    let expected = state.store.ui().count_recoverable(&sub.id, since).await?;
    let job = state.ui.jobs.start_recovery(
        &state.ops,
        RecoveryRequest {
            subscription_id: sub.id,
            owner: session.viewer.owner().map(str::to_owned),
            since,
            expected,
        },
    );
    Ok(render(&RecoveryFragment::new(&session, &job)))
}

/// A recovery's progress; while it runs, htmx fetches it again (and swaps it in) every half second.
#[derive(Template)]
#[template(path = "recovery.html")]
struct RecoveryFragment {
    id: String,
    url: String,
    running: bool,
    failed: bool,
    title: String,
    expected: i64,
    /// The progress bar's end: what was expected, or more if more was found.
    max: u64,
    progress: Progress,
    step: u32,
}

impl RecoveryFragment {
    fn new(session: &Session, job: &Recovery) -> Self {
        let progress = job.progress();
        let running = progress.finished_at.is_none();
        let failed = progress.error.is_some();
        let title = match (running, failed) {
            (true, _) => format!("Recovering… {} of {}", progress.recovered, job.expected),
            (false, false) => format!("Recovered {} deliveries", progress.recovered),
            (false, true) => format!("Recovery stopped after {}", progress.recovered),
        };
        Self {
            url: format!("{}/dead-letters/recover/{}", session.viewer.base(), job.id),
            id: job.id.clone(),
            running,
            failed,
            title,
            expected: job.expected,
            max: progress.recovered.max(job.expected.max(0) as u64).max(1),
            progress,
            step: RECOVERY_STEP,
        }
    }
}

/// `GET …/dead-letters/recover/{job}`: the progress fragment of a recovery this viewer may see.
async fn recovery_progress(
    State(state): State<UiState>,
    Extension(session): S,
    Path(id): Path<String>,
) -> Page {
    let job = state
        .ui
        .jobs
        .recovery(&id)
        .filter(|job| {
            session
                .viewer
                .owner()
                .is_none_or(|o| job.owner.as_deref() == Some(o))
        })
        .ok_or(UiError::NotFound("recovery"))?;
    Ok(render(&RecoveryFragment::new(&session, &job)))
}

// ---------------------------------------------------------------------------------------------
// 8. Event catalog, 9. event detail
// ---------------------------------------------------------------------------------------------

struct CatalogItem {
    name: String,
    description: String,
    example: String,
    endpoints: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "catalog.html")]
struct CatalogPage {
    ctx: Ctx,
    items: Vec<CatalogItem>,
}

async fn catalog(State(state): State<UiState>, Extension(session): S) -> Page {
    let subs = visible_subscriptions(&state, &session).await?;
    let items = state
        .store
        .list_event_types(false)
        .await?
        .into_iter()
        .map(|t| CatalogItem {
            example: views::example_payload(&t.name),
            endpoints: subs
                .iter()
                .filter(|s| matches_type(&s.events, &t.name))
                .map(|s| (s.id.clone(), s.url.clone()))
                .collect(),
            name: t.name,
            description: t.description,
        })
        .collect();
    let page = CatalogPage {
        ctx: Ctx::new(&state, &session, "events", "Event catalog"),
        items,
    };
    Ok(render(&page))
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
        .get_event(id)
        .await?
        .ok_or(UiError::NotFound("event"))?;
    let mut visible = Vec::new();
    for delivery in state.store.deliveries_for_event(id).await? {
        if let Some(sub) = state
            .store
            .get_subscription(&delivery.subscription_id)
            .await?
            && session.viewer.sees(&sub)
        {
            visible.push((delivery, sub.url));
        }
    }
    if session.viewer.is_portal() && visible.is_empty() {
        return Err(UiError::NotFound("event"));
    }
    Ok((event, visible))
}

async fn event(
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
        if !sub.active {
            continue;
        }
        let target = ReplayTarget {
            delivered_before: fanout.iter().any(|(d, _)| d.subscription_id == sub.id),
            id: sub.id,
            url: sub.url,
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

fn matches_type(filters: &[String], event_type: &str) -> bool {
    filters
        .iter()
        .filter_map(|f| EventFilter::parse(f).ok())
        .any(|f| f.matches(event_type))
}

#[derive(Deserialize)]
struct ReplayForm {
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
        .line("Endpoint", sub.url)
        .line("Delivery", delivery.id);
    Ok(render(&notice))
}

async fn replay(
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
