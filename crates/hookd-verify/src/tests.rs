//! Table-driven tests, anchored on the Standard Webhooks reference vectors and on HMACs computed
//! independently with Python's `hmac` module.

use super::*;
use std::collections::HashMap;

// Reference vector 1 from the Standard Webhooks libraries.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TS: i64 = 1_614_265_330;
const BODY: &[u8] = br#"{"test": 2432232314}"#;
const SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

// Reference vector 2.
const SECRET_2: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const ID_2: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
const TS_2: i64 = 1_649_367_553;
const BODY_2: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
const SIG_2: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

type HeaderList = Vec<(&'static str, &'static str)>;
/// One `verify` row: name, secret, headers, body, now, expected `msg_id` or error.
type VerifyCase = (
    &'static str,
    &'static str,
    HeaderList,
    &'static [u8],
    i64,
    Expected,
);
type Expected = Result<&'static str, VerifyError>;
/// One `verify_hex` row: secret, signature, body, expected outcome.
type HexCase<'a> = (&'a str, &'a str, &'a [u8], Result<(), VerifyError>);

fn headers(id: &'static str, ts: &'static str, sig: &'static str) -> HeaderList {
    vec![
        ("webhook-id", id),
        ("webhook-timestamp", ts),
        ("webhook-signature", sig),
    ]
}

fn without(name: &str) -> HeaderList {
    let mut list = headers(ID, "1614265330", SIG);
    list.retain(|(key, _)| *key != name);
    list
}

#[test]
fn sign_v1_matches_reference_vectors() {
    #[rustfmt::skip]
    let cases = [(SECRET, ID, TS, BODY, SIG), (SECRET_2, ID_2, TS_2, BODY_2, SIG_2)];
    for (secret, id, ts, body, expected) in cases {
        let key = decode_secret(secret).unwrap();
        assert_eq!(sign_v1(&key, id, ts, body), expected, "{id}");
    }
}

