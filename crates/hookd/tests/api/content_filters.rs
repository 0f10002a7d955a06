//! Subscriptions' content filters: checked on create and patch, evaluated at fan-out (an event a
//! filter excludes gets no delivery at all), with each operator reaching or missing a receiver.

use crate::common::*;
use serde_json::{Value, json};
use std::collections::BTreeSet;

fn order_data() -> Value {
    json!({
        "amount": 150,
        "price": 9.5,
        "region": "eu",
        "customer": {"tier": "gold", "address": {"country": "FR"}},
        "tags": ["new", "vip"],
        "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 5}],
        "note": null
    })
}

/// (receiver path, filter, whether `order.created` with [`order_data`] passes it)
fn operator_cases() -> Vec<(&'static str, Value, bool)> {
    vec![
        ("eq", json!({"data.region": {"$eq": "eu"}}), true),
        ("eq-miss", json!({"data.region": {"$eq": "us"}}), false),
        ("literal", json!({"data.amount": 150}), true),
        ("ne", json!({"data.region": {"$ne": "us"}}), true),
        ("ne-miss", json!({"data.region": {"$ne": "eu"}}), false),
        ("gt", json!({"data.amount": {"$gt": 100}}), true),
        ("gt-miss", json!({"data.amount": {"$gt": 150}}), false),
        ("gte", json!({"data.amount": {"$gte": 150}}), true),
        ("gte-miss", json!({"data.amount": {"$gte": 151}}), false),
        ("lt", json!({"data.price": {"$lt": 10}}), true),
        ("lt-miss", json!({"data.price": {"$lt": 9.5}}), false),
        ("lte", json!({"data.price": {"$lte": 9.5}}), true),
        ("lte-miss", json!({"data.price": {"$lte": 9}}), false),
        ("in", json!({"data.region": {"$in": ["eu", "uk"]}}), true),
        (
            "in-miss",
            json!({"data.region": {"$in": ["us", "ca"]}}),
            false,
        ),
        ("nin", json!({"data.region": {"$nin": ["us"]}}), true),
        ("nin-miss", json!({"data.region": {"$nin": ["eu"]}}), false),
        ("exists", json!({"data.note": {"$exists": true}}), true),
        (
            "exists-miss",
            json!({"data.refund": {"$exists": true}}),
            false,
        ),
        ("absent", json!({"data.refund": {"$exists": false}}), true),
        (
            "and",
            json!({"$and": [{"data.region": "eu"}, {"data.amount": {"$gte": 100}}]}),
            true,
        ),
        (
            "and-miss",
            json!({"$and": [{"data.region": "eu"}, {"data.amount": {"$gte": 1000}}]}),
            false,
        ),
        (
            "or",
            json!({"$or": [{"data.region": "us"}, {"data.amount": {"$gt": 100}}]}),
            true,
        ),
        (
            "or-miss",
            json!({"$or": [{"data.region": "us"}, {"data.amount": {"$gt": 1000}}]}),
            false,
        ),
        ("not", json!({"$not": {"data.region": "us"}}), true),
        ("not-miss", json!({"$not": {"data.region": "eu"}}), false),
        (
            "nested",
            json!({"data.customer.address.country": "FR"}),
            true,
        ),
        (
            "nested-miss",
            json!({"data.customer.tier": "silver"}),
            false,
        ),
        ("array", json!({"data.tags": "vip"}), true),
        ("array-miss", json!({"data.tags": "old"}), false),
        ("array-items", json!({"data.items.sku": "B-2"}), true),
        (
            "array-index",
            json!({"data.items.0.qty": {"$gt": 2}}),
            false,
        ),
        ("event", json!({"event": {"$in": ["order.created"]}}), true),
        ("version-miss", json!({"version": "2.0"}), false),
    ]
}

