//! `POST /api/events` bodies: arbitrary bytes through the same `parse_json` the `ApiJson` extractor
//! uses, as a single event and as a batch.
//!
//! Properties: parsing never panics; an accepted body is valid JSON throughout and every event's
//! `data` is valid JSON text on its own (it is stored and delivered byte for byte); a refused body
//! gets one of the three parse errors (400 `malformed_json`/`json_too_deep`, 422 `invalid_field`),
//! never another status.
//!
//! "Valid JSON" is strict: numbers within f64 and no lone UTF-16 surrogates, as `serde_json::Value`
//! (and receivers' parsers) require; the corpus keeps one input of each kind hookd once accepted
//! (`seed-regression-*`).
#![no_main]

use hookd::api::error::ApiError;
use hookd::api::events::{PublishBatch, PublishEvent};
use hookd::api::extract::parse_json;
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
    if let Err(error) = serde_json::from_slice::<serde_json::Value>(body) {
        panic!("an accepted body is not valid JSON: {error}");
    }
    for event in events {
        let data = event.data.get();
        if let Err(error) = serde_json::from_str::<serde_json::Value>(data) {
            panic!("accepted `data` is not valid JSON ({error}): {data:?}");
        }
    }
}

fn check_refused(error: &ApiError) {
    let expected = matches!(
        (error.status().as_u16(), error.code()),
        (400, "malformed_json") | (400, "json_too_deep") | (422, "invalid_field")
    );
    assert!(expected, "unexpected parse error {error:?}");
    // The message goes into the response body; formatting it must not panic either.
    let _ = error.to_string();
}
