//! The overview screen: delivery rates and latency over a range, the backlog, the endpoints failing
//! most, the worker nodes, and the retention in force.

use super::{Page, S};
use crate::ui::charts::{self, Range};
use crate::ui::views::{self, Ctx};
use crate::ui::{UiState, render};
use askama::Template;
use axum::extract::{Extension, Query, State};
use serde::Deserialize;
use std::collections::HashMap;

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
    /// Operators only: the worker nodes of the last hour.
    nodes: Vec<NodeLine>,
    /// How long finished deliveries and response excerpts are kept, per kind.
    retention: Vec<(&'static str, String)>,
}

/// One worker node as the overview lists it.
struct NodeLine {
    id: String,
    role: String,
    started: String,
    /// "alive", "silent" (no heartbeat for a while: its leases are being returned) or "stopped".
    state: &'static str,
    heartbeat: String,
    leased: i64,
}

impl NodeLine {
    fn new(node: crate::store::NodeRow, now: i64) -> Self {
        let age_s = (now - node.heartbeat_at).max(0) / 1000;
        let state = match node.stopped_at {
            Some(_) => "stopped",
            None if age_s >= 10 => "silent",
            None => "alive",
        };
        Self {
            id: node.id,
            role: node.role,
            started: views::time(node.started_at),
            state,
            heartbeat: format!("{age_s} s ago"),
            leased: node.leased,
        }
    }
}

#[derive(Deserialize)]
pub(super) struct RangeQuery {
    range: Option<String>,
}

pub(super) async fn overview(
    State(state): State<UiState>,
    Extension(session): S,
    Query(q): Query<RangeQuery>,
) -> Page {
    let range = Range::parse(q.range.as_deref());
    let now = state.clock.now_ms();
    let owner = session.viewer.owner();
    let ui = state.store.ui.clone();
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
            .subscriptions
            .get_subscription(&id)
            .await?
            .map(|s| s.url.to_string())
            .unwrap_or_default();
        failing.push((id, url, failures, total));
    }
    let nodes = match session.viewer.is_portal() {
        true => Vec::new(),
        false => state
            .store
            .nodes
            .list_nodes(now - 3_600_000)
            .await?
            .into_iter()
            .map(|node| NodeLine::new(node, now))
            .collect(),
    };
    let page = OverviewPage {
        ctx: Ctx::new(&state, &session, "overview", "Overview"),
        range: range.label(),
        ranges: Range::ALL.iter().map(|r| r.label()).collect(),
        summary: charts::summarize(&samples, range),
        series_json: serde_json::to_string(&charts::series(&samples, range, now))
            .unwrap_or_default(),
        backlog,
        failing,
        nodes,
        retention: state.ops.settings.retention.described(),
    };
    Ok(render(&page))
}
