//! Who is looking: browser sessions, the [`Viewer`] scope, CSRF tokens, sign-in and the portal's
//! one-time link exchange.
//!
//! A session token is 32 random bytes in an `HttpOnly` cookie; the store keeps only its SHA-256 and
//! an expiry. The CSRF token is derived from the session token (`SHA-256("hookd-csrf:" + token)`), so
//! it needs no storage, differs per session, and cannot be computed from anything a page leaks.

pub use crate::ops::{MAX_PORTAL_TTL_SECONDS, new_token, session_row};
use crate::store::SubscriptionRow;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const OPERATOR_COOKIE: &str = "hookd_session";
pub const PORTAL_COOKIE: &str = "hookd_portal";
/// The double-submit cookie that protects the sign-in form (there is no session yet).
pub const LOGIN_CSRF_COOKIE: &str = "hookd_login_csrf";
/// Operator sessions last 12 hours.
pub const OPERATOR_SESSION_MS: i64 = 12 * 3600 * 1000;

/// What a page may show and do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Viewer {
    /// Signed in with an API key: every subscription.
    Operator,
    /// A subscriber in the portal: only subscriptions whose `owner` is `owner`.
    Portal { owner: String, manage: bool },
}

impl Viewer {
    /// The owner every query is scoped to; `None` for operators.
    pub fn owner(&self) -> Option<&str> {
        match self {
            Self::Operator => None,
            Self::Portal { owner, .. } => Some(owner),
        }
    }

    pub fn can_manage(&self) -> bool {
        match self {
            Self::Operator => true,
            Self::Portal { manage, .. } => *manage,
        }
    }

    /// Where this viewer's screens live.
    pub fn base(&self) -> &'static str {
        match self {
            Self::Operator => "/ui",
            Self::Portal { .. } => "/portal",
        }
    }

    pub fn is_portal(&self) -> bool {
        matches!(self, Self::Portal { .. })
    }

    /// Whether this subscription is in scope.
    pub fn sees(&self, subscription: &SubscriptionRow) -> bool {
        match self {
            Self::Operator => true,
            Self::Portal { owner, .. } => subscription.owner.as_deref() == Some(owner.as_str()),
        }
    }
}

/// The session of the current request, put in the request's extensions by the guard.
#[derive(Debug, Clone)]
pub struct Session {
    pub viewer: Viewer,
    /// Sent back by every form (`_csrf`) and every htmx request (`X-CSRF-Token`).
    pub csrf: String,
    pub token_hash: Vec<u8>,
}

pub fn csrf_for(token: &str) -> String {
    hex::encode(Sha256::digest(format!("hookd-csrf:{token}").as_bytes()))
}

/// Constant-time comparison of a presented CSRF token with the expected one.
pub fn csrf_matches(presented: &str, expected: &str) -> bool {
    presented.len() == expected.len() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

/// How session cookies are written.
#[derive(Debug, Clone, Copy)]
pub struct CookiePolicy {
    /// Add `Secure` (off only in development mode, which serves plain http on loopback).
    pub secure: bool,
    /// The portal is framed by other sites: its cookie must be `SameSite=None; Secure; Partitioned`
    /// to reach a cross-site frame (CSRF tokens still guard every action).
    pub portal_framed: bool,
}

impl CookiePolicy {
    pub fn set(&self, name: &str, value: &str, path: &str, max_age_seconds: i64) -> String {
        let framed_portal = name == PORTAL_COOKIE && self.portal_framed;
        let same_site = match framed_portal {
            true => "None; Secure; Partitioned",
            false => "Strict",
        };
        let secure = match self.secure && !framed_portal {
            true => "; Secure",
            false => "",
        };
        format!(
            "{name}={value}; Path={path}; Max-Age={max_age_seconds}; HttpOnly; SameSite={same_site}{secure}"
        )
    }

    pub fn clear(&self, name: &str, path: &str) -> String {
        self.set(name, "", path, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_differ_per_session_and_compare_exactly() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_ne!(csrf_for(&a), csrf_for(&b));
        assert!(csrf_matches(&csrf_for(&a), &csrf_for(&a)));
        assert!(!csrf_matches(&csrf_for(&a), &csrf_for(&b)));
        assert!(!csrf_matches("", &csrf_for(&a)));
    }

    #[test]
    fn cookies_are_http_only_and_strict() {
        let policy = CookiePolicy {
            secure: true,
            portal_framed: false,
        };
        let set = policy.set(OPERATOR_COOKIE, "t", "/ui", 60);
        assert_eq!(
            set,
            "hookd_session=t; Path=/ui; Max-Age=60; HttpOnly; SameSite=Strict; Secure"
        );
        let framed = CookiePolicy {
            secure: false,
            portal_framed: true,
        };
        assert!(
            framed
                .set(PORTAL_COOKIE, "t", "/portal", 60)
                .ends_with("SameSite=None; Secure; Partitioned")
        );
        assert!(
            framed
                .set(OPERATOR_COOKIE, "t", "/ui", 60)
                .ends_with("SameSite=Strict")
        );
    }

    #[test]
    fn portal_viewers_see_only_their_owner() {
        let mut row = SubscriptionRow::new(
            "wh_1".into(),
            hookd_core::EndpointUrl::from_stored("https://a.test").unwrap(),
            vec![],
            "s".into(),
            0,
        );
        let viewer = Viewer::Portal {
            owner: "acme".into(),
            manage: false,
        };
        assert!(!viewer.sees(&row));
        row.owner = Some("acme".into());
        assert!(viewer.sees(&row));
        row.owner = Some("acme2".into());
        assert!(!viewer.sees(&row));
        assert!(Viewer::Operator.sees(&row));
    }

    #[test]
    fn cookie_parsing() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("cookie", "a=1; hookd_session=xyz; b=2".parse().unwrap());
        assert_eq!(cookie(&headers, OPERATOR_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&headers, PORTAL_COOKIE), None);
    }
}
