//! The request hookd sends: the original webhook specification's JSON envelope and the signature
//! headers.

use crate::secret::SigningSecret;

/// One attempt's envelope: `{"id","timestamp","event","version","data","attempt","retryable"}`.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    pub id: &'a str,
    /// RFC 3339 UTC time of the event.
    pub timestamp: &'a str,
    pub event_type: &'a str,
    pub version: &'a str,
    /// The event's `data` object as stored: exact JSON text, copied verbatim.
    pub data_json: &'a str,
    /// 1-based attempt number.
    pub attempt: u32,
    pub retryable: bool,
}

impl Envelope<'_> {
    /// Serializes the envelope once, in the original specification's key order. `data` is copied
    /// byte for byte.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data_json.len() + 192);
        out.extend_from_slice(b"{\"id\":");
        push_json_string(&mut out, self.id);
        out.extend_from_slice(b",\"timestamp\":");
        push_json_string(&mut out, self.timestamp);
        out.extend_from_slice(b",\"event\":");
        push_json_string(&mut out, self.event_type);
        out.extend_from_slice(b",\"version\":");
        push_json_string(&mut out, self.version);
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(self.data_json.as_bytes());
        out.extend_from_slice(b",\"attempt\":");
        out.extend_from_slice(self.attempt.to_string().as_bytes());
        out.extend_from_slice(b",\"retryable\":");
        out.extend_from_slice(if self.retryable { b"true" } else { b"false" });
        out.push(b'}');
        out
    }
}

fn push_json_string(out: &mut Vec<u8>, text: &str) {
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// The `webhook-signature` value: one `v1,<base64>` per secret and one `v1a,<base64>` per Ed25519
/// key, space-separated (several of a kind during a rotation overlap), over `{id}.{timestamp}.{body}`.
pub fn signature_header(
    secrets: &[&SigningSecret],
    keys: &[&hookd_verify::SigningKeyPair],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let hmac = secrets
        .iter()
        .map(|secret| hookd_verify::sign_v1(secret.key_bytes(), id, timestamp, body));
    let ed25519 = keys.iter().map(|key| key.sign_v1a(id, timestamp, body));
    hmac.chain(ed25519).collect::<Vec<_>>().join(" ")
}

/// Which Standard Webhooks signatures a subscription's deliveries carry: `v1` (HMAC-SHA256 with the
/// shared secret, which also signs `X-Webhook-Signature`) and `v1a` (Ed25519, verified with a
/// public key). At least one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureSchemes {
    pub v1: bool,
    pub v1a: bool,
}

impl Default for SignatureSchemes {
    fn default() -> Self {
        Self {
            v1: true,
            v1a: false,
        }
    }
}

impl SignatureSchemes {
    pub const NAMES: [&'static str; 2] = ["v1", "v1a"];

    /// A list as an API client writes it: known names, each at most once, at least one.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Result<Self, String> {
        let mut schemes = Self {
            v1: false,
            v1a: false,
        };
        for name in names {
            let flag = match name.as_ref() {
                "v1" => &mut schemes.v1,
                "v1a" => &mut schemes.v1a,
                other => {
                    return Err(format!(
                        "unknown scheme {other:?}: must be one of {:?}",
                        Self::NAMES
                    ));
                }
            };
            if *flag {
                return Err(format!("{:?} is listed twice", name.as_ref()));
            }
            *flag = true;
        }
        if !schemes.v1 && !schemes.v1a {
            return Err("must name at least one scheme".into());
        }
        Ok(schemes)
    }

    pub fn names(self) -> Vec<&'static str> {
        let mut names = Vec::with_capacity(2);
        if self.v1 {
            names.push("v1");
        }
        if self.v1a {
            names.push("v1a");
        }
        names
    }

    /// The stored form: the names, comma-separated.
    pub fn to_stored(self) -> String {
        self.names().join(",")
    }

    pub fn from_stored(text: &str) -> Option<Self> {
        let names: Vec<&str> = text.split(',').collect();
        Self::from_names(&names).ok()
    }
}

