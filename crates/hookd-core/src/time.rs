//! Wire format of timestamps: RFC 3339, UTC, millisecond precision.

/// `2025-01-15T10:30:00.123Z` for a Unix time in milliseconds (empty for out-of-range values).
///
/// Written digit by digit: the worker formats the event time for every attempt, and `time`'s
/// formatter took twice as long as encoding a whole 1 KB envelope (see BENCHMARKS.md, "Criterion").
pub fn rfc3339_ms(unix_ms: i64) -> String {
    let nanos = i128::from(unix_ms) * 1_000_000;
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
        return String::new();
    };
    let (year, month, day) = at.to_calendar_date();
    let Ok(year) = u16::try_from(year) else {
        return formatted_by_time(at);
    };
    let (hour, minute, second, milli) = at.to_hms_milli();
    let mut out = String::with_capacity(24);
    push_digits(&mut out, year, 4);
    out.push('-');
    push_digits(&mut out, u8::from(month).into(), 2);
    out.push('-');
    push_digits(&mut out, day.into(), 2);
    out.push('T');
    push_digits(&mut out, hour.into(), 2);
    out.push(':');
    push_digits(&mut out, minute.into(), 2);
    out.push(':');
    push_digits(&mut out, second.into(), 2);
    out.push('.');
    push_digits(&mut out, milli, 3);
    out.push('Z');
    out
}

/// `value` as exactly `width` decimal digits, zero-padded (`value` is below `10^width`).
fn push_digits(out: &mut String, value: u16, width: u32) {
    for place in (0..width).rev() {
        let digit = (value / 10u16.pow(place) % 10) as u8;
        out.push(char::from(b'0' + digit));
    }
}

/// The general formatter, for years before 0 (never an event's time; kept exact all the same).
fn formatted_by_time(at: time::OffsetDateTime) -> String {
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
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(-62_167_219_200_000), "0000-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(-62_167_219_200_001), "-0001-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(253_402_300_800_000), "");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn digit_by_digit_equals_times_formatter(unix_ms in -62_167_219_200_000i64..253_402_300_800_000) {
            let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000).unwrap();
            prop_assert_eq!(rfc3339_ms(unix_ms), formatted_by_time(at));
        }
    }
}
