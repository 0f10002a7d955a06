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

/// The `webhook-signature` value: one `v1,<base64>` per secret, space-separated (several during a
/// rotation overlap), over `{id}.{timestamp}.{body}`.
pub fn signature_header(
    secrets: &[&SigningSecret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .iter()
        .map(|secret| hookd_verify::sign_v1(secret.key_bytes(), id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The original webhook specification's `X-Webhook-Signature`: hex HMAC-SHA256 of the body keyed
/// with the secret text exactly as the subscriber received it, so that specification's receiver
/// code verifies it unchanged.
pub fn legacy_signature(secret: &SigningSecret, body: &[u8]) -> String {
    hookd_verify::sign_hex(secret.as_str(), body)
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
        let header = signature_header(&[&new, &old], "evt_1", 10, b"{}");
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
    fn legacy_signature_matches_the_original_specifications_hmac() {
        // Node: crypto.createHmac('sha256', secret).update(body).digest('hex'), computed with Python's hmac.
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let hex = legacy_signature(&secret, br#"{"test": 2432232314}"#);
        assert_eq!(hex.len(), 64);
        assert!(
            hookd_verify::verify_hex(secret.as_str(), &hex, br#"{"test": 2432232314}"#).is_ok()
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
            let header = signature_header(&[&secret], &id, timestamp, &body);
            let ts = timestamp.to_string();
            let headers = [("webhook-id", id.as_str()), ("webhook-timestamp", ts.as_str()), ("webhook-signature", header.as_str())];
            prop_assert!(hookd_verify::verify(secret.as_str(), &headers, &body, timestamp).is_ok());
            let mut tampered = body.clone();
            tampered.push(b' ');
            prop_assert!(hookd_verify::verify(secret.as_str(), &headers, &tampered, timestamp).is_err());
            prop_assert!(hookd_verify::verify_hex(secret.as_str(), &legacy_signature(&secret, &body), &body).is_ok());
        }
    }
}
