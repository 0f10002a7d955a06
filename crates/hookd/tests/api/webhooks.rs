use crate::common::*;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn create_returns_subscription_with_generated_secret() {
    let app = spawn_app().await;
    let reply = app
        .post(
            "/api/webhooks",
            json!({
                "url": "http://127.0.0.1:9000/hook",
                "events": ["order.created", "payment.*"],
                "description": "orders",
                "metadata": {"team": "billing"}
            }),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let body = &reply.body;
    assert!(body["id"].as_str().unwrap().starts_with("wh_"));
    assert_eq!(body["url"], "http://127.0.0.1:9000/hook");
    assert_eq!(body["events"], json!(["order.created", "payment.*"]));
    assert_eq!(body["description"], "orders");
    assert_eq!(body["metadata"], json!({"team": "billing"}));
    assert_eq!(body["active"], true);
    assert_eq!(body["failure_count"], 0);
    let secret = body["secret"].as_str().unwrap();
    let key = secret.strip_prefix("whsec_").expect("whsec_ prefix");
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(key)
        .unwrap();
    assert_eq!(decoded.len(), 32);

    let id = body["id"].as_str().unwrap();
    let fetched = app.get(&format!("/api/webhooks/{id}")).await;
    assert_eq!(fetched.status, 200);
    assert!(
        fetched.body.get("secret").is_none(),
        "GET never shows the secret"
    );
    assert_eq!(fetched.body["events"], body["events"]);
    let listed = app.get("/api/webhooks").await;
    assert!(listed.body["data"][0].get("secret").is_none());
    let revealed = app.get(&format!("/api/webhooks/{id}/secret")).await;
    assert_eq!(revealed.body, json!({"secret": secret}));
}

#[tokio::test]
async fn the_original_specifications_subscribe_route_answers_id_secret_message() {
    let app = spawn_app().await;
    let reply = app
        .post(
            "/api/webhooks/subscribe",
            json!({"url": "http://127.0.0.1:9000/hook", "events": ["order.created"]}),
        )
        .await;
    assert_eq!(reply.status, 201);
    let object = reply.body.as_object().unwrap();
    let mut keys: Vec<_> = object.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["id", "message", "secret"]);
    assert_eq!(reply.body["message"], "Webhook registered successfully");
    let id = reply.body["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/api/webhooks/{id}")).await.status, 200);
}

#[tokio::test]
async fn caller_supplied_secret_is_kept_and_validated() {
    let app = spawn_app().await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let reply = app
        .post(
            "/api/webhooks",
            json!({"url": "http://127.0.0.1:1/h", "events": ["*"], "secret": secret}),
        )
        .await;
    assert_eq!(reply.body["secret"], secret);
    let too_long = "x".repeat(257);
    for bad in [
        "fifteen-chars-x",
        "whsec_***",
        "whsec_c2hvcnQ=",
        "sixteen chars\nwith a newline",
        too_long.as_str(),
    ] {
        app.post(
            "/api/webhooks",
            json!({"url": "http://127.0.0.1:1/h", "events": ["*"], "secret": bad}),
        )
        .await
        .assert_error(422, "invalid_secret");
        let reply = app
            .post(
                "/api/webhooks",
                json!({"url": "http://127.0.0.1:1/h", "events": ["*"], "secret": bad}),
            )
            .await;
        assert_eq!(reply.body["field"], "secret", "{bad}");
    }
}

