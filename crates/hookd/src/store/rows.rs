//! The store's data: rows as stored, what callers ask for, and what the store answers.

use hookd_core::scopes::Scopes;
use hookd_core::{EndpointUrl, EventFilter, LegacySignature, RetryPolicy, SignatureSchemes};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::UnixMs;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    pub id: String,
    pub name: String,
    pub prefix: String,
    /// What the key may do (`admin` for keys from before scopes).
    pub scopes: Scopes,
    /// The one owner the key is bound to, if any.
    pub owner: Option<String>,
    pub created_at: UnixMs,
    pub revoked_at: Option<UnixMs>,
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: String,
    pub name: String,
    pub prefix: String,
    /// SHA-256 of the key; the key itself is never stored.
    pub hash: Vec<u8>,
    pub scopes: Scopes,
    pub owner: Option<String>,
    pub created_at: UnixMs,
}

/// A subscription as stored, its URL and filters parsed (they were validated on the way in, and are
/// parsed again once as each row is read).
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionRow {
    pub id: String,
    pub url: EndpointUrl,
    pub events: Vec<EventFilter>,
    pub description: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub secret: String,
    pub active: bool,
    pub disabled_reason: Option<String>,
    pub failure_count: i64,
    pub created_at: UnixMs,
    pub updated_at: UnixMs,
    /// `None`: the server's default policy.
    pub retry_policy: Option<RetryPolicy>,
    /// `None`: the server's default timeout.
    pub timeout_ms: Option<i64>,
    /// Custom headers sent with every delivery (validated, lowercase names).
    pub headers: BTreeMap<String, String>,
    /// The secret before the last rotation; it keeps signing until `previous_secret_expires_at`.
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<UnixMs>,
    /// The subscriber's id in the operator's system: who may see it in the portal.
    pub owner: Option<String>,
    /// What `X-Webhook-Signature` signs.
    pub legacy_signature: LegacySignature,
    /// The content filter as JSON text (checked by `hookd_core::ContentFilter` before it is
    /// stored); `None`: every event its event-type filters select.
    pub filter: Option<String>,
    /// Which `webhook-signature` schemes deliveries carry.
    pub signature_schemes: SignatureSchemes,
    /// The Ed25519 key pair that signs `v1a` (set once `v1a` was first turned on, or given).
    pub signing_key: Option<SigningKeyEntry>,
    /// The key pair before the last rotation; it keeps signing until
    /// `previous_signing_key_expires_at`.
    pub previous_signing_key: Option<SigningKeyEntry>,
    pub previous_signing_key_expires_at: Option<UnixMs>,
}

/// An Ed25519 signing key as stored: `whsk_…` (sealed at rest like secrets) and since when it signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyEntry {
    pub key: String,
    pub not_before: UnixMs,
}

impl SubscriptionRow {
    /// The `v1a` keys that sign at `now`: the current one, and the previous one during its overlap.
    pub fn signing_keys_at(&self, now: UnixMs) -> Vec<(&SigningKeyEntry, Option<UnixMs>)> {
        let mut keys: Vec<_> = self.signing_key.iter().map(|key| (key, None)).collect();
        if let (Some(previous), Some(until)) = (
            &self.previous_signing_key,
            self.previous_signing_key_expires_at,
        ) && until > now
        {
            keys.push((previous, Some(until)));
        }
        keys
    }
}

impl SubscriptionRow {
    /// A new, active subscription with server defaults for everything optional.
    pub fn new(
        id: String,
        url: EndpointUrl,
        events: Vec<EventFilter>,
        secret: String,
        now: UnixMs,
    ) -> Self {
        Self {
            id,
            url,
            events,
            description: None,
            metadata: None,
            secret,
            active: true,
            disabled_reason: None,
            failure_count: 0,
            created_at: now,
            updated_at: now,
            retry_policy: None,
            timeout_ms: None,
            headers: BTreeMap::new(),
            previous_secret: None,
            previous_secret_expires_at: None,
            owner: None,
            legacy_signature: LegacySignature::Body,
            filter: None,
            signature_schemes: SignatureSchemes::default(),
            signing_key: None,
            previous_signing_key: None,
            previous_signing_key_expires_at: None,
        }
    }
}

