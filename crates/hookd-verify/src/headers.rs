//! Case-insensitive header lookup over the header containers receivers already have.
//!
//! HTTP header names are case-insensitive (RFC 9110 §5.1), and proxies do rewrite their case, so every
//! implementation here must find `Webhook-Id` when asked for `webhook-id`.

use std::collections::HashMap;

/// Read access to request headers, by case-insensitive name.
pub trait Headers {
    /// The value of the first header called `name` (any case), if present and valid UTF-8.
    fn header(&self, name: &str) -> Option<&str>;
}

/// Lets callers pass `&&[...]`, `&Vec<...>` and so on without thinking about references.
impl<H: Headers + ?Sized> Headers for &H {
    fn header(&self, name: &str) -> Option<&str> {
        (**self).header(name)
    }
}

/// Pairs of `&str` or `String` (or anything string-like), as many frameworks hand them over.
impl<K: AsRef<str>, V: AsRef<str>> Headers for [(K, V)] {
    fn header(&self, name: &str) -> Option<&str> {
        let (_, value) = self
            .iter()
            .find(|(key, _)| key.as_ref().eq_ignore_ascii_case(name))?;
        Some(value.as_ref())
    }
}

/// Arrays too, so that `verify(secret, &[("webhook-id", id), ...], ...)` works without a slice cast.
impl<K: AsRef<str>, V: AsRef<str>, const N: usize> Headers for [(K, V); N] {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

impl<K: AsRef<str>, V: AsRef<str>> Headers for Vec<(K, V)> {
    fn header(&self, name: &str) -> Option<&str> {
        self.as_slice().header(name)
    }
}

impl Headers for HashMap<String, String> {
    fn header(&self, name: &str) -> Option<&str> {
        // The exact-key lookup is the common case; the scan covers maps built with other casings.
        let value = match self.get(name) {
            Some(value) => value,
            None => {
                self.iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(name))?
                    .1
            }
        };
        Some(value)
    }
}

#[cfg(feature = "http")]
impl Headers for http::HeaderMap {
    fn header(&self, name: &str) -> Option<&str> {
        // `HeaderMap` stores names lowercased and lowercases `&str` keys on lookup.
        self.get(name)?.to_str().ok()
    }
}
