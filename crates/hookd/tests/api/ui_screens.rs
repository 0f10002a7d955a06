//! Dashboard screens over real HTTP, beyond sign-in and scoping (`ui.rs`): what the delivery detail
//! shows of each attempt, replaying an event to an endpoint, recovery with progress, and the
//! portal's framing headers. Both backends.

use crate::common::browser::Browser;
use crate::common::*;
use serde_json::{Value, json};

async fn publish(app: &TestApp, event: Value) -> String {
    let reply = app.post("/api/events", event).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    reply.body["id"].as_str().unwrap().to_owned()
}

/// The event's delivery to `webhook`, once `check` holds for it.
async fn delivery_of(
    app: &TestApp,
    event: &str,
    webhook: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let body = app
        .eventually(&format!("/api/events/{event}"), |body| {
            body["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["webhook_id"] == webhook && check(d))
        })
        .await;
    body["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["webhook_id"] == webhook)
        .unwrap()
        .clone()
}

#[tokio::test]
async fn an_attempt_shows_the_receivers_response_headers_with_credentials_redacted() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    receiver.set_default(
        "/h",
        Answer::WithHeaders(
            200,
            vec![
                ("x-receiver-trace", "trace-4711".into()),
                ("set-cookie", "sid=s3cret-cookie; HttpOnly".into()),
            ],
        ),
    );
    let sub = app.subscribe(&receiver.url("/h"), &["*"]).await;
    let webhook = sub["id"].as_str().unwrap();
    let event = publish(&app, json!({"event": "order.created", "data": {}})).await;
    let delivery = delivery_of(&app, &event, webhook, |d| d["state"] == "delivered").await;
    let id = delivery["id"].as_str().unwrap();

    let detail = app.get(&format!("/api/deliveries/{id}")).await.body;
    let headers = detail["attempts"][0]["response_headers"]
        .as_array()
        .unwrap_or_else(|| panic!("{detail}"))
        .clone();
    assert!(
        headers.contains(&json!({"name": "x-receiver-trace", "value": "trace-4711"})),
        "{headers:?}"
    );
    assert!(
        headers.contains(&json!({"name": "set-cookie", "value": "[redacted]"})),
        "{headers:?}"
    );
    assert!(!detail.to_string().contains("s3cret"));

    let mut browser = Browser::operator(&app).await;
    let page = browser.get(&format!("/ui/deliveries/{id}")).await;
    assert_eq!(page.status, 200);
    let response = &page.body[page.body.find("response-headers").unwrap()..];
    assert!(response.contains("x-receiver-trace") && response.contains("trace-4711"));
    assert!(!page.body.contains("s3cret"));
}

#[tokio::test]
async fn the_delivery_detail_names_the_error_class() {
    let app = spawn_app_with(|c| {
        c.retry = Some(hookd_core::RetryPolicy::Schedule {
            schedule_ms: vec![10],
        })
    })
    .await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sub = app
        .subscribe(&format!("http://127.0.0.1:{port}/h"), &["*"])
        .await;
    let webhook = sub["id"].as_str().unwrap();
    let event = publish(&app, json!({"event": "a", "data": {}})).await;
    let delivery = delivery_of(&app, &event, webhook, |d| d["state"] == "dead").await;
    let mut browser = Browser::operator(&app).await;
    let page = browser
        .get(&format!(
            "/ui/deliveries/{}",
            delivery["id"].as_str().unwrap()
        ))
        .await;
    assert!(page.body.contains("error-class"), "{}", page.body);
    assert!(page.body.contains("connect error: no TCP connection"));
    assert!(page.body.contains("No response."));
}
