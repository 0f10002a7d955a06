//! API keys with scopes, created and revoked through the API: what each scope allows and refuses,
//! what a key bound to one owner reaches (its owner's resources only; another owner's answer 404),
//! revocation from the next request, and keys shown once and stored hashed. Both backends.

use crate::common::browser::Browser;
use crate::common::*;
use reqwest::Method;
use serde_json::{Value, json};

/// A request with `key` instead of the app's admin key.
async fn call_as(
    app: &TestApp,
    key: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    into_reply(request.send().await.unwrap()).await
}

/// Creates a key through the API (with the app's admin key) and returns the answer.
async fn create_key(app: &TestApp, body: Value) -> Value {
    let reply = app.post("/api/api-keys", body).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body
}

async fn key_with(app: &TestApp, scopes: &[&str], owner: Option<&str>) -> String {
    let mut body = json!({"name": "test", "scopes": scopes});
    if let Some(owner) = owner {
        body["owner"] = json!(owner);
    }
    create_key(app, body).await["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn event(owner: Option<&str>) -> Value {
    let mut body = json!({"event": "order.created", "data": {"n": 1}});
    if let Some(owner) = owner {
        body["owner"] = json!(owner);
    }
    body
}

fn subscription(url: &str, owner: Option<&str>) -> Value {
    let mut body = json!({"url": url, "events": ["*"]});
    if let Some(owner) = owner {
        body["owner"] = json!(owner);
    }
    body
}

#[tokio::test]
async fn a_key_is_shown_once_and_stored_hashed() {
    let app = spawn_app().await;
    let created = create_key(
        &app,
        json!({"name": "ci", "scopes": ["read", "publish"], "owner": "acme"}),
    )
    .await;
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("hookd_"), "{created}");
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));
    assert_eq!(created["scopes"], json!(["publish", "read"]));
    assert_eq!(created["owner"], "acme");
    assert_eq!(created["revoked_at"], Value::Null);

    let listed = app.get("/api/api-keys").await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let text = listed.body.to_string();
    assert!(!text.contains(&key), "the key is never shown again");
    let entry = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == created["id"])
        .unwrap()
        .clone();
    let fields: Vec<&str> = entry
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        [
            "created_at",
            "id",
            "name",
            "owner",
            "prefix",
            "revoked_at",
            "scopes"
        ]
    );
    assert_eq!(entry["scopes"], json!(["publish", "read"]));

    // The store holds the key's SHA-256, not the key.
    let hash = hookd::auth::hash_key(&key);
    let stored = app.store.admin.api_key_by_hash(&hash).await.unwrap();
    assert_eq!(stored.unwrap().id, created["id"].as_str().unwrap());
    let by_text = app
        .store
        .admin
        .api_key_by_hash(key.as_bytes())
        .await
        .unwrap();
    assert!(by_text.is_none());

    let admin = create_key(&app, json!({"name": "default"})).await;
    assert_eq!(admin["scopes"], json!(["admin"]), "admin is the default");
    assert_eq!(admin["owner"], Value::Null);
}

#[tokio::test]
async fn bad_key_requests_are_refused_naming_the_field() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"name": "x", "scopes": ["root"]}),
            "invalid_scopes",
            "scopes",
        ),
        (
            json!({"name": "x", "scopes": []}),
            "invalid_scopes",
            "scopes",
        ),
        (json!({"name": "x", "owner": ""}), "invalid_owner", "owner"),
        (
            json!({"name": "x", "owner": " acme"}),
            "invalid_owner",
            "owner",
        ),
        (json!({"name": ""}), "invalid_field", "name"),
        (json!({"name": "x".repeat(101)}), "invalid_field", "name"),
    ];
    for (body, code, field) in cases {
        let reply = app.post("/api/api-keys", body.clone()).await;
        reply.assert_error(422, code);
        assert_eq!(reply.body["field"], field, "{body}");
    }
    app.delete("/api/api-keys/key_nope")
        .await
        .assert_error(404, "not_found");
    assert!(app.store.admin.list_api_keys().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_publish_key_publishes_and_does_nothing_else() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let webhook = id_of(&app.subscribe(&receiver.url("/a"), &["*"]).await);
    let key = key_with(&app, &["publish"], None).await;

    let published = call_as(&app, &key, Method::POST, "/api/events", Some(event(None))).await;
    assert_eq!(published.status, 202, "{}", published.body);
    let batch = json!({"events": [event(None), event(None)]});
    let batch = call_as(&app, &key, Method::POST, "/api/events/batch", Some(batch)).await;
    assert_eq!(batch.status, 202, "{}", batch.body);

    let refused = [
        (Method::GET, "/api/webhooks".to_owned(), None),
        (Method::GET, format!("/api/webhooks/{webhook}"), None),
        (Method::GET, "/api/events".to_owned(), None),
        (
            Method::POST,
            "/api/webhooks".to_owned(),
            Some(subscription("http://127.0.0.1:9/x", None)),
        ),
        (Method::DELETE, format!("/api/webhooks/{webhook}"), None),
        (Method::GET, "/api/api-keys".to_owned(), None),
        (
            Method::POST,
            "/api/api-keys".to_owned(),
            Some(json!({"name": "more"})),
        ),
        (Method::GET, "/metrics".to_owned(), None),
    ];
    for (method, path, body) in refused {
        call_as(&app, &key, method.clone(), &path, body)
            .await
            .assert_error(403, "forbidden");
    }
    assert_eq!(
        app.get(&format!("/api/webhooks/{webhook}")).await.status,
        200
    );
}

