//! The checked-in `openapi.json` must match what the code generates. To refresh it after changing the
//! API: `UPDATE_OPENAPI=1 cargo test -p hookd --test api openapi`.

use crate::common::*;

#[tokio::test]
async fn checked_in_document_matches_the_code() {
    let generated = hookd::api::openapi::document();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, format!("{generated}\n")).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in.trim_end() == generated,
        "openapi.json is out of date; run UPDATE_OPENAPI=1 cargo test -p hookd --test api openapi"
    );
}

#[tokio::test]
async fn document_is_served_and_lists_every_route() {
    let app = spawn_app().await;
    let reply = into_reply(
        app.client
            .get(app.url("/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["openapi"], "3.1.0");
    let paths = reply.body["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/webhooks", "post"),
        ("/api/webhooks", "get"),
        ("/api/webhooks/subscribe", "post"),
        ("/api/webhooks/{id}", "get"),
        ("/api/webhooks/{id}", "patch"),
        ("/api/webhooks/{id}", "delete"),
        ("/api/webhooks/{id}/secret", "get"),
        ("/api/events", "post"),
        ("/api/events", "get"),
        ("/api/events/batch", "post"),
        ("/api/events/{id}", "get"),
        ("/api/event-types", "get"),
        ("/api/event-types", "post"),
        ("/api/event-types/{name}", "delete"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} missing from the OpenAPI document"
        );
    }
}
