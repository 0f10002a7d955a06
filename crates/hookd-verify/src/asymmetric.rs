//! Standard Webhooks `v1a`: Ed25519 signatures over `{msg_id}.{timestamp}.{body}`, so a receiver
//! verifies with a public key and holds no shared secret.
//!
//! Keys are written as Standard Webhooks writes them: `whpk_` + base64 of the 32-byte public key, and
//! `whsk_` + base64 of the signing key: the 32-byte seed followed by the 32-byte public key (the
//! 64-byte form libsodium and PyNaCl call the secret key); the 32-byte seed alone is accepted too.

use crate::VerifyError;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_PAD_INDIFFERENT};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

pub const SIGNING_KEY_PREFIX: &str = "whsk_";
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";

/// Why a `whsk_` signing key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("must start with '{SIGNING_KEY_PREFIX}'")]
    MissingPrefix,
    #[error("the part after '{SIGNING_KEY_PREFIX}' must be standard base64")]
    NotBase64,
    #[error("must encode a 32-byte seed, or the seed and its 32-byte public key")]
    WrongLength,
    #[error("the public key half does not belong to the seed")]
    MismatchedPublicKey,
}

/// An Ed25519 key pair that signs `v1a`. `Debug` never prints the private half.
#[derive(Clone)]
pub struct SigningKeyPair(SigningKey);

impl SigningKeyPair {
    /// The pair for a 32-byte seed (a server draws 32 random bytes).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// Parses `whsk_<base64>` of 32 (seed) or 64 (seed ‖ public key) bytes.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let encoded = text
            .strip_prefix(SIGNING_KEY_PREFIX)
            .ok_or(KeyError::MissingPrefix)?;
        let bytes = STANDARD_PAD_INDIFFERENT
            .decode(encoded)
            .map_err(|_| KeyError::NotBase64)?;
        let seed: [u8; 32] = match bytes.len() {
            32 | 64 => bytes[..32].try_into().map_err(|_| KeyError::WrongLength)?,
            _ => return Err(KeyError::WrongLength),
        };
        let pair = Self::from_seed(&seed);
        if bytes.len() == 64 && bytes[32..] != pair.0.verifying_key().to_bytes() {
            return Err(KeyError::MismatchedPublicKey);
        }
        Ok(pair)
    }

    /// `whsk_` + base64 of the seed and the public key (64 bytes).
    pub fn to_text(&self) -> String {
        let mut bytes = self.0.to_bytes().to_vec();
        bytes.extend_from_slice(&self.0.verifying_key().to_bytes());
        format!("{SIGNING_KEY_PREFIX}{}", STANDARD.encode(bytes))
    }

    /// `whpk_` + base64 of the 32-byte public key: what receivers verify with.
    pub fn public_key(&self) -> String {
        format!(
            "{PUBLIC_KEY_PREFIX}{}",
            STANDARD.encode(self.0.verifying_key().to_bytes())
        )
    }

    /// A short stable name for the key: `kid_` + hex of the first 8 bytes of SHA-256 of the public
    /// key, so a receiver holding several keys can tell them apart.
    pub fn key_id(&self) -> String {
        key_id_of(&self.0.verifying_key())
    }

    /// `v1a,` + base64 of the Ed25519 signature over `{msg_id}.{timestamp}.{body}`.
    pub fn sign_v1a(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let message = signed_content(msg_id, timestamp, body);
        format!("v1a,{}", STANDARD.encode(self.0.sign(&message).to_bytes()))
    }
}

impl std::fmt::Debug for SigningKeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("SigningKeyPair")
            .field(&self.public_key())
            .finish()
    }
}

/// [`SigningKeyPair::key_id`] of a public key.
pub fn key_id_of(key: &VerifyingKey) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(key.to_bytes());
    format!("kid_{}", hex::encode(&digest[..8]))
}

/// Decodes a `whpk_<base64>` (or bare base64) Ed25519 public key.
pub fn decode_public_key(text: &str) -> Result<VerifyingKey, VerifyError> {
    let encoded = text.strip_prefix(PUBLIC_KEY_PREFIX).unwrap_or(text);
    let bytes: [u8; 32] = STANDARD_PAD_INDIFFERENT
        .decode(encoded)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or(VerifyError::InvalidPublicKey)?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| VerifyError::InvalidPublicKey)
}

/// True if any `v1a,<base64>` entry of the space-separated header is a valid signature by `key`.
pub(crate) fn any_v1a_matches(
    key: &VerifyingKey,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    signatures: &str,
) -> bool {
    let mut message = None;
    signatures
        .split_whitespace()
        .any(|entry| match entry.split_once(',') {
            Some(("v1a", encoded)) => {
                let Some(signature) = STANDARD
                    .decode(encoded)
                    .ok()
                    .and_then(|bytes| ed25519_dalek::Signature::from_slice(&bytes).ok())
                else {
                    return false;
                };
                let message =
                    message.get_or_insert_with(|| signed_content(msg_id, timestamp, body));
                key.verify_strict(message, &signature).is_ok()
            }
            _ => false,
        })
}

fn signed_content(msg_id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let timestamp = timestamp.to_string();
    let mut message = Vec::with_capacity(msg_id.len() + timestamp.len() + body.len() + 2);
    message.extend_from_slice(msg_id.as_bytes());
    message.push(b'.');
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    message
}
