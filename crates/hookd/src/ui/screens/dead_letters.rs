//! Dead letters: grouped and listed, redriven in bulk, and "recover failed since T" with its progress.

use super::{
    CursorQuery, Notice, Page, S, load_subscription, non_empty, parse_time, require_manage,
    visible_subscriptions,
};
use crate::ops::{decode_cursor, encode_cursor};
use crate::store::ui::{DeliveryListRow, DeliverySearch};
use crate::store::{DeadLetterFilter, DeliveryState, SubscriptionRow};
use crate::ui::jobs::{Progress, RECOVERY_STEP, Recovery, RecoveryRequest};
use crate::ui::session::Session;
use crate::ui::views::{self, Ctx};
use crate::ui::{UiError, UiState, render};
use askama::Template;
use axum::extract::{Extension, Form, Path, Query, State};
use serde::Deserialize;

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

pub(super) async fn dead_letters(
    State(state): State<UiState>,
    Extension(session): S,
    Query(q): Query<CursorQuery>,
) -> Page {
    let owner = session.viewer.owner();
    let groups = state.store.ui.dead_letter_groups(owner, 50).await?;
    let page = state
        .store
        .ui
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
            .admin
            .list_event_types(false)
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect(),
    };
    Ok(render(&page))
}

#[derive(Deserialize)]
pub(super) struct RedriveForm {
    endpoint: Option<String>,
    event_type: Option<String>,
    since: Option<String>,
    /// Absent: only count (the preview). Present: re-queue.
    confirm: Option<String>,
}

pub(super) async fn redrive_many(
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
                    .ui
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
pub(super) struct RecoverForm {
    endpoint: String,
    since: String,
    confirm: Option<String>,
}

/// "Recover failed since T" for one endpoint: a count first, then the re-queue.
pub(super) async fn recover(
    State(state): State<UiState>,
    Extension(session): S,
    Form(form): Form<RecoverForm>,
) -> Page {
    require_manage(&session)?;
    let sub = load_subscription(&state, &session, form.endpoint.trim()).await?;
    let since =
        parse_time("since", &form.since)?.ok_or(UiError::BadRequest("since: required".into()))?;
    if form.confirm.is_none() {
        let count = state.store.ui.count_recoverable(&sub.id, since).await?;
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
    let expected = state.store.ui.count_recoverable(&sub.id, since).await?;
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
pub(super) async fn recovery_progress(
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
