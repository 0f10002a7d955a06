//! Criterion benchmarks of hookd-core's hot pure functions.
//!
//! - `attempt/*`: the pure part of what the worker does for every attempt
//!   (`hookd::worker::send::prepare`): format the event time, encode the envelope once around a
//!   1 KB `data`, parse the stored secret(s), sign (`webhook-signature`, one `v1` per secret) and add
//!   the legacy `X-Webhook-Signature`. Only the `HeaderMap` building is left out (it lives in the
//!   server crate). `rotation_overlap` signs with two secrets, as during a secret rotation.
//! - `envelope/*`, `signature_header/*`: the two halves of that, alone; `signature_header/v1a_1kb`
//!   and `ed25519_key_parse`: what a subscription signing with Ed25519 adds per attempt.
//! - `canonical/*`: the normalization of an event's `data` at publish.
//! - `match/*`: publish fan-out, one event type against the filter lists of 1, 10 and 100
//!   subscriptions (`FanoutTarget::selects` in the server crate calls `any_matches`), per filter kind.
//! - `filter_parse/*`: parsing one stored filter (done for every subscription once per publish group).
//! - `retry/*`: `retry::decide` after a failed attempt.
//!
//! Run with `cargo bench -p hookd-core`; BENCHMARKS.md records the figures.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hookd_core::envelope::{Envelope, LegacySignature, legacy_signature, signature_header};
use hookd_core::event_type::any_matches;
use hookd_core::retry::{self, AttemptResult, Preset, RetryPolicy};
use hookd_core::time::rfc3339_ms;
use hookd_core::{EventFilter, SigningSecret};
use std::hint::black_box;

const EVENT_ID: &str = "evt_01JH8ZQ7Y6W3V5T4S2R1Q0P9N8";
const CREATED_AT_MS: i64 = 1_736_937_000_123;
const NOW_MS: i64 = 1_736_937_004_567;
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const PREVIOUS_SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// A 1,024-byte JSON `data` object, stored verbatim and copied into the envelope.
fn data_1kb() -> String {
    let mut data = String::from(r#"{"orderId":"ORD-1","amount":99.99,"note":""#);
    data.extend(std::iter::repeat_n('x', 1_024 - data.len() - 2));
    data.push_str(r#""}"#);
    assert_eq!(data.len(), 1_024);
    data
}

fn envelope(data_json: &str) -> Envelope<'_> {
    Envelope {
        id: EVENT_ID,
        timestamp: "2025-01-15T10:30:00.123Z",
        event_type: "order.created",
        version: "1.0",
        data_json,
        attempt: 2,
        retryable: true,
    }
}

/// Mirrors `send::prepare` minus the headers map: returns the body and the two signature values.
fn prepare_attempt(data_json: &str, stored_secrets: &[&str]) -> (Vec<u8>, String, String) {
    let timestamp_text = rfc3339_ms(CREATED_AT_MS);
    let body = Envelope {
        timestamp: &timestamp_text,
        ..envelope(data_json)
    }
    .encode();
    let secrets: Vec<SigningSecret> = stored_secrets
        .iter()
        .map(|text| SigningSecret::parse(text).unwrap())
        .collect();
    let refs: Vec<&SigningSecret> = secrets.iter().collect();
    let signature = signature_header(&refs, &[], EVENT_ID, NOW_MS.div_euclid(1_000), &body);
    let legacy =
        legacy_signature(&secrets[0], LegacySignature::Body, &body).expect("the body is JSON");
    (body, signature, legacy)
}

fn attempt(c: &mut Criterion) {
    let data = data_1kb();
    let mut group = c.benchmark_group("attempt");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_secret_1kb", |b| {
        b.iter(|| prepare_attempt(black_box(&data), black_box(&[SECRET])))
    });
    group.bench_function("rotation_overlap_1kb", |b| {
        b.iter(|| prepare_attempt(black_box(&data), black_box(&[SECRET, PREVIOUS_SECRET])))
    });
    group.finish();
}

