//! The order service against a fake hookd on a real port, which records every publish it receives.

use super::*;
use axum::body::Body;
use axum::http::{HeaderMap, Request, header};
use serde_json::Value;
use tower::ServiceExt as _;

const API_KEY: &str = "test-api-key";

/// One `POST /api/events` as the fake hookd received it.
struct Publish {
    authorization: Option<String>,
    body: Value,
}

type Published = Arc<Mutex<Vec<Publish>>>;

/// Starts a fake hookd answering every publish with `status`; returns its URL and what it recorded.
async fn fake_hookd(status: StatusCode) -> (String, Published) {
    let published = Published::default();
    let router = Router::new()
        .route("/api/events", post(record_publish))
        .with_state((status, published.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, published)
}

async fn record_publish(
    State((status, published)): State<(StatusCode, Published)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let authorization = headers.get(header::AUTHORIZATION);
    let authorization = authorization
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let answer = json!({"id": body["id"], "deliveries": 1});
    published.lock().unwrap().push(Publish {
        authorization,
        body,
    });
    (status, Json(answer))
}

fn order_service(hookd_url: &str) -> Router {
    app(AppState::new(
        Hookd::new(hookd_url, API_KEY.into()).unwrap(),
    ))
}

/// Sends one request through the router (no socket) and returns the status and JSON body.
async fn send(app: &Router, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let request = Request::builder().method(method).uri(uri);
    let request = match body {
        Some(body) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => request.body(Body::empty()),
    };
    let response = app.clone().oneshot(request.unwrap()).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn valid_order() -> Value {
    json!({
        "customerId": "CUST-7",
        "amount": 99.99,
        "currency": "USD",
        "items": [{"productId": "SKU-1", "quantity": 2, "price": 49.995}],
    })
}

#[tokio::test]
async fn creating_an_order_publishes_order_created_once() {
    let (hookd_url, published) = fake_hookd(StatusCode::ACCEPTED).await;
    let app = order_service(&hookd_url);

    let (status, order) = send(&app, "POST", "/api/orders", Some(valid_order())).await;

    assert_eq!(status, StatusCode::CREATED);
    let id = order["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("ORD-") && id.len() == 30, "ORD-<ULID>: {id}");
    let items = json!([{"productId": "SKU-1", "quantity": 2, "price": 49.995}]);
    let expected_order = json!({
        "id": id, "customerId": "CUST-7", "amount": 99.99, "currency": "USD",
        "items": items, "status": "pending",
    });
    assert_eq!(order, expected_order);
    let published = published.lock().unwrap();
    assert_eq!(published.len(), 1);
    assert_eq!(
        published[0].authorization.as_deref(),
        Some("Bearer test-api-key")
    );
    let expected_event = json!({
        "event": "order.created",
        "id": format!("order-created-{id}"),
        "data": {
            "orderId": id, "customerId": "CUST-7", "amount": 99.99, "currency": "USD",
            "items": items, "status": "pending",
        },
    });
    assert_eq!(published[0].body, expected_event);
}

#[tokio::test]
async fn created_orders_can_be_read_back() {
    let (hookd_url, _published) = fake_hookd(StatusCode::ACCEPTED).await;
    let app = order_service(&hookd_url);
    let (_, created) = send(&app, "POST", "/api/orders", Some(valid_order())).await;
    let id = created["id"].as_str().unwrap();

    let (status, order) = send(&app, "GET", &format!("/api/orders/{id}"), None).await;
    assert_eq!((status, order), (StatusCode::OK, created.clone()));
    let (status, error) = send(&app, "GET", "/api/orders/ORD-1", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error, json!({"error": "order not found"}));
}

#[tokio::test]
async fn invalid_orders_are_rejected_without_publishing() {
    let (hookd_url, published) = fake_hookd(StatusCode::ACCEPTED).await;
    let app = order_service(&hookd_url);
    let with = |field: &str, value: Value| {
        let mut order = valid_order();
        order[field] = value;
        order
    };
    let cases = [
        (with("amount", json!(0)), Some("amount")),
        (with("amount", json!(-5.0)), Some("amount")),
        (with("currency", json!("US")), Some("currency")),
        (with("currency", json!("usd")), Some("currency")),
        (with("currency", json!("U5D")), Some("currency")),
        (with("items", json!([])), Some("items")),
        // Wrong shape: axum's rejection, still 422 and still JSON, without a `field`.
        (with("amount", json!("99.99")), None),
        (with("unexpected", json!(true)), None),
    ];
    for (body, field) in cases {
        let (status, error) = send(&app, "POST", "/api/orders", Some(body.clone())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(error["error"].is_string(), "{body}: {error}");
        assert_eq!(error["field"].as_str(), field, "{body}");
    }
    assert_eq!(published.lock().unwrap().len(), 0);
}

#[tokio::test]
async fn a_failed_publish_answers_502_and_keeps_no_order() {
    let (refusing_hookd, published) = fake_hookd(StatusCode::SERVICE_UNAVAILABLE).await;
    // A port that was just released: nothing listens there, so connecting is refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let unreachable_hookd = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);

    for hookd_url in [refusing_hookd, unreachable_hookd] {
        let state = AppState::new(Hookd::new(&hookd_url, API_KEY.into()).unwrap());
        let app = app(state.clone());
        let (status, error) = send(&app, "POST", "/api/orders", Some(valid_order())).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{hookd_url}");
        assert!(
            error["error"].as_str().unwrap().contains("hookd"),
            "{error}"
        );
        assert!(
            state.orders().orders.is_empty(),
            "{hookd_url}: no order kept"
        );
    }
    assert_eq!(
        published.lock().unwrap().len(),
        1,
        "the refusing hookd saw the attempt"
    );
}

#[tokio::test]
async fn order_ids_do_not_repeat_across_restarts() {
    let (hookd_url, published) = fake_hookd(StatusCode::ACCEPTED).await;
    // Two instances stand for the service before and after a restart (the order book is in memory).
    let first = order_service(&hookd_url);
    let (_, before) = send(&first, "POST", "/api/orders", Some(valid_order())).await;
    let restarted = order_service(&hookd_url);
    let (_, after) = send(&restarted, "POST", "/api/orders", Some(valid_order())).await;
    assert_ne!(before["id"], after["id"]);
    let published = published.lock().unwrap();
    assert_ne!(published[0].body["id"], published[1].body["id"]);
}
