//! Event types (`order.created`) and the filters subscriptions use to pick them (`order.*`, `*`).

use std::fmt;

/// Longest accepted event type name, in bytes.
pub const MAX_EVENT_TYPE_LEN: usize = 128;

/// Why a string is not a valid event type or filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventTypeError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {MAX_EVENT_TYPE_LEN} characters")]
    TooLong,
    #[error("may contain only letters, digits, '_', '.' and '-' (found {0:?})")]
    InvalidCharacter(char),
    #[error("a wildcard is allowed only as '*' or as a trailing '.*' (e.g. 'order.*')")]
    MisplacedWildcard,
}

/// An event type name such as `order.created`: `[a-zA-Z0-9_.-]{1,128}`. Valid by construction.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType(String);

impl EventType {
    pub fn parse(raw: &str) -> Result<Self, EventTypeError> {
        check_name(raw)?;
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_name(raw: &str) -> Result<(), EventTypeError> {
    if raw.is_empty() {
        return Err(EventTypeError::Empty);
    }
    if raw.len() > MAX_EVENT_TYPE_LEN {
        return Err(EventTypeError::TooLong);
    }
    match raw
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        Some(bad) => Err(EventTypeError::InvalidCharacter(bad)),
        None => Ok(()),
    }
}

/// What a subscription listens to: one exact type, every type, or every type under a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EventFilter {
    /// `*`: every event.
    All,
    /// `order.*`: every type that starts with `order.` (the stored prefix includes the dot).
    Prefix(String),
    /// `order.created`: exactly that type.
    Exact(EventType),
}

impl EventFilter {
    pub fn parse(raw: &str) -> Result<Self, EventTypeError> {
        if raw == "*" {
            return Ok(Self::All);
        }
        if let Some(prefix) = raw.strip_suffix(".*") {
            if prefix.contains('*') {
                return Err(EventTypeError::MisplacedWildcard);
            }
            check_name(prefix)?;
            return Ok(Self::Prefix(format!("{prefix}.")));
        }
        if raw.contains('*') {
            return Err(EventTypeError::MisplacedWildcard);
        }
        Ok(Self::Exact(EventType::parse(raw)?))
    }

    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            Self::All => true,
            Self::Prefix(prefix) => event_type.starts_with(prefix.as_str()),
            Self::Exact(exact) => exact.as_str() == event_type,
        }
    }
}

impl fmt::Display for EventFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::All => f.write_str("*"),
            Self::Prefix(prefix) => write!(f, "{prefix}*"),
            Self::Exact(exact) => f.write_str(exact.as_str()),
        }
    }
}

/// True when any of `filters` selects `event_type`.
pub fn any_matches(filters: &[EventFilter], event_type: &str) -> bool {
    filters.iter().any(|filter| filter.matches(event_type))
}

/// Whether the subscription `subscription_id` with `filters` gets a delivery of an event of
/// `event_type` published to `only` (one subscription: a test event) or, with `None`, to every
/// subscription whose filters match.
pub fn receives(
    subscription_id: &str,
    filters: &[EventFilter],
    event_type: &str,
    only: Option<&str>,
) -> bool {
    match only {
        Some(only) => only == subscription_id,
        None => any_matches(filters, event_type),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_type_validation() {
        let cases: &[(&str, Result<(), EventTypeError>)] = &[
            ("order.created", Ok(())),
            ("a", Ok(())),
            ("Order_Created-v2.x", Ok(())),
            ("", Err(EventTypeError::Empty)),
            ("order created", Err(EventTypeError::InvalidCharacter(' '))),
            ("order/created", Err(EventTypeError::InvalidCharacter('/'))),
            ("ordér", Err(EventTypeError::InvalidCharacter('é'))),
            ("order.*", Err(EventTypeError::InvalidCharacter('*'))),
        ];
        for (raw, expected) in cases {
            assert_eq!(
                &EventType::parse(raw).map(|_| ()),
                expected,
                "input {raw:?}"
            );
        }
        assert!(EventType::parse(&"a".repeat(128)).is_ok());
        assert_eq!(
            EventType::parse(&"a".repeat(129)),
            Err(EventTypeError::TooLong)
        );
    }

    #[test]
    fn filter_parsing() {
        assert_eq!(EventFilter::parse("*"), Ok(EventFilter::All));
        assert_eq!(
            EventFilter::parse("order.*"),
            Ok(EventFilter::Prefix("order.".into()))
        );
        assert_eq!(
            EventFilter::parse("a.b.*").map(|f| f.to_string()),
            Ok("a.b.*".into())
        );
        for bad in [
            "order*",
            "*.created",
            "or*der.created",
            "**",
            ".*",
            "order.*.*",
        ] {
            assert!(
                EventFilter::parse(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn filter_matching() {
        // (filter, event type, expected)
        let cases = [
            ("*", "order.created", true),
            ("*", "x", true),
            ("order.*", "order.created", true),
            ("order.*", "order.line.added", true),
            ("order.*", "order", false),
            ("order.*", "orders.created", false),
            ("order.*", "payment.failed", false),
            ("order.created", "order.created", true),
            ("order.created", "order.created.v2", false),
            ("order.created", "Order.created", false),
        ];
        for (filter, event_type, expected) in cases {
            let parsed = EventFilter::parse(filter).unwrap();
            assert_eq!(
                parsed.matches(event_type),
                expected,
                "{filter} vs {event_type}"
            );
        }
        let filters = [
            EventFilter::parse("payment.*").unwrap(),
            EventFilter::parse("order.created").unwrap(),
        ];
        assert!(any_matches(&filters, "payment.failed"));
        assert!(any_matches(&filters, "order.created"));
        assert!(!any_matches(&filters, "order.updated"));
        assert!(!any_matches(&[], "order.updated"));
    }

    #[test]
    fn a_test_event_reaches_only_its_subscription_whatever_the_filters() {
        let all = [EventFilter::parse("*").unwrap()];
        assert!(receives("wh_1", &all, "order.created", None));
        assert!(receives("wh_1", &[], "hookd.test", Some("wh_1")));
        assert!(!receives("wh_2", &all, "hookd.test", Some("wh_1")));
        assert!(!receives("wh_1", &[], "order.created", None));
    }
}
