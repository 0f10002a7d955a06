//! Event-type schemas: set and changed through the catalog (checked, examples validated), and
//! applied at publish as `off`, `warn` or `enforce` (batches all or nothing).

use crate::common::*;
use serde_json::{Value, json};

fn order_schema() -> Value {
    json!({
        "type": "object",
        "required": ["orderId", "amount"],
        "properties": {
            "orderId": {"type": "string", "pattern": "^ORD-[0-9]+$"},
            "amount": {"type": "number", "minimum": 0},
            "currency": {"enum": ["EUR", "USD"]}
        }
    })
}

async fn create_type(app: &TestApp, body: Value) -> Value {
    let reply = app.post("/api/event-types", body).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body
}

async fn metric(app: &TestApp, line_start: &str) -> f64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(line_start))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or(0.0)
}

fn violation_pairs(body: &Value) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = body["violations"]
        .as_array()
        .unwrap_or_else(|| panic!("no violations in {body}"))
        .iter()
        .map(|v| {
            (
                v["path"].as_str().unwrap().to_owned(),
                v["keyword"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    pairs.sort();
    pairs
}

#[tokio::test]
async fn enforce_refuses_warn_counts_and_off_ignores() {
    let app = spawn_app_with(|c| c.role = hookd::config::Role::Api).await;
    app.subscribe("http://127.0.0.1:1/h", &["*"]).await;
    let created = create_type(
        &app,
        json!({
            "name": "shop.order.placed",
            "description": "An order was placed.",
            "schema": order_schema(),
            "examples": [{"orderId": "ORD-1", "amount": 12.5}],
            "validate": "enforce",
        }),
    )
    .await;
    assert_eq!(created["schema"], order_schema());
    assert_eq!(created["validate"], "enforce");
    assert_eq!(created["examples"][0]["orderId"], "ORD-1");

    let good = json!({"event": "shop.order.placed", "data": {"orderId": "ORD-7", "amount": 3}});
    let bad = json!({"event": "shop.order.placed",
                     "data": {"orderId": "nope", "amount": -1, "currency": "GBP"}});
    app.publish(good.clone()).await;
    let reply = app.post("/api/events", bad.clone()).await;
    reply.assert_error(422, "schema_mismatch");
    assert_eq!(reply.body["field"], "data");
    assert_eq!(
        violation_pairs(&reply.body),
        [
            ("/amount".to_owned(), "minimum".to_owned()),
            ("/currency".to_owned(), "enum".to_owned()),
            ("/orderId".to_owned(), "pattern".to_owned()),
        ]
    );
    assert!(
        !reply.body.to_string().contains("GBP"),
        "the answer names paths and keywords, not the payload: {}",
        reply.body
    );
    let missing = app
        .post(
            "/api/events",
            json!({"event": "shop.order.placed", "data": {}}),
        )
        .await;
    missing.assert_error(422, "schema_mismatch");
    assert_eq!(violation_pairs(&missing.body)[0].1, "required");
    let listed = app.get("/api/events?event_type=shop.order.placed").await;
    assert_eq!(
        listed.body["data"].as_array().unwrap().len(),
        1,
        "only the good one"
    );

    // warn: accepted, delivered, counted.
    let warnings = "hookd_schema_warnings_total{event_type=\"shop.order.placed\"} ";
    let before = metric(&app, warnings).await;
    let reply = app
        .patch(
            "/api/event-types/shop.order.placed",
            json!({"validate": "warn"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["validate"], "warn");
    assert_eq!(
        reply.body["schema"],
        order_schema(),
        "a patch keeps the schema"
    );
    let reply = app.post("/api/events", bad.clone()).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(reply.body["deliveries"], 1);
    assert_eq!(metric(&app, warnings).await, before + 1.0);
    app.publish(good.clone()).await;
    assert_eq!(
        metric(&app, warnings).await,
        before + 1.0,
        "a good event is not counted"
    );

    // off: accepted, not counted.
    app.patch(
        "/api/event-types/shop.order.placed",
        json!({"validate": "off"}),
    )
    .await;
    let reply = app.post("/api/events", bad).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(metric(&app, warnings).await, before + 1.0);
}

#[tokio::test]
async fn a_batch_with_one_nonconforming_event_stores_nothing() {
    let app = spawn_app_with(|c| c.role = hookd::config::Role::Api).await;
    create_type(
        &app,
        json!({"name": "batch.order", "schema": order_schema(), "validate": "enforce"}),
    )
    .await;
    let event = |amount: i64| json!({"event": "batch.order", "data": {"orderId": "ORD-1", "amount": amount}});
    let reply = app
        .post(
            "/api/events/batch",
            json!({"events": [event(1), event(2), event(-3), event(4)]}),
        )
        .await;
    reply.assert_error(422, "schema_mismatch");
    assert_eq!(reply.body["field"], "events[2].data");
    assert_eq!(
        violation_pairs(&reply.body),
        [("/amount".to_owned(), "minimum".to_owned())]
    );
    let listed = app.get("/api/events?event_type=batch.order").await;
    assert_eq!(listed.body["data"], json!([]), "nothing was stored");

    let reply = app
        .post("/api/events/batch", json!({"events": [event(1), event(2)]}))
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let listed = app.get("/api/events?event_type=batch.order").await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn each_version_may_have_its_own_schema() {
    let app = spawn_app_with(|c| c.role = hookd::config::Role::Api).await;
    let v2 = json!({"type": "object", "required": ["total"]});
    let created = create_type(
        &app,
        json!({"name": "versioned.order", "schema": order_schema(),
               "version_schemas": {"2.0": v2}, "validate": "enforce"}),
    )
    .await;
    assert_eq!(created["version_schemas"]["2.0"], v2);
    let publish = async |version: &str, data: Value| {
        app.post(
            "/api/events",
            json!({"event": "versioned.order", "version": version, "data": data}),
        )
        .await
    };
    assert_eq!(publish("2.0", json!({"total": 1})).await.status, 202);
    publish("2.0", json!({"orderId": "ORD-1", "amount": 1}))
        .await
        .assert_error(422, "schema_mismatch");
    assert_eq!(
        publish("1.0", json!({"orderId": "ORD-1", "amount": 1}))
            .await
            .status,
        202
    );
    publish("1.0", json!({"total": 1}))
        .await
        .assert_error(422, "schema_mismatch");
    // Without per-version schemas every version follows `schema`.
    let reply = app
        .patch(
            "/api/event-types/versioned.order",
            json!({"version_schemas": null}),
        )
        .await;
    assert_eq!(reply.body["version_schemas"], json!({}));
    publish("2.0", json!({"total": 1}))
        .await
        .assert_error(422, "schema_mismatch");
}

#[tokio::test]
async fn schemas_and_examples_are_checked_when_set() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"name": "t.a", "schema": {"type": "nonsense"}}),
            "invalid_schema",
            "schema",
        ),
        (
            json!({"name": "t.a", "schema": 7}),
            "invalid_schema",
            "schema",
        ),
        (
            json!({"name": "t.a", "schema": {"$ref": "https://example.com/order.json"}}),
            "invalid_schema",
            "schema/$ref",
        ),
        (
            json!({"name": "t.a", "schema": {"properties": {"a": {"$ref": "defs.json#/a"}}}}),
            "invalid_schema",
            "schema/properties/a/$ref",
        ),
        (
            json!({"name": "t.a", "schema": {"type": "string", "pattern": "(?<=a)b"}}),
            "invalid_schema",
            "schema",
        ),
        (
            json!({"name": "t.a", "version_schemas": {"2.0": {"type": 3}}}),
            "invalid_schema",
            "version_schemas.2.0",
        ),
        (
            json!({"name": "t.a", "schema": order_schema(),
                   "examples": [{"orderId": "ORD-1", "amount": 1}, {"orderId": "ORD-2", "amount": -5}]}),
            "invalid_example",
            "examples[1].amount",
        ),
        (
            json!({"name": "t.a", "examples": ["text"]}),
            "invalid_example",
            "examples[0]",
        ),
        (
            json!({"name": "t.a", "validate": "strict"}),
            "invalid_field",
            "validate",
        ),
    ];
    for (body, code, field) in cases {
        let reply = app.post("/api/event-types", body.clone()).await;
        reply.assert_error(422, code);
        let at = reply.body["field"].as_str().unwrap();
        assert!(at.starts_with(field), "{body}: field {at}");
    }
    assert_eq!(app.get("/api/event-types/t.a").await.status, 404);

    create_type(
        &app,
        json!({"name": "t.a", "schema": order_schema(),
               "examples": [{"orderId": "ORD-1", "amount": 1}]}),
    )
    .await;
    // A new schema must accept the examples already there.
    let reply = app
        .patch(
            "/api/event-types/t.a",
            json!({"schema": {"type": "object", "required": ["sku"]}}),
        )
        .await;
    reply.assert_error(422, "invalid_example");
    assert_eq!(reply.body["field"], "examples[0]");
    // ...and new examples must pass the schema.
    let reply = app
        .patch(
            "/api/event-types/t.a",
            json!({"examples": [{"orderId": 3}]}),
        )
        .await;
    reply.assert_error(422, "invalid_example");
    let reply = app
        .patch(
            "/api/event-types/t.a",
            json!({"schema": {"type": "object", "required": ["sku"]},
                   "examples": [{"sku": "A"}]}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let stored = app.get("/api/event-types/t.a").await;
    assert_eq!(stored.body["examples"], json!([{"sku": "A"}]));
    app.patch("/api/event-types/t.nope", json!({"validate": "warn"}))
        .await
        .assert_error(404, "not_found");
}
