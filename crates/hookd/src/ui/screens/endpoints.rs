//! The endpoint list and the endpoint form: create, edit, enable, disable, delete.

use super::{Page, S, catalog_example, load_subscription, require_manage};
use crate::ops::{OpsError, SubscriptionChanges, SubscriptionDraft, decode_cursor, encode_cursor};
use crate::store::{SubscriptionQuery, SubscriptionRow};
use crate::ui::charts::{self};
use crate::ui::session::Session;
use crate::ui::views::{self, Ctx};
use crate::ui::{UiError, UiState, ops_status, render};
use askama::Template;
use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use hookd_core::EventFilter;
use serde::Deserialize;
use std::collections::BTreeMap;

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
    /// The operator's owner filter, and as a query value for the next page's link.
    owner: Option<String>,
    owner_query: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct EndpointsQuery {
    cursor: Option<String>,
    owner: Option<String>,
}

pub(super) async fn endpoints(
    State(state): State<UiState>,
    Extension(session): S,
    Query(q): Query<EndpointsQuery>,
) -> Page {
    let after = decode_cursor(q.cursor.as_deref())?;
    let now = state.clock.now_ms();
    // A portal session sees its own owner's; the operator may narrow to one owner.
    let owner = match session.viewer.owner() {
        Some(own) => Some(own.to_owned()),
        None => q.owner.filter(|o| !o.is_empty()),
    };
    let page = state
        .store
        .subscriptions
        .list_subscriptions(SubscriptionQuery {
            owner: owner.clone(),
            after,
            limit: 50,
            ..Default::default()
        })
        .await?;
    let samples = state
        .store
        .ui
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
                url: row.url.to_string(),
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
        owner_query: None,
        owner: session.viewer.owner().is_none().then_some(owner).flatten(),
    };
    let page = EndpointsPage {
        owner_query: page.owner.as_deref().map(views::query_value),
        ..page
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
    /// The event type and example `data` the filter test starts from.
    example_type: String,
    example: String,
}

#[derive(Deserialize, Default)]
pub(super) struct EndpointForm {
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
    /// The content filter as JSON text; empty for none.
    #[serde(default)]
    filter: String,
}

impl EndpointForm {
    fn from_row(row: &SubscriptionRow) -> Self {
        Self {
            url: row.url.to_string(),
            events: row
                .events
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
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
            filter: row
                .filter
                .as_deref()
                .map(views::pretty_json)
                .unwrap_or_default(),
        }
    }

