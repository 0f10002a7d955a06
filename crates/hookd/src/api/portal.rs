//! `POST /api/portal/sessions`: a one-time link into the subscriber portal for one owner.
//!
//! The link carries a random token (only its SHA-256 is stored); `GET /portal/enter?token=…` exchanges
//! it once for a portal session cookie with the same lifetime (see `ui::session`).

use super::ApiState;
use super::access::scoped_owner;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use super::rfc3339;
use crate::auth::Access;
use crate::ops::parse_owner;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use hookd_core::whole_number;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePortalSession {
    /// The subscriber: the `owner` set on their subscriptions.
    pub owner: String,
    /// `["read"]` (look only) or `["read", "manage"]` (create, edit, test, rotate, redrive).
    pub capabilities: Vec<String>,
    /// Lifetime of the link and of the session it opens, 1–3,600 seconds (default 3,600).
    #[serde(default, deserialize_with = "whole_number::deserialize")]
    pub ttl_seconds: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PortalLink {
    /// Open this in a browser; it shows a page whose "continue" button spends the link. Absolute:
    /// `public_url` when configured, else the scheme and `Host` this request used (relative when
    /// the `Host` is not a plain `host[:port]`).
    pub url: String,
    /// The same link relative to hookd's address.
    pub path: String,
    pub owner: String,
    pub capabilities: Vec<String>,
    pub expires_at: String,
}

/// The origin this request reached, for links when `public_url` is not configured: the request's
/// own scheme (hookd serves plain HTTP, so `http` unless the request line named another) and its
/// `Host`, taken only when it is a plain `host[:port]` (no user info, path or stray characters).
/// `None` without a usable host: the link is then relative. Behind a proxy or a TLS terminator,
/// configure `public_url`.
fn request_origin(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let authority: axum::http::uri::Authority = host.parse().ok()?;
    if authority.as_str().contains('@') || authority.as_str() != host {
        return None;
    }
    let scheme = uri.scheme_str().unwrap_or("http");
    Some(format!("{scheme}://{authority}"))
}

/// `["read"]` → read-only, `["read", "manage"]` (any order) → manage; anything else is refused.
fn parse_capabilities(raw: &[String]) -> Result<bool, ApiError> {
    let mut sorted: Vec<&str> = raw.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    match sorted.as_slice() {
        ["read"] => Ok(false),
        ["manage", "read"] => Ok(true),
        _ => Err(ApiError::invalid(
            "invalid_capabilities",
            "capabilities",
            "must be [\"read\"] or [\"read\", \"manage\"]",
        )),
    }
}

/// Create a one-time portal link for one owner.
#[utoipa::path(post, path = "/api/portal/sessions", tag = "portal",
    request_body = CreatePortalSession, security(("api_key" = [])),
    responses((status = 201, body = PortalLink), (status = 401, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
pub async fn create(
    State(state): State<ApiState>,
    axum::Extension(access): axum::Extension<Access>,
    uri: Uri,
    headers: HeaderMap,
    ApiJson(input): ApiJson<CreatePortalSession>,
) -> Result<(StatusCode, Json<PortalLink>), ApiError> {
    let owner = parse_owner(Some(input.owner))?.ok_or(ApiError::Internal)?;
    let owner = scoped_owner(&access, Some(owner))?.ok_or(ApiError::Internal)?;
    let manage = parse_capabilities(&input.capabilities)?;
    let link = state
        .ops
        .create_portal_link(owner, manage, input.ttl_seconds)
        .await?;
    let path = format!("/portal/enter?token={}", link.token);
    let base = match &state.settings.public_url {
        Some(base) => base.clone(),
        None => request_origin(&uri, &headers).unwrap_or_default(),
    };
    let capabilities = match manage {
        true => vec!["read".into(), "manage".into()],
        false => vec!["read".into()],
    };
    Ok((
        StatusCode::CREATED,
        Json(PortalLink {
            url: format!("{base}{path}"),
            path,
            owner: link.row.owner.unwrap_or_default(),
            capabilities,
            expires_at: rfc3339(link.row.expires_at),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_use_the_requests_own_scheme_and_a_plain_host_only() {
        let origin = |uri: &str, host: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, host.parse().unwrap());
            request_origin(&uri.parse().unwrap(), &headers)
        };
        let plain = Some("http://hooks.local:8080".to_owned());
        assert_eq!(origin("/api/portal/sessions", "hooks.local:8080"), plain);
        assert_eq!(
            origin("/api/portal/sessions", "[::1]:80").as_deref(),
            Some("http://[::1]:80")
        );
        for bad in ["evil.example/x", "user@evil.example", "a b", ""] {
            assert_eq!(origin("/api/portal/sessions", bad), None, "{bad:?}");
        }
    }

    #[test]
    fn capabilities() {
        let caps = |list: &[&str]| {
            parse_capabilities(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        assert!(!caps(&["read"]).unwrap());
        assert!(caps(&["read", "manage"]).unwrap());
        assert!(caps(&["manage", "read"]).unwrap());
        for bad in [
            &[][..],
            &["manage"],
            &["read", "read"],
            &["read", "admin"],
            &["read", "manage", "x"],
        ] {
            assert!(caps(bad).is_err(), "{bad:?}");
        }
    }
}
