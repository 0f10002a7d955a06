//! Wire format of timestamps: RFC 3339, UTC, millisecond precision.

/// `2025-01-15T10:30:00.123Z` for a Unix time in milliseconds (empty for out-of-range values).
pub fn rfc3339_ms(unix_ms: i64) -> String {
    let nanos = i128::from(unix_ms) * 1_000_000;
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
        return String::new();
    };
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&format).unwrap_or_default()
}

/// Parses RFC 3339 (any offset) into Unix milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Result<i64, time::error::Parse> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)?;
    Ok((at.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_736_937_000_123), "2025-01-15T10:30:00.123Z");
        assert_eq!(
            parse_rfc3339_ms("2025-01-15T10:30:00.123Z").unwrap(),
            1_736_937_000_123
        );
        assert_eq!(
            parse_rfc3339_ms("2025-01-15T11:30:00+01:00").unwrap(),
            1_736_937_000_000
        );
        assert!(parse_rfc3339_ms("yesterday").is_err());
    }
}
