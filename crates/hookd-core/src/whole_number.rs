//! Integer fields of request bodies. JSON Schema counts `5000.0` as an integer (a number whose
//! fractional part is zero), and so does JavaScript, so every integer field accepts it as `5000`;
//! `5000.5`, and a whole number out of the field's range, are still refused.
//!
//! Use it with `#[serde(default, deserialize_with = "whole_number::deserialize")]` on a `u32`,
//! `u64` or `i64` field, a `Vec` of one or an `Option` of either, and with
//! `deserialize_with = "whole_number::present"` on an `Option<Option<_>>` field whose `null` means
//! something other than leaving it out.

use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// An integer type a whole number converts to when it fits.
pub trait Integer: Sized + TryFrom<i128> {
    /// What a value must be, for messages: "a non-negative integer" or "an integer".
    const EXPECTED: &'static str;
}

impl Integer for u32 {
    const EXPECTED: &'static str = "a non-negative integer";
}

impl Integer for u64 {
    const EXPECTED: &'static str = "a non-negative integer";
}

impl Integer for i64 {
    const EXPECTED: &'static str = "an integer";
}

/// One integer read from a JSON integer or a whole-number float.
struct WholeNumber<T>(T);

impl<'de, T: Integer> Deserialize<'de> for WholeNumber<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(WholeNumberVisitor(PhantomData))
            .map(WholeNumber)
    }
}

struct WholeNumberVisitor<T>(PhantomData<T>);

impl<T: Integer> WholeNumberVisitor<T> {
    fn fit<E: de::Error>(n: i128, unexpected: de::Unexpected<'_>) -> Result<T, E> {
        T::try_from(n).map_err(|_| E::invalid_value(unexpected, &T::EXPECTED))
    }
}

impl<T: Integer> Visitor<'_> for WholeNumberVisitor<T> {
    type Value = T;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str(T::EXPECTED)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<T, E> {
        Self::fit(n.into(), de::Unexpected::Signed(n))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<T, E> {
        Self::fit(n.into(), de::Unexpected::Unsigned(n))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<T, E> {
        // Beyond ±2^63 every float is whole but no field's range reaches that far: the cast
        // saturates and `fit` refuses it.
        match n.is_finite() && n.fract() == 0.0 {
            true => Self::fit(n as i128, de::Unexpected::Float(n)),
            false => Err(E::invalid_value(de::Unexpected::Float(n), &T::EXPECTED)),
        }
    }
}

/// The field shapes [`deserialize`] fills: an integer or a list of them, optional or not.
pub trait WholeNumbers<'de>: Sized {
    fn deserialize_whole<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;
}

impl<'de, T: Integer> WholeNumbers<'de> for T {
    fn deserialize_whole<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        WholeNumber::deserialize(deserializer).map(|n| n.0)
    }
}

impl<'de, T: Integer> WholeNumbers<'de> for Option<T> {
    fn deserialize_whole<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Option::<WholeNumber<T>>::deserialize(deserializer).map(|n| n.map(|n| n.0))
    }
}

impl<'de, T: Integer> WholeNumbers<'de> for Vec<T> {
    fn deserialize_whole<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let numbers = Vec::<WholeNumber<T>>::deserialize(deserializer)?;
        Ok(numbers.into_iter().map(|n| n.0).collect())
    }
}

impl<'de, T: Integer> WholeNumbers<'de> for Option<Vec<T>> {
    fn deserialize_whole<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let numbers = Option::<Vec<WholeNumber<T>>>::deserialize(deserializer)?;
        Ok(numbers.map(|numbers| numbers.into_iter().map(|n| n.0).collect()))
    }
}

/// Reads an integer field (see the module header).
pub fn deserialize<'de, D: Deserializer<'de>, T: WholeNumbers<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    T::deserialize_whole(deserializer)
}

/// Reads an optional integer field that was sent: `null` gives `Some(None)`, and a field left out
/// stays `None` through `#[serde(default)]`.
pub fn present<'de, D: Deserializer<'de>, T: Integer>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize_whole(deserializer).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Fields {
        #[serde(default, deserialize_with = "deserialize")]
        count: Option<u32>,
        #[serde(default, deserialize_with = "deserialize")]
        delays: Vec<u64>,
        #[serde(default, deserialize_with = "present")]
        timeout: Option<Option<i64>>,
    }

    fn parse(json: &str) -> Result<Fields, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn whole_numbers_are_integers() {
        let cases = [
            (r#"{"count": 5}"#, Some(5), vec![], None),
            (r#"{"count": 5.0}"#, Some(5), vec![], None),
            (r#"{"count": 5e2}"#, Some(500), vec![], None),
            (r#"{"count": null}"#, None, vec![], None),
            (r#"{"delays": [10, 20.0]}"#, None, vec![10, 20], None),
            (r#"{"timeout": -3.0}"#, None, vec![], Some(Some(-3))),
            (r#"{"timeout": null}"#, None, vec![], Some(None)),
            (r#"{}"#, None, vec![], None),
        ];
        for (json, count, delays, timeout) in cases {
            let expected = Fields {
                count,
                delays,
                timeout,
            };
            assert_eq!(parse(json), Ok(expected), "{json}");
        }
    }

    #[test]
    fn fractions_strings_and_out_of_range_numbers_are_refused() {
        let cases = [
            (r#"{"count": 5.5}"#, "floating point `5.5`"),
            (r#"{"count": -1}"#, "integer `-1`"),
            (r#"{"count": -1.0}"#, "floating point `-1.0`"),
            (r#"{"count": 4294967296}"#, "integer `4294967296`"),
            (r#"{"count": 1e300}"#, "floating point"),
            (r#"{"count": "5"}"#, "string \"5\""),
            (r#"{"delays": [1.5]}"#, "floating point `1.5`"),
            (r#"{"timeout": true}"#, "boolean `true`"),
        ];
        for (json, unexpected) in cases {
            let error = parse(json).expect_err(json);
            assert!(error.contains(unexpected), "{json}: {error}");
            assert!(error.contains("expected a"), "{json}: {error}");
        }
    }
}
