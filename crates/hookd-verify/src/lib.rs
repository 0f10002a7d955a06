//! Sign and verify webhook signatures: [Standard Webhooks] (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`) and hookd's legacy hex `X-Webhook-Signature`.
//!
//! The crate does no IO and reads no clock: callers pass `now_unix`, so the same code serves the hookd
//! server (which signs) and any receiver (which verifies), and tests are deterministic.
//!
//! ```
//! use hookd_verify::{decode_secret, sign_v1, verify, VerifyError};
//!
//! let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
//! let body = br#"{"test": 2432232314}"#;
//! let signature = sign_v1(&decode_secret(secret)?, "msg_1", 1_614_265_330, body);
//! let headers = [
//!     ("webhook-id", "msg_1"),
//!     ("webhook-timestamp", "1614265330"),
//!     ("webhook-signature", signature.as_str()),
//! ];
//!
//! let verified = verify(secret, &headers, body, 1_614_265_330)?;
//! assert_eq!(verified.msg_id, "msg_1");
//! assert_eq!(verify(secret, &headers, b"tampered", 1_614_265_330), Err(VerifyError::NoMatchingSignature));
//! # Ok::<(), VerifyError>(())
//! ```
//!
//! [Standard Webhooks]: https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md

mod asymmetric;
mod headers;

pub use asymmetric::{
    KeyError, PUBLIC_KEY_PREFIX, SIGNING_KEY_PREFIX, SigningKeyPair, decode_public_key, key_id_of,
};
pub use headers::Headers;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

/// How far `webhook-timestamp` may be from the receiver's clock, either way; the Standard Webhooks default.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// The prefix Standard Webhooks puts on secrets so they are recognisable in config files and leaks.
const SECRET_PREFIX: &str = "whsec_";

/// Why a webhook failed verification. Each variant names the check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing required header `{0}`")]
    MissingHeader(&'static str),
    #[error("`webhook-timestamp` is not an integer number of Unix seconds")]
    InvalidTimestamp,
    #[error("`webhook-timestamp` is older than the allowed tolerance (possible replay)")]
    TimestampTooOld,
    #[error("`webhook-timestamp` is further in the future than the allowed tolerance")]
    TimestampTooNew,
    #[error("no signature in `webhook-signature` matches the message")]
    NoMatchingSignature,
    #[error("secret is empty or not valid base64 (expected `whsec_<base64>` or bare base64)")]
    InvalidSecret,
    #[error("public key is not a base64 Ed25519 key (expected `whpk_<base64 of 32 bytes>`)")]
    InvalidPublicKey,
}

/// What a successful verification vouches for: the sender's message id and signing time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The `webhook-id` header; receivers use it to drop duplicate deliveries.
    pub msg_id: String,
    /// The `webhook-timestamp` header, in Unix seconds, already checked against the tolerance.
    pub timestamp: i64,
}

/// Decodes a `whsec_<base64>` or bare base64 secret into HMAC key bytes.
///
/// Padding is accepted whether present or not, since secrets are pasted by hand from dashboards.
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, VerifyError> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    match STANDARD_PAD_INDIFFERENT.decode(encoded) {
        Ok(key) if !key.is_empty() => Ok(key),
        _ => Err(VerifyError::InvalidSecret),
    }
}

/// Signs a message the Standard Webhooks way: `v1,` + base64 of HMAC-SHA256 over `{msg_id}.{timestamp}.{body}`.
pub fn sign_v1(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = v1_tag(key, msg_id, timestamp, body);
    format!("v1,{}", STANDARD.encode(tag))
}

/// The legacy `X-Webhook-Signature`: lowercase hex HMAC-SHA256 of the body, keyed with the secret's
/// text as given (a `whsec_` prefix included), exactly like Node's `createHmac('sha256', secret)`.
pub fn sign_hex(secret_text: &str, body: &[u8]) -> String {
    hex::encode(hmac_sha256(secret_text.as_bytes(), &[body]))
}

/// Checks a legacy hex signature (either case) in constant time.
pub fn verify_hex(secret_text: &str, signature_hex: &str, body: &[u8]) -> Result<(), VerifyError> {
    let Ok(claimed) = hex::decode(signature_hex) else {
        return Err(VerifyError::NoMatchingSignature);
    };
    let expected = hmac_sha256(secret_text.as_bytes(), &[body]);
    match bool::from(expected.as_slice().ct_eq(&claimed)) {
        true => Ok(()),
        false => Err(VerifyError::NoMatchingSignature),
    }
}

/// Verifies a Standard Webhooks request with one secret and the default tolerance.
///
/// A shortcut for [`Verifier::new`] then [`Verifier::verify`]; build a `Verifier` once instead when
/// verifying many requests, rotating secrets or changing the tolerance.
pub fn verify(
    secret: &str,
    headers: &(impl Headers + ?Sized),
    body: &[u8],
    now_unix: i64,
) -> Result<Verified, VerifyError> {
    Verifier::new(secret)?.verify(headers, body, now_unix)
}

