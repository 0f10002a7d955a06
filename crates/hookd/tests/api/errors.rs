use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn malformed_json_is_400() {
    let app = spawn_app().await;
    for body in [
        &b"{"[..],
        b"not json",
        b"{,}",
        b"\"unterminated",
        b"{\"a\" 1}",
    ] {
        app.post_raw("/api/webhooks", "application/json", body.to_vec())
            .await
            .assert_error(400, "malformed_json");
        app.post_raw("/api/events", "application/json", body.to_vec())
            .await
            .assert_error(400, "malformed_json");
    }
    // Deep nesting is refused (not stored, and no stack overflow), even inside the raw `data`.
    for depth in [65, 10_000] {
        let deep = format!(
            "{{\"event\":\"a\",\"data\":{{\"x\":{}{}}}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        app.post_raw("/api/events", "application/json", deep.into_bytes())
            .await
            .assert_error(400, "json_too_deep");
    }
    let fine = format!(
        "{{\"event\":\"a\",\"data\":{{\"x\":{}{}}}}}",
        "[".repeat(60),
        "]".repeat(60)
    );
    let reply = app
        .post_raw("/api/events", "application/json", fine.into_bytes())
        .await;
    assert_eq!(reply.status, 202);
}

#[tokio::test]
async fn non_json_content_type_is_415() {
    let app = spawn_app().await;
    app.post_raw("/api/events", "text/plain", b"{}".to_vec())
        .await
        .assert_error(415, "unsupported_media_type");
    let none = into_reply(
        app.client
            .post(app.url("/api/webhooks"))
            .bearer_auth(&app.key)
            .body("{}")
            .send()
            .await
            .unwrap(),
    )
    .await;
    none.assert_error(415, "unsupported_media_type");
    // Parameters and +json types are fine.
    let reply = app
        .post_raw(
            "/api/events",
            "application/json; charset=utf-8",
            br#"{"event":"a","data":{}}"#.to_vec(),
        )
        .await;
    assert_eq!(reply.status, 202);
}

#[tokio::test]
async fn oversized_management_body_is_413() {
    let app = spawn_app().await;
    let body =
        json!({"url": "http://127.0.0.1:1/h", "events": ["*"], "description": "x".repeat(70_000)});
    app.post("/api/webhooks", body)
        .await
        .assert_error(413, "payload_too_large");
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let app = spawn_app().await;
    app.get("/api/nothing-here")
        .await
        .assert_error(404, "route_not_found");
    let outside = into_reply(app.client.get(app.url("/nothing")).send().await.unwrap()).await;
    outside.assert_error(404, "route_not_found");
    let wrong_method = into_reply(app.client.put(app.url("/healthz")).send().await.unwrap()).await;
    wrong_method.assert_error(405, "method_not_allowed");
    app.call(reqwest::Method::PUT, "/api/webhooks", Some(json!({})))
        .await
        .assert_error(405, "method_not_allowed");
}

#[tokio::test]
async fn store_unavailable_is_503_and_recovers_without_losing_anything() {
    let app = spawn_app_with(short_lock_wait).await;
    app.subscribe("http://127.0.0.1:1/h", &["*"]).await;
    let accepted = app
        .post(
            "/api/events",
            json!({"event": "a", "data": {}, "id": "before"}),
        )
        .await;
    assert_eq!(accepted.status, 202);

    // Another process takes the database's locks and holds them (SQLite's write lock; PostgreSQL's
    // exclusive table locks), so the store cannot write.
    let lock = StoreLock::take(&app).await;

    let refused = app
        .post(
            "/api/events",
            json!({"event": "a", "data": {}, "id": "during"}),
        )
        .await;
    refused.assert_error(503, "store_unavailable");
    assert_eq!(refused.headers["retry-after"], "1");
    app.post(
        "/api/webhooks",
        json!({"url": "http://127.0.0.1:1/h", "events": ["*"]}),
    )
    .await
    .assert_error(503, "store_unavailable");

    lock.release().await;

    let after = app
        .post(
            "/api/events",
            json!({"event": "a", "data": {}, "id": "during"}),
        )
        .await;
    assert_eq!(after.status, 202, "recovers by itself: {}", after.body);
    assert_eq!(app.get("/api/events/before").await.status, 200);
    let event = app.get("/api/events/during").await;
    assert_eq!(event.body["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.get("/api/webhooks").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "the refused subscription was not half-written"
    );
}
