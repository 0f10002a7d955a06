//! Dashboard screens over real HTTP, beyond sign-in and scoping (`ui.rs`): what the delivery detail
//! shows of each attempt, replaying an event to an endpoint, recovery with progress, the catalog
//! example the endpoint forms start from, the endpoint's `v1a` keys, and the portal's framing
//! headers. Both backends.

use crate::common::browser::{Browser, owned_subscription, portal_link};
use crate::common::*;
use hookd::ids::Clock;
use serde_json::{Value, json};
use std::time::Duration;

/// The event's delivery to `webhook`, once `check` holds for it.
async fn delivery_of(
    app: &TestApp,
    event: &str,
    webhook: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deliveries = app
        .wait_for_deliveries(event, |deliveries| {
            deliveries
                .iter()
                .any(|d| d["webhook_id"] == webhook && check(d))
        })
        .await;
    deliveries
        .into_iter()
        .find(|d| d["webhook_id"] == webhook)
        .unwrap()
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
    let event = app
        .publish(json!({"event": "order.created", "data": {}}))
        .await;
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
    let event = app.publish(json!({"event": "a", "data": {}})).await;
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

#[tokio::test]
async fn an_event_replays_to_any_chosen_endpoint_even_one_without_a_delivery() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let subscribe = |path: &'static str, filter: &'static str, owner: &'static str| {
        let (app, url) = (&app, receiver.url(path));
        async move {
            let created = app
                .subscribe_with(json!({"url": url, "events": [filter], "owner": owner}))
                .await;
            id_of(&created)
        }
    };
    let first = subscribe("/first", "order.*", "acme").await;
    let event = app
        .publish(json!({"event": "order.created", "data": {"n": 1}, "owner": "acme"}))
        .await;
    delivery_of(&app, &event, &first, |d| d["state"] == "delivered").await;
    // Created after the event: one subscribed to its type, one not, one of another owner.
    let later = subscribe("/later", "order.*", "acme").await;
    let unrelated = subscribe("/unrelated", "invoice.*", "acme").await;
    let foreign = subscribe("/foreign", "order.*", "globex").await;

    let mut browser = Browser::operator(&app).await;
    let page = browser.get(&format!("/ui/events/{event}")).await;
    assert!(
        page.body
            .contains(r#"<p id="event-owner">Published to owner <code>acme</code>"#),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains(&foreign),
        "another owner's endpoint is not offered"
    );
    let subscribed = &page.body[page.body.find("Subscribed to order.created").unwrap()..];
    let (subscribed, others) = subscribed.split_once("Not subscribed").unwrap();
    assert!(subscribed.contains(&later) && subscribed.contains(&first));
    assert!(others.contains(&unrelated) && !others.contains(&later));
    let csrf = page.csrf();
    let replay_path = format!("/ui/events/{event}/replay");

    for (endpoint, path) in [(&later, "/later"), (&unrelated, "/unrelated")] {
        let form = [("endpoint", endpoint.as_str()), ("_csrf", &csrf)];
        let done = browser.post(&replay_path, &form).await;
        assert_eq!(done.status, 200, "{}", done.body);
        assert!(done.body.contains("New delivery queued"), "{}", done.body);
        let got = receiver.wait_for(path, 1).await;
        assert_eq!(
            got[0].header("webhook-id"),
            event,
            "the same event, the same id"
        );
        assert_eq!(got[0].json()["data"], json!({"n": 1}));
    }
    // An endpoint that had a delivery gets that one again; a second replay adds no second row.
    for (endpoint, path) in [(&first, "/first"), (&later, "/later")] {
        let form = [("endpoint", endpoint.as_str()), ("_csrf", &csrf)];
        let done = browser.post(&replay_path, &form).await;
        assert!(done.body.contains("Replay queued"), "{}", done.body);
        receiver.wait_for(path, 2).await;
    }
    let deliveries = app.get(&format!("/api/events/{event}")).await.body["deliveries"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        deliveries, 3,
        "first, later and unrelated; foreign untouched"
    );

    // Another owner's endpoint never gets the event, not even from the operator; a disabled
    // endpoint gets nothing; a portal manager reaches only its owner's endpoints.
    let form = [("endpoint", foreign.as_str()), ("_csrf", &csrf)];
    let refused = browser.post(&replay_path, &form).await;
    assert!(refused.body.contains("another owner"), "{}", refused.body);
    let disabled = subscribe("/disabled", "order.*", "acme").await;
    app.post(&format!("/api/webhooks/{disabled}/disable"), json!({}))
        .await;
    let form = [("endpoint", disabled.as_str()), ("_csrf", &csrf)];
    let refused = browser.post(&replay_path, &form).await;
    assert!(refused.body.contains("disabled"), "{}", refused.body);
    let mut portal = Browser::new(&app);
    portal
        .enter(&portal_link(&app, "acme", &["read", "manage"]).await)
        .await;
    let csrf = portal.get(&format!("/portal/events/{event}")).await.csrf();
    let stolen = portal
        .post(
            &format!("/portal/events/{event}/replay"),
            &[("endpoint", foreign.as_str()), ("_csrf", csrf.as_str())],
        )
        .await;
    assert_eq!(stolen.status, 404);
    assert!(receiver.received("/foreign").is_empty());
}

