//! Cursor pagination: `?limit=&cursor=` in, `{"data": [...], "next_cursor": ...}` out.

use super::error::ApiError;
use crate::store::Cursor;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use utoipa::ToSchema;

pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 250;

/// A page of results, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageOf<T: ToSchema> {
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; null on the last page.
    pub next_cursor: Option<String>,
}

pub fn limit(raw: Option<u32>) -> Result<u32, ApiError> {
    match raw.unwrap_or(DEFAULT_LIMIT) {
        0 => Err(ApiError::invalid(
            "invalid_query",
            "limit",
            "must be at least 1",
        )),
        n if n > MAX_LIMIT => Err(ApiError::invalid(
            "invalid_query",
            "limit",
            format!("must be at most {MAX_LIMIT}"),
        )),
        n => Ok(n),
    }
}

/// Cursors are opaque to clients: base64url of `<created_at>:<id>`.
pub fn encode_cursor(cursor: &Cursor) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", cursor.created_at, cursor.id))
}

pub fn decode_cursor(raw: Option<&str>) -> Result<Option<Cursor>, ApiError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let invalid = || ApiError::invalid("invalid_cursor", "cursor", "not a cursor from this API");
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

    #[test]
    fn limits() {
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(limit(Some(250)).unwrap(), 250);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(251)).is_err());
    }
}
