//! The dashboard and the portal over real HTTP: sign-in, cookie flags, CSRF, security headers, and
//! portal scoping (no cross-owner read or write by guessing ids). The browser tests in `ui-tests/`
//! cover the same flows in Chromium; these run on both backends with the rest of the suite.

use crate::common::browser::{Browser, owned_subscription, portal_link};
use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_session_and_pages_carry_a_strict_csp() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    let anonymous = browser.get("/ui/endpoints").await;
    assert_eq!(anonymous.status, 303);
    assert_eq!(anonymous.header("location"), "/ui/login");

    let wrong = browser.sign_in("hookd_not_a_key").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("not valid"));
    assert!(!browser.cookies.contains_key("hookd_session"));

    let signed_in = browser.sign_in(TEST_KEY).await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let cookie = signed_in
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("hookd_session="))
        .unwrap()
        .to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/ui", "Max-Age=43200"] {
        assert!(cookie.contains(flag), "{cookie} lacks {flag}");
    }
    assert!(
        !cookie.contains(TEST_KEY),
        "the API key is not the session token"
    );

    for path in [
        "/ui",
        "/ui/endpoints",
        "/ui/deliveries",
        "/ui/dead-letters",
        "/ui/events",
    ] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
        let csp = page.header("content-security-policy");
        assert!(
            csp.contains("script-src 'self';") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert!(
            !page.body.contains("<script>"),
            "no inline script on {path}"
        );
        assert_eq!(page.header("x-frame-options"), "DENY");
        assert_eq!(page.header("cache-control"), "no-store");
    }

    // Embedded assets: long-cached, under hashed names.
    let overview = browser.get("/ui").await;
    let start = overview.body.find("/ui/assets/htmx.").unwrap();
    let asset = &overview.body[start..start + overview.body[start..].find('"').unwrap()];
    let served = browser.get(asset).await;
    assert_eq!(served.status, 200);
    assert!(served.header("cache-control").contains("immutable"));
    assert!(served.body.contains("htmx"));
    assert_eq!(browser.get("/ui/assets/htmx.js").await.status, 404);
}

