//! Owners as tenants: events published to one owner reach that owner's subscriptions only, owners
//! listed with their subscriptions counted, erasure of everything stored for one owner, and the
//! delivery log across subscriptions. Both backends.

use crate::common::browser::{Browser, portal_link};
use crate::common::*;
use serde_json::{Value, json};

async fn owned(app: &TestApp, url: &str, events: &[&str], owner: Option<&str>) -> String {
    let mut body = json!({"url": url, "events": events});
    if let Some(owner) = owner {
        body["owner"] = json!(owner);
    }
    id_of(&app.subscribe_with(body).await)
}

fn webhook_ids(event: &Value) -> Vec<String> {
    let mut ids: Vec<String> = event["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["webhook_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn an_event_published_to_an_owner_reaches_that_owners_subscriptions_only() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let internal = owned(&app, &receiver.url("/internal"), &["*"], None).await;
    let acme = owned(&app, &receiver.url("/acme"), &["order.*"], Some("acme")).await;
    let globex = owned(&app, &receiver.url("/globex"), &["order.*"], Some("globex")).await;

    let to_acme = app
        .post(
            "/api/events",
            json!({"event": "order.created", "data": {"n": 1}, "owner": "acme"}),
        )
        .await;
    assert_eq!(to_acme.status, 202, "{}", to_acme.body);
    assert_eq!(to_acme.body["deliveries"], 1);
    let to_acme = id_of(&to_acme.body);
    let unowned = app
        .publish(json!({"event": "order.created", "data": {"n": 2}}))
        .await;
    let nobody = app
        .post(
            "/api/events",
            json!({"event": "order.created", "data": {"n": 3}, "owner": "initech"}),
        )
        .await;
    assert_eq!(nobody.status, 202);
    assert_eq!(nobody.body["deliveries"], 0);
    let batch = app
        .post(
            "/api/events/batch",
            json!({"events": [
                {"event": "order.created", "data": {"n": 4}, "owner": "globex"},
                {"event": "order.created", "data": {"n": 5}, "owner": "acme"},
            ]}),
        )
        .await;
    assert_eq!(batch.status, 202, "{}", batch.body);

    let acme_got = receiver.wait_for("/acme", 2).await;
    let globex_got = receiver.wait_for("/globex", 1).await;
    let internal_got = receiver.wait_for("/internal", 1).await;
    let data = |got: &[Received]| -> Vec<i64> {
        got.iter()
            .map(|r| r.json()["data"]["n"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(data(&acme_got), [1, 5]);
    assert_eq!(data(&globex_got), [4]);
    assert_eq!(data(&internal_got), [2]);
    // The owner is not part of the delivered body.
    assert!(acme_got[0].json().get("owner").is_none());

    let shown = app.get(&format!("/api/events/{to_acme}")).await.body;
    assert_eq!(shown["owner"], "acme");
    assert_eq!(webhook_ids(&shown), [acme]);
    assert_eq!(
        app.get(&format!("/api/events/{unowned}")).await.body["owner"],
        Value::Null
    );
    let listed = app.get("/api/events?owner=acme").await.body;
    let owners: Vec<&Value> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["owner"])
        .collect();
    assert_eq!(owners, [&json!("acme"), &json!("acme")]);
    let _ = (internal, globex);
}

#[tokio::test]
async fn a_bad_owner_is_refused_and_an_id_is_bound_to_its_owner() {
    let app = spawn_app().await;
    for owner in [json!(""), json!(" padded "), json!("tab\there"), json!(7)] {
        let reply = app
            .post(
                "/api/events",
                json!({"event": "a.b", "data": {}, "owner": owner}),
            )
            .await;
        assert_eq!(reply.status, 422, "{owner}: {}", reply.body);
        assert_eq!(reply.body["field"], "owner", "{owner}");
    }
    let reply = app
        .post(
            "/api/events/batch",
            json!({"events": [{"event": "a.b", "data": {}}, {"event": "a.b", "data": {}, "owner": ""}]}),
        )
        .await;
    reply.assert_error(422, "invalid_owner");
    assert_eq!(reply.body["field"], "events[1].owner");
    let first = app
        .post(
            "/api/events",
            json!({"id": "ord-1", "event": "a.b", "data": {}, "owner": "acme"}),
        )
        .await;
    assert_eq!(first.status, 202);
    let again = app
        .post(
            "/api/events",
            json!({"id": "ord-1", "event": "a.b", "data": {}, "owner": "acme"}),
        )
        .await;
    assert_eq!(again.status, 200);
    let moved = app
        .post(
            "/api/events",
            json!({"id": "ord-1", "event": "a.b", "data": {}, "owner": "globex"}),
        )
        .await;
    moved.assert_error(409, "idempotency_conflict");
}

#[tokio::test]
async fn owners_are_listed_with_their_subscriptions_counted() {
    let app = spawn_app().await;
    let url = "http://127.0.0.1:1/h";
    owned(&app, url, &["*"], Some("acme")).await;
    let disabled = owned(&app, url, &["*"], Some("acme")).await;
    app.post(&format!("/api/webhooks/{disabled}/disable"), json!({}))
        .await;
    owned(&app, url, &["*"], Some("globex")).await;
    owned(&app, url, &["*"], None).await;

    let page = app.get("/api/owners").await.body;
    assert_eq!(
        page["data"],
        json!([
            {"owner": "acme", "subscriptions": 2, "disabled": 1, "failing": 1},
            {"owner": "globex", "subscriptions": 1, "disabled": 0, "failing": 0},
        ])
    );
    assert!(page["next_after"].is_null());
    let first = app.get("/api/owners?limit=1").await.body;
    assert_eq!(first["data"][0]["owner"], "acme");
    assert_eq!(first["next_after"], "acme");
    let second = app.get("/api/owners?limit=1&after=acme").await.body;
    assert_eq!(second["data"][0]["owner"], "globex");
    assert!(second["next_after"].is_null());

    let one = app.get("/api/owners/acme").await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["subscriptions"], 2);
    app.get("/api/owners/initech")
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn erasing_an_owner_removes_everything_of_it_in_steps_and_nothing_else() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let acme = owned(&app, &receiver.url("/acme"), &["*"], Some("acme")).await;
    let acme_down = owned(&app, "http://127.0.0.1:1/down", &["*"], Some("acme")).await;
    let globex = owned(&app, &receiver.url("/globex"), &["*"], Some("globex")).await;
    // More deliveries than one erasure step takes.
    let events: Vec<Value> = (0..hookd::ops::ERASE_STEP_ROWS + 100)
        .map(|n| json!({"event": "order.created", "data": {"n": n}, "owner": "acme"}))
        .collect();
    app.publish_batches(events).await;
    let globex_event = app
        .publish(json!({"event": "order.created", "data": {}, "owner": "globex"}))
        .await;
    receiver.wait_for("/globex", 1).await;
    receiver.wait_for("/acme", 10).await;
    // An endpoint that received acme's events and then moved to another owner: it stays, acme's
    // deliveries to it go with acme's events.
    let moved = owned(&app, &receiver.url("/moved"), &["*"], Some("acme")).await;
    let to_moved = app
        .publish(json!({"event": "order.created", "data": {}, "owner": "acme"}))
        .await;
    receiver.wait_for("/moved", 1).await;
    let patched = app
        .patch(
            &format!("/api/webhooks/{moved}"),
            json!({"owner": "initech"}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let acme_event = app.get("/api/events?owner=acme&limit=1").await.body["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A portal session of acme's, open while it is erased.
    let mut portal = Browser::new(&app);
    portal
        .enter(&portal_link(&app, "acme", &["read"]).await)
        .await;
    assert_eq!(portal.get("/portal/endpoints").await.status, 200);

    let erased = app.delete("/api/owners/acme").await;
    assert_eq!(erased.status, 200, "{}", erased.body);
    let count = hookd::ops::ERASE_STEP_ROWS as u64 + 100;
    assert_eq!(
        erased.body,
        json!({"owner": "acme", "subscriptions": 2, "events": count + 1,
               "deliveries": 2 * (count + 1) + 1})
    );
    assert_eq!(
        app.get(&format!("/api/events/{to_moved}")).await.status,
        404
    );
    assert_eq!(app.get(&format!("/api/webhooks/{moved}")).await.status, 200);
    assert_eq!(
        app.get(&format!("/api/webhooks/{moved}/deliveries"))
            .await
            .body["data"],
        json!([])
    );

    app.get("/api/owners/acme")
        .await
        .assert_error(404, "not_found");
    for gone in [
        format!("/api/webhooks/{acme}"),
        format!("/api/webhooks/{acme_down}"),
        format!("/api/events/{acme_event}"),
    ] {
        assert_eq!(app.get(&gone).await.status, 404, "{gone}");
    }
    assert_eq!(
        app.get("/api/events?owner=acme").await.body["data"],
        json!([])
    );
    assert_eq!(
        app.get("/api/deliveries?owner=acme").await.body["data"],
        json!([])
    );
    assert_ne!(portal.get("/portal/endpoints").await.status, 200);
    // The other owner is untouched.
    assert_eq!(
        app.get(&format!("/api/webhooks/{globex}")).await.status,
        200
    );
    let kept = app.get(&format!("/api/events/{globex_event}")).await.body;
    assert_eq!(webhook_ids(&kept), [globex]);
    app.delete("/api/owners/acme")
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn the_delivery_log_spans_every_subscription_with_filters_and_pages() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let acme = owned(&app, &receiver.url("/acme"), &["*"], Some("acme")).await;
    let globex = owned(&app, &receiver.url("/globex"), &["*"], Some("globex")).await;
    for (owner, event) in [
        ("acme", "order.created"),
        ("acme", "invoice.paid"),
        ("globex", "order.created"),
    ] {
        app.publish(json!({"event": event, "data": {}, "owner": owner}))
            .await;
    }
    receiver.wait_for("/acme", 2).await;
    receiver.wait_for("/globex", 1).await;
    let all = app
        .eventually("/api/deliveries?state=delivered", |b| {
            b["data"].as_array().unwrap().len() == 3
        })
        .await;
    assert!(
        all["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["state"] == "delivered")
    );
    let of = |body: &Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                format!(
                    "{} {}",
                    d["webhook_id"].as_str().unwrap(),
                    d["event"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(
        of(&app.get("/api/deliveries?owner=acme").await.body),
        [
            format!("{acme} invoice.paid"),
            format!("{acme} order.created")
        ]
    );
    assert_eq!(
        of(&app
            .get("/api/deliveries?event_type=order.created&owner=globex")
            .await
            .body),
        [format!("{globex} order.created")]
    );
    assert_eq!(
        of(&app
            .get(&format!("/api/deliveries?webhook_id={globex}"))
            .await
            .body)
        .len(),
        1
    );
    assert_eq!(
        app.get("/api/deliveries?state=dead").await.body["data"],
        json!([])
    );
    let first = app.get("/api/deliveries?limit=2").await.body;
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = app
        .get(&format!("/api/deliveries?limit=2&cursor={cursor}"))
        .await
        .body;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());
    app.get("/api/deliveries?state=nope")
        .await
        .assert_error(422, "invalid_query");
    app.get("/api/deliveries?since=yesterday")
        .await
        .assert_error(422, "invalid_timestamp");
}

/// Provisioning many customers' endpoints at once: `POST /api/webhooks/batch` creates them all in
/// one transaction, each with its own secret that signs its deliveries; one invalid entry refuses
/// the whole batch, naming its place, and stores nothing; an owner-bound key creates only for its
/// owner.
#[tokio::test]
async fn subscriptions_are_created_in_batches_all_or_nothing() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let batch: Vec<Value> = (0..3)
        .map(|n| {
            json!({"url": receiver.url(&format!("/c{n}")), "events": ["order.*"],
                   "owner": format!("customer-{n}")})
        })
        .collect();
    let created = app
        .post("/api/webhooks/batch", json!({"webhooks": batch}))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let created = created.body["webhooks"].as_array().unwrap().clone();
    assert_eq!(created.len(), 3);
    for (n, webhook) in created.iter().enumerate() {
        assert_eq!(webhook["owner"], format!("customer-{n}"));
        let stored = app.get(&format!("/api/webhooks/{}", id_of(webhook))).await;
        assert_eq!(stored.status, 200, "{}", stored.body);
        assert_eq!(stored.body["url"], receiver.url(&format!("/c{n}")));
    }
    let published = app
        .post(
            "/api/events",
            json!({"event": "order.created", "data": {"n": 1}, "owner": "customer-1"}),
        )
        .await;
    assert_eq!(published.body["deliveries"], 1, "{}", published.body);
    let got = receiver.wait_for("/c1", 1).await;
    let secret = created[1]["secret"].as_str().unwrap();
    hookd_verify::verify_hex(secret, got[0].header("x-webhook-signature"), &got[0].body).unwrap();

    // One bad entry: nothing of the batch is stored.
    let before = app.get("/api/webhooks?limit=100").await.body["data"]
        .as_array()
        .unwrap()
        .len();
    let refused = app
        .post(
            "/api/webhooks/batch",
            json!({"webhooks": [
                {"url": receiver.url("/ok"), "events": ["*"]},
                {"url": "not a url", "events": ["*"]},
            ]}),
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.body["field"], "webhooks[1].url", "{}", refused.body);
    let bad_owner = app
        .post(
            "/api/webhooks/batch",
            json!({"webhooks": [{"url": receiver.url("/ok"), "events": ["*"], "owner": ""}]}),
        )
        .await;
    assert_eq!(bad_owner.status, 422, "{}", bad_owner.body);
    assert_eq!(bad_owner.body["field"], "webhooks[0].owner");
    for empty in [
        json!({"webhooks": []}),
        json!({"webhooks": vec![json!({"url": receiver.url("/x"), "events": ["*"]}); 1001]}),
    ] {
        let refused = app.post("/api/webhooks/batch", empty).await;
        assert_eq!(refused.status, 422, "{}", refused.body);
        assert_eq!(refused.body["code"], "invalid_batch");
    }
    // A key bound to one owner creates for that owner only; naming another is a 404.
    let key = app
        .post(
            "/api/api-keys",
            json!({"name": "c0", "owner": "customer-0"}),
        )
        .await;
    assert_eq!(key.status, 201, "{}", key.body);
    let key = key.body["key"].as_str().unwrap();
    let as_owner = |body: Value| {
        app.client
            .post(app.url("/api/webhooks/batch"))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    let other = as_owner(json!({"webhooks": [
        {"url": receiver.url("/mine"), "events": ["*"]},
        {"url": receiver.url("/theirs"), "events": ["*"], "owner": "customer-1"},
    ]}))
    .await
    .unwrap();
    assert_eq!(other.status(), 404);
    let own = into_reply(
        as_owner(json!({"webhooks": [{"url": receiver.url("/mine"), "events": ["*"]}]}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(own.status, 201, "{}", own.body);
    assert_eq!(own.body["webhooks"][0]["owner"], "customer-0");
    let after = app.get("/api/webhooks?limit=100").await.body["data"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(after, before + 1);
}