#[tokio::test]
async fn url_rules_in_production_mode() {
    let app = spawn_app_with(|c| c.dev = false).await;
    let cases = [
        ("http://example.com/hook", "invalid_url"),
        ("https://localhost/hook", "invalid_url"),
        ("https://127.0.0.1/hook", "invalid_url"),
        ("https://10.0.0.8/hook", "invalid_url"),
        ("https://user:pass@example.com/hook", "invalid_url"),
        ("ftp://example.com/hook", "invalid_url"),
        ("example.com/hook", "invalid_url"),
    ];
    for (url, code) in cases {
        let reply = app
            .post("/api/webhooks", json!({"url": url, "events": ["*"]}))
            .await;
        reply.assert_error(422, code);
        assert_eq!(reply.body["field"], "url", "{url}");
    }
    let long = format!("https://example.com/{}", "a".repeat(2048));
    app.post("/api/webhooks", json!({"url": long, "events": ["*"]}))
        .await
        .assert_error(422, "invalid_url");
    let ok = app
        .post(
            "/api/webhooks",
            json!({"url": "https://example.com/hook", "events": ["*"]}),
        )
        .await;
    assert_eq!(ok.status, 201);
}

#[tokio::test]
async fn allow_http_permits_plain_http_but_not_loopback() {
    let app = spawn_app_with(|c| {
        c.dev = false;
        c.allow_http = true;
    })
    .await;
    let ok = app
        .post(
            "/api/webhooks",
            json!({"url": "http://example.com/hook", "events": ["*"]}),
        )
        .await;
    assert_eq!(ok.status, 201);
    app.post(
        "/api/webhooks",
        json!({"url": "http://127.0.0.1/hook", "events": ["*"]}),
    )
    .await
    .assert_error(422, "invalid_url");
}

#[tokio::test]
async fn event_filters_are_validated() {
    let app = spawn_app().await;
    let reply = app
        .post(
            "/api/webhooks",
            json!({"url": "http://127.0.0.1:1/h", "events": ["order.created", "order*"]}),
        )
        .await;
    reply.assert_error(422, "invalid_event_filter");
    assert_eq!(reply.body["field"], "events[1]");
    app.post(
        "/api/webhooks",
        json!({"url": "http://127.0.0.1:1/h", "events": []}),
    )
    .await
    .assert_error(422, "invalid_event_filter");
    let too_many: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
    app.post(
        "/api/webhooks",
        json!({"url": "http://127.0.0.1:1/h", "events": too_many}),
    )
    .await
    .assert_error(422, "invalid_event_filter");
    let deduplicated = app
        .post(
            "/api/webhooks",
            json!({"url": "http://127.0.0.1:1/h", "events": ["a.b", "a.b", "*"]}),
        )
        .await;
    assert_eq!(deduplicated.body["events"], json!(["a.b", "*"]));
}

#[tokio::test]
async fn other_fields_are_validated() {
    let app = spawn_app().await;
    let base = || json!({"url": "http://127.0.0.1:1/h", "events": ["*"]});
    let with = |key: &str, value: Value| {
        let mut body = base();
        body[key] = value;
        body
    };
    let cases = [
        (with("metadata", json!([1, 2])), "metadata"),
        (with("metadata", json!({"x": "y".repeat(5000)})), "metadata"),
        (with("description", json!("d".repeat(1025))), "description"),
        (with("unknown_field", json!(1)), "unknown_field"),
        (json!({"events": ["*"]}), "url"),
        (json!({"url": 5, "events": ["*"]}), "url"),
        (
            json!({"url": "http://127.0.0.1:1/h", "events": "order.created"}),
            "events",
        ),
    ];
    for (body, field) in cases {
        let reply = app.post("/api/webhooks", body.clone()).await;
        assert_eq!(reply.status, 422, "{body} -> {}", reply.body);
        assert_eq!(reply.body["field"], field, "{body} -> {}", reply.body);
    }
}

