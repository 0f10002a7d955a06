use crate::common::*;
use serde_json::{Value, json};

/// Subscriptions covering each kind of filter, plus a disabled one.
async fn fanout_fixture(app: &TestApp) -> Vec<String> {
    let mut ids = Vec::new();
    for events in [
        vec!["*"],
        vec!["order.*"],
        vec!["order.created"],
        vec!["payment.failed"],
        vec!["order.*"],
    ] {
        let sub = app.subscribe("http://127.0.0.1:1/h", &events).await;
        ids.push(sub["id"].as_str().unwrap().to_owned());
    }
    let reply = app
        .patch(
            &format!("/api/webhooks/{}", ids[4]),
            json!({"active": false}),
        )
        .await;
    assert_eq!(reply.status, 200);
    ids
}

fn delivery_states(event: &Value) -> Vec<(String, String)> {
    let mut states: Vec<_> = event["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["webhook_id"].as_str().unwrap().to_owned(),
                d["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    states.sort();
    states
}

#[tokio::test]
async fn publish_fans_out_to_every_matching_subscription() {
    // No worker: the deliveries stay as publishing left them.
    let app = spawn_app_with(|c| c.role = hookd::config::Role::Api).await;
    let subs = fanout_fixture(&app).await;
    let reply = app
        .post(
            "/api/events",
            json!({"event": "order.created", "data": {"orderId": "ORD-1", "amount": 99.99}}),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(reply.body["deliveries"], 3, "*, order.*, order.created");
    assert_eq!(reply.body["duplicate"], false);
    let id = reply.body["id"].as_str().unwrap();
    assert!(id.starts_with("evt_"));

    let event = app.get(&format!("/api/events/{id}")).await;
    assert_eq!(event.status, 200);
    assert_eq!(event.body["event"], "order.created");
    assert_eq!(event.body["version"], "1.0");
    assert_eq!(event.body["retryable"], true);
    assert_eq!(
        event.body["data"],
        json!({"orderId": "ORD-1", "amount": 99.99})
    );
    let mut expected = vec![
        (subs[0].clone(), "pending".to_owned()),
        (subs[1].clone(), "pending".to_owned()),
        (subs[2].clone(), "pending".to_owned()),
        (subs[4].clone(), "held".to_owned()),
    ];
    expected.sort();
    assert_eq!(delivery_states(&event.body), expected);
    for delivery in event.body["deliveries"].as_array().unwrap() {
        assert_eq!(delivery["attempt_count"], 0);
        assert!(delivery["id"].as_str().unwrap().starts_with("dlv_"));
    }

    let payment = app
        .post(
            "/api/events",
            json!({"event": "payment.failed", "data": {}}),
        )
        .await;
    assert_eq!(payment.body["deliveries"], 2, "* and payment.failed");
    let other = app
        .post(
            "/api/events",
            json!({"event": "user.registered", "data": {}}),
        )
        .await;
    assert_eq!(other.body["deliveries"], 1, "only *");
}

#[tokio::test]
async fn data_is_stored_delivered_and_shown_in_its_canonical_form() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    app.subscribe(&receiver.url("/canon"), &["*"]).await;
    // What Python's `requests` writes: ", " and ": " separators, \u escapes, floats as `1.0`.
    let raw = br#"{"event": "order.created", "data": {"z": 1.0, "a": [1.50, "Zo\u00eb", 1e2, 1e21], "m": {"b": null, "2": [], "1": {}}, "big": 12345678901234567890}}"#;
    let reply = app
        .post_raw("/api/events", "application/json", raw.to_vec())
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap();
    let canonical = r#"{"z":1,"a":[1.5,"Zoë",100,1e+21],"m":{"1":{},"2":[],"b":null},"big":12345678901234567890}"#;
    let stored = app.store.deliveries.get_event(id).await.unwrap().unwrap();
    assert_eq!(stored.data, canonical);
    let shown = app
        .client
        .get(app.url(&format!("/api/events/{id}")))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(shown.contains(&format!(r#""data":{canonical}"#)), "{shown}");
    let received = receiver.wait_for("/canon", 1).await;
    let body = String::from_utf8(received[0].body.to_vec()).unwrap();
    assert!(
        body.contains(&format!(r#""data":{canonical},"attempt":1"#)),
        "{body}"
    );
}

#[tokio::test]
async fn client_ids_and_idempotency_keys_deduplicate() {
    let app = spawn_app().await;
    app.subscribe("http://127.0.0.1:1/h", &["*"]).await;
    let first = app
        .post(
            "/api/events",
            json!({"event": "order.created", "data": {"n": 1}, "id": "ord_1-created"}),
        )
        .await;
    assert_eq!(first.status, 202);
    assert_eq!(first.body["id"], "ord_1-created");
    // The same event again (a retry): the original. Other data under the id is a conflict
    // (`hardening::republishing_an_id_with_other_data_is_a_conflict`).
    let again = app
        .post(
            "/api/events",
            json!({"event": "order.created", "data": {"n": 1}, "id": "ord_1-created"}),
        )
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["duplicate"], true);
    assert_eq!(again.body["deliveries"], 1);
    assert_eq!(again.body["timestamp"], first.body["timestamp"]);
    let stored = app.get("/api/events/ord_1-created").await;
    assert_eq!(stored.body["data"], json!({"n": 1}), "the original is kept");
    assert_eq!(stored.body["deliveries"].as_array().unwrap().len(), 1);

    let keyed = |n: i64| {
        app.client
            .post(app.url("/api/events"))
            .bearer_auth(&app.key)
            .header("Idempotency-Key", "req-42")
            .json(&json!({"event": "order.updated", "data": {"n": n}}))
            .send()
    };
    let first = into_reply(keyed(1).await.unwrap()).await;
    assert_eq!(first.status, 202);
    let second = into_reply(keyed(1).await.unwrap()).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.body["id"], first.body["id"]);
    let all = app.get("/api/events?limit=250").await;
    assert_eq!(all.body["data"].as_array().unwrap().len(), 2);

    for bad in ["has.dot", "", "sp ace", &"x".repeat(65)] {
        let reply = app
            .post("/api/events", json!({"event": "a", "data": {}, "id": bad}))
            .await;
        reply.assert_error(422, "invalid_id");
        assert_eq!(reply.body["field"], "id");
    }
    // Visible ASCII only, as the OpenAPI document's pattern says: no space inside.
    for bad_key in ["k".repeat(256), "two words".into()] {
        let reply = into_reply(
            app.client
                .post(app.url("/api/events"))
                .bearer_auth(&app.key)
                .header("Idempotency-Key", bad_key)
                .json(&json!({"event": "a", "data": {}}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        reply.assert_error(422, "invalid_idempotency_key");
        assert_eq!(reply.body["field"], "Idempotency-Key");
    }
}

#[tokio::test]
async fn concurrent_duplicates_create_one_event() {
    let app = spawn_app().await;
    app.subscribe("http://127.0.0.1:1/h", &["*"]).await;
    let statuses = app
        .publish_concurrently(vec![json!({"event": "a", "data": {}, "id": "same"}); 20])
        .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 19);
    let event = app.get("/api/events/same").await;
    assert_eq!(event.body["deliveries"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn publish_validates_the_envelope() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"event": "bad type", "data": {}}),
            422,
            "invalid_event_type",
            "event",
        ),
        (
            json!({"event": "x".repeat(129), "data": {}}),
            422,
            "invalid_event_type",
            "event",
        ),
        (json!({"data": {}}), 422, "invalid_field", "event"),
        (json!({"event": "a"}), 422, "invalid_field", "data"),
        (
            json!({"event": "a", "data": [1]}),
            422,
            "invalid_field",
            "data",
        ),
        (
            json!({"event": "a", "data": "s"}),
            422,
            "invalid_field",
            "data",
        ),
        (
            json!({"event": "a", "data": {}, "version": ""}),
            422,
            "invalid_field",
            "version",
        ),
        (
            json!({"event": "a", "data": {}, "retryable": "no"}),
            422,
            "invalid_field",
            "retryable",
        ),
        (
            json!({"event": "a", "data": {}, "extra": 1}),
            422,
            "invalid_field",
            "extra",
        ),
    ];
    for (body, status, code, field) in cases {
        let reply = app.post("/api/events", body.clone()).await;
        reply.assert_error(status, code);
        assert_eq!(reply.body["field"], field, "{body}");
    }
    let explicit = app
        .post(
            "/api/events",
            json!({"event": "a", "data": {}, "version": "2.1", "retryable": false}),
        )
        .await;
    let stored = app
        .get(&format!(
            "/api/events/{}",
            explicit.body["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(stored.body["version"], "2.1");
    assert_eq!(stored.body["retryable"], false);
}

#[tokio::test]
async fn payload_over_the_limit_is_413() {
    let app = spawn_app_with(|c| c.max_payload_bytes = 1024).await;
    let big = json!({"event": "a", "data": {"blob": "x".repeat(2000)}});
    app.post("/api/events", big.clone())
        .await
        .assert_error(413, "payload_too_large");
    let huge = json!({"event": "a", "data": {"blob": "x".repeat(100_000)}});
    app.post("/api/events", huge)
        .await
        .assert_error(413, "payload_too_large");
    let batch = json!({"events": [{"event": "a", "data": {}}, big]});
    app.post("/api/events/batch", batch)
        .await
        .assert_error(413, "payload_too_large");
    let fits = json!({"event": "a", "data": {"blob": "x".repeat(900)}});
    assert_eq!(app.post("/api/events", fits).await.status, 202);
    assert_eq!(
        app.get("/api/events").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "nothing from the refused requests was stored"
    );
}

#[tokio::test]
async fn batch_is_all_or_nothing() {
    let app = spawn_app().await;
    app.subscribe("http://127.0.0.1:1/h", &["order.*"]).await;
    let bad = json!({"events": [
        {"event": "order.created", "data": {}, "id": "b1"},
        {"event": "order.updated", "data": {}, "id": "b2"},
        {"event": "not valid", "data": {}, "id": "b3"},
    ]});
    let reply = app.post("/api/events/batch", bad).await;
    reply.assert_error(422, "invalid_event_type");
    assert_eq!(reply.body["field"], "events[2].event");
    for id in ["b1", "b2", "b3"] {
        app.get(&format!("/api/events/{id}"))
            .await
            .assert_error(404, "not_found");
    }

    let good = json!({"events": [
        {"event": "order.created", "data": {"i": 1}, "id": "b1"},
        {"event": "user.registered", "data": {"i": 2}},
        {"event": "order.created", "data": {"i": 1}, "id": "b1"},
    ]});
    let reply = app.post("/api/events/batch", good).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let results = reply.body["events"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["deliveries"], 1);
    assert_eq!(results[0]["duplicate"], false);
    assert_eq!(results[1]["deliveries"], 0);
    assert_eq!(results[2]["id"], "b1");
    assert_eq!(results[2]["duplicate"], true, "same id twice in one batch");
    assert_eq!(
        results[2]["deliveries"], 1,
        "the duplicate reports the first one's deliveries, queued in the same request"
    );
    assert_eq!(
        app.get("/api/events/b1").await.body["data"],
        json!({"i": 1})
    );

    app.post("/api/events/batch", json!({"events": []}))
        .await
        .assert_error(422, "invalid_batch");
    let too_many: Vec<Value> = (0..1001)
        .map(|_| json!({"event": "a", "data": {}}))
        .collect();
    app.post("/api/events/batch", json!({"events": too_many}))
        .await
        .assert_error(422, "invalid_batch");
    let keyed = into_reply(
        app.client
            .post(app.url("/api/events/batch"))
            .bearer_auth(&app.key)
            .header("Idempotency-Key", "k")
            .json(&json!({"events": [{"event": "a", "data": {}}]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    keyed.assert_error(400, "idempotency_key_unsupported");
}

#[tokio::test]
async fn a_thousand_event_batch_is_accepted() {
    let app = spawn_app().await;
    app.subscribe("http://127.0.0.1:1/h", &["*"]).await;
    let events: Vec<Value> = (0..1000)
        .map(|i| json!({"event": "order.created", "data": {"i": i}}))
        .collect();
    let reply = app
        .post("/api/events/batch", json!({"events": events}))
        .await;
    assert_eq!(reply.status, 202);
    assert_eq!(reply.body["events"].as_array().unwrap().len(), 1000);
}

#[tokio::test]
async fn list_filters_by_type_and_time_and_paginates() {
    let app = spawn_app().await;
    for i in 0..3 {
        app.post(
            "/api/events",
            json!({"event": "order.created", "data": {"i": i}, "id": format!("o{i}")}),
        )
        .await;
        app.post(
            "/api/events",
            json!({"event": "payment.failed", "data": {"i": i}, "id": format!("p{i}")}),
        )
        .await;
    }
    let orders = app.get("/api/events?type=order.created").await;
    let ids: Vec<_> = orders.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["o2", "o1", "o0"]);

    let mut collected = Vec::new();
    let mut path = "/api/events?limit=4".to_owned();
    loop {
        let page = app.get(&path).await;
        collected.extend(
            page.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned()),
        );
        match page.body["next_cursor"].as_str() {
            Some(c) => path = format!("/api/events?limit=4&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(collected.len(), 6);
    assert_eq!(collected.first().unwrap(), "p2");
    assert_eq!(collected.last().unwrap(), "o0");

    let middle = app.get("/api/events/o1").await.body["timestamp"]
        .as_str()
        .unwrap()
        .to_owned();
    let since = app
        .get(&format!("/api/events?type=order.created&since={middle}"))
        .await;
    let since_ids: Vec<_> = since.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(since_ids, ["o2", "o1"]);
    let until = app
        .get(&format!("/api/events?type=order.created&until={middle}"))
        .await;
    assert_eq!(until.body["data"][0]["id"], "o0");
    assert_eq!(until.body["data"].as_array().unwrap().len(), 1);

    let reply = app.get("/api/events?since=yesterday").await;
    reply.assert_error(422, "invalid_timestamp");
    assert_eq!(reply.body["field"], "since");
    app.get("/api/events?type=bad%20type")
        .await
        .assert_error(422, "invalid_event_type");
    app.get("/api/events/nope")
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn strict_event_types_refuses_unknown_types() {
    let app = spawn_app_with(|c| c.strict_event_types = true).await;
    let reply = app
        .post("/api/events", json!({"event": "made.up", "data": {}}))
        .await;
    reply.assert_error(422, "unknown_event_type");
    assert_eq!(reply.body["field"], "event");
    assert_eq!(
        app.post("/api/events", json!({"event": "order.created", "data": {}}))
            .await
            .status,
        202
    );
    app.post("/api/event-types", json!({"name": "made.up"}))
        .await;
    assert_eq!(
        app.post("/api/events", json!({"event": "made.up", "data": {}}))
            .await
            .status,
        202
    );
    // Without strict mode, any valid type is accepted.
    let lax = spawn_app().await;
    assert_eq!(
        lax.post("/api/events", json!({"event": "made.up", "data": {}}))
            .await
            .status,
        202
    );
}

#[tokio::test]
async fn data_that_strict_parsers_refuse_is_refused_naming_the_path() {
    let app = spawn_app().await;
    let refused = [
        (
            r#"{"event": "a", "data": {"x": 1e400}}"#,
            "invalid_field",
            "data.x",
        ),
        (
            r#"{"event": "a", "data": {"x": -1e400}}"#,
            "invalid_field",
            "data.x",
        ),
        (
            r#"{"event": "a", "data": {"x": "\ude00"}}"#,
            "invalid_unicode",
            "data.x",
        ),
        (
            r#"{"event": "a", "data": {"x": [0, "\ud800 and no pair"]}}"#,
            "invalid_unicode",
            "data.x[1]",
        ),
        (
            r#"{"event": "a", "data": {"o": {"k": 1, "k": 2}}}"#,
            "duplicate_key",
            "data.o.k",
        ),
        (
            r#"{"event": "a", "data": {"a b": 1, "a b": 1}}"#,
            "duplicate_key",
            r#"data["a b"]"#,
        ),
    ];
    for (body, code, field) in refused {
        let reply = app
            .post_raw("/api/events", "application/json", body.into())
            .await;
        reply.assert_error(422, code);
        assert_eq!(reply.body["field"], field, "{body}: {}", reply.body);
    }
    let batch = r#"{"events": [{"event": "a", "data": {}, "id": "s1"},
                               {"event": "a", "data": {"x": 1e999}, "id": "s2"}]}"#;
    let reply = app
        .post_raw("/api/events/batch", "application/json", batch.into())
        .await;
    reply.assert_error(422, "invalid_field");
    assert_eq!(reply.body["field"], "events[1].data.x");
    app.get("/api/events/s1")
        .await
        .assert_error(404, "not_found");
    // Large but representable numbers and paired surrogates are fine.
    let body = r#"{"event": "a", "data": {"x": 1.7e308, "y": "\ud83d\ude00", "z": 12345678901234567890123}}"#;
    let reply = app
        .post_raw("/api/events", "application/json", body.into())
        .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let id = reply.body["id"].as_str().unwrap();
    let stored = app.store.deliveries.get_event(id).await.unwrap().unwrap();
    assert_eq!(
        stored.data,
        r#"{"x":1.7e+308,"y":"😀","z":12345678901234567890123}"#
    );
}
