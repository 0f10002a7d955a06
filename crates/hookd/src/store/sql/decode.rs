//! Rows to and from the store's types, for every backend (sqlx rows and the SQLite writer's
//! `rusqlite` rows alike): typed column access ([`RowExt`]), column lists, JSON column encoding,
//! pagination, and the fragments of SQL that several statements share.

use super::super::*;
use hookd_core::{EndpointUrl, EventFilter, LegacySignature, SignatureSchemes};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Typed column access that every backend's row type provides, so that decoding is written once.
/// Each method panics on a missing column or a type mismatch, like `sqlx::Row::get` (a bug in the
/// query, not bad data).
pub(crate) trait RowExt {
    fn text(&self, column: &str) -> String;
    fn opt_text(&self, column: &str) -> Option<String>;
    fn int(&self, column: &str) -> i64;
    fn opt_int(&self, column: &str) -> Option<i64>;
    /// A boolean column (SQLite: INTEGER 0/1; PostgreSQL: BOOLEAN).
    fn flag(&self, column: &str) -> bool;
    fn bytes(&self, column: &str) -> Vec<u8>;
    fn opt_float(&self, column: &str) -> Option<f64>;
}

// ---------------------------------------------------------------------------------------------
// Column lists
// ---------------------------------------------------------------------------------------------

macro_rules! subscription_columns {
    () => {
        "id, url, events, description, metadata, secret, active, disabled_reason, failure_count, \
         created_at, updated_at, retry_policy, timeout_ms, headers, previous_secret, \
         previous_secret_expires_at, owner, legacy_signature, filter, signature_schemes, \
         signing_key, signing_key_not_before, previous_signing_key, \
         previous_signing_key_not_before, previous_signing_key_expires_at"
    };
}
pub(crate) use subscription_columns;

/// A recursive CTE `queued(subscription_id)`: every subscription with queued (pending or failed)
/// deliveries, found by a skip scan over `deliveries_queued_by_subscription` (one seek per
/// subscription; neither SQLite nor PostgreSQL 15 skip-scans by itself). `$hint` is SQLite's
/// `INDEXED BY` clause, empty for PostgreSQL. The claims by subscription of both backends share it.
/// The last row is NULL (the end of the scan): filter it out.
macro_rules! queued_subscriptions {
    ($hint:literal) => {
        concat!(
            "queued(subscription_id) AS (
                 SELECT MIN(subscription_id) FROM deliveries ",
            $hint,
            " WHERE state IN ('pending', 'failed')
                 UNION ALL
                 SELECT (SELECT MIN(d.subscription_id) FROM deliveries d ",
            $hint,
            " WHERE d.state IN ('pending', 'failed')
                            AND d.subscription_id > queued.subscription_id)
                   FROM queued WHERE queued.subscription_id IS NOT NULL)"
        )
    };
}
pub(crate) use queued_subscriptions;

/// A CTE `within_bytes(id)`: the claim's candidates (a relation `candidates(id, event_id,
/// next_attempt_at)`, the rows a claim would take by count) cut to the longest prefix, in claim
/// order, whose cost fits the byte room: `?9` bytes, `?10` whether the first row is taken
/// regardless. A row costs its event's `data` size, and the first row of each event once more
/// (`ByteRoom`, `claim_cost`). `octet_length` reads the size from the row's header, not the
/// data. Both backends' claims share it.
macro_rules! within_bytes {
    () => {
        "within_bytes(id) AS (
             SELECT id FROM (
                 SELECT id,
                        ROW_NUMBER() OVER (ORDER BY next_attempt_at, id) AS k,
                        SUM(cost) OVER (ORDER BY next_attempt_at, id
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS spent
                   FROM (SELECT c.id, c.next_attempt_at,
                                octet_length(e.data) * CASE ROW_NUMBER() OVER (
                                    PARTITION BY c.event_id ORDER BY c.next_attempt_at, c.id)
                                    WHEN 1 THEN 2 ELSE 1 END AS cost
                           FROM candidates c JOIN events e ON e.id = c.event_id) AS costed
             ) AS ranked
              WHERE spent <= ?9 OR (k = 1 AND ?10))"
    };
}
pub(crate) use within_bytes;

