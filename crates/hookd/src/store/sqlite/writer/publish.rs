//! Publishing, run by the writer inside its group transaction.

use super::sql::{self, MultiRow};
use crate::ids::new_id;
use crate::store::fanout::{FanoutEvent, FanoutTarget, FanoutTargets, FilterCache};
use crate::store::sql::decode::{
    EVENT_COLUMNS, RowExt, encode_json, event_from_row, event_row_from_new,
};
use crate::store::{DeliveryState, EventRow, NewEvent, Published, StoreResult};
use rusqlite::Connection;
use std::collections::HashMap;

/// Every subscription with its filters, read when the writer's copy is out of date.
pub(super) fn load_fanout_targets(
    conn: &Connection,
    cache: &mut FilterCache,
) -> StoreResult<FanoutTargets> {
    cache.begin_round();
    let targets = sql::query(
        conn,
        "SELECT id, events, filter, active, owner FROM subscriptions",
        |_| {},
        |row| {
            FanoutTarget::parse(
                row.text("id"),
                row.text("events"),
                row.opt_text("filter"),
                row.flag("active"),
                row.opt_text("owner"),
                cache,
            )
        },
    )?;
    cache.end_round();
    Ok(FanoutTargets::new(targets))
}

static EVENTS: MultiRow = MultiRow::new(
    "INSERT INTO events (id, event_type, version, data, retryable, idempotency_key, created_at,
                         owner)",
    8,
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
    targets: &FanoutTargets,
    events: &[NewEvent],
) -> StoreResult<Vec<Published>> {
    let stored = find_existing_events(conn, events)?;
    let mut known = KnownEvents::default();
    for (index, row) in stored.iter().enumerate() {
        known.remember(
            &row.id,
            row.idempotency_key.as_deref(),
            Earlier::Stored(index),
        );
    }
    let mut published: Vec<Published> = Vec::with_capacity(events.len());
    let mut new_events = Vec::with_capacity(events.len());
    let mut new_deliveries = Vec::new();
    for event in events {
        if let Some(earlier) = known.find(event) {
            let (row, deliveries) = match earlier {
                Earlier::Stored(index) => {
                    let row = &stored[index];
                    (row.clone(), count_sendable_deliveries(conn, &row.id)?)
                }
                Earlier::Published(index) => {
                    let first = &published[index];
                    (first.event.clone(), first.deliveries)
                }
            };
            published.push(Published {
                event: row,
                deliveries,
                created: false,
            });
            continue;
        }
        let mut deliveries = 0;
        let fanout = FanoutEvent::new(event);
        for target in targets.selected(&fanout) {
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
        known.remember(
            &event.id,
            event.idempotency_key.as_deref(),
            Earlier::Published(published.len()),
        );
        published.push(Published {
            event: event_row_from_new(event),
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
                .bind(e.created_at)
                .bind(&e.owner);
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

/// Where an event a publish request names was first seen: in the store (an index into the rows
/// found), or earlier in the same request (an index into its answers). Indexes, not copies: an
/// event row carries its payload.
#[derive(Clone, Copy)]
enum Earlier {
    Stored(usize),
    Published(usize),
}

/// Events a publish request refers to that already exist, by id and by idempotency key.
#[derive(Default)]
struct KnownEvents<'a> {
    by_id: HashMap<&'a str, Earlier>,
    by_key: HashMap<&'a str, Earlier>,
}

impl<'a> KnownEvents<'a> {
    fn remember(&mut self, id: &'a str, key: Option<&'a str>, earlier: Earlier) {
        if let Some(key) = key {
            self.by_key.insert(key, earlier);
        }
        self.by_id.insert(id, earlier);
    }

    fn find(&self, event: &NewEvent) -> Option<Earlier> {
        self.by_id.get(event.id.as_str()).copied().or_else(|| {
            let key = event.idempotency_key.as_deref()?;
            self.by_key.get(key).copied()
        })
    }
}

fn find_existing_events(conn: &Connection, events: &[NewEvent]) -> StoreResult<Vec<EventRow>> {
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let keys: Vec<&str> = events
        .iter()
        .filter_map(|e| e.idempotency_key.as_deref())
        .collect();
    let (ids, keys) = (encode_json(&ids)?, encode_json(&keys)?);
    let text = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE id IN (SELECT value FROM json_each(?1))
         UNION
         SELECT {EVENT_COLUMNS} FROM events WHERE idempotency_key IN (SELECT value FROM json_each(?2))"
    );
    sql::query(
        conn,
        &text,
        |q| {
            q.bind(&ids).bind(&keys);
        },
        |row| event_from_row(row),
    )
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
