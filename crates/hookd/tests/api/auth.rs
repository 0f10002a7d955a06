use crate::common::*;
use hookd::auth::generate_api_key;
use serde_json::json;

#[tokio::test]
async fn every_api_route_requires_a_valid_key() {
    let app = spawn_app().await;
    let routes = [
        ("GET", "/api/webhooks"),
        ("POST", "/api/webhooks"),
        ("POST", "/api/webhooks/subscribe"),
        ("GET", "/api/webhooks/wh_x"),
        ("PATCH", "/api/webhooks/wh_x"),
        ("DELETE", "/api/webhooks/wh_x"),
        ("GET", "/api/webhooks/wh_x/secret"),
        ("POST", "/api/events"),
        ("POST", "/api/events/batch"),
        ("GET", "/api/events"),
        ("GET", "/api/events/evt_x"),
        ("GET", "/api/event-types"),
        ("POST", "/api/event-types"),
        ("DELETE", "/api/event-types/order.created"),
        ("GET", "/api/api-keys"),
        ("POST", "/api/api-keys"),
        ("DELETE", "/api/api-keys/key_x"),
        ("GET", "/api/no-such-route"),
    ];
    for (method, path) in routes {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let missing = into_reply(
            app.client
                .request(method.clone(), app.url(path))
                .send()
                .await
                .unwrap(),
        )
        .await;
        missing.assert_error(401, "unauthorized");
        assert_eq!(missing.headers["www-authenticate"], "Bearer", "{path}");
        let wrong = into_reply(
            app.client
                .request(method.clone(), app.url(path))
                .bearer_auth("hookd_wrong")
                .send()
                .await
                .unwrap(),
        )
        .await;
        wrong.assert_error(401, "unauthorized");
        let malformed = into_reply(
            app.client
                .request(method, app.url(path))
                .header("authorization", format!("Basic {TEST_KEY}"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        malformed.assert_error(401, "unauthorized");
    }
    assert_eq!(app.get("/api/webhooks").await.status, 200);
}

#[tokio::test]
async fn stored_keys_work_until_revoked() {
    let app = spawn_app().await;
    let (key, row) = generate_api_key("ci", 1);
    let id = row.id.clone();
    app.store.admin.insert_api_key(row).await.unwrap();
    let with_key = |key: String| {
        let app = &app;
        async move {
            app.client
                .get(app.url("/api/webhooks"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(with_key(key.clone()).await, 200);
    assert!(app.store.admin.revoke_api_key(&id, 2).await.unwrap());
    assert_eq!(with_key(key.clone()).await, 401, "revocation is immediate");
    assert!(!app.store.admin.revoke_api_key(&id, 3).await.unwrap());
    // The stored hash is not the key: listing never shows it.
    let listed = app.store.admin.list_api_keys().await.unwrap();
    assert!(
        listed
            .iter()
            .all(|k| !key.contains(&k.id) && k.prefix.len() < key.len())
    );
}

#[tokio::test]
async fn health_routes_need_no_key() {
    let app = spawn_app().await;
    let healthz = into_reply(app.client.get(app.url("/healthz")).send().await.unwrap()).await;
    assert_eq!(healthz.status, 200);
    assert_eq!(healthz.body, json!({"status": "ok"}));
    let readyz = into_reply(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(readyz.status, 200);
    assert_eq!(readyz.body, json!({"status": "ready"}));
}

#[tokio::test]
async fn failed_authentication_is_limited_per_address() {
    let app = spawn_app_with(|c| c.auth_failures_per_minute = 3).await;
    let attempt = |key: &'static str| {
        let app = &app;
        async move {
            into_reply(
                app.client
                    .get(app.url("/api/webhooks"))
                    .bearer_auth(key)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    for _ in 0..3 {
        attempt("hookd_guess")
            .await
            .assert_error(401, "unauthorized");
    }
    let limited = attempt("hookd_guess").await;
    limited.assert_error(429, "too_many_requests");
    assert_eq!(limited.headers["retry-after"], "60");
    assert_eq!(
        attempt(TEST_KEY).await.status,
        200,
        "a valid key is never limited"
    );
}