/// A reusable Standard Webhooks verifier: secrets and public keys decoded once, any of them may
/// match (`v1` signatures against the secrets, `v1a` against the public keys).
#[derive(Clone)]
pub struct Verifier {
    /// Decoded HMAC keys; during rotation both the old and the new secret are here.
    keys: Vec<Vec<u8>>,
    /// Ed25519 public keys for `v1a`. This and `keys` are never both empty.
    public_keys: Vec<ed25519_dalek::VerifyingKey>,
    /// Allowed clock difference in seconds, never negative.
    tolerance_secs: i64,
}

impl Verifier {
    /// Decodes `secret` now, so a bad secret fails at startup rather than on the first request.
    pub fn new(secret: &str) -> Result<Self, VerifyError> {
        let keys = vec![decode_secret(secret)?];
        Ok(Self {
            keys,
            public_keys: Vec::new(),
            tolerance_secs: DEFAULT_TOLERANCE_SECS,
        })
    }

    /// A verifier of `v1a` signatures by the Ed25519 public key `whpk_<base64>`, holding no secret.
    pub fn from_public_key(public_key: &str) -> Result<Self, VerifyError> {
        Ok(Self {
            keys: Vec::new(),
            public_keys: vec![decode_public_key(public_key)?],
            tolerance_secs: DEFAULT_TOLERANCE_SECS,
        })
    }

    /// Also accepts `v1a` signatures by `public_key` (several during a key rotation).
    pub fn with_public_key(mut self, public_key: &str) -> Result<Self, VerifyError> {
        self.public_keys.push(decode_public_key(public_key)?);
        Ok(self)
    }

    /// Also accepts signatures made with `secret`, so senders can rotate without failed deliveries.
    pub fn with_secret(mut self, secret: &str) -> Result<Self, VerifyError> {
        self.keys.push(decode_secret(secret)?);
        Ok(self)
    }

    /// Sets the allowed clock difference; negative values are treated as zero.
    pub fn tolerance_secs(mut self, tolerance_secs: i64) -> Self {
        self.tolerance_secs = tolerance_secs.max(0);
        self
    }

    /// Checks headers first, then the timestamp, then the signatures, so the cheapest failure wins.
    pub fn verify(
        &self,
        headers: &(impl Headers + ?Sized),
        body: &[u8],
        now_unix: i64,
    ) -> Result<Verified, VerifyError> {
        let msg_id = required(headers, "webhook-id")?;
        let timestamp_text = required(headers, "webhook-timestamp")?;
        let signatures = required(headers, "webhook-signature")?;
        let timestamp = parse_timestamp(timestamp_text)?;
        self.check_timestamp(timestamp, now_unix)?;
        let signed_by =
            |key: &Vec<u8>| any_v1_matches(&v1_tag(key, msg_id, timestamp, body), signatures);
        let signed_by_pair = |key: &ed25519_dalek::VerifyingKey| {
            asymmetric::any_v1a_matches(key, msg_id, timestamp, body, signatures)
        };
        if !self.keys.iter().any(signed_by) && !self.public_keys.iter().any(signed_by_pair) {
            return Err(VerifyError::NoMatchingSignature);
        }
        let msg_id = msg_id.to_owned();
        Ok(Verified { msg_id, timestamp })
    }

    fn check_timestamp(&self, timestamp: i64, now_unix: i64) -> Result<(), VerifyError> {
        // Saturating, so attacker-chosen extremes like i64::MIN land on "too old" instead of overflowing.
        let age = now_unix.saturating_sub(timestamp);
        if age > self.tolerance_secs {
            return Err(VerifyError::TimestampTooOld);
        }
        if age < -self.tolerance_secs {
            return Err(VerifyError::TimestampTooNew);
        }
        Ok(())
    }
}

/// Hand-written so that logging a `Verifier` can never print the keys.
impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("keys", &format_args!("[{} redacted]", self.keys.len()))
            .field("public_keys", &self.public_keys.len())
            .field("tolerance_secs", &self.tolerance_secs)
            .finish()
    }
}

fn required<'h>(
    headers: &'h (impl Headers + ?Sized),
    name: &'static str,
) -> Result<&'h str, VerifyError> {
    headers.header(name).ok_or(VerifyError::MissingHeader(name))
}

/// Whole Unix seconds only; surrounding whitespace is tolerated because some proxies re-fold headers.
fn parse_timestamp(text: &str) -> Result<i64, VerifyError> {
    text.trim()
        .parse()
        .map_err(|_| VerifyError::InvalidTimestamp)
}

/// True if any `v1,<base64>` entry of the space-separated header equals `expected`.
/// Unknown versions and undecodable entries are skipped, as the spec asks, so new schemes can be added.
fn any_v1_matches(expected: &[u8], signatures: &str) -> bool {
    signatures
        .split_whitespace()
        .any(|entry| match entry.split_once(',') {
            Some(("v1", encoded)) => STANDARD
                .decode(encoded)
                .is_ok_and(|claimed| bool::from(expected.ct_eq(&claimed))),
            _ => false,
        })
}

fn v1_tag(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
    let timestamp = timestamp.to_string();
    let parts = [msg_id.as_bytes(), b".", timestamp.as_bytes(), b".", body];
    hmac_sha256(key, &parts)
}

/// HMAC-SHA256 over the concatenation of `parts`, fed piece by piece so the body is never copied.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC hashes or pads keys of any length; hmac 0.13 only returns `Err` for fixed-size-key MACs.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests;
