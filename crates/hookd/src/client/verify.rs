//! `hookd verify`: checks a webhook's signature offline. Exit code 0 means valid.

use super::ClientError;
use hookd_verify::{Verifier, VerifyError};
use std::io::Read;

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The signing secret as hookd gave it (`whsec_...`, or the subscriber's own string); repeat
    /// for several during a rotation.
    #[arg(long = "secret", required_unless_present = "public_keys")]
    pub secrets: Vec<String>,
    /// An Ed25519 public key (`whpk_...`, from `hookd webhooks public-key`) that verifies `v1a`
    /// signatures; repeat for several during a key rotation.
    #[arg(long = "public-key")]
    pub public_keys: Vec<String>,
    /// A request header, `Name: value` (repeatable): `webhook-id`, `webhook-timestamp`,
    /// `webhook-signature`, or the original specification's `X-Webhook-Signature`.
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// Read the body from this file instead of standard input.
    #[arg(long)]
    pub file: Option<std::path::PathBuf>,
    /// Allowed clock difference in seconds.
    #[arg(long, default_value_t = hookd_verify::DEFAULT_TOLERANCE_SECS)]
    pub tolerance_secs: i64,
    /// Check as of this Unix time instead of now (for replaying captured requests).
    #[arg(long)]
    pub now: Option<i64>,
}

/// What `hookd verify` prints: a line, or with `--json` an object
/// (`{"valid": true, "scheme", "webhook_id", "timestamp"}` or `{"valid": false, "error"}`).
pub fn print(args: &VerifyArgs, json: bool) -> Result<(), ClientError> {
    let verdict = run(args);
    if !json {
        let line = verdict?;
        println!("{line}");
        return Ok(());
    }
    let (object, result) = match &verdict {
        Ok(line) => (verdict_json(line), Ok(())),
        Err(error) => {
            let message = error.to_string();
            let reason = message.strip_prefix("invalid: ").unwrap_or(&message);
            (
                serde_json::json!({"valid": false, "error": reason}),
                Err(ClientError::Usage(message.clone())),
            )
        }
    };
    println!("{object}");
    result
}

/// The JSON form of a successful verdict line from [`run`].
fn verdict_json(line: &str) -> serde_json::Value {
    match line
        .strip_prefix("valid: webhook-id ")
        .and_then(|rest| rest.split_once(" signed at "))
    {
        Some((id, timestamp)) => serde_json::json!({
            "valid": true,
            "scheme": "standard-webhooks",
            "webhook_id": id,
            "timestamp": timestamp.parse::<i64>().ok(),
        }),
        None => serde_json::json!({"valid": true, "scheme": "x-webhook-signature"}),
    }
}

/// Verifies and returns a one-line verdict; `Err` carries the reason it failed.
pub fn run(args: &VerifyArgs) -> Result<String, ClientError> {
    let mut headers = Vec::new();
    for line in &args.headers {
        let (name, value) = line.split_once(':').ok_or_else(|| {
            ClientError::Usage(format!("--header {line:?}: expected 'Name: value'"))
        })?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut body = Vec::new();
    let read = match &args.file {
        Some(path) => std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut body)),
        None => std::io::stdin().read_to_end(&mut body),
    };
    read.map_err(|e| ClientError::Usage(format!("cannot read the body: {e}")))?;
    let now = args.now.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    });
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    if find("webhook-signature").is_none()
        && let Some(hex) = find("x-webhook-signature")
    {
        let valid = args
            .secrets
            .iter()
            .any(|secret| hookd_verify::verify_hex(secret, hex, &body).is_ok());
        return match valid {
            true => Ok("valid: X-Webhook-Signature matches the body".into()),
            false => Err(invalid(VerifyError::NoMatchingSignature)),
        };
    }
    let verifier = verifier_for(&args.secrets, &args.public_keys)?;
    let verified = verifier
        .tolerance_secs(args.tolerance_secs)
        .verify(&headers, &body, now)
        .map_err(invalid)?;
    Ok(format!(
        "valid: webhook-id {} signed at {}",
        verified.msg_id, verified.timestamp
    ))
}

/// A verifier for hookd's deliveries: each secret read as hookd reads it (a `whsec_` secret's key is
/// its base64, any other string's key is its UTF-8 bytes), plus the `v1a` public keys.
pub fn verifier_for(secrets: &[String], public_keys: &[String]) -> Result<Verifier, ClientError> {
    let mut keys = Vec::with_capacity(secrets.len());
    for secret in secrets {
        let parsed = hookd_core::SigningSecret::parse(secret)
            .map_err(|e| ClientError::Usage(format!("--secret: {e}")))?;
        keys.push(parsed.standard_webhooks_form());
    }
    let mut verifier: Option<Verifier> = None;
    for key in &keys {
        verifier = Some(
            match verifier {
                None => Verifier::new(key),
                Some(verifier) => verifier.with_secret(key),
            }
            .map_err(|e| ClientError::Usage(format!("--secret: {e}")))?,
        );
    }
    for public_key in public_keys {
        verifier = Some(
            match verifier {
                None => Verifier::from_public_key(public_key),
                Some(verifier) => verifier.with_public_key(public_key),
            }
            .map_err(|e| ClientError::Usage(format!("--public-key: {e}")))?,
        );
    }
    verifier.ok_or_else(|| ClientError::Usage("give --secret or --public-key".into()))
}

fn invalid(error: VerifyError) -> ClientError {
    ClientError::Usage(format!("invalid: {error}"))
}
