//! Event types and subscription filters. The input is `filter\ntype` (the type may contain further
//! newlines); the whole input is also tried as a filter, so newlines get parsed too.
//!
//! Properties: parsing never panics; `EventType::parse` accepts exactly `[A-Za-z0-9_.-]{1,128}` and
//! keeps the text; `EventFilter::parse` accepts exactly `*`, a valid type, or a valid type followed by
//! `.*`; `*` matches every valid type; `Exact(t)` matches exactly `t`; `p.*` matches `t` iff `t`
//! starts with `p.`; and a filter displays as the text it was parsed from, which parses back to it.
#![no_main]

use hookd_core::event_type::MAX_EVENT_TYPE_LEN;
use hookd_core::{EventFilter, EventType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (filter, event_type) = text.split_once('\n').unwrap_or((text, ""));
    for candidate in [filter, event_type, text] {
        check_event_type(candidate);
        check_filter(candidate, event_type);
        check_filter(candidate, filter);
    }
});

/// The rule for type names, written out independently of `hookd_core`.
fn is_valid_name(name: &str) -> bool {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    (1..=MAX_EVENT_TYPE_LEN).contains(&name.len()) && name.bytes().all(allowed)
}

fn check_event_type(raw: &str) {
    match EventType::parse(raw) {
        Ok(parsed) => {
            assert!(is_valid_name(raw), "accepted invalid type {raw:?}");
            assert_eq!(parsed.as_str(), raw);
            assert!(EventFilter::All.matches(raw), "`*` must match {raw:?}");
        }
        Err(_) => assert!(!is_valid_name(raw), "refused valid type {raw:?}"),
    }
}

fn check_filter(raw: &str, event_type: &str) {
    let Ok(filter) = EventFilter::parse(raw) else {
        let valid_prefix = raw.strip_suffix(".*").is_some_and(is_valid_name);
        let should_parse = raw == "*" || is_valid_name(raw) || valid_prefix;
        assert!(!should_parse, "refused valid filter {raw:?}");
        return;
    };
    assert_eq!(filter.to_string(), raw, "filter does not display as parsed");
    assert_eq!(
        EventFilter::parse(&filter.to_string()).as_ref(),
        Ok(&filter)
    );
    let matches = filter.matches(event_type);
    match &filter {
        EventFilter::All => {
            assert_eq!(raw, "*");
            assert!(
                matches || !is_valid_name(event_type),
                "`*` missed {event_type:?}"
            );
        }
        EventFilter::Exact(exact) => {
            assert!(is_valid_name(raw));
            assert_eq!(exact.as_str(), raw);
            assert!(filter.matches(raw));
            assert_eq!(matches, event_type == raw, "{raw:?} vs {event_type:?}");
        }
        EventFilter::Prefix(prefix) => {
            let name = raw
                .strip_suffix(".*")
                .expect("a prefix filter ends in `.*`");
            assert!(is_valid_name(name), "accepted prefix filter {raw:?}");
            assert_eq!(prefix, &format!("{name}."));
            let expected = event_type.starts_with(&format!("{name}."));
            assert_eq!(matches, expected, "{raw:?} vs {event_type:?}");
            assert!(
                !filter.matches(name),
                "{raw:?} must not match its bare prefix"
            );
        }
    }
}
