//! Events: check and publish them, and send a test event to one subscription.

use super::{Ops, OpsError};
use crate::ids::new_id;
use crate::store::{NewEvent, Published, UnixMs};
use hookd_core::canonical::{self, JsonErrorKind};
use hookd_core::{ClientEventId, EventType};

pub const MAX_VERSION_LEN: usize = 32;
pub const DEFAULT_VERSION: &str = "1.0";

/// An event to publish as an edge received it; [`Ops::prepare_event`] checks it.
#[derive(Debug)]
pub struct EventDraft {
    pub event_type: String,
    /// The `data` object as JSON text; stored and delivered in its canonical form
    /// ([`hookd_core::canonical`]).
    pub data: String,
    /// The publisher's id for the event; generated when absent.
    pub id: Option<String>,
    pub version: Option<String>,
    pub retryable: Option<bool>,
    pub idempotency_key: Option<String>,
    /// Publish to this owner's subscriptions only (see `crate::store::fanout`).
    pub owner: Option<String>,
}

/// What a test event carries.
#[derive(Debug)]
pub enum TestPayload {
    /// `webhook.test` with a message, the subscription's id and the time it was sent.
    Standard,
    /// A type and `data` object of the sender's choosing.
    Custom {
        event_type: EventType,
        data: serde_json::Value,
    },
}

/// `data` in its canonical form (what `JSON.stringify(JSON.parse(data))` returns), or 422 naming
/// the offending value's path below `{field}data`.
pub fn canonical_data(data: &str, field: &str) -> Result<String, OpsError> {
    canonical::canonicalize(data).map_err(|error| {
        let code = match error.kind {
            JsonErrorKind::DuplicateKey => "duplicate_key",
            JsonErrorKind::LoneSurrogate => "invalid_unicode",
            _ => "invalid_field",
        };
        OpsError::invalid(code, format!("{field}data{}", error.path), error.kind)
    })
}

impl Ops {
    /// Checks one event to publish at `now`. `field` prefixes the paths of errors (`""` or
    /// `events[3].`).
    pub async fn prepare_event(
        &self,
        draft: EventDraft,
        field: &str,
        now: UnixMs,
    ) -> Result<NewEvent, OpsError> {
        let event_type = EventType::parse(&draft.event_type)
            .map_err(|e| OpsError::invalid("invalid_event_type", format!("{field}event"), e))?;
        if self.settings.strict_event_types
            && !self
                .store
                .admin
                .event_type_exists(event_type.as_str())
                .await?
        {
            return Err(OpsError::invalid(
                "unknown_event_type",
                format!("{field}event"),
                format!(
                    "{event_type:?} is not in the event-type catalog (strict_event_types is on)"
                ),
            ));
        }
        if !draft.data.trim_start().starts_with('{') {
            return Err(OpsError::invalid(
                "invalid_field",
                format!("{field}data"),
                "must be a JSON object",
            ));
        }
        if draft.data.len() > self.settings.max_payload_bytes {
            return Err(OpsError::PayloadTooLarge(format!(
                "{field}data is {} bytes; the limit is {} bytes",
                draft.data.len(),
                self.settings.max_payload_bytes
            )));
        }
        let data = canonical_data(&draft.data, field)?;
        let id = match draft.id {
            Some(raw) => ClientEventId::parse(&raw)
                .map_err(|e| OpsError::invalid("invalid_id", format!("{field}id"), e))?
                .into_string(),
            None => new_id("evt", now),
        };
        let version = draft.version.unwrap_or_else(|| DEFAULT_VERSION.into());
        if version.is_empty() || version.chars().count() > MAX_VERSION_LEN {
            return Err(OpsError::invalid(
                "invalid_field",
                format!("{field}version"),
                format!("must be 1 to {MAX_VERSION_LEN} characters"),
            ));
        }
        let owner = super::parse_owner(draft.owner)
            .map_err(|error| error.at_field(format!("{field}owner")))?;
        self.check_schema(event_type.as_str(), &version, &draft.data, field, now)
            .await?;
        Ok(NewEvent {
            id,
            event_type: event_type.into_string(),
            version,
            data,
            retryable: draft.retryable.unwrap_or(true),
            idempotency_key: draft.idempotency_key,
            created_at: now,
            only_subscription: None,
            owner,
        })
    }