pub(crate) const SUBSCRIPTION_COLUMNS: &str = subscription_columns!();

/// The deliveries a rescue returns to the queue (a condition on `deliveries`; `?2` leases that end
/// before, `?3` heartbeats older than, `?4` the rescuer, never taken for dead): leased ones whose
/// lease ran out, or whose node stopped renewing its heartbeat. Both backends' rescues use it.
macro_rules! rescuable {
    () => {
        "state = 'in_flight'
            AND (lease_expires_at < ?2
                 OR lease_owner IN (SELECT n.id FROM nodes n
                                     WHERE n.heartbeat_at < ?3 AND n.id IS DISTINCT FROM ?4))"
    };
}
pub(crate) use rescuable;

/// The delivery columns, optionally prefixed by a table alias (`delivery_columns!("d.")`), each
/// named as in the table so that [`delivery_from_row`] reads them either way.
macro_rules! delivery_columns {
    () => {
        delivery_columns!("")
    };
    ($p:literal) => {
        concat!(
            $p,
            "id AS id, ",
            $p,
            "event_id AS event_id, ",
            $p,
            "subscription_id AS subscription_id, ",
            $p,
            "state AS state, ",
            $p,
            "attempts AS attempts, ",
            $p,
            "attempts_before AS attempts_before, ",
            $p,
            "next_attempt_at AS next_attempt_at, ",
            $p,
            "last_status AS last_status, ",
            $p,
            "last_error AS last_error, ",
            $p,
            "created_at AS created_at, ",
            $p,
            "updated_at AS updated_at"
        )
    };
}
pub(crate) use delivery_columns;

/// The subscription columns qualified by a table alias (`s.id, s.url, ...`).
pub(crate) fn prefixed_subscription_columns(alias: &str) -> String {
    SUBSCRIPTION_COLUMNS
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------------------------
// Decoding and encoding
// ---------------------------------------------------------------------------------------------

pub(crate) fn decode_err(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("corrupt {what}: {error}"))
}

pub(crate) fn encode_json<T: Serialize + ?Sized>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| decode_err("json", e))
}

/// Custom headers as stored: a JSON object, or NULL when there are none.
pub(crate) fn headers_text(headers: &BTreeMap<String, String>) -> StoreResult<Option<String>> {
    match headers.is_empty() {
        true => Ok(None),
        false => encode_json(headers).map(Some),
    }
}

/// An attempt's response headers as stored: a JSON array of `[name, value]` pairs, or NULL.
pub(crate) fn response_headers_text(
    headers: &Option<Vec<(String, String)>>,
) -> StoreResult<Option<String>> {
    headers.as_ref().map(encode_json).transpose()
}

pub(crate) fn json_text(value: &serde_json::Value) -> String {
    value.to_string()
}

fn decode_json_column<T: serde::de::DeserializeOwned>(
    row: &impl RowExt,
    column: &str,
) -> StoreResult<Option<T>> {
    row.opt_text(column)
        .map(|text| serde_json::from_str(&text))
        .transpose()
        .map_err(|e| decode_err(column, e))
}

