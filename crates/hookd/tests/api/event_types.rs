use crate::common::*;
use serde_json::json;

const STANDARD: [&str; 11] = [
    "invoice.issued",
    "order.cancelled",
    "order.created",
    "order.updated",
    "payment.failed",
    "payment.succeeded",
    "refund.processed",
    "shipment.created",
    "user.registered",
    "user.updated",
    "webhook.test",
];

fn names(reply: &Reply) -> Vec<String> {
    reply.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn catalog_starts_with_the_standard_types() {
    let app = spawn_app().await;
    let reply = app.get("/api/event-types").await;
    assert_eq!(reply.status, 200);
    assert_eq!(names(&reply), STANDARD);
    assert!(
        reply.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["archived"] == false && !t["description"].as_str().unwrap().is_empty())
    );
}

#[tokio::test]
async fn add_archive_and_restore() {
    let app = spawn_app().await;
    let added = app
        .post(
            "/api/event-types",
            json!({"name": "subscription.renewed", "description": "A plan renewed."}),
        )
        .await;
    assert_eq!(added.status, 201, "{}", added.body);
    assert_eq!(added.body["name"], "subscription.renewed");
    assert_eq!(added.body["description"], "A plan renewed.");
    assert!(names(&app.get("/api/event-types").await).contains(&"subscription.renewed".into()));

    app.post("/api/event-types", json!({"name": "subscription.renewed"}))
        .await
        .assert_error(409, "event_type_exists");
    app.post("/api/event-types", json!({"name": "bad name"}))
        .await
        .assert_error(422, "invalid_event_type");

    let archived = app.delete("/api/event-types/subscription.renewed").await;
    assert_eq!(archived.status, 204);
    assert!(!names(&app.get("/api/event-types").await).contains(&"subscription.renewed".into()));
    let all = app.get("/api/event-types?include_archived=true").await;
    let entry = all.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "subscription.renewed")
        .cloned()
        .unwrap();
    assert_eq!(entry["archived"], true);
    app.delete("/api/event-types/subscription.renewed")
        .await
        .assert_error(404, "not_found");
    app.delete("/api/event-types/never.existed")
        .await
        .assert_error(404, "not_found");

    let restored = app
        .post(
            "/api/event-types",
            json!({"name": "subscription.renewed", "description": "back"}),
        )
        .await;
    assert_eq!(restored.status, 201);
    assert_eq!(restored.body["archived"], false);
    assert_eq!(restored.body["description"], "back");
}