    /// Stores events and their deliveries, all or nothing, and counts the new ones.
    ///
    /// An event whose id (or `Idempotency-Key`) was published before with a different type or
    /// different `data` is a 409 `idempotency_conflict`; the same event again is a duplicate. In a
    /// batch, the other events were stored by then (re-sending them is a duplicate).
    pub async fn publish(&self, events: Vec<NewEvent>) -> Result<Vec<Published>, OpsError> {
        let requested: Vec<(String, String, Option<String>)> = events
            .iter()
            .map(|event| {
                let owner = event.owner.clone();
                (event.event_type.clone(), event.data.clone(), owner)
            })
            .collect();
        let batch = events.len() > 1;
        let published = self.store.publisher.publish(events).await?;
        for (index, (result, (event_type, data, owner))) in
            published.iter().zip(&requested).enumerate()
        {
            let same = same_event(&result.event, event_type, data) && result.event.owner == *owner;
            if !result.created && !same {
                let field = match batch {
                    true => format!("events[{index}]: "),
                    false => String::new(),
                };
                let rest = match batch {
                    true => "; the batch's other events were stored",
                    false => "",
                };
                return Err(OpsError::Conflict {
                    code: "idempotency_conflict",
                    message: format!(
                        "{field}event {} was already published with a different type, data or owner \
                         (use a new id for a new event){rest}",
                        result.event.id
                    ),
                });
            }
        }
        let created = published.iter().filter(|p| p.created).count();
        metrics::counter!("hookd_events_published_total").increment(created as u64);
        if published.iter().any(|p| p.created && p.deliveries > 0) {
            self.work_became_due();
        }
        Ok(published)
    }

    /// Publishes a test event to one subscription only, through the normal pipeline. A disabled
    /// subscription is refused (409 `subscription_disabled`): nothing would be sent.
    pub async fn send_test_event(
        &self,
        subscription_id: &str,
        payload: TestPayload,
    ) -> Result<Published, OpsError> {
        let subscription = self
            .store
            .subscriptions
            .get_subscription(subscription_id)
            .await?
            .ok_or(OpsError::NotFound("webhook"))?;
        if !subscription.active {
            return Err(OpsError::Conflict {
                code: "subscription_disabled",
                message: "the webhook is disabled, so a test event would not be sent; \
                          enable it first"
                    .into(),
            });
        }
        let now = self.clock.now_ms();
        let (event_type, data) = match payload {
            TestPayload::Standard => {
                let data = serde_json::json!({
                    "message": "Test event",
                    "webhook_id": subscription.id,
                    "sent_at": hookd_core::time::rfc3339_ms(now),
                });
                ("webhook.test".to_owned(), data)
            }
            TestPayload::Custom { event_type, data } => (event_type.into_string(), data),
        };
        let data = canonical_data(&data.to_string(), "")?;
        let event = NewEvent {
            id: new_id("evt", now),
            event_type,
            version: DEFAULT_VERSION.into(),
            data,
            retryable: true,
            idempotency_key: None,
            created_at: now,
            // The owner's event, so its erasure and its views include it.
            owner: subscription.owner.clone(),
            only_subscription: Some(subscription.id),
        };
        let published = self.store.publisher.publish(vec![event]).await?;
        let first = published.into_iter().next().ok_or(OpsError::Internal)?;
        if first.deliveries > 0 {
            self.work_became_due();
        }
        Ok(first)
    }
}

/// Whether a stored event is the one requested again: the same type and the same `data` (as JSON
/// values: key order and spacing may differ between two sends of one event).
fn same_event(stored: &crate::store::EventRow, event_type: &str, data: &str) -> bool {
    if stored.event_type != event_type {
        return false;
    }
    if stored.data == data {
        return true;
    }
    let parse = |text: &str| serde_json::from_str::<serde_json::Value>(text).ok();
    match (parse(&stored.data), parse(data)) {
        (Some(stored), Some(requested)) => stored == requested,
        _ => false,
    }
}