#[tokio::test]
async fn list_paginates_newest_first_and_filters_by_active() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let sub = app
            .subscribe(&format!("http://127.0.0.1:1/h{i}"), &["*"])
            .await;
        ids.push(sub["id"].as_str().unwrap().to_owned());
    }
    app.patch(
        &format!("/api/webhooks/{}", ids[1]),
        json!({"active": false}),
    )
    .await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/webhooks?limit=2&cursor={c}"),
            None => "/api/webhooks?limit=2".into(),
        };
        let page = app.get(&path).await;
        assert_eq!(page.status, 200, "{}", page.body);
        pages += 1;
        for item in page.body["data"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let newest_first: Vec<_> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    let inactive = app.get("/api/webhooks?active=false").await;
    let data = inactive.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["id"], ids[1].as_str());
    let active = app.get("/api/webhooks?active=true").await;
    assert_eq!(active.body["data"].as_array().unwrap().len(), 4);

    app.get("/api/webhooks?limit=0")
        .await
        .assert_error(422, "invalid_query");
    app.get("/api/webhooks?limit=251")
        .await
        .assert_error(422, "invalid_query");
    app.get("/api/webhooks?limit=abc")
        .await
        .assert_error(422, "invalid_query");
    app.get("/api/webhooks?cursor=garbage!")
        .await
        .assert_error(422, "invalid_cursor");
    // Cursors have one exact form, `<milliseconds>.<id>`, which the OpenAPI document states.
    for cursor in [
        "",
        "1700000000000",
        "1700000000000.a.b",
        "1234567890123456.a",
        "-1.a",
    ] {
        app.get(&format!("/api/webhooks?cursor={cursor}"))
            .await
            .assert_error(422, "invalid_cursor");
    }
    let empty_page = app.get("/api/webhooks?cursor=1.whk_0").await;
    assert_eq!(empty_page.status, 200, "{}", empty_page.body);
}

#[tokio::test]
async fn urls_must_have_the_documented_form() {
    let app = spawn_app().await;
    for url in [
        "HTTP://127.0.0.1:1/",
        "http:127.0.0.1:1",
        "http://127.0.0.1:1/a b",
        "http://127.0.0.1:1/it's",
        "http://127.0.0.1:99999/",
        "http://2130706433/",
    ] {
        app.post("/api/webhooks", json!({"url": url, "events": ["*"]}))
            .await
            .assert_error(422, "invalid_url");
    }
    let ok = app
        .post(
            "/api/webhooks",
            json!({"url": "http://[::1]:1/a/(b)?c=d&e=%41", "events": ["*"]}),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.body);
}

