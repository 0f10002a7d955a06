//! API keys: generation, hashing, and the check every `/api/...` request passes.
//!
//! Keys are 32 random bytes (`hookd_` + base64url). Only their SHA-256 is stored: the keys are
//! high-entropy, so a slow password hash would add latency without adding safety. A stored key
//! carries scopes and may be bound to one owner ([`Access`]); the configured key is always admin.

use crate::store::{ApiKeyRow, NewApiKey, Store, StoreResult};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hookd_core::scopes::{Scope, Scopes};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const KEY_PREFIX: &str = "hookd_";
/// How many leading characters of a key are stored in clear, to tell keys apart in listings.
const SHOWN_PREFIX_LEN: usize = KEY_PREFIX.len() + 6;

pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A fresh admin key: the secret text (shown once) and the row to store.
pub fn generate_api_key(name: &str, now_ms: i64) -> (String, NewApiKey) {
    generate_scoped_api_key(name, Access::admin(), now_ms)
}

/// A fresh key that may do what `access` allows: the secret text (shown once) and the row to store.
pub fn generate_scoped_api_key(name: &str, access: Access, now_ms: i64) -> (String, NewApiKey) {
    let key = format!(
        "{KEY_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(crate::ids::random_bytes::<32>())
    );
    let row = NewApiKey {
        id: crate::ids::new_id("key", now_ms),
        name: name.to_owned(),
        prefix: key[..SHOWN_PREFIX_LEN].to_owned(),
        hash: hash_key(&key).to_vec(),
        scopes: access.scopes,
        owner: access.owner,
        created_at: now_ms,
    };
    (key, row)
}

/// Failed authentications allowed per client address per minute before answering 429.
pub const AUTH_FAILURES_PER_MINUTE: u32 = 20;

/// Counts failed authentications per client address (GCRA: a burst of
/// [`AUTH_FAILURES_PER_MINUTE`], refilling at that rate).
pub struct FailedAuthLimiter {
    limiter: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
}

impl FailedAuthLimiter {
    pub fn new(per_minute: u32) -> Self {
        let quota = governor::Quota::per_minute(
            std::num::NonZeroU32::new(per_minute.max(1)).unwrap_or(std::num::NonZeroU32::MIN),
        );
        Self {
            limiter: governor::RateLimiter::keyed(quota),
        }
    }

    /// Records a failure from `address`; false when it is over the limit (answer 429).
    pub fn record_failure(&self, address: std::net::IpAddr) -> bool {
        let allowed = self.limiter.check_key(&address).is_ok();
        // Forget addresses whose budget is full again, so the table stays small.
        if self.limiter.len() > 10_000 {
            self.limiter.retain_recent();
        }
        allowed
    }
}

/// Shortest configured key (`api_key` / `HOOKD_API_KEY`) taken without a warning outside `--dev`.
/// Generated keys carry 256 random bits; a key this short or this uniform can be guessed.
pub const MIN_CONFIGURED_KEY_LEN: usize = 32;

/// Why a configured API key is weak, or `None`. A weak key is accepted (existing deployments keep
/// working) but `hookd serve` warns about it at every start outside `--dev`.
pub fn weak_key_reason(key: &str) -> Option<String> {
    if key.chars().count() < MIN_CONFIGURED_KEY_LEN {
        return Some(format!(
            "it is shorter than {MIN_CONFIGURED_KEY_LEN} characters"
        ));
    }
    let distinct: std::collections::BTreeSet<char> = key.chars().collect();
    if distinct.len() < 8 {
        return Some("it uses fewer than 8 distinct characters".into());
    }
    None
}

/// What the holder of a key may do: its scopes, and the one owner it is bound to, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub scopes: Scopes,
    /// Everything the key reaches belongs to this owner (its subscriptions, their deliveries, the
    /// events published to it); `None`: every owner.
    pub owner: Option<String>,
}

impl Access {
    /// Everything: the configured key, and keys from before scopes.
    pub fn admin() -> Self {
        Self {
            scopes: Scopes::admin(),
            owner: None,
        }
    }

    /// Admin over every owner: the only access that may sign in to the operator dashboard.
    pub fn is_operator(&self) -> bool {
        self.scopes.contains(Scope::Admin) && self.owner.is_none()
    }
}

/// Checks presented keys against the configured key (if any) and the stored, unrevoked ones.
///
/// Nothing is cached: every request reads the key from the store, so a key revoked on any node is
/// refused from the next request on.
#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    /// SHA-256 of `HOOKD_API_KEY` / `api_key`, when configured.
    configured_key_hash: Option<[u8; 32]>,
    /// Failed attempts per client address.
    pub failures: std::sync::Arc<FailedAuthLimiter>,
}

/// Who made an authenticated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    ConfiguredKey,
    StoredKey(ApiKeyRow),
}

impl Principal {
    pub fn access(&self) -> Access {
        match self {
            Principal::ConfiguredKey => Access::admin(),
            Principal::StoredKey(row) => Access {
                scopes: row.scopes.clone(),
                owner: row.owner.clone(),
            },
        }
    }
}

impl Authenticator {
    pub fn new(store: Store, configured_key: Option<&str>, failures_per_minute: u32) -> Self {
        Self {
            store,
            configured_key_hash: configured_key.map(hash_key),
            failures: std::sync::Arc::new(FailedAuthLimiter::new(failures_per_minute)),
        }
    }

    /// `Ok(None)` for an unknown or revoked key. The configured key is compared in constant time; a
    /// stored key is found by its hash, which reveals nothing about the key through timing.
    pub async fn authenticate(&self, presented: &str) -> StoreResult<Option<Principal>> {
        let presented_hash = hash_key(presented);
        if let Some(configured) = &self.configured_key_hash
            && bool::from(configured.ct_eq(&presented_hash))
        {
            return Ok(Some(Principal::ConfiguredKey));
        }
        Ok(self
            .store
            .admin
            .api_key_by_hash(&presented_hash)
            .await?
            .map(Principal::StoredKey))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_or_uniform_configured_keys_are_weak() {
        assert!(weak_key_reason("abc").is_some());
        assert!(weak_key_reason(&"a".repeat(64)).is_some());
        assert!(weak_key_reason("dev-key-change-me").is_some());
        assert_eq!(weak_key_reason("hk_3f9a1c7e5b2d8f4a6c0e9b1d7f3a5c8e"), None);
    }

    #[test]
    fn failures_are_limited_per_address() {
        let limiter = FailedAuthLimiter::new(3);
        let a: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let b: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        assert!((0..3).all(|_| limiter.record_failure(a)));
        assert!(
            !limiter.record_failure(a),
            "the fourth failure in a minute is refused"
        );
        assert!(
            limiter.record_failure(b),
            "other addresses are not affected"
        );
    }

    #[test]
    fn generated_keys_are_unique_and_hashed() {
        let (key_a, row_a) = generate_api_key("a", 1);
        assert_eq!(weak_key_reason(&key_a), None, "generated keys are strong");
        let (key_b, _) = generate_api_key("b", 1);
        assert_ne!(key_a, key_b);
        assert!(key_a.starts_with(KEY_PREFIX));
        assert!(key_a.starts_with(&row_a.prefix));
        assert_eq!(row_a.hash, hash_key(&key_a).to_vec());
        assert_ne!(row_a.hash, key_a.as_bytes());
    }
}
