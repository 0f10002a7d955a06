//! Identifiers: prefixed, time-sortable ids (`evt_01J...`) and client-supplied event ids.

use std::fmt;

/// Builds a prefixed ULID such as `evt_01JD0Q6X0000000000000000`: sortable by creation time.
/// The caller supplies the clock reading and the random bits (the core does no IO).
pub fn prefixed_ulid(prefix: &str, unix_ms: u64, random: u128) -> String {
    format!("{prefix}_{}", ulid::Ulid::from_parts(unix_ms, random))
}

/// Longest client-supplied event id.
pub const MAX_CLIENT_EVENT_ID_LEN: usize = 64;

/// An event id chosen by the publisher: `[A-Za-z0-9_-]{1,64}`. It becomes the signed `webhook-id`,
/// which is why a dot (the separator of the signed content) is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientEventId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientEventIdError {
    #[error("must be 1 to {MAX_CLIENT_EVENT_ID_LEN} characters")]
    Length,
    #[error("may contain only letters, digits, '_' and '-' (found {0:?})")]
    InvalidCharacter(char),
}

impl ClientEventId {
    pub fn parse(raw: &str) -> Result<Self, ClientEventIdError> {
        if raw.is_empty() || raw.len() > MAX_CLIENT_EVENT_ID_LEN {
            return Err(ClientEventIdError::Length);
        }
        match raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-')))
        {
            Some(bad) => Err(ClientEventIdError::InvalidCharacter(bad)),
            None => Ok(Self(raw.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for ClientEventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixed_ulids_sort_by_time() {
        let early = prefixed_ulid("evt", 1_000, u128::MAX);
        let late = prefixed_ulid("evt", 1_001, 0);
        assert!(early.starts_with("evt_"));
        assert_eq!(early.len(), 4 + 26);
        assert!(early < late);
    }

    #[test]
    fn client_event_ids() {
        for ok in ["a", "evt_123", "ORD-1_x", &"x".repeat(64)] {
            assert!(ClientEventId::parse(ok).is_ok(), "{ok:?}");
        }
        assert_eq!(ClientEventId::parse(""), Err(ClientEventIdError::Length));
        assert_eq!(
            ClientEventId::parse(&"x".repeat(65)),
            Err(ClientEventIdError::Length)
        );
        assert_eq!(
            ClientEventId::parse("evt.1"),
            Err(ClientEventIdError::InvalidCharacter('.'))
        );
        assert_eq!(
            ClientEventId::parse("a b"),
            Err(ClientEventIdError::InvalidCharacter(' '))
        );
    }
}