fn envelope_and_signatures(c: &mut Criterion) {
    let data = data_1kb();
    let body = envelope(&data).encode();
    let mut group = c.benchmark_group("envelope");
    group.bench_function("event_time_rfc3339", |b| {
        b.iter(|| rfc3339_ms(black_box(CREATED_AT_MS)))
    });
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("encode_1kb", |b| {
        b.iter(|| black_box(envelope(black_box(&data))).encode())
    });
    group.finish();

    let current = SigningSecret::parse(SECRET).unwrap();
    let previous = SigningSecret::parse(PREVIOUS_SECRET).unwrap();
    let mut group = c.benchmark_group("signature_header");
    group.bench_function("secret_parse", |b| {
        b.iter(|| SigningSecret::parse(black_box(SECRET)))
    });
    group.throughput(Throughput::Bytes(body.len() as u64));
    for (name, secrets) in [
        ("one_secret_1kb", vec![&current]),
        ("two_secrets_1kb", vec![&current, &previous]),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| signature_header(black_box(&secrets), &[], EVENT_ID, 1_736_937_004, &body))
        });
    }
    group.bench_function("legacy_hex_1kb", |b| {
        b.iter(|| legacy_signature(black_box(&current), LegacySignature::Body, black_box(&body)))
    });
    // `v1a`: parse the stored `whsk_` key (derives the public key) and sign, as `send::prepare`
    // does per attempt of a subscription that signs with Ed25519.
    let pair = hookd_verify::SigningKeyPair::from_seed(&[7; 32]).to_text();
    group.bench_function("ed25519_key_parse", |b| {
        b.iter(|| hookd_verify::SigningKeyPair::parse(black_box(&pair)))
    });
    let key = hookd_verify::SigningKeyPair::parse(&pair).unwrap();
    group.bench_function("v1a_1kb", |b| {
        b.iter(|| signature_header(&[], &[black_box(&key)], EVENT_ID, 1_736_937_004, &body))
    });
    group.finish();
}

/// What publishing does to every event's `data` once: parse it and write its canonical text. The
/// compact case is already canonical (what most producers send); the spaced case is Python's
/// `json.dumps` default output with `\u00e9` escapes and `1.0` numbers.
fn canonical(c: &mut Criterion) {
    let compact = data_1kb();
    let spaced = {
        let mut text =
            String::from(r#"{"orderId": "ORD-1", "amount": 1.0, "name": "Zo\u00e9", "note": ""#);
        text.extend(std::iter::repeat_n('x', 1_024 - text.len() - 2));
        text.push_str(r#""}"#);
        text
    };
    let mut group = c.benchmark_group("canonical");
    group.throughput(Throughput::Bytes(1_024));
    group.bench_function("compact_1kb", |b| {
        b.iter(|| hookd_core::canonical::canonicalize(black_box(&compact)))
    });
    group.bench_function("python_spaced_1kb", |b| {
        b.iter(|| hookd_core::canonical::canonicalize(black_box(&spaced)))
    });
    group.finish();
}

/// The filter list of subscription `index` for one filter kind. Exact and prefix lists hold three
/// filters with the match last, so `any_matches` scans each list to its end.
fn filter_list(kind: &str, index: usize) -> Vec<EventFilter> {
    let raw: &[&str] = match (kind, index % 3) {
        ("exact", _) | ("mixed", 0) => &["invoice.paid", "customer.updated", "order.created"],
        ("prefix", _) | ("mixed", 1) => &["invoice.*", "customer.*", "order.*"],
        ("all", _) | ("mixed", _) => &["*"],
        _ => unreachable!(),
    };
    raw.iter().map(|f| EventFilter::parse(f).unwrap()).collect()
}

fn matching(c: &mut Criterion) {
    let mut group = c.benchmark_group("match");
    for kind in ["exact", "prefix", "all", "mixed"] {
        for subscriptions in [1usize, 10, 100] {
            let lists: Vec<Vec<EventFilter>> =
                (0..subscriptions).map(|i| filter_list(kind, i)).collect();
            group.throughput(Throughput::Elements(subscriptions as u64));
            group.bench_with_input(BenchmarkId::new(kind, subscriptions), &lists, |b, lists| {
                b.iter(|| {
                    let event_type = black_box("order.created");
                    lists
                        .iter()
                        .filter(|filters| any_matches(filters, event_type))
                        .count()
                })
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("filter_parse");
    for (name, raw) in [
        ("exact", "order.created"),
        ("prefix", "order.*"),
        ("all", "*"),
    ] {
        group.bench_function(name, |b| b.iter(|| EventFilter::parse(black_box(raw))));
    }
    group.finish();
}

fn retry_decision(c: &mut Criterion) {
    let default = RetryPolicy::default();
    let standard = RetryPolicy::Preset {
        preset: Preset::StandardWebhooks,
    };
    let failure = AttemptResult::Failure {
        retry_after_ms: None,
    };
    let throttled = AttemptResult::Failure {
        retry_after_ms: Some(30_000),
    };
    let mut group = c.benchmark_group("retry");
    group.bench_function("decide_failure_jitter", |b| {
        b.iter(|| retry::decide(black_box(&default), 2, failure, true, NOW_MS, 0.3))
    });
    group.bench_function("decide_retry_after_clamped", |b| {
        b.iter(|| retry::decide(black_box(&standard), 2, throttled, true, NOW_MS, 0.3))
    });
    group.bench_function("parse_retry_after_seconds", |b| {
        b.iter(|| retry::parse_retry_after(black_box("120"), NOW_MS))
    });
    group.finish();
}

criterion_group!(
    benches,
    attempt,
    envelope_and_signatures,
    canonical,
    matching,
    retry_decision
);
criterion_main!(benches);
