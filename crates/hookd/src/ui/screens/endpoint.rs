//! One endpoint: its detail page, revealing and rotating its secret, sending it a test event.

use super::{Notice, Page, S, catalog_example, load_subscription, matches_type, require_manage};
use crate::ops::TestPayload;
use crate::store::SubscriptionRow;
use crate::store::ui::{DeliveryListRow, DeliverySearch};
use crate::ui::charts::{self, Range};
use crate::ui::views::{self, Ctx};
use crate::ui::{UiError, UiState, render};
use askama::Template;
use axum::extract::{Extension, Form, Path, State};
use serde::Deserialize;
use std::time::Duration;

/// How long "Send test event" waits for the attempt's outcome before showing what it has.
const TEST_WAIT: Duration = Duration::from_secs(12);

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
    /// The test form's event type and `data` to start from (a catalog example when there is one).
    example_type: String,
    example: String,
    /// While a rotated-out secret still signs.
    previous_until: Option<String>,
    /// The `v1a` keys that sign now.
    public_keys: Vec<KeyLine>,
    /// The stored form of the schemes, to preselect in [`SCHEME_CHOICES`].
    current_schemes: String,
    scheme_choices: &'static [(&'static str, &'static str)],
}

/// One `v1a` public key as the page shows it.
struct KeyLine {
    kid: String,
    public_key: String,
    not_before: String,
    not_after: Option<String>,
}

/// The choices of the signature form: stored form, label.
const SCHEME_CHOICES: &[(&str, &str)] = &[
    ("v1", "v1: HMAC with the secret"),
    ("v1,v1a", "v1 and v1a (Ed25519)"),
    ("v1a", "v1a only (Ed25519; no HMAC headers)"),
];

pub(super) async fn endpoint(
    State(state): State<UiState>,
    Extension(session): S,
    Path(id): Path<String>,
) -> Page {
    let sub = load_subscription(&state, &session, &id).await?;
    let now = state.clock.now_ms();
    let range = Range::Day;
    let samples = state
        .store
        .ui
        .attempt_samples(now - range.span_ms(), None, Some(&id), charts::MAX_SAMPLES)
        .await?;
    let deliveries = state
        .store
        .ui
        .search_deliveries(DeliverySearch {
            subscription_id: Some(id.clone()),
            limit: 20,
            ..Default::default()
        })
        .await?
        .items;
    let types = state.store.admin.list_event_types(false).await?;
    let event_types: Vec<String> = types
        .iter()
        .map(|t| t.name.clone())
        .filter(|name| matches_type(&sub.events, name))
        .collect();
    let (state_label, reason) = views::endpoint_state(&sub);
    let (example_type, example) = catalog_example(&types, &sub.events)
        .unwrap_or_else(|| ("webhook.test".into(), views::example_payload("")));
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
        example_type,
        example,
        previous_until: sub
            .previous_secret_expires_at
            .filter(|until| *until > now)
            .map(views::time),
        public_keys: crate::ops::public_keys_at(&sub, now)
            .into_iter()
            .map(|key| KeyLine {
                kid: key.kid,
                public_key: key.public_key,
                not_before: views::time(key.not_before),
                not_after: key.not_after.map(views::time),
            })
            .collect(),
        current_schemes: sub.signature_schemes.to_stored(),
        scheme_choices: SCHEME_CHOICES,
        sub,
    };
    Ok(render(&page))
}

pub(super) async fn reveal_secret(
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
pub(super) struct RotateForm {
    overlap_seconds: i64,
}

pub(super) async fn rotate_secret(
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
pub(super) struct SchemesForm {
    schemes: String,
}

/// Sets which schemes sign (turning `v1a` on generates the key pair), then shows the endpoint.
pub(super) async fn set_schemes(
    State(state): State<UiState>,
    Extension(session): S,
    Path(id): Path<String>,
    Form(form): Form<SchemesForm>,
) -> Result<axum::response::Redirect, UiError> {
    require_manage(&session)?;
    load_subscription(&state, &session, &id).await?;
    let names = form.schemes.split(',').map(str::to_owned).collect();
    let patch = state.ops.parse_changes(crate::ops::SubscriptionChanges {
        signature_schemes: Some(names),
        ..Default::default()
    })?;
    state.ops.update_subscription(&id, patch).await?;
    Ok(axum::response::Redirect::to(&format!(
        "{}/endpoints/{id}",
        session.viewer.base()
    )))
}

/// Rotates the `v1a` key pair; the old one signs on during the chosen overlap.
pub(super) async fn rotate_signing_key(
    State(state): State<UiState>,
    Extension(session): S,
    Path(id): Path<String>,
    Form(form): Form<RotateForm>,
) -> Result<axum::response::Redirect, UiError> {
    require_manage(&session)?;
    load_subscription(&state, &session, &id).await?;
    state
        .ops
        .rotate_signing_key(&id, Some(form.overlap_seconds), None)
        .await?;
    Ok(axum::response::Redirect::to(&format!(
        "{}/endpoints/{id}",
        session.viewer.base()
    )))
}

#[derive(Deserialize)]
pub(super) struct TestForm {
    pub(super) event_type: String,
    pub(super) payload: String,
}

pub(super) async fn send_test(
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
        .deliveries
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
        let attempts = state.store.deliveries.list_attempts(&delivery.id).await?;
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