/// A partial update. `None` leaves a field alone; `Some(None)` clears a nullable field.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionPatch {
    pub url: Option<EndpointUrl>,
    pub events: Option<Vec<EventFilter>>,
    pub description: Option<Option<String>>,
    pub metadata: Option<Option<serde_json::Value>>,
    pub active: Option<bool>,
    pub retry_policy: Option<Option<RetryPolicy>>,
    pub timeout_ms: Option<Option<i64>>,
    pub headers: Option<BTreeMap<String, String>>,
    pub owner: Option<Option<String>>,
    pub legacy_signature: Option<LegacySignature>,
    /// A checked content filter's JSON text; `Some(None)` removes it.
    pub filter: Option<Option<String>>,
    pub signature_schemes: Option<SignatureSchemes>,
    /// Replaces the `v1a` key at once (no overlap: the previous key stops signing).
    pub signing_key: Option<String>,
    /// A fresh `v1a` key, stored only if the subscription has none yet.
    pub signing_key_if_missing: Option<String>,
}

/// An event ready to be published: ids assigned, fields validated, `data` as the exact JSON text.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: String,
    pub event_type: String,
    pub version: String,
    pub data: String,
    pub retryable: bool,
    pub idempotency_key: Option<String>,
    pub created_at: UnixMs,
    /// Fan out to this subscription only (test events); `None` for normal publishing.
    pub only_subscription: Option<String>,
    /// The owner the event is published to: it goes to that owner's subscriptions only; `None`:
    /// to the subscriptions without an owner.
    pub owner: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub id: String,
    pub event_type: String,
    pub version: String,
    pub data: String,
    pub retryable: bool,
    pub idempotency_key: Option<String>,
    pub created_at: UnixMs,
    pub owner: Option<String>,
}

/// What publishing one event did.
#[derive(Debug, Clone)]
pub struct Published {
    pub event: EventRow,
    /// Deliveries queued for active subscriptions (for an existing event: those it has).
    pub deliveries: u64,
    /// False when the id or idempotency key matched an earlier event and nothing was written.
    pub created: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Waiting for its first attempt (or re-queued by an operator).
    Pending,
    /// Leased by a worker; an attempt is under way.
    InFlight,
    Delivered,
    /// The last attempt failed; a retry is scheduled at `next_attempt_at`.
    Failed,
    /// Attempts exhausted: in the dead-letter queue.
    Dead,
    /// Recorded while the subscription was disabled; not sent unless replayed.
    Held,
}

impl DeliveryState {
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::InFlight,
        Self::Delivered,
        Self::Failed,
        Self::Dead,
        Self::Held,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InFlight => "in_flight",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Dead => "dead",
            Self::Held => "held",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "pending" => Self::Pending,
            "in_flight" => Self::InFlight,
            "delivered" => Self::Delivered,
            "failed" => Self::Failed,
            "dead" => Self::Dead,
            "held" => Self::Held,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    pub id: String,
    pub event_id: String,
    pub subscription_id: String,
    pub state: DeliveryState,
    /// Attempts in the current run (its retry schedule); a redrive starts a new run.
    pub attempts: i64,
    /// Attempts of earlier runs: the attempt log numbers on from `attempts_before + attempts`.
    pub attempts_before: i64,
    pub next_attempt_at: Option<UnixMs>,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: UnixMs,
    pub updated_at: UnixMs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTypeRow {
    pub name: String,
    pub description: String,
    pub created_at: UnixMs,
    pub archived_at: Option<UnixMs>,
    /// JSON Schemas of `data` as a JSON object keyed by envelope version (`"*"`: every other
    /// version), each checked when it was set; `None` without any.
    pub schemas: Option<String>,
    /// A JSON array of example `data` objects, each valid against its schema; `None` without any.
    pub examples: Option<String>,
    /// `off`, `warn` or `enforce`.
    pub validate: String,
    /// Changes with every write of the type (a node's compiled schemas compare it).
    pub updated_at: UnixMs,
}

/// Position in a newest-first listing: the `(created_at, id)` of the last row of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: UnixMs,
    pub id: String,
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

#[derive(Debug, Clone, Default)]
pub struct SubscriptionQuery {
    pub active: Option<bool>,
    /// Only this owner's subscriptions.
    pub owner: Option<String>,
    pub after: Option<Cursor>,
    pub limit: u32,
}

#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub event_type: Option<String>,
    pub owner: Option<String>,
    pub since: Option<UnixMs>,
    pub until: Option<UnixMs>,
    pub after: Option<Cursor>,
    pub limit: u32,
}