#[tokio::test]
async fn a_read_key_reads_and_changes_nothing() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let webhook = id_of(&app.subscribe(&receiver.url("/a"), &["*"]).await);
    let event_id = app.publish(event(None)).await;
    let key = key_with(&app, &["read"], None).await;

    for path in [
        "/api/webhooks".to_owned(),
        format!("/api/webhooks/{webhook}"),
        "/api/events".to_owned(),
        format!("/api/events/{event_id}"),
        "/api/deliveries".to_owned(),
        "/api/owners".to_owned(),
        "/api/event-types".to_owned(),
    ] {
        let reply = call_as(&app, &key, Method::GET, &path, None).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
    }
    let refused = [
        (Method::POST, "/api/events".to_owned(), Some(event(None))),
        (
            Method::POST,
            "/api/webhooks".to_owned(),
            Some(subscription("http://127.0.0.1:9/x", None)),
        ),
        (
            Method::PATCH,
            format!("/api/webhooks/{webhook}"),
            Some(json!({"active": false})),
        ),
        (Method::DELETE, format!("/api/webhooks/{webhook}"), None),
        (
            Method::POST,
            format!("/api/webhooks/{webhook}/disable"),
            Some(json!({})),
        ),
        (Method::GET, "/api/api-keys".to_owned(), None),
        (
            Method::POST,
            "/api/api-keys".to_owned(),
            Some(json!({"name": "more"})),
        ),
    ];
    for (method, path, body) in refused {
        call_as(&app, &key, method.clone(), &path, body)
            .await
            .assert_error(403, "forbidden");
    }
    let unchanged = app.get(&format!("/api/webhooks/{webhook}")).await;
    assert_eq!(unchanged.body["active"], true);
}

#[tokio::test]
async fn an_admin_key_does_everything() {
    let app = spawn_app().await;
    let key = key_with(&app, &["admin"], None).await;
    let created = call_as(
        &app,
        &key,
        Method::POST,
        "/api/webhooks",
        Some(subscription("http://127.0.0.1:9/x", None)),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let webhook = id_of(&created.body);
    let published = call_as(&app, &key, Method::POST, "/api/events", Some(event(None))).await;
    assert_eq!(published.status, 202, "{}", published.body);
    let more = call_as(
        &app,
        &key,
        Method::POST,
        "/api/api-keys",
        Some(json!({"name": "b"})),
    )
    .await;
    assert_eq!(more.status, 201, "{}", more.body);
    let listed = call_as(&app, &key, Method::GET, "/api/api-keys", None).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 2);
    let path = format!("/api/webhooks/{webhook}");
    let removed = call_as(&app, &key, Method::DELETE, &path, None).await;
    assert_eq!(removed.status, 204, "{}", removed.body);
}

