//! Page cursors, opaque to clients: base64url of `<created_at>:<id>`. The API and the dashboard
//! hand out and accept the same ones.

use super::OpsError;
use crate::store::Cursor;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub fn encode_cursor(cursor: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", cursor.created_at, cursor.id))
}

pub fn decode_cursor(raw: Option<&str>) -> Result<Option<Cursor>, OpsError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let invalid = || OpsError::invalid("invalid_cursor", "cursor", "not a cursor from this API");
    let text = URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(invalid)?;
    let (created_at, id) = text.split_once(':').ok_or_else(invalid)?;
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
            id: "evt_a:b".into(),
        };
        let encoded = encode_cursor(&cursor);
        assert_eq!(decode_cursor(Some(&encoded)).unwrap(), Some(cursor));
        assert_eq!(decode_cursor(None).unwrap(), None);
        for garbage in ["!!", "bm9jb2xvbg", "eDp5"] {
            assert!(decode_cursor(Some(garbage)).is_err(), "{garbage}");
        }
    }
}
