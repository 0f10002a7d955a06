//! Criterion benchmarks of signing and verifying one 1 KB delivery body.
//!
//! `sign/*` is what the worker pays per attempt for each signature (see `hookd::worker::send::prepare`:
//! one `v1` per secret plus the legacy hex signature); `verify/*` is what a receiver (and hookd's own
//! inbound endpoint) pays per request, with one secret and during a rotation overlap.
//!
//! Run with `cargo bench -p hookd-verify`; BENCHMARKS.md records the figures.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hookd_verify::{Verifier, decode_secret, sign_hex, sign_v1, verify_hex};
use std::hint::black_box;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OLD_SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const MSG_ID: &str = "evt_01JH8ZQ7Y6W3V5T4S2R1Q0P9N8";
const TIMESTAMP: i64 = 1_736_937_000;

/// A 1,024-byte body: the payload size every hookd benchmark is stated for.
fn body_1kb() -> Vec<u8> {
    let mut body = br#"{"orderId":"ORD-1","items":""#.to_vec();
    let closing = br#""}"#;
    body.resize(1_024 - closing.len(), b'x');
    body.extend_from_slice(closing);
    body
}

fn sign(c: &mut Criterion) {
    let body = body_1kb();
    let key = decode_secret(SECRET).unwrap();
    let mut group = c.benchmark_group("sign");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("v1_1kb", |b| {
        b.iter(|| sign_v1(black_box(&key), MSG_ID, TIMESTAMP, black_box(&body)))
    });
    group.bench_function("legacy_hex_1kb", |b| {
        b.iter(|| sign_hex(black_box(SECRET), black_box(&body)))
    });
    group.finish();
}

fn verify(c: &mut Criterion) {
    let body = body_1kb();
    let new_key = decode_secret(SECRET).unwrap();
    let old_key = decode_secret(OLD_SECRET).unwrap();
    let signed_new = sign_v1(&new_key, MSG_ID, TIMESTAMP, &body);
    // During a rotation overlap hookd sends both signatures; a receiver that has not switched yet
    // holds only the old secret, so its match is the second entry of the header.
    let signed_both = format!(
        "{signed_new} {}",
        sign_v1(&old_key, MSG_ID, TIMESTAMP, &body)
    );
    let timestamp = TIMESTAMP.to_string();
    let headers = |signature: &str| {
        [
            ("webhook-id", MSG_ID.to_owned()),
            ("webhook-timestamp", timestamp.clone()),
            ("webhook-signature", signature.to_owned()),
        ]
    };
    let one_secret = Verifier::new(SECRET).unwrap();
    // A receiver mid-rotation accepts both secrets; a message signed only with the old one is
    // checked against the new key first (no match), then the old one.
    let two_secrets = Verifier::new(SECRET)
        .unwrap()
        .with_secret(OLD_SECRET)
        .unwrap();
    let signed_old_only = headers(&sign_v1(&old_key, MSG_ID, TIMESTAMP, &body));
    let old_only_verifier = Verifier::new(OLD_SECRET).unwrap();
    let legacy = sign_hex(SECRET, &body);

    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Bytes(body.len() as u64));
    let single = headers(&signed_new);
    group.bench_function("one_secret_1kb", |b| {
        b.iter(|| one_secret.verify(black_box(&single), black_box(&body), TIMESTAMP))
    });
    let rotated = headers(&signed_both);
    group.bench_function("rotation_header_two_signatures_1kb", |b| {
        b.iter(|| old_only_verifier.verify(black_box(&rotated), black_box(&body), TIMESTAMP))
    });
    group.bench_function("rotation_verifier_two_secrets_1kb", |b| {
        b.iter(|| two_secrets.verify(black_box(&signed_old_only), black_box(&body), TIMESTAMP))
    });
    group.bench_function("one_shot_with_secret_decoding_1kb", |b| {
        b.iter(|| hookd_verify::verify(black_box(SECRET), black_box(&single), &body, TIMESTAMP))
    });
    group.bench_function("legacy_hex_1kb", |b| {
        b.iter(|| verify_hex(black_box(SECRET), black_box(&legacy), black_box(&body)))
    });
    group.finish();
}

criterion_group!(benches, sign, verify);
criterion_main!(benches);