pub(crate) fn subscription_from_row(row: &impl RowExt) -> StoreResult<SubscriptionRow> {
    let events: Vec<String> = serde_json::from_str(&row.text("events"))
        .map_err(|e| decode_err("subscription events", e))?;
    let events = events
        .iter()
        .map(|f| EventFilter::parse(f).map_err(|e| decode_err("subscription filter", e)))
        .collect::<StoreResult<_>>()?;
    let url = EndpointUrl::from_stored(&row.text("url"))
        .map_err(|e| decode_err("subscription url", e))?;
    Ok(SubscriptionRow {
        id: row.text("id"),
        url,
        events,
        description: row.opt_text("description"),
        metadata: row
            .opt_text("metadata")
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|e| decode_err("subscription metadata", e))?,
        secret: row.text("secret"),
        active: row.flag("active"),
        disabled_reason: row.opt_text("disabled_reason"),
        failure_count: row.int("failure_count"),
        created_at: row.int("created_at"),
        updated_at: row.int("updated_at"),
        retry_policy: decode_json_column(row, "retry_policy")?,
        timeout_ms: row.opt_int("timeout_ms"),
        headers: decode_json_column(row, "headers")?.unwrap_or_default(),
        previous_secret: row.opt_text("previous_secret"),
        previous_secret_expires_at: row.opt_int("previous_secret_expires_at"),
        owner: row.opt_text("owner"),
        legacy_signature: LegacySignature::parse(&row.text("legacy_signature")).ok_or_else(
            || {
                decode_err(
                    "subscription legacy_signature",
                    row.text("legacy_signature"),
                )
            },
        )?,
        filter: row.opt_text("filter"),
        signature_schemes: SignatureSchemes::from_stored(&row.text("signature_schemes"))
            .ok_or_else(|| {
                decode_err(
                    "subscription signature_schemes",
                    row.text("signature_schemes"),
                )
            })?,
        signing_key: signing_key_entry(row, "signing_key"),
        previous_signing_key: signing_key_entry(row, "previous_signing_key"),
        previous_signing_key_expires_at: row.opt_int("previous_signing_key_expires_at"),
    })
}

/// A key column and its `_not_before` companion.
fn signing_key_entry(row: &impl RowExt, column: &str) -> Option<SigningKeyEntry> {
    Some(SigningKeyEntry {
        key: row.opt_text(column)?,
        not_before: row
            .opt_int(&format!("{column}_not_before"))
            .unwrap_or_default(),
    })
}

/// The event columns, as [`event_from_row`] reads them.
pub(crate) const EVENT_COLUMNS: &str =
    "id, event_type, version, data, retryable, idempotency_key, created_at, owner";

pub(crate) fn event_from_row(row: &impl RowExt) -> StoreResult<EventRow> {
    Ok(EventRow {
        id: row.text("id"),
        event_type: row.text("event_type"),
        version: row.text("version"),
        data: row.text("data"),
        retryable: row.flag("retryable"),
        idempotency_key: row.opt_text("idempotency_key"),
        created_at: row.int("created_at"),
        owner: row.opt_text("owner"),
    })
}

pub(crate) fn delivery_from_row(row: &impl RowExt) -> StoreResult<DeliveryRow> {
    let state = row.text("state");
    Ok(DeliveryRow {
        id: row.text("id"),
        event_id: row.text("event_id"),
        subscription_id: row.text("subscription_id"),
        state: DeliveryState::parse(&state).ok_or_else(|| decode_err("delivery state", &state))?,
        attempts: row.int("attempts"),
        attempts_before: row.int("attempts_before"),
        next_attempt_at: row.opt_int("next_attempt_at"),
        last_status: row.opt_int("last_status"),
        last_error: row.opt_text("last_error"),
        created_at: row.int("created_at"),
        updated_at: row.int("updated_at"),
    })
}

/// A dead letter: the delivery columns plus its event's `event_type`.
pub(crate) fn dead_letter_from_row(row: &impl RowExt) -> StoreResult<DeadLetterRow> {
    Ok(DeadLetterRow {
        delivery: delivery_from_row(row)?,
        event_type: row.text("event_type"),
    })
}

/// The `data` column of a claim's rows: the event's data on the first of its rows (in `$order`,
/// the order the rows are returned in), NULL on the others, which share that copy
/// ([`claimed_from_row`]). A claim of one event for ten subscriptions so reads its data once.
macro_rules! event_data_once {
    ($order:literal) => {
        concat!(
            "CASE ROW_NUMBER() OVER (PARTITION BY e.id ORDER BY ",
            $order,
            ") WHEN 1 THEN e.data END AS data"
        )
    };
}
pub(crate) use event_data_once;

