//! One delivery: its attempts with the requests rebuilt (headers, body, curl), and a manual retry.

use super::{Notice, Page, S, load_delivery, require_manage};
use crate::store::{ClaimedDelivery, DeliveryRow, DeliveryState, RetryResult, SubscriptionRow};
use crate::ui::views::{self, Ctx};
use crate::ui::{UiError, UiState, render};
use askama::Template;
use axum::extract::{Extension, Path, State};

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
        attempts_before: 0,
        event: std::sync::Arc::new(event.clone()),
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
    let mut curl = format!("curl -X POST {}", views::shell_quote(prepared.url.as_str()));
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

pub(super) async fn delivery(
    State(state): State<UiState>,
    Extension(session): S,
    Path(id): Path<String>,
) -> Page {
    let (delivery, sub) = load_delivery(&state, &session, &id).await?;
    let event = state
        .store
        .deliveries
        .get_event(&delivery.event_id)
        .await?
        .ok_or(UiError::NotFound("event"))?;
    let attempts = state
        .store
        .deliveries
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

pub(super) async fn retry(
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
