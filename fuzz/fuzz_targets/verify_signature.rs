//! Signature verification, as a receiver runs it on whatever arrives.
//!
//! The input is text lines, so that corpus files read like requests (the Standard Webhooks reference
//! vectors are in the corpus as they are published):
//!
//! ```text
//! secret
//! webhook-id          (a missing line means a missing header, here and below)
//! webhook-timestamp
//! webhook-signature
//! now                 (Unix seconds; unparsable means 0)
//! X-Webhook-Signature (the legacy hex signature)
//! body...             (everything after, newlines included)
//! ```
//!
//! Properties: `verify` and `verify_hex` never panic, and header names match in any letter case. A
//! message signed with `sign_v1` (key: 24 to 64 bytes taken from the input; id and timestamp from
//! the lines above) verifies at its own timestamp, at both edges of the tolerance and among other
//! `webhook-signature` entries; it fails one second past either edge, and when any one body byte
//! changes. The legacy hex signature round-trips the same way.
#![no_main]

use hookd_core::SigningSecret;
use hookd_verify::{DEFAULT_TOLERANCE_SECS, Verified, VerifyError, sign_hex, sign_v1};
use libfuzzer_sys::fuzz_target;

/// One fuzz input, split into its lines.
struct Input<'a> {
    secret: &'a str,
    webhook_id: Option<&'a str>,
    webhook_timestamp: Option<&'a str>,
    webhook_signature: Option<&'a str>,
    now: i64,
    hex_signature: &'a str,
    body: &'a [u8],
    /// 24 to 64 bytes of HMAC key for the round trips, taken from the whole input.
    key: Vec<u8>,
}

impl<'a> Input<'a> {
    fn split(data: &'a [u8]) -> Option<Self> {
        let mut rest = data;
        let mut line = || -> Option<&'a str> {
            let (line, after) = match rest.iter().position(|&b| b == b'\n') {
                Some(end) => (&rest[..end], &rest[end + 1..]),
                None => (rest, &rest[rest.len()..]),
            };
            if line.is_empty() && after.is_empty() {
                return None;
            }
            rest = after;
            std::str::from_utf8(line).ok()
        };
        let secret = line()?;
        let (webhook_id, webhook_timestamp, webhook_signature) = (line(), line(), line());
        let now = line().and_then(|now| now.trim().parse().ok()).unwrap_or(0);
        let hex_signature = line().unwrap_or("");
        let key_len = 24 + data.len() % 41;
        let key = data
            .iter()
            .copied()
            .chain(std::iter::repeat(0))
            .take(key_len);
        Some(Self {
            secret,
            webhook_id,
            webhook_timestamp,
            webhook_signature,
            now,
            hex_signature,
            body: rest,
            key: key.collect(),
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::split(data) else {
        return;
    };
    header_names_are_case_insensitive(&input);
    let _ = hookd_verify::verify_hex(input.secret, input.hex_signature, input.body);
    standard_webhooks_round_trip(&input);
    legacy_hex_round_trip(&input);
});

fn header_names_are_case_insensitive(input: &Input) {
    let headers = |name_case: fn(&str) -> String| {
        let names = ["webhook-id", "webhook-timestamp", "webhook-signature"];
        let values = [
            input.webhook_id,
            input.webhook_timestamp,
            input.webhook_signature,
        ];
        let mut headers = vec![(name_case("content-type"), "application/json")];
        for (name, value) in names.into_iter().zip(values) {
            if let Some(value) = value {
                headers.push((name_case(name), value));
            }
        }
        headers
    };
    let verify = |headers: Vec<(String, &str)>| {
        hookd_verify::verify(input.secret, &headers, input.body, input.now)
    };
    let lower = verify(headers(|name| name.to_owned()));
    let upper = verify(headers(|name| name.to_ascii_uppercase()));
    let title = verify(headers(title_case));
    assert_eq!(lower, upper);
    assert_eq!(lower, title);
}

fn standard_webhooks_round_trip(input: &Input) {
    let secret = SigningSecret::from_key(&input.key);
    let id = input.webhook_id.unwrap_or("msg_fuzz");
    let timestamp = input.now;
    let signature = sign_v1(secret.key_bytes(), id, timestamp, input.body);
    let verify = |signatures: &str, body: &[u8], now: i64| {
        let timestamp = timestamp.to_string();
        let headers = [
            ("webhook-id", id),
            ("webhook-timestamp", timestamp.as_str()),
            ("webhook-signature", signatures),
        ];
        hookd_verify::verify(secret.as_str(), &headers, body, now)
    };
    let verified = Ok(Verified {
        msg_id: id.to_owned(),
        timestamp,
    });

    assert_eq!(verify(&signature, input.body, timestamp), verified);
    // Entries of other versions, or junk, are skipped wherever they stand.
    let others = input.webhook_signature.unwrap_or("v2,abc");
    let crowded = format!("{others} {signature} {others}");
    assert_eq!(verify(&crowded, input.body, timestamp), verified);

    // The tolerance is inclusive on both sides, and not one second wider.
    if let Some(latest) = timestamp.checked_add(DEFAULT_TOLERANCE_SECS) {
        assert_eq!(verify(&signature, input.body, latest), verified);
        if let Some(too_late) = latest.checked_add(1) {
            let result = verify(&signature, input.body, too_late);
            assert_eq!(result, Err(VerifyError::TimestampTooOld));
        }
    }
    if let Some(earliest) = timestamp.checked_sub(DEFAULT_TOLERANCE_SECS) {
        assert_eq!(verify(&signature, input.body, earliest), verified);
        if let Some(too_early) = earliest.checked_sub(1) {
            let result = verify(&signature, input.body, too_early);
            assert_eq!(result, Err(VerifyError::TimestampTooNew));
        }
    }

    for tampered in bodies_one_byte_off(input.body) {
        let result = verify(&signature, &tampered, timestamp);
        assert_eq!(result, Err(VerifyError::NoMatchingSignature));
    }
}

fn legacy_hex_round_trip(input: &Input) {
    let secret = input.secret;
    let signature = sign_hex(secret, input.body);
    assert_eq!(
        hookd_verify::verify_hex(secret, &signature, input.body),
        Ok(())
    );
    let upper = signature.to_ascii_uppercase();
    assert_eq!(hookd_verify::verify_hex(secret, &upper, input.body), Ok(()));
    for tampered in bodies_one_byte_off(input.body) {
        let result = hookd_verify::verify_hex(secret, &signature, &tampered);
        assert_eq!(result, Err(VerifyError::NoMatchingSignature));
    }
}

/// Copies of `body` with one byte changed: every byte of a short body, a spread of them in a long one
/// (each check is one HMAC over the whole body, so trying every byte of 8 KiB would crawl).
fn bodies_one_byte_off(body: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    let step = body.len().div_ceil(32).max(1);
    let positions = (0..body.len())
        .step_by(step)
        .chain(body.len().checked_sub(1));
    positions.map(move |index| {
        let mut tampered = body.to_vec();
        // Vary which bits change, and never xor with zero.
        tampered[index] ^= (index as u8).wrapping_mul(37) | 1;
        tampered
    })
}

/// `Webhook-Id`: how some proxies and frameworks spell header names.
fn title_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut start_of_word = true;
    for c in name.chars() {
        out.push(match start_of_word {
            true => c.to_ascii_uppercase(),
            false => c,
        });
        start_of_word = c == '-';
    }
    out
}
