//! Per-subscription custom headers: validated names and values, never overriding what hookd sets.

use std::collections::BTreeMap;

pub const MAX_CUSTOM_HEADERS: usize = 20;
pub const MAX_HEADER_VALUE_LEN: usize = 1024;

/// Headers hookd sets itself (or that HTTP owns); a subscription may not set these.
pub const RESERVED: &[&str] = &[
    "content-type",
    "content-length",
    "user-agent",
    "host",
    "connection",
    "transfer-encoding",
    "te",
    "upgrade",
    "trailer",
    "keep-alive",
    "proxy-authorization",
    "expect",
];
pub const RESERVED_PREFIXES: &[&str] = &["webhook-", "x-webhook-"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("at most {MAX_CUSTOM_HEADERS} custom headers")]
    TooMany,
    #[error("{0:?} is not a valid header name")]
    InvalidName(String),
    #[error("{0:?} is set by hookd and cannot be overridden")]
    Reserved(String),
    #[error("the value of {0:?} must be visible ASCII, at most {MAX_HEADER_VALUE_LEN} characters")]
    InvalidValue(String),
}

/// Validates custom headers; returns them with lowercase names (HTTP names are case-insensitive).
pub fn parse_custom_headers(
    raw: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, HeaderError> {
    if raw.len() > MAX_CUSTOM_HEADERS {
        return Err(HeaderError::TooMany);
    }
    raw.iter()
        .map(|(name, value)| {
            let lower = name.to_ascii_lowercase();
            let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if lower.is_empty() || !lower.chars().all(token) {
                return Err(HeaderError::InvalidName(name.clone()));
            }
            if RESERVED.contains(&lower.as_str())
                || RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p))
            {
                return Err(HeaderError::Reserved(name.clone()));
            }
            let visible = |c: char| c == ' ' || c == '\t' || c.is_ascii_graphic();
            if value.len() > MAX_HEADER_VALUE_LEN || !value.chars().all(visible) {
                return Err(HeaderError::InvalidValue(name.clone()));
            }
            Ok((lower, value.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(name: &str, value: &str) -> Result<BTreeMap<String, String>, HeaderError> {
        parse_custom_headers(&BTreeMap::from([(name.to_owned(), value.to_owned())]))
    }

    #[test]
    fn rules() {
        assert_eq!(
            one("X-Team", "billing").unwrap(),
            BTreeMap::from([("x-team".to_owned(), "billing".to_owned())])
        );
        assert!(one("Authorization", "Bearer abc").is_ok());
        for reserved in [
            "Content-Type",
            "webhook-signature",
            "X-Webhook-ID",
            "Host",
            "User-Agent",
        ] {
            assert_eq!(
                one(reserved, "x"),
                Err(HeaderError::Reserved(reserved.into())),
                "{reserved}"
            );
        }
        for bad in ["", "bad name", "x:y", "é"] {
            assert_eq!(one(bad, "x"), Err(HeaderError::InvalidName(bad.into())));
        }
        assert_eq!(
            one("x-a", "line\nbreak"),
            Err(HeaderError::InvalidValue("x-a".into()))
        );
        assert_eq!(
            one("x-a", &"v".repeat(1025)),
            Err(HeaderError::InvalidValue("x-a".into()))
        );
        let many: BTreeMap<_, _> = (0..21)
            .map(|i| (format!("x-{i}"), "v".to_owned()))
            .collect();
        assert_eq!(parse_custom_headers(&many), Err(HeaderError::TooMany));
    }
}
