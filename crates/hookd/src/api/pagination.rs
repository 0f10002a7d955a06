//! Cursor pagination: `?limit=&cursor=` in, `{"data": [...], "next_cursor": ...}` out.

use super::error::ApiError;
pub use crate::ops::{decode_cursor, encode_cursor};
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(limit(Some(250)).unwrap(), 250);
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(251)).is_err());
    }
}