#[tokio::test]
async fn an_owner_bound_key_publishes_only_to_its_owner() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    app.subscribe_with(subscription(&receiver.url("/acme"), Some("acme")))
        .await;
    app.subscribe_with(subscription(&receiver.url("/globex"), Some("globex")))
        .await;
    let key = key_with(&app, &["publish"], Some("acme")).await;

    let plain = call_as(&app, &key, Method::POST, "/api/events", Some(event(None))).await;
    assert_eq!(plain.status, 202, "{}", plain.body);
    let stored = app
        .get(&format!(
            "/api/events/{}",
            plain.body["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        stored.body["owner"], "acme",
        "an event without owner gets the key's"
    );
    let own = call_as(
        &app,
        &key,
        Method::POST,
        "/api/events",
        Some(event(Some("acme"))),
    )
    .await;
    assert_eq!(own.status, 202, "{}", own.body);

    call_as(
        &app,
        &key,
        Method::POST,
        "/api/events",
        Some(event(Some("globex"))),
    )
    .await
    .assert_error(404, "not_found");
    let batch = json!({"events": [event(None), event(Some("globex"))]});
    call_as(&app, &key, Method::POST, "/api/events/batch", Some(batch))
        .await
        .assert_error(404, "not_found");
    let globex = app.get("/api/events?owner=globex").await;
    assert_eq!(
        globex.body["data"],
        json!([]),
        "nothing reached another owner"
    );
    let acme = app.get("/api/events?owner=acme").await;
    assert_eq!(
        acme.body["data"].as_array().unwrap().len(),
        2,
        "the batch stored nothing"
    );
}

#[tokio::test]
async fn an_owner_bound_key_sees_and_manages_only_its_owners_subscriptions() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let mine = id_of(
        &app.subscribe_with(subscription(&receiver.url("/acme"), Some("acme")))
            .await,
    );
    let theirs = id_of(
        &app.subscribe_with(subscription(&receiver.url("/globex"), Some("globex")))
            .await,
    );
    let their_event = app.publish(event(Some("globex"))).await;
    let their_delivery = app
        .wait_for_deliveries(&their_event, |d| d.len() == 1)
        .await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = key_with(&app, &["admin"], Some("acme")).await;
    let call = |method: Method, path: String, body: Option<Value>| {
        let (app, key) = (&app, &key);
        async move { call_as(app, key, method, &path, body).await }
    };

    let listed = call(Method::GET, "/api/webhooks".into(), None).await;
    let ids: Vec<&str> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [mine.as_str()],
        "the list is filtered to the key's owner"
    );
    let created = call(
        Method::POST,
        "/api/webhooks".into(),
        Some(subscription(&receiver.url("/new"), None)),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["owner"], "acme", "creating forces the owner");
    let patched = call(
        Method::PATCH,
        format!("/api/webhooks/{mine}"),
        Some(json!({"description": "mine"})),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);

    // Another owner's resources answer as if they did not exist.
    let not_found = [
        (Method::GET, "/api/webhooks?owner=globex".to_owned(), None),
        (
            Method::POST,
            "/api/webhooks".to_owned(),
            Some(subscription(&receiver.url("/x"), Some("globex"))),
        ),
        (Method::GET, format!("/api/webhooks/{theirs}"), None),
        (Method::GET, format!("/api/webhooks/{theirs}/secret"), None),
        (
            Method::PATCH,
            format!("/api/webhooks/{theirs}"),
            Some(json!({"description": "x"})),
        ),
        (Method::DELETE, format!("/api/webhooks/{theirs}"), None),
        (
            Method::POST,
            format!("/api/webhooks/{theirs}/disable"),
            Some(json!({})),
        ),
        (
            Method::PATCH,
            format!("/api/webhooks/{mine}"),
            Some(json!({"owner": "globex"})),
        ),
        (
            Method::GET,
            format!("/api/deliveries/{their_delivery}"),
            None,
        ),
        (
            Method::POST,
            format!("/api/deliveries/{their_delivery}/retry"),
            Some(json!({})),
        ),
        (Method::GET, format!("/api/events/{their_event}"), None),
        (Method::GET, "/api/owners/globex".to_owned(), None),
        (Method::DELETE, "/api/owners/globex".to_owned(), None),
        (
            Method::GET,
            format!("/api/dead-letters?webhook_id={theirs}"),
            None,
        ),
        (
            Method::POST,
            "/api/portal/sessions".to_owned(),
            Some(json!({"owner": "globex", "capabilities": ["read"]})),
        ),
    ];
    for (method, path, body) in not_found {
        let reply = call(method.clone(), path.clone(), body).await;
        assert_eq!(reply.status, 404, "{method} {path}: {}", reply.body);
        assert_eq!(reply.body["code"], "not_found", "{method} {path}");
    }
    // Requests spanning every owner, with no single one to scope to, are refused.
    let forbidden = [
        (
            Method::PATCH,
            format!("/api/webhooks/{mine}"),
            Some(json!({"owner": null})),
        ),
        (Method::GET, "/api/api-keys".to_owned(), None),
        (
            Method::POST,
            "/api/api-keys".to_owned(),
            Some(json!({"name": "x"})),
        ),
        (Method::GET, "/api/dead-letters".to_owned(), None),
        (
            Method::POST,
            "/api/dead-letters/redrive".to_owned(),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/api/event-types".to_owned(),
            Some(json!({"name": "x.y"})),
        ),
        (Method::GET, "/api/webhooks/metrics".to_owned(), None),
        (Method::GET, "/metrics".to_owned(), None),
    ];
    for (method, path, body) in forbidden {
        let reply = call(method.clone(), path.clone(), body).await;
        assert_eq!(reply.status, 403, "{method} {path}: {}", reply.body);
        assert_eq!(reply.body["code"], "forbidden", "{method} {path}");
    }
    let owners = call(Method::GET, "/api/owners".into(), None).await;
    let names: Vec<&str> = owners.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["owner"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme"]);
    let deliveries = call(Method::GET, "/api/deliveries".into(), None).await;
    assert_eq!(deliveries.body["data"], json!([]), "{}", deliveries.body);
    let events = call(Method::GET, "/api/events".into(), None).await;
    assert_eq!(events.body["data"], json!([]), "{}", events.body);
    let own_dead = call(
        Method::GET,
        format!("/api/dead-letters?webhook_id={mine}"),
        None,
    )
    .await;
    assert_eq!(own_dead.status, 200, "{}", own_dead.body);
    let theirs_now = app.get(&format!("/api/webhooks/{theirs}")).await;
    assert_eq!(theirs_now.body["owner"], "globex");
    assert_eq!(theirs_now.body["active"], true);
}

