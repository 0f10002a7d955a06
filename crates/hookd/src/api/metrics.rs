//! Metrics: the original webhook specification's JSON summary and the Prometheus text exposition.

use super::ApiState;
use super::access::require_own_subscription;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiQuery;
use crate::auth::Access;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;
use utoipa::{IntoParams, ToSchema};

/// The original webhook specification's metrics shape (camelCase, as it has it).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryMetrics {
    /// All deliveries.
    pub total: i64,
    pub delivered: i64,
    /// Deliveries whose last attempt failed (awaiting retry or dead).
    pub failed: i64,
    /// Dead letters (a subset of `failed`).
    pub dead: i64,
    /// Queued: waiting for their first attempt or a manual re-queue.
    pub pending: i64,
    /// Leased by a worker, an attempt under way.
    pub in_flight: i64,
    pub held: i64,
    /// delivered / total × 100, two decimals.
    pub success_rate: f64,
    /// Mean duration of successful attempts, ms.
    pub average_latency: f64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// Only this subscription.
    pub webhook: Option<String>,
}

/// Delivery counts, success rate and average latency, overall or for one subscription.
#[utoipa::path(get, path = "/api/webhooks/metrics", tag = "metrics", params(MetricsQuery),
    security(("api_key" = [])),
    responses((status = 200, body = DeliveryMetrics), (status = 404, body = ErrorBody)))]
pub async fn summary(
    State(state): State<ApiState>,
    axum::Extension(access): axum::Extension<Access>,
    ApiQuery(query): ApiQuery<MetricsQuery>,
) -> Result<Json<DeliveryMetrics>, ApiError> {
    require_own_subscription(&state, &access, query.webhook.as_deref()).await?;
    if let Some(id) = &query.webhook
        && state
            .store
            .subscriptions
            .get_subscription(id)
            .await?
            .is_none()
    {
        return Err(ApiError::NotFound("webhook"));
    }
    let stats = state
        .store
        .deliveries
        .delivery_stats(query.webhook.as_deref())
        .await?;
    let success_rate = match stats.total {
        0 => 0.0,
        total => (stats.delivered as f64 / total as f64 * 10_000.0).round() / 100.0,
    };
    Ok(Json(DeliveryMetrics {
        total: stats.total,
        delivered: stats.delivered,
        failed: stats.failed,
        dead: stats.dead,
        pending: stats.pending,
        in_flight: stats.in_flight,
        held: stats.held,
        success_rate,
        average_latency: stats.average_latency_ms.unwrap_or(0.0),
    }))
}

/// The process-wide Prometheus recorder (installed once; later calls share it).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets(&[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0,
            ])
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder is installed; metrics then go there instead.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Prometheus text format: events published, attempts by outcome, attempt latency histogram,
/// deliveries by state (queue depth), requests in flight, rows the retention purge removed, the
/// database's size and the age of its oldest event.
pub async fn prometheus_text(State(state): State<ApiState>) -> Result<impl IntoResponse, ApiError> {
    let stats = state.store.deliveries.delivery_stats(None).await?;
    for (label, value) in [
        ("pending", stats.pending),
        ("in_flight", stats.in_flight),
        ("failed", stats.failed - stats.dead),
        ("dead", stats.dead),
        ("held", stats.held),
        ("delivered", stats.delivered),
    ] {
        metrics::gauge!("hookd_deliveries", "state" => label).set(value as f64);
    }
    // The nodes of the last hour: how old each one's heartbeat is, and what it leases.
    let now = state.clock.now_ms();
    for node in state.store.nodes.list_nodes(now - 3_600_000).await? {
        let age = (now - node.heartbeat_at).max(0) as f64 / 1000.0;
        metrics::gauge!("hookd_node_heartbeat_age_seconds", "node" => node.id.clone()).set(age);
        metrics::gauge!("hookd_node_leased_deliveries", "node" => node.id).set(node.leased as f64);
    }
    // What retention keeps bounded: the database's size and how old its oldest event is.
    let retained = state.store.retention.retention_stats().await?;
    metrics::gauge!("hookd_database_size_bytes").set(retained.database_bytes as f64);
    let oldest_age = retained
        .oldest_event_at
        .map_or(0.0, |at| (now - at).max(0) as f64 / 1000.0);
    metrics::gauge!("hookd_oldest_event_age_seconds").set(oldest_age);
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        prometheus().render(),
    ))
}
