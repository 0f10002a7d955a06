//! Publishing, run by the writer inside its group transaction.

use super::super::common::{FanoutTarget, RowExt, encode_json, event_from_row, event_row_from_new};
use super::super::{DeliveryState, EventRow, NewEvent, Published, StoreResult};
use super::sql::{self, MultiRow};
use crate::ids::new_id;
use rusqlite::Connection;
use std::collections::HashMap;

/// Every subscription with its filters, read once per round that publishes.
pub(super) fn load_fanout_targets(conn: &Connection) -> StoreResult<Vec<FanoutTarget>> {
    sql::query(
        conn,
        "SELECT id, events, active FROM subscriptions",
        |_| {},
        |row| FanoutTarget::parse(row.text("id"), &row.text("events"), row.flag("active")),
    )
}

static EVENTS: MultiRow = MultiRow::new(
    "INSERT INTO events (id, event_type, version, data, retryable, idempotency_key, created_at)",
    7,
    "",
);
static DELIVERIES: MultiRow = MultiRow::new(
    "INSERT INTO deliveries (id, event_id, subscription_id, state, next_attempt_at, created_at,
                             updated_at)",
    7,
    "",
);

/// Publishes one request's events with a fixed number of statements, whatever their count: one
/// lookup of known ids and idempotency keys, one insert of the new events, one of their deliveries.
/// An event whose id or key is already known (in the store, or earlier in the same request) is
/// answered with the first one and writes nothing.
pub(super) fn publish_job(
    conn: &Connection,
    targets: &[FanoutTarget],
    events: &[NewEvent],
) -> StoreResult<Vec<Published>> {
    let mut known = find_existing_events(conn, events)?;
    let mut published = Vec::with_capacity(events.len());
    let mut new_events = Vec::with_capacity(events.len());
    let mut new_deliveries = Vec::new();
    for event in events {
        let earlier = known.by_id.get(&event.id).or_else(|| {
            let key = event.idempotency_key.as_ref()?;
            known.by_key.get(key)
        });
        if let Some(earlier) = earlier {
            let deliveries = match earlier.deliveries {
                Some(count) => count,
                None => count_sendable_deliveries(conn, &earlier.row.id)?,
            };
            published.push(Published {
                event: earlier.row.clone(),
                deliveries,
                created: false,
            });
            continue;
        }
        let mut deliveries = 0;
        for target in targets.iter().filter(|target| target.selects(event)) {
            let (state, next_attempt_at) = match target.active {
                true => (DeliveryState::Pending, Some(event.created_at)),
                false => (DeliveryState::Held, None),
            };
            new_deliveries.push((
                new_id("dlv", event.created_at),
                &event.id,
                &target.id,
                state.as_str(),
                next_attempt_at,
                event.created_at,
            ));
            deliveries += u64::from(target.active);
        }
        let row = event_row_from_new(event);
        known.remember(&row, Some(deliveries));
        published.push(Published {
            event: row,
            deliveries,
            created: true,
        });
        new_events.push(event);
    }
    EVENTS.run(
        conn,
        &new_events,
        |q, e| {
            q.bind(&e.id)
                .bind(&e.event_type)
                .bind(&e.version)
                .bind(&e.data)
                .bind(e.retryable)
                .bind(&e.idempotency_key)
                .bind(e.created_at);
        },
        |_| Ok(()),
    )?;
    DELIVERIES.run(
        conn,
        &new_deliveries,
        |q, d| {
            q.bind(&d.0)
                .bind(d.1)
                .bind(d.2)
                .bind(d.3)
                .bind(d.4)
                .bind(d.5)
                .bind(d.5);
        },
        |_| Ok(()),
    )?;
    Ok(published)
}

/// Events a publish request refers to that already exist, by id and by idempotency key.
#[derive(Default)]
struct KnownEvents {
    by_id: HashMap<String, KnownEvent>,
    by_key: HashMap<String, KnownEvent>,
}

#[derive(Clone)]
struct KnownEvent {
    row: EventRow,
    /// Sendable deliveries, when known without a query (an event of this request).
    deliveries: Option<u64>,
}

impl KnownEvents {
    fn remember(&mut self, row: &EventRow, deliveries: Option<u64>) {
        let known = KnownEvent {
            row: row.clone(),
            deliveries,
        };
        if let Some(key) = &row.idempotency_key {
            self.by_key.insert(key.clone(), known.clone());
        }
        self.by_id.insert(row.id.clone(), known);
    }
}

fn find_existing_events(conn: &Connection, events: &[NewEvent]) -> StoreResult<KnownEvents> {
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let keys: Vec<&str> = events
        .iter()
        .filter_map(|e| e.idempotency_key.as_deref())
        .collect();
    let (ids, keys) = (encode_json(&ids)?, encode_json(&keys)?);
    let rows = sql::query(
        conn,
        "SELECT id, event_type, version, data, retryable, idempotency_key, created_at
           FROM events WHERE id IN (SELECT value FROM json_each(?1))
         UNION
         SELECT id, event_type, version, data, retryable, idempotency_key, created_at
           FROM events WHERE idempotency_key IN (SELECT value FROM json_each(?2))",
        |q| {
            q.bind(&ids).bind(&keys);
        },
        |row| event_from_row(row),
    )?;
    let mut known = KnownEvents::default();
    for row in &rows {
        known.remember(row, None);
    }
    Ok(known)
}

fn count_sendable_deliveries(conn: &Connection, event_id: &str) -> StoreResult<u64> {
    let count = sql::query(
        conn,
        "SELECT COUNT(*) AS n FROM deliveries WHERE event_id = ?1 AND state != 'held'",
        |q| {
            q.bind(event_id);
        },
        |row| Ok(row.int("n")),
    )?;
    Ok(count.first().copied().unwrap_or(0) as u64)
}