#[tokio::test]
async fn a_key_revoked_through_the_api_is_refused_from_the_next_request() {
    let app = spawn_app().await;
    let created = create_key(&app, json!({"name": "temp", "scopes": ["read"]})).await;
    let key = created["key"].as_str().unwrap();
    let id = created["id"].as_str().unwrap();
    let before = call_as(&app, key, Method::GET, "/api/webhooks", None).await;
    assert_eq!(before.status, 200, "{}", before.body);

    let revoked = app.delete(&format!("/api/api-keys/{id}")).await;
    assert_eq!(revoked.status, 204, "{}", revoked.body);
    call_as(&app, key, Method::GET, "/api/webhooks", None)
        .await
        .assert_error(401, "unauthorized");
    app.delete(&format!("/api/api-keys/{id}"))
        .await
        .assert_error(404, "not_found");
    let listed = app.get("/api/api-keys").await;
    assert!(
        listed.body["data"][0]["revoked_at"].is_string(),
        "{}",
        listed.body
    );
}

#[tokio::test]
async fn only_unscoped_admin_keys_sign_in_to_the_dashboard_which_lists_the_keys() {
    let app = spawn_app().await;
    for (scopes, owner) in [(vec!["read"], None), (vec!["admin"], Some("acme"))] {
        let key = key_with(&app, &scopes, owner).await;
        let mut browser = Browser::new(&app);
        let page = browser.sign_in(&key).await;
        assert_eq!(page.status, 403, "{scopes:?} {owner:?}: {}", page.body);
    }
    let admin = key_with(&app, &["admin"], None).await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.sign_in(&admin).await.status, 303);
    let page = browser.get("/ui/settings/keys").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("API keys"), "{}", page.body);
    assert!(page.body.contains("read"), "{}", page.body);
    assert!(page.body.contains("acme"), "{}", page.body);
    assert!(!page.body.contains(&admin), "the key itself is never shown");
    assert!(
        page.body.contains(r#"href="/ui/settings/keys""#),
        "reachable from the nav"
    );
}

#[tokio::test]
async fn erasing_an_owner_deletes_the_keys_bound_to_it() {
    let app = spawn_app().await;
    app.subscribe_with(subscription("http://127.0.0.1:9/acme", Some("acme")))
        .await;
    let bound = key_with(&app, &["publish"], Some("acme")).await;
    let other = key_with(&app, &["read"], Some("globex")).await;
    let erased = app.delete("/api/owners/acme").await;
    assert_eq!(erased.status, 200, "{}", erased.body);
    call_as(&app, &bound, Method::POST, "/api/events", Some(event(None)))
        .await
        .assert_error(401, "unauthorized");
    let listed = app.get("/api/api-keys").await;
    let owners: Vec<&Value> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["owner"])
        .collect();
    assert_eq!(owners, [&json!("globex")]);
    let still = call_as(&app, &other, Method::GET, "/api/webhooks", None).await;
    assert_eq!(still.status, 200, "{}", still.body);
}