#[tokio::test]
async fn a_max_delay_below_the_base_delay_caps_the_delays() {
    let app = spawn_app().await;
    let retry = json!({"max_attempts": 3, "base_delay_ms": 5000, "max_delay_ms": 1000});
    let created = app
        .post(
            "/api/webhooks",
            json!({"url": "http://127.0.0.1:1/h", "events": ["*"], "retry": retry}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["retry"], retry);
}

#[tokio::test]
async fn whole_number_floats_are_integers_and_fractions_are_refused() {
    let app = spawn_app().await;
    // JSON Schema counts `5000.0` as an integer; every integer field takes it as `5000`.
    let created = app
        .post(
            "/api/webhooks",
            json!({"url": "http://127.0.0.1:1/h", "events": ["*"], "timeout_ms": 5000.0,
                   "retry": {"max_attempts": 3.0, "base_delay_ms": 100.0, "schedule_ms": null}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["timeout_ms"], json!(5000));
    assert_eq!(
        created.body["retry"],
        json!({"max_attempts": 3, "base_delay_ms": 100, "max_delay_ms": 3_600_000})
    );
    let id = created.body["id"].as_str().unwrap();
    let updated = app
        .patch(
            &format!("/api/webhooks/{id}"),
            json!({"timeout_ms": 2e3, "retry": {"schedule_ms": [10.0, 20]}}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.body["timeout_ms"], json!(2000));
    assert_eq!(updated.body["retry"], json!({"schedule_ms": [10, 20]}));
    let stored = app.get(&format!("/api/webhooks/{id}")).await;
    assert_eq!(stored.body["timeout_ms"], json!(2000), "{}", stored.body);

    let cases = [
        (json!({"timeout_ms": 5000.5}), "timeout_ms", "invalid_field"),
        (
            json!({"retry": {"max_attempts": 2.5, "base_delay_ms": 100}}),
            "retry.max_attempts",
            "invalid_retry_policy",
        ),
        (
            json!({"retry": {"schedule_ms": [10, 0.5]}}),
            "retry.schedule_ms[1]",
            "invalid_retry_policy",
        ),
    ];
    for (body, field, code) in cases {
        let refused = app.patch(&format!("/api/webhooks/{id}"), body).await;
        refused.assert_error(422, code);
        assert_eq!(refused.body["field"], field, "{}", refused.body);
        let message = refused.body["error"].as_str().unwrap();
        assert!(message.contains("floating point"), "{message}");
        assert!(message.contains("expected a"), "{message}");
    }
    let overlap = app
        .post(
            &format!("/api/webhooks/{id}/rotate-secret"),
            json!({"overlap_seconds": 60.0}),
        )
        .await;
    assert_eq!(overlap.status, 200, "{}", overlap.body);
    let session = app
        .post(
            "/api/portal/sessions",
            json!({"owner": "acme", "capabilities": ["read"], "ttl_seconds": 1.5}),
        )
        .await;
    session.assert_error(422, "invalid_field");
    assert_eq!(session.body["field"], "ttl_seconds", "{}", session.body);
}

#[tokio::test]
async fn patch_updates_fields_and_clears_nullable_ones() {
    let app = spawn_app().await;
    let created = app
        .post(
            "/api/webhooks",
            json!({"url": "http://127.0.0.1:1/a", "events": ["*"], "description": "d",
                   "metadata": {"k": "v"}}),
        )
        .await
        .body;
    let path = format!("/api/webhooks/{}", created["id"].as_str().unwrap());
    let updated = app
        .patch(
            &path,
            json!({"url": "http://127.0.0.1:1/b", "events": ["order.*"], "description": null}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(updated.body["url"], "http://127.0.0.1:1/b");
    assert_eq!(updated.body["events"], json!(["order.*"]));
    assert_eq!(updated.body["description"], Value::Null);
    assert_eq!(updated.body["metadata"], json!({"k": "v"}), "untouched");
    let disabled = app.patch(&path, json!({"active": false})).await;
    assert_eq!(disabled.body["active"], false);
    assert_eq!(disabled.body["disabled_reason"], "disabled by operator");
    let enabled = app
        .patch(&path, json!({"active": true, "metadata": null}))
        .await;
    assert_eq!(enabled.body["active"], true);
    assert_eq!(enabled.body["disabled_reason"], Value::Null);
    assert_eq!(enabled.body["metadata"], Value::Null);
    // The change is stored, not only echoed.
    assert_eq!(app.get(&path).await.body["url"], "http://127.0.0.1:1/b");

    app.patch(&path, json!({"url": "nope"}))
        .await
        .assert_error(422, "invalid_url");
    app.patch(&path, json!({"events": ["bad event"]}))
        .await
        .assert_error(422, "invalid_event_filter");
    app.patch(&path, json!({"secret": "whsec_x"}))
        .await
        .assert_error(422, "invalid_field");
    app.patch("/api/webhooks/wh_missing", json!({"active": false}))
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn delete_removes_subscription_and_its_deliveries() {
    let app = spawn_app().await;
    let sub = app.subscribe("http://127.0.0.1:1/h", &["*"]).await;
    let id = sub["id"].as_str().unwrap();
    let event_id = app
        .publish(json!({"event": "order.created", "data": {}}))
        .await;
    let deleted = app
        .call(Method::DELETE, &format!("/api/webhooks/{id}"), None)
        .await;
    assert_eq!(deleted.status, 204);
    app.get(&format!("/api/webhooks/{id}"))
        .await
        .assert_error(404, "not_found");
    app.get(&format!("/api/webhooks/{id}/secret"))
        .await
        .assert_error(404, "not_found");
    app.delete(&format!("/api/webhooks/{id}"))
        .await
        .assert_error(404, "not_found");
    let event = app.get(&format!("/api/events/{event_id}")).await;
    assert_eq!(event.status, 200, "the event itself stays");
    assert_eq!(event.body["deliveries"], json!([]));
}