#[tokio::test]
async fn endpoint_forms_start_from_the_catalog_example_and_the_page_shows_the_content_filter() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let example = json!({"invoiceId": "INV-7", "amount": 250});
    let created = app
        .post(
            "/api/event-types",
            json!({"name": "invoice.paid", "examples": [example]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let filter = json!({"data.amount": {"$gte": 100}});
    let sub = app
        .subscribe_with(
            json!({"url": receiver.url("/x"), "events": ["invoice.*"], "filter": filter}),
        )
        .await;
    let id = id_of(&sub);
    let mut browser = Browser::operator(&app).await;
    let value_of = |body: &str, input: &str| {
        let tag = &body[body.find(&format!(r#"id="{input}""#)).unwrap()..];
        tag[..tag.find('>').unwrap()].to_owned()
    };
    let after = |body: &str, marker: &str| {
        let rest = &body[body.find(marker).unwrap() + marker.len()..];
        rest[..rest.find('<').unwrap()].to_owned()
    };

    // invoice.issued (a standard type without examples) sorts first; the catalogued example wins.
    let form = browser.get(&format!("/ui/endpoints/{id}/edit")).await;
    assert!(value_of(&form.body, "test_event").ends_with(r#"value="invoice.paid""#));
    assert!(
        after(
            &form.body,
            r#"<textarea id="test_data" name="test_data" rows="4" spellcheck="false">"#
        )
        .contains("INV-7")
    );
    let page = browser.get(&format!("/ui/endpoints/{id}")).await;
    assert!(value_of(&page.body, "event_type").contains(r#"value="invoice.paid""#));
    assert!(
        after(
            &page.body,
            r#"<textarea id="payload" name="payload" rows="6" spellcheck="false">"#
        )
        .contains("INV-7")
    );
    let shown = after(&page.body, r#"<code id="endpoint-filter">"#);
    assert!(
        shown.contains("data.amount") && shown.contains("$gte"),
        "{shown}"
    );
}

/// Publishes `count` events to `webhook` and kills every delivery at once through the store (as a
/// worker would record them after their last attempt), at the clock's current time.
async fn dead_deliveries(app: &TestApp, count: usize, now: i64) {
    use hookd::store::{AttemptRow, ClaimRequest, DeliveryOutcome, Outcome};
    let events = (0..count)
        .map(|n| json!({"event": "order.created", "data": {"n": n}}))
        .collect();
    app.publish_batches(events).await;
    loop {
        let claimed = app
            .store
            .queue
            .claim_due(ClaimRequest {
                owner: "wrk_fake".into(),
                now,
                limit: 1_000,
                default_timeout_ms: 10_000,
                lease_margin_ms: 10_000,
                default_room: None,
                room: Vec::new(),
                bytes: None,
            })
            .await
            .unwrap();
        if claimed.is_empty() {
            return;
        }
        let outcomes = claimed
            .iter()
            .map(|c| DeliveryOutcome {
                delivery_id: c.delivery_id.clone(),
                subscription_id: c.subscription.id.clone(),
                outcome: Outcome::Dead,
                attempt: AttemptRow {
                    id: format!("att_{}", c.delivery_id),
                    delivery_id: c.delivery_id.clone(),
                    attempt: 1,
                    started_at: now,
                    duration_ms: 1,
                    request_timestamp: now / 1000,
                    status: Some(500),
                    response_excerpt: None,
                    response_headers: None,
                    error: Some("HTTP 500".into()),
                    error_class: Some("http".into()),
                },
            })
            .collect();
        app.store
            .queue
            .record_outcomes("wrk_fake", outcomes, i64::MAX, now)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_large_recovery_runs_in_steps_and_reports_its_progress() {
    let (app, _worker, clock) = spawn_stepped(|c| c.disable_after_failures = i64::MAX).await;
    let sub = app.subscribe("http://127.0.0.1:9/down", &["*"]).await;
    let webhook = sub["id"].as_str().unwrap().to_owned();
    let since = clock.now_ms();
    clock.advance_ms(1_000);
    dead_deliveries(&app, 5_000, clock.now_ms()).await;
    clock.advance_ms(1_000);

    let mut browser = Browser::operator(&app).await;
    let csrf = browser.get("/ui/dead-letters").await.csrf();
    let since_text = hookd_core::time::rfc3339_ms(since);
    let since_field = &since_text[..19];
    let preview = browser
        .post(
            "/ui/dead-letters/recover",
            &[
                ("endpoint", &webhook),
                ("since", since_field),
                ("_csrf", &csrf),
            ],
        )
        .await;
    assert!(
        preview.body.contains("5000 failed or dead deliveries"),
        "{}",
        preview.body
    );
    let started = browser
        .post(
            "/ui/dead-letters/recover",
            &[
                ("endpoint", &webhook),
                ("since", since_field),
                ("confirm", "1"),
                ("_csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(started.status, 200, "{}", started.body);
    let attribute = |body: &str, name: &str| -> String {
        let start = body
            .find(&format!("{name}=\""))
            .unwrap_or_else(|| panic!("{body}"))
            + name.len()
            + 2;
        body[start..start + body[start..].find('"').unwrap()].to_owned()
    };
    assert_eq!(attribute(&started.body, "data-expected"), "5000");
    let url = attribute(&started.body, "hx-get");
    assert!(url.starts_with("/ui/dead-letters/recover/rcv_"), "{url}");

    // Poll as the page does until it is done; progress only grows.
    let mut seen = vec![
        attribute(&started.body, "data-recovered")
            .parse::<u64>()
            .unwrap(),
    ];
    // Checked often, to see as many intermediate steps as possible.
    let (limit, interval) = (Duration::from_secs(60), Duration::from_millis(5));
    let done = wait::until_every(limit, interval, async || {
        let page = browser.get(&url).await;
        assert_eq!(page.status, 200);
        seen.push(attribute(&page.body, "data-recovered").parse().unwrap());
        match attribute(&page.body, "data-state").as_str() {
            "done" => Ok(page),
            state => Err(format!("recovery did not finish: {state}")),
        }
    })
    .await;
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert_eq!(attribute(&done.body, "data-recovered"), "5000");
    assert_eq!(
        attribute(&done.body, "data-steps"),
        "5",
        "1,000 rows per transaction"
    );
    assert!(!done.body.contains("hx-get"), "polling stops when done");
    let backlog = app
        .get(&format!(
            "/api/webhooks/{webhook}/deliveries?state=pending&limit=1"
        ))
        .await;
    assert_eq!(backlog.body["data"].as_array().unwrap().len(), 1);
    let dead = app
        .get(&format!(
            "/api/webhooks/{webhook}/deliveries?state=dead&limit=1"
        ))
        .await;
    assert!(
        dead.body["data"].as_array().unwrap().is_empty(),
        "{}",
        dead.body
    );

    // Another owner's portal session cannot read the job.
    let mut portal = Browser::new(&app);
    portal
        .enter(&portal_link(&app, "acme", &["read"]).await)
        .await;
    let path = url.replacen("/ui/", "/portal/", 1);
    assert_eq!(portal.get(&path).await.status, 404);
}

/// With `portal_frame_ancestors`, the portal (only) may be framed by those origins, and its cookie
/// becomes a partitioned cross-site one; `ui-tests/e2e.mjs` embeds it from a second loopback site in
/// Chromium and checks that a third one is refused.
#[tokio::test]
async fn the_portal_may_be_framed_by_the_configured_origins_only() {
    let app = spawn_app_with(|c| {
        c.portal_frame_ancestors = vec!["https://app.example.com".into()];
    })
    .await;
    let mut portal = Browser::new(&app);
    let entered = portal
        .enter(&portal_link(&app, "acme", &["read"]).await)
        .await;
    assert_eq!(entered.status, 200);
    let cookie = entered.header("set-cookie");
    assert!(
        cookie.contains("SameSite=None; Secure; Partitioned") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let page = portal.get("/portal/endpoints").await;
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-security-policy")
            .ends_with("frame-ancestors https://app.example.com"),
        "{}",
        page.header("content-security-policy")
    );
    assert_eq!(page.header("x-frame-options"), "");

    let dashboard = Browser::new(&app).get("/ui/login").await;
    assert!(
        dashboard
            .header("content-security-policy")
            .ends_with("frame-ancestors 'none'")
    );
    assert_eq!(dashboard.header("x-frame-options"), "DENY");
}

/// The `v1a` public keys shown on an endpoint's page (the `public-key` cells).
fn shown_public_keys(body: &str) -> Vec<String> {
    body.split(r#"<code class="public-key">"#)
        .skip(1)
        .map(|rest| rest[..rest.find('<').unwrap()].to_owned())
        .collect()
}

#[tokio::test]
async fn the_endpoint_page_turns_v1a_on_shows_the_public_keys_and_rotates_them() {
    let app = spawn_app().await;
    let sub = app.subscribe("http://127.0.0.1:1/h", &["*"]).await;
    let id = id_of(&sub);
    let mut browser = Browser::operator(&app).await;
    let page = browser.get(&format!("/ui/endpoints/{id}")).await;
    assert!(shown_public_keys(&page.body).is_empty());
    let csrf = page.csrf();
    let saved = browser
        .post(
            &format!("/ui/endpoints/{id}/signatures"),
            &[("schemes", "v1,v1a"), ("_csrf", &csrf)],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let page = browser.get(&format!("/ui/endpoints/{id}")).await;
    let keys = shown_public_keys(&page.body);
    let listed = app.get(&format!("/api/webhooks/{id}")).await.body;
    assert_eq!(listed["signature_schemes"], json!(["v1", "v1a"]));
    assert_eq!(
        keys,
        [listed["public_keys"][0]["public_key"].as_str().unwrap()]
    );
    assert!(
        !page.body.contains("whsk_"),
        "the private key is never shown"
    );

    // A subscriber who may manage rotates from the portal; both keys are then shown.
    let owned = owned_subscription(&app, "http://127.0.0.1:1/o", "acme").await;
    let owned_id = id_of(&owned);
    app.patch(
        &format!("/api/webhooks/{owned_id}"),
        json!({"signature_schemes": ["v1a"]}),
    )
    .await;
    let mut portal = Browser::new(&app);
    portal
        .enter(&portal_link(&app, "acme", &["read", "manage"]).await)
        .await;
    let page = portal.get(&format!("/portal/endpoints/{owned_id}")).await;
    let before = shown_public_keys(&page.body);
    assert_eq!(before.len(), 1);
    let csrf = page.csrf();
    let rotated = portal
        .post(
            &format!("/portal/endpoints/{owned_id}/rotate-signing-key"),
            &[("overlap_seconds", "3600"), ("_csrf", &csrf)],
        )
        .await;
    assert_eq!(rotated.status, 303, "{}", rotated.body);
    let page = portal.get(&format!("/portal/endpoints/{owned_id}")).await;
    let after = shown_public_keys(&page.body);
    assert_eq!(after.len(), 2);
    assert_eq!(after[1], before[0], "the old key is listed second");

    // A read-only subscriber sees the keys but may not change them.
    let mut reader = Browser::new(&app);
    reader
        .enter(&portal_link(&app, "acme", &["read"]).await)
        .await;
    let page = reader.get(&format!("/portal/endpoints/{owned_id}")).await;
    assert_eq!(shown_public_keys(&page.body).len(), 2);
    assert!(!page.body.contains("rotate-signing-key"));
    let refused = reader
        .post(
            &format!("/portal/endpoints/{owned_id}/rotate-signing-key"),
            &[("overlap_seconds", "0"), ("_csrf", &page.csrf())],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
}

#[tokio::test]
async fn the_owners_screen_counts_each_owner_and_every_list_filters_by_owner() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let acme = owned_subscription(&app, &receiver.url("/acme"), "acme").await;
    let globex = owned_subscription(&app, &receiver.url("/globex"), "globex inc").await;
    let (acme, globex) = (id_of(&acme), id_of(&globex));
    for owner in ["acme", "globex inc"] {
        app.publish(json!({"event": "order.created", "data": {}, "owner": owner}))
            .await;
    }
    receiver.wait_for("/acme", 1).await;
    receiver.wait_for("/globex", 1).await;
    let mut browser = Browser::operator(&app).await;
    let page = browser.get("/ui/owners").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("<code>acme</code>") && page.body.contains("<code>globex inc</code>")
    );
    assert!(
        page.body
            .contains(r#"href="/ui/endpoints?owner=globex+inc""#),
        "{}",
        page.body
    );

    let endpoints = browser.get("/ui/endpoints?owner=globex+inc").await;
    assert!(endpoints.body.contains(&globex) && !endpoints.body.contains(&acme));
    let log = browser.get("/ui/deliveries?owner=acme").await;
    let acme_rows = app.get("/api/deliveries?owner=acme").await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let globex_rows = app.get("/api/deliveries?owner=globex%20inc").await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(log.body.contains(&acme_rows) && !log.body.contains(&globex_rows));

    // Not in the portal.
    let mut portal = Browser::new(&app);
    portal
        .enter(&portal_link(&app, "acme", &["read"]).await)
        .await;
    assert_eq!(portal.get("/portal/owners").await.status, 404);
    // A portal session cannot widen its scope with the owner filter.
    let widened = portal.get("/portal/endpoints?owner=globex+inc").await;
    assert_eq!(widened.status, 200);
    assert!(widened.body.contains(&acme) && !widened.body.contains(&globex));
    assert!(
        !widened.body.contains("/portal/owners"),
        "no owners link in the portal"
    );
    assert!(
        browser
            .get("/ui/endpoints")
            .await
            .body
            .contains(r#"href="/ui/owners""#)
    );
}