    /// The content filter; `None` when the field is empty.
    fn filter(&self) -> Result<Option<serde_json::Value>, String> {
        Self::opt(&self.filter)
            .map(|t| serde_json::from_str(&t).map_err(|e| format!("content filter: {e}")))
            .transpose()
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

pub(super) async fn new_endpoint(State(state): State<UiState>, Extension(session): S) -> Page {
    require_manage(&session)?;
    let form = EndpointForm {
        events: "*".into(),
        ..Default::default()
    };
    form_page(&state, &session, "", form, None).await
}

/// The endpoint form (new when `id` is empty), with the error that refused it if any (then 422).
/// Its filter test starts from the catalog's example of a type the form's event filters name.
async fn form_page(
    state: &UiState,
    session: &Session,
    id: &str,
    form: EndpointForm,
    error: Option<String>,
) -> Page {
    let title = match id.is_empty() {
        true => "New endpoint",
        false => "Edit endpoint",
    };
    let filters: Vec<EventFilter> = form
        .events()
        .iter()
        .filter_map(|text| EventFilter::parse(text).ok())
        .collect();
    let types = state.store.admin.list_event_types(false).await?;
    let (example_type, example) = catalog_example(&types, &filters).unwrap_or_else(|| {
        let name = "order.created";
        (name.into(), views::example_payload(name))
    });
    let status = match error {
        Some(_) => StatusCode::UNPROCESSABLE_ENTITY,
        None => StatusCode::OK,
    };
    let page = EndpointFormPage {
        ctx: Ctx::new(state, session, "endpoints", title),
        id: id.to_owned(),
        form,
        error,
        example_type,
        example,
    };
    Ok((status, render(&page)).into_response())
}

pub(super) async fn create_endpoint(
    State(state): State<UiState>,
    Extension(session): S,
    Form(form): Form<EndpointForm>,
) -> Page {
    require_manage(&session)?;
    let parsed = (|| {
        Ok::<_, String>((
            form.retry()?,
            form.timeout()?,
            form.headers()?,
            form.filter()?,
        ))
    })();
    let (retry, timeout_ms, headers, filter) = match parsed {
        Ok(parts) => parts,
        Err(error) => return form_page(&state, &session, "", form, Some(error)).await,
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
        legacy_signature: None,
        filter,
        ..Default::default()
    };
    match state.ops.create_subscription(draft).await {
        Ok(row) => Ok(
            Redirect::to(&format!("{}/endpoints/{}", session.viewer.base(), row.id))
                .into_response(),
        ),
        Err(error) if ops_status(&error).is_client_error() => {
            form_page(&state, &session, "", form, Some(error.to_string())).await
        }
        Err(error) => Err(error.into()),
    }
}

pub(super) async fn edit_endpoint(
    State(state): State<UiState>,
    Extension(session): S,
    Path(id): Path<String>,
) -> Page {
    let row = load_subscription(&state, &session, &id).await?;
    require_manage(&session)?;
    form_page(&state, &session, &id, EndpointForm::from_row(&row), None).await
}

pub(super) async fn update_endpoint(
    State(state): State<UiState>,
    Extension(session): S,
    Path(id): Path<String>,
    Form(form): Form<EndpointForm>,
) -> Page {
    require_manage(&session)?;
    load_subscription(&state, &session, &id).await?;
    let parsed = (|| {
        Ok::<_, String>((
            form.retry()?,
            form.timeout()?,
            form.headers()?,
            form.filter()?,
        ))
    })();
    let (retry, timeout_ms, headers, filter) = match parsed {
        Ok(parts) => parts,
        Err(error) => return form_page(&state, &session, &id, form, Some(error)).await,
    };
    let changes = SubscriptionChanges {
        url: Some(form.url.trim().to_owned()),
        events: Some(form.events()),
        description: Some(EndpointForm::opt(&form.description)),
        retry: Some(retry),
        timeout_ms: Some(timeout_ms),
        headers: Some(headers),
        filter: Some(filter),
        // Only operators move a subscription between owners.
        owner: (!session.viewer.is_portal()).then(|| EndpointForm::opt(&form.owner)),
        ..Default::default()
    };
    let patch = match state.ops.parse_changes(changes) {
        Ok(patch) => patch,
        Err(error) => {
            return form_page(&state, &session, &id, form, Some(error.to_string())).await;
        }
    };
    match state.ops.update_subscription(&id, patch).await {
        Ok(_) => {}
        Err(OpsError::NotFound(_)) => return Err(UiError::NotFound("endpoint")),
        Err(error) => return Err(error.into()),
    }
    Ok(Redirect::to(&format!("{}/endpoints/{id}", session.viewer.base())).into_response())
}

#[derive(Deserialize)]
pub(super) struct FilterTestForm {
    #[serde(default)]
    filter: String,
    #[serde(default)]
    test_event: String,
    #[serde(default)]
    test_data: String,
}

#[derive(Template)]
#[template(path = "filter_test.html")]
struct FilterTestResult {
    passes: bool,
    message: String,
}

/// "Test against an example": whether an example event passes the content filter as typed (nothing
/// is stored or sent).
pub(super) async fn test_filter(Form(form): Form<FilterTestForm>) -> Page {
    let outcome = (|| {
        let filter = match EndpointForm::opt(&form.filter) {
            None => {
                return Ok((
                    true,
                    "No content filter: every event of the types passes.".into(),
                ));
            }
            Some(text) => hookd_core::ContentFilter::parse_text(&text)
                .map_err(|e| format!("content filter: {e}"))?,
        };
        let data: serde_json::Value = serde_json::from_str(&form.test_data)
            .map_err(|e| format!("example data is not JSON: {e}"))?;
        let input = hookd_core::FilterInput {
            id: "evt_example",
            event: form.test_event.trim(),
            version: crate::ops::DEFAULT_VERSION,
            data: &data,
        };
        Ok::<_, String>(match filter.matches(&input) {
            true => (
                true,
                "The example passes the filter: it would be delivered.".into(),
            ),
            false => (
                false,
                "The example does not pass the filter: no delivery.".into(),
            ),
        })
    })();
    let (passes, message) = outcome.unwrap_or_else(|error| (false, error));
    Ok(render(&FilterTestResult { passes, message }))
}

pub(super) async fn enable_endpoint(
    State(state): State<UiState>,
    Extension(session): S,
    Path(id): Path<String>,
) -> Page {
    require_manage(&session)?;
    load_subscription(&state, &session, &id).await?;
    state.ops.enable_subscription(&id, true).await?;
    Ok(Redirect::to(&format!("{}/endpoints/{id}", session.viewer.base())).into_response())
}

pub(super) async fn disable_endpoint(
    State(state): State<UiState>,
    Extension(session): S,
    Path(id): Path<String>,
) -> Page {
    require_manage(&session)?;
    load_subscription(&state, &session, &id).await?;
    state.ops.disable_subscription(&id).await?;
    Ok(Redirect::to(&format!("{}/endpoints/{id}", session.viewer.base())).into_response())
}

pub(super) async fn delete_endpoint(
    State(state): State<UiState>,
    Extension(session): S,
    Path(id): Path<String>,
) -> Page {
    require_manage(&session)?;
    load_subscription(&state, &session, &id).await?;
    state.ops.delete_subscription(&id).await?;
    Ok(Redirect::to(&format!("{}/endpoints", session.viewer.base())).into_response())
}