/// Asks for due deliveries: every pending or failed delivery with `next_attempt_at <= now` whose
/// subscription is active, oldest first.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    /// Who holds the lease (one id per worker process).
    pub owner: String,
    pub now: UnixMs,
    pub limit: u32,
    /// The lease lasts the subscription's timeout (or this default) plus `lease_margin_ms`.
    pub default_timeout_ms: i64,
    pub lease_margin_ms: i64,
    /// Most deliveries this claim leases of one subscription not listed in `room` (`None`: no
    /// limit).
    pub default_room: Option<u32>,
    /// How many more deliveries the worker takes of these subscriptions (its window minus what it
    /// holds there, in flight or waiting); overrides `default_room`. 0 skips the subscription.
    pub room: Vec<(String, u32)>,
    /// How many bytes of event data the claimed rows may come to (`None`: no limit).
    pub bytes: Option<ByteRoom>,
}

/// The bytes a claim may lease, counted as the worker counts what it holds ([`claim_cost`]): each
/// delivery costs its event's `data` size (its request body, while it is sent), and each event once
/// more (the one copy its deliveries share). The rows taken are a prefix of the claim's order
/// whose costs add up to at most `bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRoom {
    pub bytes: u64,
    /// Take the first row even when it alone costs more than `bytes`: the worker holds nothing, and
    /// an event larger than the whole budget is still sent, one at a time, rather than never.
    pub first_regardless: bool,
}

/// One due row as a claim by due time reads it, in claim order ([`ClaimRequest::pick`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowRow {
    pub subscription_id: String,
    pub event_id: String,
    /// The size of its event's `data`.
    pub bytes: u64,
}

/// What holding `deliveries` deliveries of an event of `data_bytes` costs (see [`ByteRoom`]).
pub fn claim_cost(data_bytes: usize, deliveries: usize) -> u64 {
    match deliveries {
        0 => 0,
        n => data_bytes as u64 * (n as u64 + 1),
    }
}

impl ClaimRequest {
    /// The most deliveries this claim reads of any one subscription: the largest room (the default
    /// one, or a listed one), at most `limit`, and with many subscriptions open at most a fair
    /// share of `limit` (but never less than `default_room`). A claim reads up to this many rows
    /// of every subscription with queued work and ranks them all, so with 100 subscriptions and
    /// no share it read 100 × `limit` rows to lease `limit`. A subscription that got this many may
    /// have more due: the caller claims again.
    pub fn most_of_one_subscription(&self) -> u32 {
        let listed = self.room.iter().map(|(_, n)| *n).max().unwrap_or(0);
        let largest = self
            .default_room
            .unwrap_or(u32::MAX)
            .max(listed)
            .min(self.limit);
        let open = (self.room.iter().filter(|(_, n)| *n > 0).count() as u32).max(1);
        let share = self
            .limit
            .div_ceil(open)
            .max(self.default_room.unwrap_or(u32::MAX));
        largest.min(share)
    }

    /// How many of the oldest due rows a claim reads first, by due time, before it falls back to
    /// finding each subscription's rows ([`ClaimRequest::remainder`]). Twice the limit: the rows
    /// of a few subscriptions without room may sit among them and the claim is still filled.
    pub fn window(&self) -> u32 {
        self.limit.saturating_mul(2).max(64)
    }

