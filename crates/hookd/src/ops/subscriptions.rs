//! Subscriptions: create (validating every field), change, enable (with replay) and disable, rotate
//! the signing secret, recover failed deliveries.

use super::{Ops, OpsError};
use crate::ids::{new_id, random_bytes};
use crate::store::{SigningKeyEntry, StoreResult, SubscriptionPatch, SubscriptionRow, UnixMs};
use hookd_core::{
    ContentFilter, EndpointUrl, EventFilter, LegacySignature, RetryPolicy, SignatureSchemes,
    SigningSecret,
};
use hookd_verify::SigningKeyPair;
use serde_json::Value;
use std::collections::BTreeMap;

pub const MAX_FILTERS: usize = 100;
pub const MAX_DESCRIPTION_LEN: usize = 1024;
pub const MAX_METADATA_BYTES: usize = 4 * 1024;
pub const MIN_TIMEOUT_MS: i64 = 1_000;
pub const MAX_TIMEOUT_MS: i64 = 60_000;
pub const MAX_OWNER_LEN: usize = 200;
pub const DEFAULT_OVERLAP_SECONDS: i64 = 24 * 3600;
pub const MAX_OVERLAP_SECONDS: i64 = 30 * 24 * 3600;

/// A new subscription as an edge received it; [`Ops::create_subscription`] checks every field.
#[derive(Debug, Default)]
pub struct SubscriptionDraft {
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    /// A signing secret to use; generated when absent.
    pub secret: Option<String>,
    pub metadata: Option<Value>,
    pub retry: Option<RetryPolicy>,
    pub timeout_ms: Option<i64>,
    pub headers: Option<BTreeMap<String, String>>,
    pub owner: Option<String>,
    /// What `X-Webhook-Signature` signs: `body` (default) or `python_sorted`.
    pub legacy_signature: Option<String>,
    /// A content filter over the envelope (see `hookd_core::content_filter`).
    pub filter: Option<Value>,
    /// `["v1"]` (default), `["v1a"]` or both.
    pub signature_schemes: Option<Vec<String>>,
    /// A `whsk_` Ed25519 key to sign `v1a` with; generated when `v1a` is on and none is given.
    pub signing_key: Option<String>,
}

/// Changes to a subscription: `None` leaves a field as it is; `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct SubscriptionChanges {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<Option<String>>,
    pub metadata: Option<Option<Value>>,
    pub active: Option<bool>,
    pub retry: Option<Option<RetryPolicy>>,
    pub timeout_ms: Option<Option<i64>>,
    /// Replaces all custom headers.
    pub headers: Option<BTreeMap<String, String>>,
    pub owner: Option<Option<String>>,
    pub legacy_signature: Option<String>,
    /// `Some(None)` removes the content filter.
    pub filter: Option<Option<Value>>,
    pub signature_schemes: Option<Vec<String>>,
    /// Replaces the `v1a` key at once.
    pub signing_key: Option<String>,
}

/// One `v1a` public key as receivers discover it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kid: String,
    /// `whpk_` + base64.
    pub public_key: String,
    pub not_before: UnixMs,
    /// Set for a rotated-out key: when it stops signing.
    pub not_after: Option<UnixMs>,
}

/// A rotated signing secret.
#[derive(Debug)]
pub struct RotatedSecret {
    pub secret: String,
    /// Until when the previous secret also signs; `None` without overlap.
    pub previous_secret_expires_at: Option<UnixMs>,
}

impl Ops {
    /// Validates a draft and stores it as a new subscription.
    pub async fn create_subscription(
        &self,
        draft: SubscriptionDraft,
    ) -> Result<SubscriptionRow, OpsError> {
        let row = self.new_subscription(draft)?;
        self.store.subscriptions.insert_subscription(&row).await?;
        tracing::info!(webhook = %row.id, "subscription created");
        Ok(row)
    }

