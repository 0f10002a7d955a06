//! A browser, one request at a time, for the dashboard and portal tests: keeps cookies, follows no
//! redirects, signs in, opens portal links, and reads CSRF tokens from pages.

use super::{TEST_KEY, TestApp};
use reqwest::StatusCode;
use serde_json::json;

/// A cookie-keeping client that does not follow redirects, like a browser seen one request at a time.
pub struct Browser {
    pub client: reqwest::Client,
    pub base: String,
    pub cookies: std::collections::BTreeMap<String, String>,
}

pub struct Page {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The value of the first `name="_csrf"` field on the page.
    pub fn csrf(&self) -> String {
        let start = self
            .body
            .find("name=\"_csrf\" value=\"")
            .expect("no CSRF field")
            + 20;
        self.body[start..start + self.body[start..].find('"').unwrap()].to_owned()
    }
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.url(""),
            cookies: Default::default(),
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let response = request
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        for set in response.headers().get_all("set-cookie") {
            let text = set.to_str().unwrap();
            let (pair, _) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            match value.is_empty() {
                true => self.cookies.remove(name),
                false => self.cookies.insert(name.into(), value.into()),
            };
        }
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(form).unwrap());
        self.send(request).await
    }

    /// A browser signed in to the dashboard with the test key.
    pub async fn operator(app: &TestApp) -> Self {
        let mut browser = Self::new(app);
        let page = browser.sign_in(TEST_KEY).await;
        assert_eq!(page.status, 303, "{}", page.body);
        browser
    }

    /// Signs in to the dashboard with `key`.
    pub async fn sign_in(&mut self, key: &str) -> Page {
        let login = self.get("/ui/login").await;
        let csrf = login.csrf();
        self.post("/ui/login", &[("api_key", key), ("_csrf", &csrf)])
            .await
    }

    /// Opens a portal link (path from `POST /api/portal/sessions`) and continues, as a subscriber
    /// does: the GET shows a page whose form posts the token; the POST spends it.
    pub async fn enter(&mut self, path: &str) -> Page {
        let shown = self.get(path).await;
        if shown.status != 200 {
            return shown;
        }
        assert!(
            shown.body.contains(r#"action="/portal/enter""#),
            "{}",
            shown.body
        );
        let token = path.split_once("token=").map(|(_, t)| t).unwrap_or("");
        self.post("/portal/enter", &[("token", token)]).await
    }
}

pub async fn portal_link(app: &TestApp, owner: &str, capabilities: &[&str]) -> String {
    let reply = app
        .post(
            "/api/portal/sessions",
            json!({"owner": owner, "capabilities": capabilities, "ttl_seconds": 600}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.body["path"].as_str().unwrap().to_owned()
}

pub async fn owned_subscription(app: &TestApp, url: &str, owner: &str) -> serde_json::Value {
    let reply = app
        .post(
            "/api/webhooks",
            json!({"url": url, "events": ["*"], "owner": owner}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(reply.body["owner"], owner);
    reply.body
}
