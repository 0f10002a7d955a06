//! Signing secrets: `whsec_` followed by the base64 of the key bytes (the Standard Webhooks format),
//! or any other string of 16 to 256 visible characters (the original webhook specification lets a
//! subscriber choose one), whose UTF-8 bytes are then the key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::fmt;

pub const SECRET_PREFIX: &str = "whsec_";
/// Key sizes accepted from callers who bring their own secret (Standard Webhooks: 24 to 64 bytes).
pub const MIN_KEY_BYTES: usize = 24;
pub const MAX_KEY_BYTES: usize = 64;
/// Length bounds, in characters, of a secret that does not start with `whsec_`.
pub const MIN_TEXT_CHARS: usize = 16;
pub const MAX_TEXT_CHARS: usize = 256;

/// A subscription's signing secret. The string form is exactly what the subscriber received; the key
/// bytes are what HMAC uses for the Standard Webhooks signature. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret {
    /// `whsec_<base64>` or the subscriber's own string, as handed to the subscriber.
    text: String,
    /// The decoded key bytes (24 to 64 of them) of a `whsec_` secret, else the text's UTF-8 bytes.
    key: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error(
        "must be '{SECRET_PREFIX}' and base64, or {MIN_TEXT_CHARS} to {MAX_TEXT_CHARS} characters"
    )]
    WrongTextLength,
    #[error("must not contain control characters")]
    ControlCharacter,
    #[error("the part after '{SECRET_PREFIX}' must be standard base64")]
    NotBase64,
    #[error("must encode {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes of key material")]
    WrongLength,
}

impl SigningSecret {
    /// A secret made from freshly generated key bytes (the server supplies 32 random bytes).
    pub fn from_key(key: &[u8]) -> Self {
        Self {
            text: format!("{SECRET_PREFIX}{}", STANDARD.encode(key)),
            key: key.to_vec(),
        }
    }

    /// Parses a secret supplied by a caller or read back from storage.
    pub fn parse(raw: &str) -> Result<Self, SecretError> {
        if raw.chars().any(char::is_control) {
            return Err(SecretError::ControlCharacter);
        }
        let Some(encoded) = raw.strip_prefix(SECRET_PREFIX) else {
            if !(MIN_TEXT_CHARS..=MAX_TEXT_CHARS).contains(&raw.chars().count()) {
                return Err(SecretError::WrongTextLength);
            }
            return Ok(Self {
                text: raw.to_owned(),
                key: raw.as_bytes().to_vec(),
            });
        };
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::NotBase64)?;
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
            return Err(SecretError::WrongLength);
        }
        Ok(Self {
            text: raw.to_owned(),
            key,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn key_bytes(&self) -> &[u8] {
        &self.key
    }

    /// What a Standard Webhooks library must be given to verify with this secret: `whsec_` + base64
    /// of the key bytes (for a `whsec_` secret, the same key as the secret itself).
    pub fn standard_webhooks_form(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secret_round_trips() {
        let secret = SigningSecret::from_key(&[7u8; 32]);
        assert!(secret.as_str().starts_with("whsec_"));
        let parsed = SigningSecret::parse(secret.as_str()).unwrap();
        assert_eq!(parsed.key_bytes(), &[7u8; 32]);
        assert_eq!(parsed, secret);
    }

    #[test]
    fn parse_rules() {
        let ok = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        assert_eq!(SigningSecret::parse(ok).unwrap().key_bytes().len(), 24);
        let cases = [
            ("whsec_!!!notbase64", SecretError::NotBase64),
            ("whsec_c2hvcnQ=", SecretError::WrongLength),
            ("fifteen-chars-x", SecretError::WrongTextLength),
            ("", SecretError::WrongTextLength),
            ("sixteen-chars-ok\n", SecretError::ControlCharacter),
            ("with a tab\tinside it", SecretError::ControlCharacter),
            (
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\u{7f}",
                SecretError::ControlCharacter,
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(SigningSecret::parse(raw), Err(expected), "{raw}");
        }
        let too_long = format!("whsec_{}", STANDARD.encode([1u8; 65]));
        assert_eq!(
            SigningSecret::parse(&too_long),
            Err(SecretError::WrongLength)
        );
    }

    #[test]
    fn any_visible_text_is_a_secret_keyed_by_its_utf8_bytes() {
        // The original specification's default: 64 hex characters from randomBytes(32).
        let hex = "a".repeat(64);
        let cases = [
            "sixteen-chars-ok".to_owned(),
            hex,
            "é".repeat(MAX_TEXT_CHARS),
            "a secret with spaces and ünïcode ✓".to_owned(),
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
        ];
        for text in cases {
            let secret = SigningSecret::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(secret.as_str(), text);
            assert_eq!(secret.key_bytes(), text.as_bytes());
            let standard = hookd_verify::decode_secret(&secret.standard_webhooks_form()).unwrap();
            assert_eq!(standard, text.as_bytes());
        }
        let too_long = "x".repeat(MAX_TEXT_CHARS + 1);
        assert_eq!(
            SigningSecret::parse(&too_long),
            Err(SecretError::WrongTextLength)
        );
    }

    #[test]
    fn debug_redacts() {
        let secret = SigningSecret::from_key(&[9u8; 32]);
        assert!(!format!("{secret:?}").contains(secret.as_str()));
    }
}