    /// Validates drafts and stores them as new subscriptions, all or none: an invalid draft is
    /// refused naming its place (`{field}[{index}].url`) and nothing is written.
    pub async fn create_subscriptions(
        &self,
        drafts: Vec<SubscriptionDraft>,
        field: &str,
    ) -> Result<Vec<SubscriptionRow>, OpsError> {
        let rows = drafts
            .into_iter()
            .enumerate()
            .map(|(index, draft)| {
                self.new_subscription(draft).map_err(|error| match error {
                    OpsError::Invalid {
                        code,
                        field: at,
                        message,
                    } => OpsError::Invalid {
                        code,
                        field: format!("{field}[{index}].{at}"),
                        message,
                    },
                    other => other,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.store.subscriptions.insert_subscriptions(&rows).await?;
        tracing::info!(count = rows.len(), "subscriptions created");
        Ok(rows)
    }

    /// A validated draft as a new subscription row (nothing is written).
    fn new_subscription(&self, draft: SubscriptionDraft) -> Result<SubscriptionRow, OpsError> {
        let url = self.parse_url(&draft.url)?;
        let events = parse_filters(draft.events)?;
        let secret = parse_secret(draft.secret)?;
        let now = self.clock.now_ms();
        let mut row = SubscriptionRow::new(
            new_id("wh", now),
            url,
            events,
            secret.as_str().to_owned(),
            now,
        );
        row.description = parse_description(draft.description)?;
        row.metadata = parse_metadata(draft.metadata)?;
        row.retry_policy = self.parse_retry(draft.retry)?;
        row.timeout_ms = parse_timeout(draft.timeout_ms)?;
        row.headers = parse_headers(draft.headers.unwrap_or_default())?;
        row.owner = parse_owner(draft.owner)?;
        if let Some(form) = draft.legacy_signature {
            row.legacy_signature = parse_legacy_signature(&form)?;
        }
        row.filter = parse_content_filter(draft.filter)?;
        if let Some(names) = draft.signature_schemes {
            row.signature_schemes = parse_schemes(&names)?;
        }
        let key = match draft.signing_key {
            Some(text) => Some(parse_signing_key(&text)?),
            None => row.signature_schemes.v1a.then(new_signing_key),
        };
        row.signing_key = key.map(|key| SigningKeyEntry {
            key: key.to_text(),
            not_before: now,
        });
        Ok(row)
    }

    /// A subscription's own retry policy: within the limits, and retrying for no longer than
    /// finished deliveries are kept (the retention in force).
    fn parse_retry(&self, raw: Option<RetryPolicy>) -> Result<Option<RetryPolicy>, OpsError> {
        let Some(policy) = raw else {
            return Ok(None);
        };
        policy
            .validate()
            .map_err(|e| OpsError::invalid("invalid_retry_policy", "retry", e))?;
        self.settings
            .retention
            .check_retry_policy(&policy, "this policy")
            .map_err(|e| OpsError::invalid("invalid_retry_policy", "retry", e))?;
        Ok(Some(policy))
    }

    /// Validates changes into a store patch (nothing is written).
    pub fn parse_changes(
        &self,
        changes: SubscriptionChanges,
    ) -> Result<SubscriptionPatch, OpsError> {
        let schemes = changes
            .signature_schemes
            .as_deref()
            .map(parse_schemes)
            .transpose()?;
        Ok(SubscriptionPatch {
            url: changes.url.map(|u| self.parse_url(&u)).transpose()?,
            events: changes.events.map(parse_filters).transpose()?,
            description: changes.description.map(parse_description).transpose()?,
            metadata: changes.metadata.map(parse_metadata).transpose()?,
            active: changes.active,
            retry_policy: changes
                .retry
                .map(|retry| self.parse_retry(retry))
                .transpose()?,
            timeout_ms: changes.timeout_ms.map(parse_timeout).transpose()?,
            headers: changes.headers.map(parse_headers).transpose()?,
            owner: changes.owner.map(parse_owner).transpose()?,
            legacy_signature: changes
                .legacy_signature
                .map(|form| parse_legacy_signature(&form))
                .transpose()?,
            filter: changes.filter.map(parse_content_filter).transpose()?,
            signing_key: changes
                .signing_key
                .map(|text| parse_signing_key(&text).map(|key| key.to_text()))
                .transpose()?,
            signing_key_if_missing: schemes
                .filter(|schemes| schemes.v1a)
                .map(|_| new_signing_key().to_text()),
            signature_schemes: schemes,
        })
    }

    /// Applies a patch from [`Ops::parse_changes`].
    pub async fn update_subscription(
        &self,
        id: &str,
        patch: SubscriptionPatch,
    ) -> Result<SubscriptionRow, OpsError> {
        self.store
            .subscriptions
            .update_subscription(id, patch, self.clock.now_ms())
            .await?
            .ok_or(OpsError::NotFound("webhook"))
    }

    /// Enables a subscription; with `replay`, re-queues the deliveries held while it was disabled.
    /// Returns the subscription and how many deliveries were re-queued.
    pub async fn enable_subscription(
        &self,
        id: &str,
        replay: bool,
    ) -> Result<(SubscriptionRow, u64), OpsError> {
        let (row, replayed) = self
            .store
            .subscriptions
            .set_subscription_active(id, true, None, replay, self.clock.now_ms())
            .await?
            .ok_or(OpsError::NotFound("webhook"))?;
        if replayed > 0 {
            self.work_became_due();
        }
        Ok((row, replayed))
    }

    /// Disables a subscription: its queued deliveries, and new matching events, are held.
    pub async fn disable_subscription(&self, id: &str) -> Result<SubscriptionRow, OpsError> {
        let reason = Some("disabled by operator".into());
        let (row, _) = self
            .store
            .subscriptions
            .set_subscription_active(id, false, reason, false, self.clock.now_ms())
            .await?
            .ok_or(OpsError::NotFound("webhook"))?;
        Ok(row)
    }

    /// Deletes a subscription and its deliveries.
    pub async fn delete_subscription(&self, id: &str) -> Result<(), OpsError> {
        if !self.store.subscriptions.delete_subscription(id).await? {
            return Err(OpsError::NotFound("webhook"));
        }
        tracing::info!(webhook = %id, "subscription deleted");
        Ok(())
    }

    /// Replaces the signing secret; the old one keeps signing for `overlap_seconds` (default a day).
    pub async fn rotate_secret(
        &self,
        id: &str,
        overlap_seconds: Option<i64>,
    ) -> Result<RotatedSecret, OpsError> {
        let overlap = parse_overlap(overlap_seconds)?;
        let now = self.clock.now_ms();
        let secret = SigningSecret::from_key(&random_bytes::<32>());
        let previous_expires_at = (overlap > 0).then(|| now + overlap * 1_000);
        let row = self
            .store
            .subscriptions
            .rotate_secret(id, secret.as_str(), previous_expires_at, now)
            .await?
            .ok_or(OpsError::NotFound("webhook"))?;
        tracing::info!(webhook = %id, overlap, "secret rotated");
        Ok(RotatedSecret {
            secret: row.secret,
            previous_secret_expires_at: row.previous_secret_expires_at,
        })
    }

    /// Replaces the `v1a` key pair with `signing_key` (a `whsk_` key) or a fresh one; the old one
    /// keeps signing for `overlap_seconds` (default a day), so both signatures are sent meanwhile.
    /// Returns the subscription with its new key.
    pub async fn rotate_signing_key(
        &self,
        id: &str,
        overlap_seconds: Option<i64>,
        signing_key: Option<String>,
    ) -> Result<SubscriptionRow, OpsError> {
        let overlap = parse_overlap(overlap_seconds)?;
        let key = match signing_key {
            Some(text) => parse_signing_key(&text)?,
            None => new_signing_key(),
        };
        let now = self.clock.now_ms();
        let previous_expires_at = (overlap > 0).then(|| now + overlap * 1_000);
        let row = self
            .store
            .subscriptions
            .rotate_signing_key(id, &key.to_text(), previous_expires_at, now)
            .await?
            .ok_or(OpsError::NotFound("webhook"))?;
        tracing::info!(webhook = %id, overlap, kid = %key.key_id(), "signing key rotated");
        Ok(row)
    }

    /// The `v1a` public keys receivers of `id` verify with now (none before `v1a` was turned on).
    pub async fn public_keys(&self, id: &str) -> Result<Vec<PublicKey>, OpsError> {
        let row = self
            .store
            .subscriptions
            .get_subscription(id)
            .await?
            .ok_or(OpsError::NotFound("webhook"))?;
        Ok(public_keys_at(&row, self.clock.now_ms()))
    }

    /// Re-queues every failed or dead delivery of a subscription that failed in `[since, until)`
    /// (`until` defaults to now), in one go. Returns how many were re-queued.
    pub async fn recover(
        &self,
        subscription_id: &str,
        since: UnixMs,
        until: Option<UnixMs>,
    ) -> Result<u64, OpsError> {
        if self
            .store
            .subscriptions
            .get_subscription(subscription_id)
            .await?
            .is_none()
        {
            return Err(OpsError::NotFound("webhook"));
        }
        let recovered = self
            .store
            .deliveries
            .recover(subscription_id, since, until, self.clock.now_ms())
            .await?;
        if recovered > 0 {
            self.work_became_due();
        }
        Ok(recovered)
    }

    /// One step of a recovery run in the background: re-queues at most `limit` deliveries of the
    /// subscription that failed in `[since, until)`, in one transaction, at `now`.
    pub async fn recover_step(
        &self,
        subscription_id: &str,
        since: UnixMs,
        until: UnixMs,
        limit: u32,
        now: UnixMs,
    ) -> StoreResult<u64> {
        let recovered = self
            .store
            .ui
            .recover_some(subscription_id, since, until, limit, now)
            .await?;
        if recovered > 0 {
            self.work_became_due();
        }
        Ok(recovered)
    }

    fn parse_url(&self, raw: &str) -> Result<EndpointUrl, OpsError> {
        EndpointUrl::parse(raw, &self.settings.url_policy)
            .map_err(|e| OpsError::invalid("invalid_url", "url", e))
    }
}

/// Parses filters, duplicates removed, order kept.
fn parse_filters(raw: Vec<String>) -> Result<Vec<EventFilter>, OpsError> {
    if raw.is_empty() {
        return Err(OpsError::invalid(
            "invalid_event_filter",
            "events",
            "must list at least one event type (use \"*\" for all)",
        ));
    }
    if raw.len() > MAX_FILTERS {
        return Err(OpsError::invalid(
            "invalid_event_filter",
            "events",
            format!("at most {MAX_FILTERS} filters"),
        ));
    }
    let mut filters: Vec<EventFilter> = Vec::with_capacity(raw.len());
    for (index, text) in raw.into_iter().enumerate() {
        let filter = EventFilter::parse(&text).map_err(|e| {
            OpsError::invalid("invalid_event_filter", format!("events[{index}]"), e)
        })?;
        if !filters.contains(&filter) {
            filters.push(filter);
        }
    }
    Ok(filters)
}

/// Checks a content filter and returns the JSON text to store; `null` means none.
pub fn parse_content_filter(raw: Option<Value>) -> Result<Option<String>, OpsError> {
    match raw {
        None | Some(Value::Null) => Ok(None),
        Some(value) => match ContentFilter::parse(&value) {
            Ok(_) => Ok(Some(value.to_string())),
            Err(e) => Err(OpsError::invalid("invalid_filter", e.path, e.message)),
        },
    }
}

fn parse_description(raw: Option<String>) -> Result<Option<String>, OpsError> {
    match raw {
        Some(text) if text.chars().count() > MAX_DESCRIPTION_LEN => Err(OpsError::invalid(
            "invalid_field",
            "description",
            format!("must be at most {MAX_DESCRIPTION_LEN} characters"),
        )),
        other => Ok(other),
    }
}

fn parse_metadata(raw: Option<Value>) -> Result<Option<Value>, OpsError> {
    match raw {
        None | Some(Value::Null) => Ok(None),
        Some(value @ Value::Object(_)) if value.to_string().len() <= MAX_METADATA_BYTES => {
            Ok(Some(value))
        }
        Some(Value::Object(_)) => Err(OpsError::invalid(
            "invalid_field",
            "metadata",
            format!("must be at most {MAX_METADATA_BYTES} bytes of JSON"),
        )),
        Some(_) => Err(OpsError::invalid(
            "invalid_field",
            "metadata",
            "must be a JSON object",
        )),
    }
}

fn parse_secret(raw: Option<String>) -> Result<SigningSecret, OpsError> {
    match raw {
        Some(text) => SigningSecret::parse(&text)
            .map_err(|e| OpsError::invalid("invalid_secret", "secret", e)),
        None => Ok(SigningSecret::from_key(&random_bytes::<32>())),
    }
}

fn parse_overlap(raw: Option<i64>) -> Result<i64, OpsError> {
    let overlap = raw.unwrap_or(DEFAULT_OVERLAP_SECONDS);
    match (0..=MAX_OVERLAP_SECONDS).contains(&overlap) {
        true => Ok(overlap),
        false => Err(OpsError::invalid(
            "invalid_field",
            "overlap_seconds",
            format!("must be 0 to {MAX_OVERLAP_SECONDS}"),
        )),
    }
}

fn parse_schemes(names: &[String]) -> Result<SignatureSchemes, OpsError> {
    SignatureSchemes::from_names(names)
        .map_err(|e| OpsError::invalid("invalid_signature_schemes", "signature_schemes", e))
}

fn parse_signing_key(text: &str) -> Result<SigningKeyPair, OpsError> {
    SigningKeyPair::parse(text)
        .map_err(|e| OpsError::invalid("invalid_signing_key", "signing_key", e.to_string()))
}

fn new_signing_key() -> SigningKeyPair {
    SigningKeyPair::from_seed(&random_bytes::<32>())
}

/// The public halves of the keys that sign `row`'s deliveries at `now`. A stored key that does not
/// parse (it was checked on the way in) is left out rather than failing the list.
pub fn public_keys_at(row: &SubscriptionRow, now: UnixMs) -> Vec<PublicKey> {
    row.signing_keys_at(now)
        .into_iter()
        .filter_map(|(entry, not_after)| {
            let pair = SigningKeyPair::parse(&entry.key).ok()?;
            Some(PublicKey {
                kid: pair.key_id(),
                public_key: pair.public_key(),
                not_before: entry.not_before,
                not_after,
            })
        })
        .collect()
}

fn parse_legacy_signature(raw: &str) -> Result<LegacySignature, OpsError> {
    LegacySignature::parse(raw).ok_or_else(|| {
        OpsError::invalid(
            "invalid_legacy_signature",
            "legacy_signature",
            format!("must be one of {:?}", LegacySignature::NAMES),
        )
    })
}

fn parse_timeout(raw: Option<i64>) -> Result<Option<i64>, OpsError> {
    match raw {
        Some(ms) if !(MIN_TIMEOUT_MS..=MAX_TIMEOUT_MS).contains(&ms) => Err(OpsError::invalid(
            "invalid_timeout",
            "timeout_ms",
            format!("must be {MIN_TIMEOUT_MS} to {MAX_TIMEOUT_MS}"),
        )),
        other => Ok(other),
    }
}

/// An owner id: 1–200 printable characters without spaces at either end.
pub fn parse_owner(raw: Option<String>) -> Result<Option<String>, OpsError> {
    match raw {
        None => Ok(None),
        Some(text)
            if !text.is_empty()
                && text.chars().count() <= MAX_OWNER_LEN
                && text.trim() == text
                && !text.chars().any(char::is_control) =>
        {
            Ok(Some(text))
        }
        Some(_) => Err(OpsError::invalid(
            "invalid_owner",
            "owner",
            format!(
                "must be 1 to {MAX_OWNER_LEN} characters, no control characters or outer spaces"
            ),
        )),
    }
}

fn parse_headers(raw: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, OpsError> {
    hookd_core::headers::parse_custom_headers(&raw)
        .map_err(|e| OpsError::invalid("invalid_headers", "headers", e))
}