/// Decodes the rows of one claim: `delivery_id`, `delivery_attempts`,
/// `delivery_attempts_before`, the event's columns (its id
/// as `event_id`, its time as `event_created_at`, `data` only on its first row) and the
/// subscription's columns. Each subscription is decoded once per claim and shared by its rows (a
/// claim of a busy endpoint is hundreds of rows of the same subscription, and decoding one parses
/// three JSON columns); so is each event.
#[derive(Default)]
pub(crate) struct ClaimDecoder {
    subscriptions: HashMap<String, Arc<SubscriptionRow>>,
    events: ClaimedEvents,
}

impl ClaimDecoder {
    pub fn decode(&mut self, row: &impl RowExt) -> StoreResult<ClaimedDelivery> {
        let id = row.text("id");
        let subscription = match self.subscriptions.get(&id) {
            Some(subscription) => Arc::clone(subscription),
            None => {
                let subscription = Arc::new(subscription_from_row(row)?);
                self.subscriptions.insert(id, Arc::clone(&subscription));
                subscription
            }
        };
        claimed_from_row(row, subscription, &mut self.events)
    }
}

/// The events of one claim by id, each decoded once and shared by its rows.
pub(crate) type ClaimedEvents = HashMap<String, Arc<EventRow>>;

/// A claimed row. Its event comes from `events` when an earlier row of the claim brought it (its
/// `data` is then NULL, see [`event_data_once`]).
pub(crate) fn claimed_from_row(
    row: &impl RowExt,
    subscription: Arc<SubscriptionRow>,
    events: &mut ClaimedEvents,
) -> StoreResult<ClaimedDelivery> {
    let event_id = row.text("event_id");
    let event = match (events.get(&event_id), row.opt_text("data")) {
        (Some(event), _) => Arc::clone(event),
        (None, Some(data)) => {
            let event = Arc::new(EventRow {
                id: event_id.clone(),
                event_type: row.text("event_type"),
                version: row.text("version"),
                data,
                retryable: row.flag("retryable"),
                idempotency_key: row.opt_text("idempotency_key"),
                created_at: row.int("event_created_at"),
                owner: row.opt_text("event_owner"),
            });
            events.insert(event_id, Arc::clone(&event));
            event
        }
        (None, None) => {
            return Err(StoreError::Internal(format!(
                "claimed a delivery of event {event_id} without its data"
            )));
        }
    };
    Ok(ClaimedDelivery {
        delivery_id: row.text("delivery_id"),
        attempts: row.int("delivery_attempts"),
        attempts_before: row.int("delivery_attempts_before"),
        event,
        subscription,
    })
}

pub(crate) fn event_type_from_row(row: &impl RowExt) -> EventTypeRow {
    EventTypeRow {
        name: row.text("name"),
        description: row.text("description"),
        created_at: row.int("created_at"),
        archived_at: row.opt_int("archived_at"),
        schemas: row.opt_text("schemas"),
        examples: row.opt_text("examples"),
        validate: row.text("validate"),
        updated_at: row.int("updated_at"),
    }
}

pub(crate) fn api_key_from_row(row: &impl RowExt) -> ApiKeyRow {
    ApiKeyRow {
        id: row.text("id"),
        name: row.text("name"),
        prefix: row.text("prefix"),
        scopes: hookd_core::scopes::Scopes::from_stored(&row.text("scopes")),
        owner: row.opt_text("owner"),
        created_at: row.int("created_at"),
        revoked_at: row.opt_int("revoked_at"),
    }
}

