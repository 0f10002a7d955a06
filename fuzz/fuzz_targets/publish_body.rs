//! `POST /api/events` bodies: arbitrary bytes through the same `parse_json` the `ApiJson` extractor
//! uses, as a single event and as a batch.
//!
//! Properties: parsing never panics; a refused body gets one of the parse errors (400
//! `malformed_json`/`json_too_deep`, 422 `invalid_field`, or 422 `invalid_retry_policy` for a
//! field named `retry`), never another status. An accepted
//! event's `data` then goes through `hookd_core::canonical::canonicalize` (as `Ops::prepare_event`
//! does): it either refuses it (422 naming the path) without panicking, or returns text that is
//! valid JSON on its own and is its own canonical form (it is stored and delivered as is); when every
//! `data` of a body is accepted, the body is valid JSON throughout.
//!
//! "Valid JSON" is strict: numbers within f64 and no lone UTF-16 surrogates, as `serde_json::Value`
//! (and receivers' parsers) require; the corpus keeps one input of each kind hookd once accepted
//! (`seed-regression-*`).
#![no_main]

use hookd::api::error::ApiError;
use hookd::api::events::{PublishBatch, PublishEvent};
use hookd::api::extract::parse_json;
use hookd_core::canonical::canonicalize;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    match parse_json::<PublishEvent>(body) {
        Ok(event) => check_accepted(body, &[event]),
        Err(error) => check_refused(&error),
    }
    match parse_json::<PublishBatch>(body) {
        Ok(batch) => check_accepted(body, &batch.events),
        Err(error) => check_refused(&error),
    }
});

fn check_accepted(body: &[u8], events: &[PublishEvent]) {
    let mut all_canonical = true;
    for event in events {
        let Ok(canonical) = canonicalize(event.data.get()) else {
            all_canonical = false;
            continue;
        };
        if let Err(error) = serde_json::from_str::<serde_json::Value>(&canonical) {
            panic!("canonical `data` is not valid JSON ({error}): {canonical:?}");
        }
        assert_eq!(
            canonicalize(&canonical).as_deref(),
            Ok(canonical.as_str()),
            "canonical text is not a fixed point"
        );
    }
    if all_canonical && let Err(error) = serde_json::from_slice::<serde_json::Value>(body) {
        panic!("an accepted body is not valid JSON: {error}");
    }
}

fn check_refused(error: &ApiError) {
    let expected = matches!(
        (error.status().as_u16(), error.code()),
        (400, "malformed_json")
            | (400, "json_too_deep")
            | (422, "invalid_field")
            | (422, "invalid_retry_policy")
    );
    assert!(expected, "unexpected parse error {error:?}");
    // The message goes into the response body; formatting it must not panic either.
    let _ = error.to_string();
}