    /// Which rows of a window (due rows in claim order) this claim takes, as indexes into it: at
    /// most each subscription's room of them, at most `limit`, and of those the longest prefix
    /// whose cost ([`claim_cost`]: each row its event's size, each event's first row once more)
    /// fits the byte room (the first row regardless, if so asked).
    pub fn pick(&self, window: &[WindowRow]) -> Vec<usize> {
        let rooms: HashMap<&str, u32> = self.room.iter().map(|(id, n)| (id.as_str(), *n)).collect();
        let default_room = self.default_room.unwrap_or(u32::MAX);
        let mut taken: HashMap<&str, u32> = HashMap::new();
        let mut events: std::collections::HashSet<&str> = std::collections::HashSet::new();
        let (budget, first_regardless) = match self.bytes {
            Some(room) => (room.bytes, room.first_regardless),
            None => (u64::MAX, true),
        };
        let mut spent = 0u64;
        let mut picked = Vec::new();
        for (index, row) in window.iter().enumerate() {
            if picked.len() >= self.limit as usize {
                break;
            }
            let subscription = row.subscription_id.as_str();
            let room = rooms.get(subscription).copied().unwrap_or(default_room);
            let count = taken.entry(subscription).or_default();
            if *count >= room {
                continue;
            }
            let cost = match events.contains(row.event_id.as_str()) {
                true => row.bytes,
                false => row.bytes.saturating_mul(2),
            };
            let fits =
                spent.saturating_add(cost) <= budget || (picked.is_empty() && first_regardless);
            if !fits {
                break;
            }
            spent = spent.saturating_add(cost);
            *count += 1;
            events.insert(row.event_id.as_str());
            picked.push(index);
        }
        picked
    }

    /// What is left of this claim once `claimed` has been leased: the limit, each subscription's
    /// room and the byte room, less what those rows took. `None` when nothing is left.
    pub fn remainder(&self, claimed: &[ClaimedDelivery]) -> Option<ClaimRequest> {
        let taken = u32::try_from(claimed.len()).unwrap_or(u32::MAX);
        if taken >= self.limit {
            return None;
        }
        let mut per_subscription: HashMap<&str, u32> = HashMap::new();
        let mut per_event: HashMap<&str, (usize, usize)> = HashMap::new();
        for delivery in claimed {
            *per_subscription
                .entry(delivery.subscription.id.as_str())
                .or_default() += 1;
            per_event
                .entry(delivery.event.id.as_str())
                .or_insert((delivery.event.data.len(), 0))
                .1 += 1;
        }
        let mut room: Vec<(String, u32)> = self
            .room
            .iter()
            .map(|(id, n)| {
                let used = per_subscription.remove(id.as_str()).unwrap_or(0);
                (id.clone(), n.saturating_sub(used))
            })
            .collect();
        let default_room = self.default_room.unwrap_or(u32::MAX);
        room.extend(
            per_subscription
                .into_iter()
                .map(|(id, used)| (id.to_owned(), default_room.saturating_sub(used))),
        );
        let spent: u64 = per_event
            .values()
            .map(|(size, n)| claim_cost(*size, *n))
            .sum();
        let bytes = match self.bytes {
            Some(room) if claimed.is_empty() => Some(room),
            Some(room) if room.bytes <= spent => return None,
            Some(room) => Some(ByteRoom {
                bytes: room.bytes - spent,
                first_regardless: false,
            }),
            None => None,
        };
        Some(ClaimRequest {
            owner: self.owner.clone(),
            now: self.now,
            limit: self.limit - taken,
            default_timeout_ms: self.default_timeout_ms,
            lease_margin_ms: self.lease_margin_ms,
            default_room: self.default_room,
            room,
            bytes,
        })
    }
}

/// Which leases a rescue returns to the queue; each rescued delivery is due at `now` (held if its
/// subscription was disabled meanwhile).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rescue {
    pub now: UnixMs,
    /// Leases that end before this: `now`, or `UnixMs::MAX` when no worker can still hold one (a
    /// node that knows it is the only worker, starting after a crash).
    pub expired_before: UnixMs,
    /// Leases of nodes whose last heartbeat is older than this (`UnixMs::MIN`: none).
    pub dead_before: UnixMs,
    /// The rescuing node itself: never taken for dead, whatever its clock says.
    pub rescuer: Option<String>,
}

impl Rescue {
    /// Only leases that ran out.
    pub fn expired(now: UnixMs) -> Self {
        Self {
            now,
            expired_before: now,
            dead_before: UnixMs::MIN,
            rescuer: None,
        }
    }
}

/// A node as its heartbeat describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRow {
    /// The node's lease owner (`wrk_…`).
    pub id: String,
    /// What the process runs: `all` or `worker`.
    pub role: String,
    pub started_at: UnixMs,
    pub heartbeat_at: UnixMs,
    /// Set by a graceful stop.
    pub stopped_at: Option<UnixMs>,
    /// Deliveries it leases now.
    pub leased: i64,
}