pub(crate) fn attempt_from_row(row: &impl RowExt) -> AttemptRow {
    AttemptRow {
        id: row.text("id"),
        delivery_id: row.text("delivery_id"),
        attempt: row.int("attempt"),
        started_at: row.int("started_at"),
        duration_ms: row.int("duration_ms"),
        request_timestamp: row.int("request_timestamp"),
        status: row.opt_int("status"),
        response_excerpt: row.opt_text("response_excerpt"),
        // A JSON array of `[name, value]` pairs; a log entry that cannot be read shows no headers
        // rather than failing the page that lists it.
        response_headers: row
            .opt_text("response_headers")
            .and_then(|text| serde_json::from_str(&text).ok()),
        error: row.opt_text("error"),
        error_class: row.opt_text("error_class"),
    }
}

pub(crate) fn receipt_from_row(row: &impl RowExt) -> ReceiptRow {
    ReceiptRow {
        id: row.text("id"),
        subscription_id: row.text("subscription_id"),
        webhook_id: row.text("webhook_id"),
        event_type: row.opt_text("event_type"),
        received_at: row.int("received_at"),
    }
}

pub(crate) fn event_row_from_new(event: &NewEvent) -> EventRow {
    EventRow {
        id: event.id.clone(),
        event_type: event.event_type.clone(),
        version: event.version.clone(),
        data: event.data.clone(),
        retryable: event.retryable,
        idempotency_key: event.idempotency_key.clone(),
        created_at: event.created_at,
        owner: event.owner.clone(),
    }
}

/// Counts the deliveries in each state but `delivered` among those `$scope` (an SQL condition on
/// `deliveries`) keeps: one `(state, n)` row per state. Each count names its state as a literal, so
/// that it reads only the partial index holding that state (`deliveries_by_state_created`;
/// `deliveries_leased` for `in_flight`): the cost follows the queue and the dead letters, never the
/// delivered majority. No index holds every row by state, since each claim and each outcome would
/// rewrite it (migration 0009).
macro_rules! backlog_counts {
    ($scope:expr) => {
        concat!(
            "SELECT 'pending' AS state, COUNT(*) AS n FROM deliveries WHERE state = 'pending' AND ",
            $scope,
            " UNION ALL SELECT 'in_flight', COUNT(*) FROM deliveries WHERE state = 'in_flight' AND ",
            $scope,
            " UNION ALL SELECT 'failed', COUNT(*) FROM deliveries WHERE state = 'failed' AND ",
            $scope,
            " UNION ALL SELECT 'dead', COUNT(*) FROM deliveries WHERE state = 'dead' AND ",
            $scope,
            " UNION ALL SELECT 'held', COUNT(*) FROM deliveries WHERE state = 'held' AND ",
            $scope
        )
    };
}
pub(crate) use backlog_counts;

