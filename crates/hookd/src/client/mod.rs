//! The command-line client: `hookd webhooks|events|deliveries|dead-letters|event-types|metrics`
//! talk to a running server over its HTTP API; `hookd listen` runs a local verifying receiver;
//! `hookd verify` checks a signature offline.

pub mod commands;
pub mod listen;
pub mod output;
pub mod owners;
pub mod verify;
pub mod webhooks;

use clap::Args;
use reqwest::Method;
use serde_json::Value;

/// Where the server is and how to authenticate; shared by every client command.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Base URL of the hookd server.
    #[arg(
        long,
        global = true,
        env = "HOOKD_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// API key (`hookd_...`).
    #[arg(long, global = true, env = "HOOKD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A failed call: the server's JSON error, or why the server could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("cannot reach hookd at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("{0}")]
    Usage(String),
}

/// A thin JSON client for hookd's API.
pub struct ApiClient {
    base: String,
    key: Option<String>,
    http: reqwest::Client,
}

impl ApiClient {
    pub fn new(args: &ClientArgs) -> Self {
        crate::runtime::install_crypto_provider();
        Self {
            base: args.url.trim_end_matches('/').to_owned(),
            key: args.api_key.clone(),
            http: reqwest::Client::builder()
                .user_agent(crate::worker::send::user_agent())
                .build()
                .unwrap_or_default(),
        }
    }

    /// Sends a request; a 2xx answer's JSON (or `null` for an empty body), else a [`ClientError`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, String)],
    ) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            detail: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                detail: e.to_string(),
            })?;
        let value: Value = match bytes.is_empty() {
            true => Value::Null,
            false => serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
        };
        if (200..300).contains(&status) {
            return Ok(value);
        }
        Err(ClientError::Api {
            status,
            code: value["code"].as_str().unwrap_or("unknown").to_owned(),
            message: value["error"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string()),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call(Method::GET, path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.call(Method::POST, path, Some(body), &[]).await
    }
}

/// Appends `?k=v&...` for the parameters that are set, URL-encoded.
pub fn with_query(path: &str, params: &[(&str, Option<String>)]) -> String {
    let pairs: Vec<(&str, &str)> = params
        .iter()
        .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v)))
        .collect();
    match pairs.is_empty() {
        true => path.to_owned(),
        false => format!(
            "{path}?{}",
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings() {
        assert_eq!(with_query("/x", &[("a", None)]), "/x");
        assert_eq!(
            with_query(
                "/x",
                &[
                    ("type", Some("order.*".into())),
                    ("b", None),
                    ("c", Some("1 2".into()))
                ]
            ),
            "/x?type=order.*&c=1+2"
        );
    }
}