#[test]
fn verify_table() {
    use VerifyError::*;
    #[rustfmt::skip]
    let cases: Vec<VerifyCase> = vec![
        ("vector 1", SECRET, headers(ID, "1614265330", SIG), BODY, TS, Ok(ID)),
        ("vector 2", SECRET_2, headers(ID_2, "1649367553", SIG_2), BODY_2, TS_2, Ok(ID_2)),
        ("bare secret", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", headers(ID, "1614265330", SIG), BODY, TS, Ok(ID)),
        ("header case", SECRET, vec![("Webhook-Id", ID), ("WEBHOOK-TIMESTAMP", "1614265330"), ("webhook-Signature", SIG)], BODY, TS, Ok(ID)),
        ("edge of past tolerance", SECRET, headers(ID, "1614265330", SIG), BODY, TS + 300, Ok(ID)),
        ("edge of future tolerance", SECRET, headers(ID, "1614265330", SIG), BODY, TS - 300, Ok(ID)),
        ("second signature matches", SECRET, headers(ID, "1614265330", "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="), BODY, TS, Ok(ID)),
        ("unknown version skipped", SECRET, headers(ID, "1614265330", "v2,abc v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="), BODY, TS, Ok(ID)),
        ("unknown version alone", SECRET, headers(ID, "1614265330", "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="), BODY, TS, Err(NoMatchingSignature)),
        ("truncated signature", SECRET, headers(ID, "1614265330", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1O"), BODY, TS, Err(NoMatchingSignature)),
        ("signature missing padding", SECRET, headers(ID, "1614265330", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE"), BODY, TS, Err(NoMatchingSignature)),
        ("empty signature", SECRET, headers(ID, "1614265330", ""), BODY, TS, Err(NoMatchingSignature)),
        ("wrong secret", SECRET_2, headers(ID, "1614265330", SIG), BODY, TS, Err(NoMatchingSignature)),
        ("tampered body", SECRET, headers(ID, "1614265330", SIG), br#"{"test": 2432232315}"#, TS, Err(NoMatchingSignature)),
        ("tampered id", SECRET, headers("msg_p5jXN8AQM9LWM0D4loKWxJeK", "1614265330", SIG), BODY, TS, Err(NoMatchingSignature)),
        ("missing id", SECRET, without("webhook-id"), BODY, TS, Err(MissingHeader("webhook-id"))),
        ("missing timestamp", SECRET, without("webhook-timestamp"), BODY, TS, Err(MissingHeader("webhook-timestamp"))),
        ("missing signature", SECRET, without("webhook-signature"), BODY, TS, Err(MissingHeader("webhook-signature"))),
        ("stale", SECRET, headers(ID, "1614265330", SIG), BODY, TS + 301, Err(TimestampTooOld)),
        ("future", SECRET, headers(ID, "1614265330", SIG), BODY, TS - 301, Err(TimestampTooNew)),
        ("unparsable timestamp", SECRET, headers(ID, "yesterday", SIG), BODY, TS, Err(InvalidTimestamp)),
        ("fractional timestamp", SECRET, headers(ID, "1614265330.5", SIG), BODY, TS, Err(InvalidTimestamp)),
        ("overflowing timestamp", SECRET, headers(ID, "99999999999999999999", SIG), BODY, TS, Err(InvalidTimestamp)),
        ("i64::MAX timestamp", SECRET, headers(ID, "9223372036854775807", SIG), BODY, i64::MIN, Err(TimestampTooNew)),
        ("i64::MIN timestamp", SECRET, headers(ID, "-9223372036854775808", SIG), BODY, i64::MAX, Err(TimestampTooOld)),
        ("empty secret", "whsec_", headers(ID, "1614265330", SIG), BODY, TS, Err(InvalidSecret)),
        ("secret not base64", "whsec_not base64!", headers(ID, "1614265330", SIG), BODY, TS, Err(InvalidSecret)),
    ];
    for (name, secret, headers, body, now, expected) in cases {
        let actual = verify(secret, &headers, body, now);
        assert_eq!(
            actual.map(|v| v.msg_id),
            expected.map(str::to_owned),
            "{name}"
        );
    }
}

#[test]
fn verifier_accepts_any_rotated_secret() {
    let rotating = Verifier::new(SECRET_2)
        .and_then(|v| v.with_secret(SECRET))
        .unwrap();
    let only_new = Verifier::new(SECRET_2).unwrap();
    #[rustfmt::skip]
    let cases = [
        (&rotating, headers(ID, "1614265330", SIG), BODY, TS, true),
        (&rotating, headers(ID_2, "1649367553", SIG_2), BODY_2, TS_2, true),
        (&only_new, headers(ID, "1614265330", SIG), BODY, TS, false),
    ];
    for (verifier, headers, body, now, accepted) in cases {
        let actual = verifier.verify(&headers, body, now).is_ok();
        assert_eq!(actual, accepted, "{headers:?}");
    }
    let bad_extra = rotating.with_secret("%%%").map(|_| ());
    assert_eq!(bad_extra, Err(VerifyError::InvalidSecret));
}

#[test]
fn verifier_tolerance_is_configurable() {
    use VerifyError::*;
    let cases = [
        (10, TS + 10, Ok(())),
        (10, TS + 11, Err(TimestampTooOld)),
        (10, TS - 11, Err(TimestampTooNew)),
        (-5, TS, Ok(())), // negative tolerance is clamped to zero rather than rejecting everything
        (-5, TS + 1, Err(TimestampTooOld)),
        (i64::MAX, i64::MIN, Err(TimestampTooNew)),
    ];
    let valid = headers(ID, "1614265330", SIG);
    for (tolerance, now, expected) in cases {
        let verifier = Verifier::new(SECRET).unwrap().tolerance_secs(tolerance);
        let actual = verifier.verify(&valid, BODY, now).map(|_| ());
        assert_eq!(actual, expected, "tolerance {tolerance}, now {now}");
    }
}

#[test]
fn verifier_debug_redacts_keys() {
    let debug = format!("{:?}", Verifier::new(SECRET).unwrap());
    assert_eq!(
        debug,
        "Verifier { keys: [1 redacted], public_keys: 0, tolerance_secs: 300 }"
    );
}

#[test]
fn decode_secret_table() {
    let cases: [(&str, Result<&[u8], VerifyError>); 6] = [
        ("whsec_dGVzdA==", Ok(b"test")),
        ("dGVzdA==", Ok(b"test")),
        ("dGVzdA", Ok(b"test")),
        ("whsec_", Err(VerifyError::InvalidSecret)),
        ("", Err(VerifyError::InvalidSecret)),
        ("whsec_dGVzdA=!", Err(VerifyError::InvalidSecret)),
    ];
    for (secret, expected) in cases {
        let expected = expected.map(<[u8]>::to_vec);
        assert_eq!(decode_secret(secret), expected, "{secret}");
    }
}

// Expected values from: python3 -c "import hmac,hashlib;print(hmac.new(KEY, BODY, hashlib.sha256).hexdigest())"
const HEX_MYSECRET: &str = "1731f916fda95877b9a13a23fad534f9e6108a6051a8357360c38298832d3811";
const HEX_MYSECRET_EMPTY: &str = "9074a74de0f34ece3f046403ae88d2eea400281da0ed6ebfa76c949016fa672d";
const HEX_WHSEC: &str = "80ec8a89ce3cd22133a1066caecb4d04fea7467657c8514d717ec42c38a5c94c";

#[test]
fn sign_hex_matches_python() {
    let cases: [(&str, &[u8], &str); 3] = [
        ("mysecret", br#"{"a":1}"#, HEX_MYSECRET),
        ("mysecret", b"", HEX_MYSECRET_EMPTY),
        // The `whsec_` prefix is part of the key here, unlike in the v1 scheme.
        (SECRET, BODY, HEX_WHSEC),
    ];
    for (secret, body, expected) in cases {
        assert_eq!(sign_hex(secret, body), expected, "{secret}");
    }
}

#[test]
fn verify_hex_table() {
    const NO_MATCH: Result<(), VerifyError> = Err(VerifyError::NoMatchingSignature);
    const A1: &[u8] = br#"{"a":1}"#;
    let upper = HEX_MYSECRET.to_uppercase();
    let cases: [HexCase; 7] = [
        ("mysecret", HEX_MYSECRET, A1, Ok(())),
        ("mysecret", &upper, A1, Ok(())),
        ("mysecret", HEX_MYSECRET, br#"{"a":2}"#, NO_MATCH),
        ("othersecret", HEX_MYSECRET, A1, NO_MATCH),
        ("mysecret", &HEX_MYSECRET[..62], A1, NO_MATCH),
        ("mysecret", "zz", A1, NO_MATCH),
        ("mysecret", "", A1, NO_MATCH),
    ];
    for (secret, signature, body, expected) in cases {
        let actual = verify_hex(secret, signature, body);
        assert_eq!(actual, expected, "{secret} {signature}");
    }
}

#[test]
fn headers_impls_are_case_insensitive() {
    let pairs = [("Webhook-Id", "a")];
    let slice: &[(&str, &str)] = &pairs;
    let owned: Vec<(String, String)> = vec![("WEBHOOK-ID".into(), "a".into())];
    let map: HashMap<String, String> = HashMap::from([("Webhook-ID".into(), "a".into())]);
    let lookups: [&dyn Headers; 4] = [&pairs, &slice, &owned, &map];
    for headers in lookups {
        assert_eq!(headers.header("webhook-id"), Some("a"));
        assert_eq!(headers.header("webhook-timestamp"), None);
    }
}

#[cfg(feature = "http")]
#[test]
fn http_header_map_verifies() {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers(ID, "1614265330", SIG) {
        map.insert(name, http::HeaderValue::from_static(value));
    }
    assert_eq!(map.header("Webhook-Id"), Some(ID));
    assert_eq!(verify(SECRET, &map, BODY, TS).map(|v| v.timestamp), Ok(TS));
}

// `v1a`: computed independently with Python's `cryptography` (Ed25519PrivateKey.from_private_bytes
// of the seed 0, 1, ..., 31, signing `{ID}.{TS}.{BODY}`).
const WHSK: &str =
    "whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8DoQe/884Qvh1w3RjnS8CZZ+TWMJulDV8d3IZkElUxuA==";
const WHPK: &str = "whpk_A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";
const SIG_V1A: &str =
    "v1a,yoUrgEkc12aGqm0n4Sydmdz55xJfTz4AsAgieHFjmkR7LJtqVCZOQYzvvHjI5kAey+r4iaBGxTFRrl2iBQxtDQ==";

#[test]
fn v1a_matches_an_independent_ed25519_implementation() {
    let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
    let pair = SigningKeyPair::from_seed(&seed);
    assert_eq!(pair.to_text(), WHSK);
    assert_eq!(pair.public_key(), WHPK);
    assert_eq!(pair.sign_v1a(ID, TS, BODY), SIG_V1A);
    assert_eq!(SigningKeyPair::parse(WHSK).unwrap().public_key(), WHPK);
    // The 32-byte seed alone is a key too.
    let seed_only = format!("whsk_{}", STANDARD.encode(seed));
    assert_eq!(
        SigningKeyPair::parse(&seed_only).unwrap().public_key(),
        WHPK
    );
    assert!(!format!("{pair:?}").contains(&WHSK[5..20]));
}

/// A case of `v1a_verification`: name, `webhook-signature` value, body, expected result.
type V1aCase<'a> = (&'a str, String, &'a [u8], Result<&'a str, VerifyError>);

#[test]
fn v1a_verification() {
    let verifier = Verifier::from_public_key(WHPK).unwrap();
    let other = SigningKeyPair::from_seed(&[9; 32]);
    let cases: Vec<V1aCase> = vec![
        ("valid", SIG_V1A.to_owned(), BODY, Ok(ID)),
        (
            "among others",
            format!("v1,AAAA {} v1a,AAAA", SIG_V1A),
            BODY,
            Ok(ID),
        ),
        (
            "tampered body",
            SIG_V1A.to_owned(),
            b"{}",
            Err(VerifyError::NoMatchingSignature),
        ),
        (
            "other key",
            other.sign_v1a(ID, TS, BODY),
            BODY,
            Err(VerifyError::NoMatchingSignature),
        ),
        (
            "as v1",
            SIG_V1A.replacen("v1a,", "v1,", 1),
            BODY,
            Err(VerifyError::NoMatchingSignature),
        ),
        (
            "not base64",
            "v1a,***".to_owned(),
            BODY,
            Err(VerifyError::NoMatchingSignature),
        ),
        (
            "short",
            "v1a,AAAA".to_owned(),
            BODY,
            Err(VerifyError::NoMatchingSignature),
        ),
    ];
    let ts = TS.to_string();
    for (name, signature, body, expected) in cases {
        let headers = [
            ("webhook-id", ID),
            ("webhook-timestamp", ts.as_str()),
            ("webhook-signature", signature.as_str()),
        ];
        let got = verifier.verify(&headers, body, TS).map(|v| v.msg_id);
        assert_eq!(got.as_deref().map_err(Clone::clone), expected, "{name}");
    }
    // Rotation: either key verifies; an HMAC secret and a public key together accept both kinds.
    let rotated = Verifier::from_public_key(&other.public_key())
        .unwrap()
        .with_public_key(WHPK)
        .unwrap();
    let both = Verifier::new(SECRET)
        .unwrap()
        .with_public_key(WHPK)
        .unwrap();
    for signature in [SIG_V1A, SIG] {
        let headers = [
            ("webhook-id", ID),
            ("webhook-timestamp", ts.as_str()),
            ("webhook-signature", signature),
        ];
        assert!(both.verify(&headers, BODY, TS).is_ok(), "{signature}");
        assert_eq!(
            rotated.verify(&headers, BODY, TS).is_ok(),
            signature == SIG_V1A
        );
    }
}

#[test]
fn malformed_keys_are_refused() {
    let wrong_half = {
        let mut bytes = STANDARD.decode(&WHSK[5..]).unwrap();
        bytes[40] ^= 1;
        format!("whsk_{}", STANDARD.encode(bytes))
    };
    let cases = [
        (
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            KeyError::MissingPrefix,
        ),
        ("whsk_***", KeyError::NotBase64),
        ("whsk_AAECAwQ=", KeyError::WrongLength),
        (wrong_half.as_str(), KeyError::MismatchedPublicKey),
    ];
    for (text, expected) in cases {
        assert_eq!(SigningKeyPair::parse(text).unwrap_err(), expected, "{text}");
    }
    for bad in ["whpk_***", "whpk_AAAA", ""] {
        assert_eq!(
            Verifier::from_public_key(bad).unwrap_err(),
            VerifyError::InvalidPublicKey
        );
    }
}