/// Adds one `(state, count)` row of a `GROUP BY state` query to the stats.
pub(crate) fn add_state_count(stats: &mut DeliveryStats, state: &str, n: i64) {
    stats.total += n;
    match DeliveryState::parse(state) {
        Some(DeliveryState::Delivered) => stats.delivered += n,
        Some(DeliveryState::Failed) => stats.failed += n,
        Some(DeliveryState::Dead) => {
            stats.dead += n;
            stats.failed += n;
        }
        Some(DeliveryState::Pending) => stats.pending += n,
        Some(DeliveryState::InFlight) => stats.in_flight += n,
        Some(DeliveryState::Held) => stats.held += n,
        None => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Pagination and patching
// ---------------------------------------------------------------------------------------------

/// Splits a `limit + 1` fetch into a page and the cursor of its last row.
pub(crate) fn into_page<T>(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> Cursor) -> Page<T> {
    let limit = limit as usize;
    let next = match items.len() > limit {
        true => {
            items.truncate(limit);
            items.last().map(key)
        }
        false => None,
    };
    Page { items, next }
}

/// Applies a patch in memory. Re-enabling clears the reason it was disabled and its failure count.
pub(crate) fn apply_patch(sub: &mut SubscriptionRow, patch: SubscriptionPatch, now: UnixMs) {
    if let Some(url) = patch.url {
        sub.url = url;
    }
    if let Some(events) = patch.events {
        sub.events = events;
    }
    if let Some(description) = patch.description {
        sub.description = description;
    }
    if let Some(metadata) = patch.metadata {
        sub.metadata = metadata;
    }
    if let Some(retry_policy) = patch.retry_policy {
        sub.retry_policy = retry_policy;
    }
    if let Some(timeout_ms) = patch.timeout_ms {
        sub.timeout_ms = timeout_ms;
    }
    if let Some(headers) = patch.headers {
        sub.headers = headers;
    }
    if let Some(owner) = patch.owner {
        sub.owner = owner;
    }
    if let Some(legacy_signature) = patch.legacy_signature {
        sub.legacy_signature = legacy_signature;
    }
    if let Some(filter) = patch.filter {
        sub.filter = filter;
    }
    if let Some(schemes) = patch.signature_schemes {
        sub.signature_schemes = schemes;
    }
    if let Some(key) = patch.signing_key {
        sub.signing_key = Some(SigningKeyEntry {
            key,
            not_before: now,
        });
        sub.previous_signing_key = None;
        sub.previous_signing_key_expires_at = None;
    } else if let Some(key) = patch.signing_key_if_missing
        && sub.signing_key.is_none()
    {
        sub.signing_key = Some(SigningKeyEntry {
            key,
            not_before: now,
        });
    }
    match patch.active {
        Some(true) if !sub.active => {
            sub.active = true;
            sub.disabled_reason = None;
            sub.failure_count = 0;
        }
        Some(false) if sub.active => {
            sub.active = false;
            sub.disabled_reason = Some("disabled by operator".into());
        }
        _ => {}
    }
    sub.updated_at = now;
}

// ---------------------------------------------------------------------------------------------
// Secrets at rest
// ---------------------------------------------------------------------------------------------

/// Refuses to write a secret sealed with key `written` when the database names another sealing
/// key (`stored`): the master key was rotated since the writer loaded its keys. Values without a
/// key id (plaintext, `enc:v1:`) and databases never rotated accept anything.
pub(crate) fn check_sealing_key(stored: Option<&str>, written: Option<&str>) -> StoreResult<()> {
    match (stored, written) {
        (Some(stored), Some(written)) if stored != written => {
            Err(StoreError::SealingKeyChanged(stored.to_owned()))
        }
        _ => Ok(()),
    }
}

/// The subscription columns that hold sealed values (`secret` is never NULL).
pub(crate) const SEALED_COLUMNS: [&str; 4] = [
    "secret",
    "previous_secret",
    "signing_key",
    "previous_signing_key",
];

/// One subscription's id and its [`SEALED_COLUMNS`], each value passed through `reseal`.
pub(crate) fn reseal_row(
    row: &impl RowExt,
    reseal: &ResealFn<'_>,
) -> StoreResult<(String, Vec<Option<String>>)> {
    let id = row.text("id");
    let values = SEALED_COLUMNS
        .iter()
        .map(|column| {
            row.opt_text(column)
                .map(|value| reseal(&id, &value))
                .transpose()
        })
        .collect::<StoreResult<_>>()?;
    Ok((id, values))
}

// ---------------------------------------------------------------------------------------------
// The delivery log
// ---------------------------------------------------------------------------------------------

/// The delivery log's query for `search` (the dashboard's log, and `GET /api/deliveries` through
/// `DeliverySearch::from_query`). Parameters, in order: subscription, state, event type, status, since,
/// until, owner, cursor time, cursor id, limit. `leased_hint` follows the table for the `in_flight`
/// filter (SQLite: `INDEXED BY deliveries_leased`; empty for PostgreSQL, which plans by statistics).
///
/// Each filter that is set is a plain condition an index can serve; each unset one is a no-op on its
/// parameter (every parameter stays referenced). `(? IS NULL OR column = ?)` would read the same,
/// but no planner uses an index for it: a subscription filter or a deep cursor would then walk the
/// whole log from its newest row. Which index serves what (checked by
/// `sqlite::ui::tests::every_log_filter_is_served_by_an_index`):
///
/// - no filter, a time range, a cursor: `deliveries_by_time` from the cursor (or `until`) down;
/// - an endpoint: `deliveries_by_subscription`;
/// - a state: `pending`, `failed`, `dead`, `held`: `deliveries_by_state_created`, a partial index,
///   which is why the condition repeats the state as a literal; `in_flight`: every leased row from
///   `deliveries_leased`, sorted; `delivered` walks `deliveries_by_time` (the dense majority);
/// - a failure status (≥ 300): `deliveries_by_failure_status`, a partial index, which is why the
///   condition repeats its `last_status >= 300`; a 2xx status walks `deliveries_by_time`, where
///   such rows are the dense majority;
/// - an event type: `events_by_type_time`, then each event's deliveries by `(event_id, …)`;
/// - a portal owner: each of the owner's subscriptions by `deliveries_by_subscription`.
///
/// The event type and owner filters then sort the rows of that type or owner (found by index, so
/// the cost grows with that type's or owner's volume, not the table's: 15 ms and 90 ms for 2,000
/// and 25,000 of 100,000 rows in a debug build). On PostgreSQL the same shapes were checked with
/// `EXPLAIN ANALYZE` of generic plans over 100,000 analyzed rows: index scans backward on
/// `deliveries_by_failure_status` (status and cursor in the index condition),
/// `deliveries_by_state_created`, and `deliveries_by_time` for an endpoint holding 5% of the rows.
pub(crate) fn delivery_log_sql(
    search: &crate::store::ui::DeliverySearch,
    leased_hint: &str,
) -> String {
    let p = |n: u8| format!("?{n}");
    let either = |set: bool, plain: String, n: u8| match set {
        true => plain,
        false => format!("{} IS NULL", p(n)),
    };
    // The state again as a literal (a closed set of names, never the caller's text): a planner that
    // plans without the parameter's value (SQLite always, PostgreSQL for a generic plan) uses a
    // partial index only for a condition that implies its predicate.
    let state = match search.state {
        Some(state) => format!("d.state = {} AND d.state = '{}'", p(2), state.as_str()),
        None => format!("{} IS NULL", p(2)),
    };
    let status = match search.status {
        Some(status) if status >= 300 => {
            format!("d.last_status = {} AND d.last_status >= 300", p(4))
        }
        Some(_) => format!("d.last_status = {}", p(4)),
        None => format!("{} IS NULL", p(4)),
    };
    let cursor = match search.after {
        Some(_) => format!("(d.created_at, d.id) < ({}, {})", p(8), p(9)),
        None => format!("{} IS NULL AND {} IS NULL", p(8), p(9)),
    };
    let conditions = [
        either(
            search.subscription_id.is_some(),
            format!("d.subscription_id = {}", p(1)),
            1,
        ),
        state,
        either(
            search.event_type.is_some(),
            format!("e.event_type = {}", p(3)),
            3,
        ),
        status,
        either(
            search.since.is_some(),
            format!("d.created_at >= {}", p(5)),
            5,
        ),
        either(
            search.until.is_some(),
            format!("d.created_at < {}", p(6)),
            6,
        ),
        either(
            search.owner.is_some(),
            format!(
                "d.subscription_id IN (SELECT id FROM subscriptions WHERE owner = {})",
                p(7)
            ),
            7,
        ),
        cursor,
    ];
    let hint = match search.state {
        Some(DeliveryState::InFlight) => leased_hint,
        _ => "",
    };
    format!(
        concat!(
            "SELECT ",
            delivery_columns!("d."),
            ", e.event_type AS event_type
               FROM deliveries d {} JOIN events e ON e.id = d.event_id
              WHERE {}
              ORDER BY d.created_at DESC, d.id DESC LIMIT {}"
        ),
        hint,
        conditions.join("\n                AND "),
        p(10),
    )
}
