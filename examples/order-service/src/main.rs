//! An order API that publishes `order.created` to hookd: the publisher side of a webhook system.
//!
//! `POST /api/orders` validates the order, keeps it in memory and publishes it with one call to hookd's
//! `POST /api/events`; `GET /api/orders/{id}` reads it back. See README.md for how to run it.

use anyhow::{Context as _, bail};
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
const DEFAULT_HOOKD_URL: &str = "http://127.0.0.1:8080";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let listen = listen_address()?;
    let hookd_url = std::env::var("HOOKD_URL").unwrap_or_else(|_| DEFAULT_HOOKD_URL.into());
    let api_key = std::env::var("HOOKD_API_KEY")
        .ok()
        .filter(|key| !key.is_empty())
        .context("HOOKD_API_KEY is not set: export a hookd API key (`hookd api-keys create`)")?;
    let state = AppState::new(Hookd::new(&hookd_url, api_key)?);
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!("order service on http://{listen}, publishing to {hookd_url}");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async { _ = tokio::signal::ctrl_c().await })
        .await
        .context("server failed")
}

/// `--listen ADDR`, else `ORDER_SERVICE_LISTEN`, else the default.
fn listen_address() -> anyhow::Result<String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(std::env::var("ORDER_SERVICE_LISTEN").unwrap_or_else(|_| DEFAULT_LISTEN.into())),
        [flag, address] if flag == "--listen" => Ok(address.clone()),
        _ => bail!("usage: example-order-service [--listen ADDR]"),
    }
}

fn app(state: AppState) -> Router {
    Router::new()
        .route("/api/orders", post(create_order))
        .route("/api/orders/{id}", get(get_order))
        .with_state(state)
}

#[derive(Clone)]
struct AppState {
    /// Every order created since start; a real service keeps these in its database.
    orders: Arc<Mutex<OrderBook>>,
    hookd: Arc<Hookd>,
}

impl AppState {
    fn new(hookd: Hookd) -> Self {
        let orders = Arc::default();
        let hookd = Arc::new(hookd);
        Self { orders, hookd }
    }