/// A leased delivery with everything needed to send it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub delivery_id: String,
    /// Attempts already made in this run; the next is `attempts + 1` in the retry schedule.
    pub attempts: i64,
    /// Attempts of earlier runs; the next is logged (and sent) as number
    /// `attempts_before + attempts + 1`.
    pub attempts_before: i64,
    /// Shared by every delivery of the same event that the worker holds: one copy of its data
    /// whatever the fan-out.
    pub event: Arc<EventRow>,
    /// Shared by every delivery of the same subscription in one claim: decoded (and its secrets
    /// opened) once per claim, not once per row.
    pub subscription: Arc<SubscriptionRow>,
}

/// One attempt, as logged.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRow {
    pub id: String,
    pub delivery_id: String,
    pub attempt: i64,
    pub started_at: UnixMs,
    pub duration_ms: i64,
    pub request_timestamp: i64,
    pub status: Option<i64>,
    pub response_excerpt: Option<String>,
    /// A bounded, redacted copy of the response headers (`send::capture_headers`), in the order
    /// received; `None` without a response, and for attempts logged before migration 0006.
    pub response_headers: Option<Vec<(String, String)>>,
    pub error: Option<String>,
    /// dns, connect, tls, timeout, http, blocked; `None` on success.
    pub error_class: Option<String>,
}

pub use hookd_core::Outcome;