fn delivered_to(event: &Value) -> BTreeSet<String> {
    event["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["webhook_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn each_operator_reaches_or_misses_a_real_receiver() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let mut expected = BTreeSet::new();
    let mut paths = Vec::new();
    for (name, filter, passes) in operator_cases() {
        let path = format!("/{name}");
        let sub = app
            .subscribe_with(json!({
                "url": receiver.url(&path),
                "events": ["order.*"],
                "filter": filter,
            }))
            .await;
        assert_eq!(sub["filter"], filter, "the filter is returned as given");
        if passes {
            expected.insert(id_of(&sub));
        }
        paths.push((path, passes));
    }
    // No filter: every order event.
    let plain = app.subscribe(&receiver.url("/plain"), &["order.*"]).await;
    expected.insert(id_of(&plain));

    let reply = app
        .post(
            "/api/events",
            json!({"event": "order.created", "data": order_data()}),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(reply.body["deliveries"], expected.len());
    let event_id = reply.body["id"].as_str().unwrap();
    let event = app.get(&format!("/api/events/{event_id}")).await;
    assert_eq!(
        delivered_to(&event.body),
        expected,
        "only the subscriptions whose filter passes get a delivery"
    );

    receiver.wait_for("/plain", 1).await;
    for (path, passes) in &paths {
        if *passes {
            let request = receiver.wait_for(path, 1).await.remove(0);
            assert_eq!(request.json()["data"], order_data(), "{path}");
        }
    }
    app.wait_for_deliveries(event_id, |deliveries| {
        deliveries.iter().all(|d| d["state"] == "delivered")
    })
    .await;
    for (path, passes) in paths {
        if !passes {
            // Nothing was queued for it, so nothing can still arrive.
            assert!(receiver.received(&path).is_empty(), "{path}");
        }
    }
}

#[tokio::test]
async fn a_batch_is_filtered_event_by_event() {
    let app = spawn_app_with(|c| c.role = hookd::config::Role::Api).await;
    let big = app
        .subscribe_with(json!({
            "url": "http://127.0.0.1:1/big",
            "events": ["*"],
            "filter": {"data.amount": {"$gte": 100}},
        }))
        .await;
    let reply = app
        .post(
            "/api/events/batch",
            json!({"events": [
                {"event": "order.created", "data": {"amount": 500}},
                {"event": "order.created", "data": {"amount": 5}},
                {"event": "order.created", "data": {"other": true}},
            ]}),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let results = reply.body["events"].as_array().unwrap();
    let counts: Vec<i64> = results
        .iter()
        .map(|r| r["deliveries"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, [1, 0, 0]);
    for (result, wanted) in results.iter().zip([true, false, false]) {
        let id = result["id"].as_str().unwrap();
        let event = app.get(&format!("/api/events/{id}")).await;
        let to = delivered_to(&event.body);
        assert_eq!(to.contains(&id_of(&big)), wanted, "{}", event.body);
        assert_eq!(
            to.len(),
            usize::from(wanted),
            "no delivery row: {}",
            event.body
        );
    }
}

#[tokio::test]
async fn a_patch_sets_changes_and_removes_the_filter() {
    let app = spawn_app_with(|c| c.role = hookd::config::Role::Api).await;
    let sub = app.subscribe("http://127.0.0.1:1/h", &["*"]).await;
    let path = format!("/api/webhooks/{}", id_of(&sub));
    let count = async |data: Value| {
        let reply = app
            .post(
                "/api/events",
                json!({"event": "order.created", "data": data}),
            )
            .await;
        assert_eq!(reply.status, 202, "{}", reply.body);
        reply.body["deliveries"].as_i64().unwrap()
    };
    assert_eq!(count(json!({"region": "us"})).await, 1);

    let reply = app
        .patch(&path, json!({"filter": {"data.region": "eu"}}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["filter"], json!({"data.region": "eu"}));
    assert_eq!(count(json!({"region": "us"})).await, 0);
    assert_eq!(count(json!({"region": "eu"})).await, 1);

    let reply = app
        .patch(&path, json!({"filter": {"data.region": "us"}}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(count(json!({"region": "us"})).await, 1);
    assert_eq!(count(json!({"region": "eu"})).await, 0);

    // A patch of another field keeps the filter.
    let reply = app.patch(&path, json!({"description": "x"})).await;
    assert_eq!(reply.body["filter"], json!({"data.region": "us"}));

    let reply = app.patch(&path, json!({"filter": null})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["filter"], Value::Null);
    assert_eq!(count(json!({"region": "eu"})).await, 1);
    let stored = app.get(&path).await;
    assert_eq!(stored.body["filter"], Value::Null);
}

#[tokio::test]
async fn a_test_event_ignores_the_content_filter() {
    let app = spawn_app_with(|c| c.role = hookd::config::Role::Api).await;
    let sub = app
        .subscribe_with(json!({
            "url": "http://127.0.0.1:1/h",
            "events": ["*"],
            "filter": {"data.region": "nowhere"},
        }))
        .await;
    let reply = app
        .post(&format!("/api/webhooks/{}/test", id_of(&sub)), json!({}))
        .await;
    assert!(reply.status.is_success(), "{}", reply.body);
    assert_eq!(reply.body["deliveries"], 1, "{}", reply.body);
}

#[tokio::test]
async fn bad_filters_are_refused_with_the_path_of_the_mistake() {
    let app = spawn_app().await;
    let deep = (0..40).fold(json!({"data.a": 1}), |inner, _| json!({ "$not": inner }));
    let many: Vec<Value> = (0..101)
        .map(|i| json!({ format!("data.f{i}"): i }))
        .collect();
    let cases = [
        (
            json!({"data.amount": {"$between": [1, 2]}}),
            "filter.data.amount.$between",
        ),
        (json!({"$nor": [{"data.a": 1}]}), "filter.$nor"),
        (
            json!({"data.amount": {"$gt": {"a": 1}}}),
            "filter.data.amount.$gt",
        ),
        (
            json!({"data.amount": {"$in": "eu"}}),
            "filter.data.amount.$in",
        ),
        (
            json!({"data.amount": {"$exists": "yes"}}),
            "filter.data.amount.$exists",
        ),
        (
            json!({"$or": [{"data.a": 1}, {"body.a": 2}]}),
            "filter.$or[1].body.a",
        ),
        (
            json!({"$and": [{"data.a": {"$lt": true}}]}),
            "filter.$and[0].data.a.$lt",
        ),
        (json!({"$and": many}), "filter.$and[100].data.f100"),
        (json!([{"data.a": 1}]), "filter"),
        (json!("data.a = 1"), "filter"),
    ];
    let sub = app.subscribe("http://127.0.0.1:1/h", &["*"]).await;
    let patch_path = format!("/api/webhooks/{}", id_of(&sub));
    for (filter, field) in cases {
        let body = json!({"url": "http://127.0.0.1:1/h", "events": ["*"], "filter": filter});
        let reply = app.post("/api/webhooks", body).await;
        reply.assert_error(422, "invalid_filter");
        assert_eq!(reply.body["field"], field, "create with {filter}");
        let reply = app.patch(&patch_path, json!({"filter": filter})).await;
        reply.assert_error(422, "invalid_filter");
        assert_eq!(reply.body["field"], field, "patch with {filter}");
    }
    let reply = app
        .post(
            "/api/webhooks",
            json!({"url": "http://127.0.0.1:1/h", "events": ["*"], "filter": deep}),
        )
        .await;
    reply.assert_error(422, "invalid_filter");
    assert!(
        reply.body["error"].as_str().unwrap().contains("32 levels"),
        "{}",
        reply.body
    );
    // Nothing was changed by the refused patches.
    assert_eq!(app.get(&patch_path).await.body["filter"], Value::Null);
}