#[tokio::test]
async fn every_action_needs_the_session_csrf_token_and_the_same_origin() {
    let app = spawn_app().await;
    let mut browser = Browser::new(&app);
    browser.sign_in(TEST_KEY).await;
    let form = browser.get("/ui/endpoints/new").await;
    let csrf = form.csrf();
    let url = "http://127.0.0.1:9/hook";

    let without = browser
        .post("/ui/endpoints", &[("url", url), ("events", "*")])
        .await;
    assert_eq!(without.status, 403);
    let wrong = browser
        .post(
            "/ui/endpoints",
            &[("url", url), ("events", "*"), ("_csrf", "0000")],
        )
        .await;
    assert_eq!(wrong.status, 403);
    let cross_origin = browser
        .client
        .post(app.url("/ui/endpoints"))
        .header("cookie", browser.cookie_header())
        .header("origin", "https://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("url={url}&events=*&_csrf={csrf}"))
        .send()
        .await
        .unwrap();
    assert_eq!(cross_origin.status(), 403);
    let listed = app.get("/api/webhooks").await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 0);

    let created = browser
        .post(
            "/ui/endpoints",
            &[("url", url), ("events", "order.*"), ("_csrf", &csrf)],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    assert!(created.header("location").starts_with("/ui/endpoints/wh_"));
    // htmx sends the token as a header instead.
    let id = created
        .header("location")
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let rotate = browser
        .client
        .post(app.url(&format!("/ui/endpoints/{id}/rotate")))
        .header("cookie", browser.cookie_header())
        .header("x-csrf-token", &csrf)
        .header("hx-request", "true")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("overlap_seconds=0")
        .send()
        .await
        .unwrap();
    assert_eq!(rotate.status(), 200);
    assert!(rotate.text().await.unwrap().contains("whsec_"));

    // Signing out ends the session on the server, not only in the browser.
    let session = browser.cookies["hookd_session"].clone();
    assert_eq!(
        browser.post("/ui/logout", &[("_csrf", &csrf)]).await.status,
        303
    );
    browser.cookies.insert("hookd_session".into(), session);
    assert_eq!(browser.get("/ui/endpoints").await.status, 303);
}

#[tokio::test]
async fn portal_links_work_once_and_only_inside_their_area() {
    let app = spawn_app().await;
    owned_subscription(&app, "http://127.0.0.1:9/a", "acme").await;
    let path = portal_link(&app, "acme", &["read"]).await;
    assert!(path.starts_with("/portal/enter?token=hks_"));

    let mut browser = Browser::new(&app);
    let entered = browser.enter(&path).await;
    assert_eq!(entered.status, 200);
    let cookie = entered.header("set-cookie").to_owned();
    for flag in [
        "hookd_portal=",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/portal",
    ] {
        assert!(cookie.contains(flag), "{cookie} lacks {flag}");
    }
    assert_eq!(entered.header("referrer-policy"), "no-referrer");
    assert_eq!(browser.get("/portal/endpoints").await.status, 200);

    let mut second = Browser::new(&app);
    let reused = second.enter(&path).await;
    assert_eq!(reused.status, 401, "a link opens one session only");
    assert_eq!(second.get("/portal/endpoints").await.status, 401);
    assert_eq!(
        second.enter("/portal/enter?token=hks_guess").await.status,
        401
    );

    // A portal session is no dashboard session, and an operator session is no portal session.
    let portal_token = browser.cookies["hookd_portal"].clone();
    let mut crossed = Browser::new(&app);
    crossed.cookies.insert("hookd_session".into(), portal_token);
    assert_eq!(crossed.get("/ui/endpoints").await.status, 303);
    let mut operator = Browser::new(&app);
    operator.sign_in(TEST_KEY).await;
    let operator_token = operator.cookies["hookd_session"].clone();
    let mut crossed = Browser::new(&app);
    crossed
        .cookies
        .insert("hookd_portal".into(), operator_token);
    assert_eq!(crossed.get("/portal/endpoints").await.status, 401);
}

#[tokio::test]
async fn portal_session_requests_are_validated() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"owner": "acme", "capabilities": ["admin"]}),
            "invalid_capabilities",
        ),
        (
            json!({"owner": "acme", "capabilities": []}),
            "invalid_capabilities",
        ),
        (
            json!({"owner": "acme", "capabilities": ["manage"]}),
            "invalid_capabilities",
        ),
        (
            json!({"owner": "acme", "capabilities": ["read"], "ttl_seconds": 3601}),
            "invalid_field",
        ),
        (
            json!({"owner": "acme", "capabilities": ["read"], "ttl_seconds": 0}),
            "invalid_field",
        ),
        (
            json!({"owner": "", "capabilities": ["read"]}),
            "invalid_owner",
        ),
        (
            json!({"owner": " acme", "capabilities": ["read"]}),
            "invalid_owner",
        ),
        (json!({"capabilities": ["read"]}), "invalid_field"),
    ];
    for (body, code) in cases {
        let reply = app.post("/api/portal/sessions", body.clone()).await;
        assert_eq!(reply.status, 422, "{body}: {}", reply.body);
        if code != "invalid_field" || body.get("owner").is_some() {
            assert_eq!(reply.body["code"], code, "{body}");
        }
    }
    let anonymous = app
        .client
        .post(app.url("/api/portal/sessions"))
        .json(&json!({"owner": "acme", "capabilities": ["read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let ok = app
        .post(
            "/api/portal/sessions",
            json!({"owner": "acme", "capabilities": ["manage", "read"], "ttl_seconds": 1}),
        )
        .await;
    assert_eq!(ok.status, 201);
    assert_eq!(ok.body["capabilities"], json!(["read", "manage"]));
    assert!(
        ok.body["url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
}

#[tokio::test]
async fn links_and_portal_sessions_expire_with_their_ttl() {
    let (app, _worker, clock) = spawn_stepped(|_| {}).await;
    let link = |ttl: i64| {
        let app = &app;
        async move {
            let reply = app
                .post(
                    "/api/portal/sessions",
                    json!({"owner": "acme", "capabilities": ["read"], "ttl_seconds": ttl}),
                )
                .await;
            reply.body["path"].as_str().unwrap().to_owned()
        }
    };
    let unused = link(60).await;
    let used = link(60).await;
    let mut browser = Browser::new(&app);
    assert_eq!(browser.enter(&used).await.status, 200);
    assert_eq!(browser.get("/portal/endpoints").await.status, 200);
    clock.advance_ms(61_000);
    assert_eq!(
        browser.get("/portal/endpoints").await.status,
        401,
        "session expired"
    );
    assert_eq!(
        Browser::new(&app).enter(&unused).await.status,
        401,
        "link expired"
    );
}

/// Two owners with a delivered event each (published to each owner); returns (acme sub, globex sub,
/// globex delivery, globex event).
async fn two_owners(app: &TestApp, receiver: &Receiver) -> (String, String, String, String) {
    let acme = owned_subscription(app, &receiver.url("/acme"), "acme").await;
    let globex = owned_subscription(app, &receiver.url("/globex"), "globex").await;
    let mut event = String::new();
    for owner in ["acme", "globex"] {
        let published = app
            .post(
                "/api/events",
                json!({"event": "order.created", "data": {"n": 1}, "owner": owner}),
            )
            .await;
        assert_eq!(published.status, 202);
        event = published.body["id"].as_str().unwrap().to_owned();
    }
    receiver.wait_for("/acme", 1).await;
    receiver.wait_for("/globex", 1).await;
    let globex_id = globex["id"].as_str().unwrap().to_owned();
    let deliveries = app
        .eventually(&format!("/api/webhooks/{globex_id}/deliveries"), |b| {
            b["data"][0]["state"] == "delivered"
        })
        .await;
    let delivery = deliveries["data"][0]["id"].as_str().unwrap().to_owned();
    (
        acme["id"].as_str().unwrap().to_owned(),
        globex_id,
        delivery,
        event,
    )
}

#[tokio::test]
async fn a_portal_reader_sees_only_its_owner_and_cannot_change_anything() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let (acme, globex, globex_delivery, event) = two_owners(&app, &receiver).await;
    let mut browser = Browser::new(&app);
    browser
        .enter(&portal_link(&app, "acme", &["read"]).await)
        .await;

    let list = browser.get("/portal/endpoints").await;
    assert!(list.body.contains(&acme) && !list.body.contains(&globex));
    let log = browser.get("/portal/deliveries").await;
    assert!(!log.body.contains(&globex) && !log.body.contains(&globex_delivery));
    let filtered = browser
        .get(&format!("/portal/deliveries?endpoint={globex}"))
        .await;
    assert!(!filtered.body.contains(&globex_delivery));
    // Filters narrow within the owner's scope (state and status use their own query shapes).
    let delivered = browser
        .get("/portal/deliveries?state=delivered&status=200")
        .await;
    assert_eq!(delivered.status, 200);
    assert!(delivered.body.contains("dlv_") && !delivered.body.contains(&globex_delivery));
    let none = browser.get("/portal/deliveries?state=dead").await;
    assert!(!none.body.contains("/portal/deliveries/dlv_"));
    let bad = browser.get("/portal/deliveries?state=nope").await;
    assert_eq!(bad.status, 400);
    let overview = browser.get("/portal").await;
    assert_eq!(overview.status, 200);
    assert!(!overview.body.contains(&globex));
    let catalog = browser.get("/portal/events").await;
    assert!(catalog.body.contains(&acme) && !catalog.body.contains(&globex));
    // Another owner's event is not there at all.
    let foreign = browser.get(&format!("/portal/events/{event}")).await;
    assert_eq!(foreign.status, 404);
    assert!(!foreign.body.contains(&globex) && !foreign.body.contains(&globex_delivery));

    for path in [
        format!("/portal/endpoints/{globex}"),
        format!("/portal/endpoints/{globex}/edit"),
        format!("/portal/deliveries/{globex_delivery}"),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(!page.body.contains("globex"), "{path}");
    }
    let page = browser.get(&format!("/portal/endpoints/{acme}")).await;
    assert_eq!(page.status, 200);
    assert!(
        !page.body.contains("id=\"rotate\""),
        "no manage buttons for readers"
    );
    let csrf = page.csrf();
    // Secrets of its own endpoints are readable; actions are refused.
    let reveal = browser
        .post(
            &format!("/portal/endpoints/{acme}/secret"),
            &[("_csrf", &csrf)],
        )
        .await;
    assert_eq!(reveal.status, 200);
    for path in [
        format!("/portal/endpoints/{acme}/rotate"),
        format!("/portal/endpoints/{acme}/disable"),
        format!("/portal/endpoints/{acme}/delete"),
        "/portal/endpoints".to_owned(),
    ] {
        let refused = browser
            .post(
                &path,
                &[
                    ("_csrf", &csrf),
                    ("overlap_seconds", "0"),
                    ("url", "http://127.0.0.1:9/x"),
                    ("events", "*"),
                ],
            )
            .await;
        assert_eq!(refused.status, 403, "{path}");
    }
    assert_eq!(
        app.get("/api/webhooks?owner=acme").await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_portal_manager_cannot_reach_another_owner_by_guessing_ids() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let (acme, globex, globex_delivery, event) = two_owners(&app, &receiver).await;
    let globex_secret = app
        .get(&format!("/api/webhooks/{globex}/secret"))
        .await
        .body["secret"]
        .clone();
    let mut browser = Browser::new(&app);
    browser
        .enter(&portal_link(&app, "acme", &["read", "manage"]).await)
        .await;
    let csrf = browser
        .get(&format!("/portal/endpoints/{acme}"))
        .await
        .csrf();

    let attempts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (format!("/portal/endpoints/{globex}/secret"), vec![]),
        (
            format!("/portal/endpoints/{globex}/rotate"),
            vec![("overlap_seconds", "0")],
        ),
        (format!("/portal/endpoints/{globex}/disable"), vec![]),
        (format!("/portal/endpoints/{globex}/enable"), vec![]),
        (format!("/portal/endpoints/{globex}/delete"), vec![]),
        (
            format!("/portal/endpoints/{globex}/test"),
            vec![("event_type", "webhook.test"), ("payload", "{}")],
        ),
        (
            format!("/portal/endpoints/{globex}"),
            vec![("url", "http://127.0.0.1:9/stolen"), ("events", "*")],
        ),
        (
            format!("/portal/deliveries/{globex_delivery}/retry"),
            vec![],
        ),
        (
            "/portal/dead-letters/redrive".into(),
            vec![("endpoint", &globex), ("confirm", "1")],
        ),
        (
            "/portal/dead-letters/recover".into(),
            vec![
                ("endpoint", &globex),
                ("since", "2020-01-01T00:00"),
                ("confirm", "1"),
            ],
        ),
        (
            format!("/portal/events/{event}/replay"),
            vec![("delivery", &globex_delivery)],
        ),
    ];
    for (path, mut form) in attempts {
        form.push(("_csrf", &csrf));
        let page = browser.post(&path, &form).await;
        assert!(
            page.status == 404 || (path.contains("/replay") && page.status == 200),
            "{path}: {}",
            page.status
        );
        assert!(!page.body.contains("whsec_"), "{path} leaked a secret");
    }
    // Nothing of globex's changed.
    let after = app.get(&format!("/api/webhooks/{globex}")).await;
    assert_eq!(after.status, 200);
    assert_eq!(after.body["url"], receiver.url("/globex"));
    assert_eq!(after.body["active"], true);
    assert_eq!(
        app.get(&format!("/api/webhooks/{globex}/secret"))
            .await
            .body["secret"],
        globex_secret
    );
    let attempts = app
        .store
        .deliveries
        .list_attempts(&globex_delivery)
        .await
        .unwrap();
    assert_eq!(attempts.len(), 1, "not retried or replayed");

    // What the manager creates belongs to its owner, whatever the form says.
    let created = browser
        .post(
            "/portal/endpoints",
            &[
                ("url", &receiver.url("/acme2")),
                ("events", "*"),
                ("owner", "globex"),
                ("_csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let id = created
        .header("location")
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.get(&format!("/api/webhooks/{id}")).await.body["owner"],
        "acme"
    );
    // And it may rotate its own secret.
    let rotated = browser
        .post(
            &format!("/portal/endpoints/{acme}/rotate"),
            &[("overlap_seconds", "0"), ("_csrf", &csrf)],
        )
        .await;
    assert_eq!(rotated.status, 200);
    assert!(rotated.body.contains("whsec_"));
}