#[derive(Debug, Clone)]
pub struct DeliveryOutcome {
    pub delivery_id: String,
    pub subscription_id: String,
    pub attempt: AttemptRow,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordReport {
    /// Outcomes applied to deliveries this owner still leased.
    pub applied: u64,
    /// Outcomes whose lease had expired and moved on (the attempt is still logged).
    pub stale: u64,
    /// Subscriptions disabled by these outcomes (410, or too many dead deliveries in a row).
    pub disabled: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryQuery {
    pub subscription_id: Option<String>,
    pub state: Option<DeliveryState>,
    pub after: Option<Cursor>,
    pub limit: u32,
}

/// Selects dead letters (dead deliveries); times are when they died.
#[derive(Debug, Clone, Default)]
pub struct DeadLetterFilter {
    pub subscription_id: Option<String>,
    pub event_type: Option<String>,
    pub since: Option<UnixMs>,
    pub until: Option<UnixMs>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterRow {
    pub delivery: DeliveryRow,
    pub event_type: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RetryResult {
    NotFound,
    /// An attempt is under way; retrying now would send twice.
    InFlight,
    Requeued(DeliveryRow),
}

/// Counts behind the metrics routes (overall or for one subscription).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryStats {
    pub total: i64,
    pub delivered: i64,
    /// Failed (awaiting retry) plus dead.
    pub failed: i64,
    pub dead: i64,
    pub pending: i64,
    pub in_flight: i64,
    pub held: i64,
    /// Mean duration of successful attempts, in ms.
    pub average_latency_ms: Option<f64>,
}

/// One verified request received by the inbound endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptRow {
    pub id: String,
    pub subscription_id: String,
    pub webhook_id: String,
    pub event_type: Option<String>,
    pub received_at: UnixMs,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(limit: u32, default_room: Option<u32>, listed: &[u32]) -> ClaimRequest {
        ClaimRequest {
            owner: "w".into(),
            now: 0,
            limit,
            default_timeout_ms: 10_000,
            lease_margin_ms: 30_000,
            default_room,
            room: listed
                .iter()
                .enumerate()
                .map(|(i, n)| (format!("wh_{i}"), *n))
                .collect(),
            bytes: None,
        }
    }

    #[test]
    fn a_claim_reads_a_fair_share_of_each_subscription_but_at_least_the_default_room() {
        // One busy subscription: the whole limit; two share it.
        assert_eq!(
            request(256, Some(16), &[1_000]).most_of_one_subscription(),
            256
        );
        assert_eq!(
            request(256, Some(16), &[1_000, 900]).most_of_one_subscription(),
            128
        );
        // A hundred: the default room, not 256 rows of each.
        let hundred = vec![1_000; 100];
        assert_eq!(
            request(256, Some(16), &hundred).most_of_one_subscription(),
            16
        );
        // Full subscriptions do not count as sharing.
        assert_eq!(
            request(256, Some(16), &[0, 0, 0, 500]).most_of_one_subscription(),
            256
        );
        // Never more than the largest room or the limit.
        assert_eq!(request(256, Some(4), &[10]).most_of_one_subscription(), 10);
        assert_eq!(request(8, Some(16), &[1_000]).most_of_one_subscription(), 8);
        // No default room: unlimited, as before.
        assert_eq!(request(256, None, &hundred).most_of_one_subscription(), 256);
    }

    fn claimed(subscription: &Arc<SubscriptionRow>, event: &Arc<EventRow>) -> ClaimedDelivery {
        ClaimedDelivery {
            delivery_id: "dlv".into(),
            attempts: 0,
            attempts_before: 0,
            event: Arc::clone(event),
            subscription: Arc::clone(subscription),
        }
    }

    #[test]
    fn the_remainder_of_a_claim_is_what_its_rows_left_of_the_limit_the_rooms_and_the_bytes() {
        let subscription = |id: &str| {
            Arc::new(SubscriptionRow::new(
                id.into(),
                EndpointUrl::from_stored("http://127.0.0.1:1/").unwrap(),
                vec![],
                "s".into(),
                0,
            ))
        };
        let event = Arc::new(EventRow {
            id: "evt".into(),
            event_type: "a".into(),
            version: "1".into(),
            data: "x".repeat(100),
            retryable: true,
            idempotency_key: None,
            created_at: 0,
            owner: None,
        });
        let (listed, other) = (subscription("wh_0"), subscription("wh_9"));
        let mut whole = request(10, Some(4), &[3]);
        whole.bytes = Some(ByteRoom {
            bytes: 1_000,
            first_regardless: true,
        });
        let taken = [
            claimed(&listed, &event),
            claimed(&other, &event),
            claimed(&other, &event),
        ];
        let rest = whole.remainder(&taken).unwrap();
        assert_eq!(rest.limit, 7);
        let mut room = rest.room.clone();
        room.sort();
        assert_eq!(room, vec![("wh_0".into(), 2), ("wh_9".into(), 2)]);
        // Three deliveries of one 100-byte event: 100 × (3 + 1).
        assert_eq!(
            rest.bytes,
            Some(ByteRoom {
                bytes: 600,
                first_regardless: false
            })
        );
        // Nothing taken: the same claim; the limit or the bytes used up: nothing left.
        assert_eq!(whole.remainder(&[]).unwrap().bytes, whole.bytes);
        assert!(request(3, Some(4), &[]).remainder(&taken).is_none());
        whole.bytes = Some(ByteRoom {
            bytes: 400,
            first_regardless: true,
        });
        assert!(whole.remainder(&taken).is_none());
    }

    #[test]
    fn a_window_gives_each_subscription_its_room_within_the_limit_and_the_bytes() {
        let row = |subscription: &str, event: &str, bytes: u64| WindowRow {
            subscription_id: subscription.into(),
            event_id: event.into(),
            bytes,
        };
        // wh_0 has room for 1 (listed), others the default 2.
        let mut claim = request(4, Some(2), &[1]);
        let window = [
            row("wh_0", "e1", 10),
            row("wh_0", "e2", 10),
            row("wh_7", "e1", 10),
            row("wh_7", "e2", 10),
            row("wh_7", "e3", 10),
            row("wh_8", "e3", 10),
            row("wh_9", "e4", 10),
        ];
        assert_eq!(claim.pick(&window), [0, 2, 3, 5]);
        // Bytes: e1 costs 20 then 10 for its second row; e2 20; the next (e3, 20) would pass 55.
        claim.bytes = Some(ByteRoom {
            bytes: 55,
            first_regardless: false,
        });
        assert_eq!(claim.pick(&window), [0, 2, 3]);
        // A first row larger than the room: taken only if so asked.
        let big = [row("wh_9", "e9", 1_000)];
        assert!(claim.pick(&big).is_empty());
        claim.bytes = Some(ByteRoom {
            bytes: 55,
            first_regardless: true,
        });
        assert_eq!(claim.pick(&big), [0]);
        // No room at all for a listed subscription: passed over.
        assert_eq!(
            request(4, Some(2), &[0]).pick(&window[..2]),
            Vec::<usize>::new()
        );
    }
}
