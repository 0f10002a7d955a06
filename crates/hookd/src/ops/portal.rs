//! Portal links: a one-time link into the subscriber portal for one owner, and the session tokens
//! behind it and behind dashboard sign-ins.
//!
//! A token is 32 random bytes; the store keeps only its SHA-256 and an expiry.

use super::{Ops, OpsError};
use crate::auth::hash_key;
use crate::store::UnixMs;
use crate::store::ui::{SessionKind, SessionRow};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Longest portal session (and link) handed out.
pub const MAX_PORTAL_TTL_SECONDS: i64 = 3600;

/// A new portal link: the token (shown once, in the link) and its stored row.
#[derive(Debug)]
pub struct PortalLinkCreated {
    pub token: String,
    pub row: SessionRow,
}

impl Ops {
    /// Creates a one-time link for `owner` (already a valid owner id) that opens a portal session
    /// lasting `ttl_seconds` (default and most: [`MAX_PORTAL_TTL_SECONDS`]); `manage` lets it change
    /// things, not only look.
    pub async fn create_portal_link(
        &self,
        owner: String,
        manage: bool,
        ttl_seconds: Option<i64>,
    ) -> Result<PortalLinkCreated, OpsError> {
        let ttl = ttl_seconds.unwrap_or(MAX_PORTAL_TTL_SECONDS);
        if !(1..=MAX_PORTAL_TTL_SECONDS).contains(&ttl) {
            return Err(OpsError::invalid(
                "invalid_field",
                "ttl_seconds",
                format!("must be 1 to {MAX_PORTAL_TTL_SECONDS}"),
            ));
        }
        let now = self.clock.now_ms();
        let token = new_token();
        let row = session_row(
            &token,
            SessionKind::Link,
            Some(owner),
            manage,
            now,
            ttl * 1000,
        );
        self.store.ui.insert_session(&row).await?;
        tracing::info!(manage, ttl, "portal link created");
        Ok(PortalLinkCreated { token, row })
    }
}

/// A fresh random token (`hks_` + base64url of 32 bytes).
pub fn new_token() -> String {
    format!(
        "hks_{}",
        URL_SAFE_NO_PAD.encode(crate::ids::random_bytes::<32>())
    )
}

/// The stored form of a session or link token: its hash, scope and expiry.
pub fn session_row(
    token: &str,
    kind: SessionKind,
    owner: Option<String>,
    can_manage: bool,
    now: UnixMs,
    ttl_ms: i64,
) -> SessionRow {
    SessionRow {
        token_hash: hash_key(token).to_vec(),
        kind,
        owner,
        can_manage,
        created_at: now,
        expires_at: now + ttl_ms,
    }
}