    /// The lock is never held across an `.await`, and no update can leave the book half-written,
    /// so a panic elsewhere does not make it unusable.
    fn orders(&self) -> MutexGuard<'_, OrderBook> {
        self.orders.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The body of `POST /api/orders`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateOrder {
    customer_id: String,
    /// `f64` because the JSON is the original webhook specification's; real money wants integer
    /// minor units or a decimal type.
    amount: f64,
    currency: String,
    items: Vec<Item>,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Item {
    product_id: String,
    quantity: u32,
    price: f64,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Order {
    /// `ORD-<ULID>`: unique across restarts without a database (time-ordered, 80 random bits), so
    /// the event id built from it never repeats either.
    id: String,
    customer_id: String,
    amount: f64,
    currency: String,
    items: Vec<Item>,
    status: &'static str,
}

#[derive(Default)]
struct OrderBook {
    orders: HashMap<String, Order>,
}

impl OrderBook {
    fn create(&mut self, request: CreateOrder) -> Order {
        let order = Order {
            id: format!("ORD-{}", ulid::Ulid::generate()),
            customer_id: request.customer_id,
            amount: request.amount,
            currency: request.currency,
            items: request.items,
            status: "pending",
        };
        self.orders.insert(order.id.clone(), order.clone());
        order
    }
}

/// Checks the order against the rules, in order; the first broken one becomes a 422.
fn validate(order: &CreateOrder) -> Result<(), AppError> {
    if order.amount <= 0.0 {
        return Err(AppError::Invalid("amount", "must be greater than 0"));
    }
    let currency = order.currency.as_bytes();
    if currency.len() != 3 || !currency.iter().all(u8::is_ascii_uppercase) {
        let problem = "must be a three-letter ISO 4217 code such as USD";
        return Err(AppError::Invalid("currency", problem));
    }
    if order.items.is_empty() {
        return Err(AppError::Invalid("items", "must contain at least one item"));
    }
    Ok(())
}

async fn create_order(
    State(state): State<AppState>,
    body: Result<Json<CreateOrder>, JsonRejection>,
) -> Result<(StatusCode, Json<Order>), AppError> {
    let Json(request) = body?;
    validate(&request)?;
    // Stored before publishing, because a subscriber may call `GET /api/orders/{id}` back as soon as
    // hookd delivers the event.
    let order = state.orders().create(request);
    // The order and the event must both happen or neither. A real service writes the order and an
    // "outbox" row in one database transaction, and a background task publishes the outbox to hookd
    // with retries (the fixed event id makes a retried publish a no-op). To stay small, this example
    // fails the request instead and forgets the order, so the client's retry starts clean. (If hookd
    // stored the event and only its answer was lost, subscribers still hear of this order: another
    // gap an outbox closes.)
    if let Err(error) = state.hookd.publish_order_created(&order).await {
        state.orders().orders.remove(&order.id);
        return Err(AppError::PublishFailed(error));
    }
    Ok((StatusCode::CREATED, Json(order)))
}

async fn get_order(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Order>, AppError> {
    let order = state.orders().orders.get(&id).cloned();
    order.map(Json).ok_or(AppError::NotFound)
}

/// A client for the one hookd route this service uses.
struct Hookd {
    http: reqwest::Client,
    /// `{HOOKD_URL}/api/events`.
    events_url: String,
    /// Sent as `Authorization: Bearer ...`; never logged.
    api_key: String,
}

/// The part of hookd's publish answer this service reads.
#[derive(Deserialize)]
struct PublishResult {
    id: String,
    deliveries: u64,
    #[serde(default)]
    duplicate: bool,
}

impl Hookd {
    fn new(base_url: &str, api_key: String) -> anyhow::Result<Self> {
        // reqwest is built without a default TLS crypto provider; ring is the workspace's choice.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            // A hung hookd must not hang order requests forever.
            .timeout(Duration::from_secs(10))
            .build()
            .context("cannot build the HTTP client")?;
        let events_url = format!("{}/api/events", base_url.trim_end_matches('/'));
        Ok(Self {
            http,
            events_url,
            api_key,
        })
    }

    /// Succeeds once hookd has durably stored the event (it answers 2xx only after its commit).
    async fn publish_order_created(&self, order: &Order) -> anyhow::Result<()> {
        let event = json!({
            "event": "order.created",
            "id": format!("order-created-{}", order.id),
            "data": {
                "orderId": order.id,
                "customerId": order.customer_id,
                "amount": order.amount,
                "currency": order.currency,
                "items": order.items,
                "status": order.status,
            },
        });
        let request = self
            .http
            .post(&self.events_url)
            .bearer_auth(&self.api_key)
            .json(&event);
        let response = request.send().await.context("hookd is unreachable")?;
        let status = response.status();
        if !status.is_success() {
            let detail = response.text().await.unwrap_or_default();
            bail!("hookd answered {status}: {detail}");
        }
        match response.json::<PublishResult>().await {
            // Only a retry of this same publish meets an earlier event (order ids never repeat;
            // an id reused with other data would be a 409 `idempotency_conflict`).
            Ok(result) if result.duplicate => tracing::warn!(
                "hookd already had event {}; subscribers were not notified of this order",
                result.id
            ),
            Ok(result) => tracing::info!(
                "published {} to {} subscriber(s)",
                result.id,
                result.deliveries
            ),
            Err(error) => {
                tracing::warn!("hookd accepted the event but its answer was unreadable: {error}")
            }
        }
        Ok(())
    }
}

/// Every way a request can fail; the body is always `{"error": ...}`.
enum AppError {
    /// Not JSON, or not the expected shape: axum's own status (400, 415 or 422) and message.
    BadJson(JsonRejection),
    /// A validation rule: the field and what is wrong with it.
    Invalid(&'static str, &'static str),
    NotFound,
    /// hookd unreachable or refusing; the detail goes to the log, not to the client.
    PublishFailed(anyhow::Error),
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        Self::BadJson(rejection)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Self::BadJson(rejection) => {
                (rejection.status(), json!({"error": rejection.body_text()}))
            }
            Self::Invalid(field, problem) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": format!("{field} {problem}"), "field": field}),
            ),
            Self::NotFound => (StatusCode::NOT_FOUND, json!({"error": "order not found"})),
            Self::PublishFailed(error) => {
                tracing::error!("order not created, publishing order.created failed: {error:#}");
                let message =
                    "could not publish the order to hookd; the order was not created, try again";
                (StatusCode::BAD_GATEWAY, json!({"error": message}))
            }
        };
        (status, Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests;