/// What the original webhook specification's `X-Webhook-Signature` signs, chosen per subscription.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LegacySignature {
    /// The body as sent: its Node receiver's `JSON.stringify(req.body)`, since hookd sends the
    /// canonical text `JSON.stringify` writes.
    #[default]
    Body,
    /// Its Python receiver's `json.dumps(request.json, sort_keys=True)` of the body.
    PythonSorted,
}

impl LegacySignature {
    pub const NAMES: [&'static str; 2] = ["body", "python_sorted"];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Body => "body",
            Self::PythonSorted => "python_sorted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "body" => Some(Self::Body),
            "python_sorted" => Some(Self::PythonSorted),
            _ => None,
        }
    }
}

/// The original webhook specification's `X-Webhook-Signature`: hex HMAC-SHA256 keyed with the
/// secret text exactly as the subscriber received it (its UTF-8 bytes), over the body as sent or
/// over Python's sorted re-serialization of it, so that specification's receiver code verifies it
/// unchanged. Fails only for a body that is not JSON (hookd never sends one).
pub fn legacy_signature(
    secret: &SigningSecret,
    form: LegacySignature,
    body: &[u8],
) -> Result<String, crate::canonical::JsonError> {
    match form {
        LegacySignature::Body => Ok(hookd_verify::sign_hex(secret.as_str(), body)),
        LegacySignature::PythonSorted => {
            let text = std::str::from_utf8(body).map_err(|_| crate::canonical::JsonError {
                path: String::new(),
                kind: crate::canonical::JsonErrorKind::Syntax("not UTF-8"),
            })?;
            let sorted = crate::canonical::python_sorted(text)?;
            Ok(hookd_verify::sign_hex(secret.as_str(), sorted.as_bytes()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(data_json: &str) -> Envelope<'_> {
        Envelope {
            id: "evt_1",
            timestamp: "2025-01-15T10:30:00.000Z",
            event_type: "order.created",
            version: "1.0",
            data_json,
            attempt: 2,
            retryable: true,
        }
    }

    #[test]
    fn envelope_is_valid_json_in_the_original_specifications_order() {
        let body = envelope(r#"{"orderId":"ORD-1","amount":99.99}"#).encode();
        let text = String::from_utf8(body.clone()).unwrap();
        assert_eq!(
            text,
            r#"{"id":"evt_1","timestamp":"2025-01-15T10:30:00.000Z","event":"order.created","version":"1.0","data":{"orderId":"ORD-1","amount":99.99},"attempt":2,"retryable":true}"#
        );
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed["data"]["amount"], 99.99);
    }

    #[test]
    fn strings_are_escaped_and_data_is_verbatim() {
        let mut fields = envelope(r#"{ "spaced" : [1.50] }"#);
        fields.version = "1.0\"\n";
        fields.retryable = false;
        let body = fields.encode();
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed["version"], "1.0\"\n");
        assert_eq!(parsed["retryable"], false);
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains(r#""data":{ "spaced" : [1.50] }"#));
    }

    #[test]
    fn standard_webhooks_reference_vector() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let header = signature_header(
            &[&secret],
            &[],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn rotation_signs_with_every_secret() {
        let new = SigningSecret::from_key(&[1; 32]);
        let old = SigningSecret::from_key(&[2; 32]);
        let header = signature_header(&[&new, &old], &[], "evt_1", 10, b"{}");
        let parts: Vec<_> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        for (secret, part) in [(&new, parts[0]), (&old, parts[1])] {
            let headers = [
                ("webhook-id", "evt_1"),
                ("webhook-timestamp", "10"),
                ("webhook-signature", part),
            ];
            assert!(hookd_verify::verify(secret.as_str(), &headers, b"{}", 10).is_ok());
        }
    }

    #[test]
    fn ed25519_keys_sign_after_the_secrets_and_each_verifies_with_its_public_key() {
        let secret = SigningSecret::from_key(&[1; 32]);
        let new = hookd_verify::SigningKeyPair::from_seed(&[3; 32]);
        let old = hookd_verify::SigningKeyPair::from_seed(&[4; 32]);
        let header = signature_header(&[&secret], &[&new, &old], "evt_1", 10, b"{}");
        let parts: Vec<_> = header.split(' ').collect();
        assert_eq!(parts.len(), 3);
        assert!(parts[0].starts_with("v1,"));
        for key in [&new, &old] {
            let headers = [
                ("webhook-id", "evt_1"),
                ("webhook-timestamp", "10"),
                ("webhook-signature", header.as_str()),
            ];
            let verifier = hookd_verify::Verifier::from_public_key(&key.public_key()).unwrap();
            assert!(verifier.verify(&headers, b"{}", 10).is_ok());
        }
        let stranger = hookd_verify::SigningKeyPair::from_seed(&[5; 32]);
        let verifier = hookd_verify::Verifier::from_public_key(&stranger.public_key()).unwrap();
        let headers = [
            ("webhook-id", "evt_1"),
            ("webhook-timestamp", "10"),
            ("webhook-signature", header.as_str()),
        ];
        assert!(verifier.verify(&headers, b"{}", 10).is_err());
    }

    #[test]
    fn signature_schemes_parse_and_round_trip_through_their_stored_form() {
        for names in [&["v1"][..], &["v1a"], &["v1", "v1a"], &["v1a", "v1"]] {
            let schemes = SignatureSchemes::from_names(names).unwrap();
            assert_eq!(
                SignatureSchemes::from_stored(&schemes.to_stored()),
                Some(schemes)
            );
        }
        assert_eq!(SignatureSchemes::default().names(), ["v1"]);
        for bad in [&[][..], &["v2"], &["v1", "v1"], &["V1"]] {
            assert!(SignatureSchemes::from_names(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn legacy_signature_matches_the_original_specifications_hmac() {
        // Node: crypto.createHmac('sha256', secret).update(body).digest('hex'), computed with Python's hmac.
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let hex =
            legacy_signature(&secret, LegacySignature::Body, br#"{"test": 2432232314}"#).unwrap();
        assert_eq!(hex.len(), 64);
        assert!(
            hookd_verify::verify_hex(secret.as_str(), &hex, br#"{"test": 2432232314}"#).is_ok()
        );
    }

    #[test]
    fn python_sorted_legacy_signature_signs_what_json_dumps_writes() {
        // Computed with Python 3: hmac.new(secret.encode(), json.dumps(json.loads(body),
        // sort_keys=True).encode(), hashlib.sha256).hexdigest().
        let secret = SigningSecret::parse("a-secret-of-the-subscribers-own").unwrap();
        let body = envelope(r#"{"name":"Zoë","amount":1.5,"2":[1e+21],"1":null}"#).encode();
        let hex = legacy_signature(&secret, LegacySignature::PythonSorted, &body).unwrap();
        assert_eq!(
            hex,
            "5d95520158d325e889883a9ff4b40f810c557297de68f1c5b898aa2175ce0b97"
        );
        let sorted = crate::canonical::python_sorted(std::str::from_utf8(&body).unwrap()).unwrap();
        assert_eq!(
            sorted,
            r#"{"attempt": 2, "data": {"1": null, "2": [1e+21], "amount": 1.5, "name": "Zo\u00eb"}, "event": "order.created", "id": "evt_1", "retryable": true, "timestamp": "2025-01-15T10:30:00.000Z", "version": "1.0"}"#
        );
        assert_ne!(
            hex,
            legacy_signature(&secret, LegacySignature::Body, &body).unwrap()
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sign_then_verify_round_trips(
            key in proptest::collection::vec(any::<u8>(), 24..=64),
            id in "[A-Za-z0-9_-]{1,64}",
            timestamp in 0i64..=4_000_000_000,
            body in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let secret = SigningSecret::from_key(&key);
            let header = signature_header(&[&secret], &[], &id, timestamp, &body);
            let ts = timestamp.to_string();
            let headers = [("webhook-id", id.as_str()), ("webhook-timestamp", ts.as_str()), ("webhook-signature", header.as_str())];
            prop_assert!(hookd_verify::verify(secret.as_str(), &headers, &body, timestamp).is_ok());
            let mut tampered = body.clone();
            tampered.push(b' ');
            prop_assert!(hookd_verify::verify(secret.as_str(), &headers, &tampered, timestamp).is_err());
            let legacy = legacy_signature(&secret, LegacySignature::Body, &body).unwrap();
            prop_assert!(hookd_verify::verify_hex(secret.as_str(), &legacy, &body).is_ok());
        }
    }
}
