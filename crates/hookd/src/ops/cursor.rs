//! Page cursors: `<created_at>.<id>`, the position of the last item of a page (Unix milliseconds
//! and the item's id). Clients treat them as opaque; the API's schema states their exact form
//! ([`CURSOR_PATTERN`]), and the API and the dashboard hand out and accept the same ones.

use super::OpsError;
use crate::store::Cursor;

/// The exact form of a cursor, as the API's schema states it: up to 15 digits of milliseconds
/// (never overflows an `i64`), a dot, then an id (every id hookd hands out is made of these
/// characters and is at most 64 of them; a cursor never needs more).
pub const CURSOR_PATTERN: &str = "^[0-9]{1,15}[.][A-Za-z0-9_-]{1,64}$";

pub fn encode_cursor(cursor: &Cursor) -> String {
    format!("{}.{}", cursor.created_at, cursor.id)
}

/// Parses a cursor that [`encode_cursor`] made: exactly the strings [`CURSOR_PATTERN`] matches.
pub fn decode_cursor(raw: Option<&str>) -> Result<Option<Cursor>, OpsError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let invalid = || OpsError::invalid("invalid_cursor", "cursor", "not a cursor from this API");
    let (created_at, id) = raw.split_once('.').ok_or_else(invalid)?;
    let digits_ok =
        (1..=15).contains(&created_at.len()) && created_at.bytes().all(|b| b.is_ascii_digit());
    let id_ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if !digits_ok || !id_ok {
        return Err(invalid());
    }
    Ok(Some(Cursor {
        created_at: created_at.parse().map_err(|_| invalid())?,
        id: id.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_rejects_garbage() {
        let cursor = Cursor {
            created_at: 1_700_000_000_000,
            id: "evt_01JD0Q6X0000000000000000".into(),
        };
        let encoded = encode_cursor(&cursor);
        assert_eq!(decode_cursor(Some(&encoded)).unwrap(), Some(cursor));
        assert_eq!(decode_cursor(None).unwrap(), None);
        let too_long_id = format!("1.{}", "a".repeat(65));
        for garbage in [
            "",
            "!!",
            "bm9jb2xvbg",
            "1700000000000",
            ".evt_a",
            "1700000000000.",
            "1700000000000.evt.a",
            "1234567890123456.evt_a",
            "-1.evt_a",
            "17e3.evt_a",
            too_long_id.as_str(),
        ] {
            assert!(decode_cursor(Some(garbage)).is_err(), "{garbage}");
        }
    }
}
