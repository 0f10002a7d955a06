//! The group-commit publisher of a PostgreSQL node: every publish call waiting in the channel is
//! written in one transaction with a fixed number of statements per call (`UNNEST` inserts).

use super::{map_err, notify_work};
use crate::ids::new_id;
use crate::store::fanout::{FanoutEvent, FanoutTarget, FanoutTargets, FilterCache};
use crate::store::group::{
    PublishJob, PublisherStats, answer_group, fail_group, group_event_count, next_group,
};
use crate::store::sql::decode::{RowExt, event_from_row, event_row_from_new};
use crate::store::*;
use sqlx::postgres::PgPool;
use sqlx::{Connection, PgConnection};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::mpsc;

/// `$1` an event id.
const SELECT_EVENT_BY_ID: &str = "SELECT id, event_type, version, data, retryable, \
     idempotency_key, created_at, owner FROM events WHERE id = $1";

/// Takes every job waiting in the channel (up to `MAX_GROUP_EVENTS` events), runs them in one
/// transaction on a pooled connection (each job inside its own savepoint, so one bad job cannot sink
/// the others), commits once, then answers every job. A failed group fails its jobs only: the pool
/// replaces broken connections, so hookd recovers by itself when the database comes back.
pub(super) async fn run_publisher(
    pool: PgPool,
    mut jobs: mpsc::Receiver<PublishJob>,
    stats: Arc<PublisherStats>,
) {
    let mut fanout = Fanout::default();
    while let Some(group) = next_group(&mut jobs).await {
        match commit_group(&pool, &group, &mut fanout).await {
            Ok(results) => answer_group(group, results, &stats),
            Err(error) => {
                let events = group_event_count(&group);
                tracing::warn!(%error, events, "group commit failed");
                fail_group(group, &error);
            }
        }
    }
}

async fn commit_group(
    pool: &PgPool,
    group: &[PublishJob],
    fanout: &mut Fanout,
) -> StoreResult<Vec<StoreResult<Vec<Published>>>> {
    let mut tx = pool.begin().await.map_err(map_err)?;
    let targets = fanout.current(&mut tx).await?;
    let mut results = Vec::with_capacity(group.len());
    let mut queued_work = false;
    for job in group {
        let mut savepoint = tx.begin().await.map_err(map_err)?;
        match publish_job(&mut savepoint, targets, &job.events).await {
            Ok(published) => {
                savepoint.commit().await.map_err(map_err)?;
                queued_work |= published.iter().any(|p| p.created && p.deliveries > 0);
                results.push(Ok(published));
            }
            Err(error) => {
                savepoint.rollback().await.map_err(map_err)?;
                results.push(Err(error));
            }
        }
    }
    if queued_work {
        notify_work(&mut tx).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(results)
}

/// This publisher's copy of the subscriptions, kept while `fanout_version` (bumped in the same
/// transaction as every change fan-out reads, on any node) stays where it was when the copy was
/// read: a group reads one counter instead of every subscription.
#[derive(Default)]
struct Fanout {
    filters: FilterCache,
    loaded: Option<(i64, FanoutTargets)>,
}

impl Fanout {
    /// The subscriptions as of now. The counter is read before the rows: a change committed in
    /// between is in the rows and moves the counter past the one kept, so it is read again next
    /// time (never the reverse, which would keep a copy without it).
    async fn current(&mut self, conn: &mut PgConnection) -> StoreResult<&FanoutTargets> {
        let version: i64 = sqlx::query_scalar("SELECT version FROM fanout_version WHERE id = 1")
            .fetch_one(&mut *conn)
            .await
            .map_err(map_err)?;
        let loaded = match self.loaded.take() {
            Some((kept, targets)) if kept == version => (kept, targets),
            _ => (version, load_fanout_targets(conn, &mut self.filters).await?),
        };
        Ok(&self.loaded.insert(loaded).1)
    }
}

async fn load_fanout_targets(
    conn: &mut PgConnection,
    cache: &mut FilterCache,
) -> StoreResult<FanoutTargets> {
    let rows = sqlx::query("SELECT id, events, filter, active, owner FROM subscriptions")
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    cache.begin_round();
    let targets = rows
        .iter()
        .map(|row| {
            FanoutTarget::parse(
                row.text("id"),
                row.text("events"),
                row.opt_text("filter"),
                row.flag("active"),
                row.opt_text("owner"),
                cache,
            )
        })
        .collect::<StoreResult<Vec<_>>>()?;
    cache.end_round();
    Ok(FanoutTargets::new(targets))
}

/// Publishes a request's events with a fixed number of statements: one multi-row insert of the
/// events (`UNNEST`), one of all their deliveries, and per event that already existed (a repeated
/// id or idempotency key, rare) a lookup of the stored one. Per-event statements cost a round trip
/// each and bounded a publisher to ≈ 3,000 events/s (BENCHMARKS.md).
async fn publish_job(
    conn: &mut PgConnection,
    targets: &FanoutTargets,
    events: &[NewEvent],
) -> StoreResult<Vec<Published>> {
    let inserted = insert_events(conn, events).await?;
    // An id can appear twice in one request: only its first occurrence was inserted.
    let mut fresh = HashSet::with_capacity(inserted.len());
    let mut rows = DeliveryRows::default();
    let mut created = Vec::with_capacity(events.len());
    for event in events {
        let new = inserted.contains(event.id.as_str()) && fresh.insert(event.id.as_str());
        if new {
            let fanout = FanoutEvent::new(event);
            for target in targets.selected(&fanout) {
                rows.push(event, &target.id);
            }
        }
        created.push(new);
    }
    let pending = rows.insert(conn).await?;
    let mut published = Vec::with_capacity(events.len());
    for (event, created) in events.iter().zip(created) {
        if created {
            published.push(Published {
                event: event_row_from_new(event),
                deliveries: pending.get(event.id.as_str()).copied().unwrap_or(0),
                created: true,
            });
            continue;
        }
        let existing = find_existing_event(conn, event).await?.ok_or_else(|| {
            StoreError::Internal(format!(
                "event {} conflicts with no visible event",
                event.id
            ))
        })?;
        let deliveries = count_sendable_deliveries(conn, &existing.id).await?;
        published.push(Published {
            event: existing,
            deliveries,
            created: false,
        });
    }
    Ok(published)
}

/// Inserts the events whose id and idempotency key are free, in one statement; returns the ids it
/// inserted. If another node is inserting the same id or key at this moment, this waits for its
/// transaction: after its commit the row is skipped (and the caller finds that event), after its
/// rollback it is inserted.
async fn insert_events(
    conn: &mut PgConnection,
    events: &[NewEvent],
) -> StoreResult<HashSet<String>> {
    let column = |f: fn(&NewEvent) -> String| events.iter().map(f).collect::<Vec<String>>();
    let inserted: Vec<String> = sqlx::query_scalar(
        "INSERT INTO events (id, event_type, version, data, retryable, idempotency_key, created_at,
                             owner)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[],
                              $6::text[], $7::int8[], $8::text[])
         ON CONFLICT DO NOTHING
         RETURNING id",
    )
    .bind(column(|e| e.id.clone()))
    .bind(column(|e| e.event_type.clone()))
    .bind(column(|e| e.version.clone()))
    .bind(column(|e| e.data.clone()))
    .bind(events.iter().map(|e| e.retryable).collect::<Vec<bool>>())
    .bind(
        events
            .iter()
            .map(|e| e.idempotency_key.clone())
            .collect::<Vec<Option<String>>>(),
    )
    .bind(events.iter().map(|e| e.created_at).collect::<Vec<i64>>())
    .bind(
        events
            .iter()
            .map(|e| e.owner.clone())
            .collect::<Vec<Option<String>>>(),
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(inserted.into_iter().collect())
}

/// The deliveries of a publish request, inserted in one statement.
#[derive(Default)]
struct DeliveryRows {
    ids: Vec<String>,
    event_ids: Vec<String>,
    subscription_ids: Vec<String>,
    created_at: Vec<i64>,
}

impl DeliveryRows {
    fn push(&mut self, event: &NewEvent, subscription_id: &str) {
        self.ids.push(new_id("dlv", event.created_at));
        self.event_ids.push(event.id.clone());
        self.subscription_ids.push(subscription_id.to_owned());
        self.created_at.push(event.created_at);
    }

    /// One statement for the whole fan-out: a delivery per selected subscription, `pending` (due
    /// now) if it is active and `held` if not. The state is read from the subscription row as the
    /// statement runs, and a subscription deleted since the group began is skipped rather than
    /// failing the foreign key. Returns how many deliveries are pending, per event.
    async fn insert(self, conn: &mut PgConnection) -> StoreResult<HashMap<String, u64>> {
        let mut pending = HashMap::new();
        if self.ids.is_empty() {
            return Ok(pending);
        }
        let rows: Vec<(String, String)> = sqlx::query_as(
            "INSERT INTO deliveries (id, event_id, subscription_id, state, next_attempt_at,
                                     created_at, updated_at)
             SELECT t.id, t.event_id, s.id,
                    CASE WHEN s.active THEN 'pending' ELSE 'held' END,
                    CASE WHEN s.active THEN t.created_at END,
                    t.created_at, t.created_at
               FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[])
                    AS t (id, event_id, subscription_id, created_at)
               JOIN subscriptions s ON s.id = t.subscription_id
             RETURNING event_id, state",
        )
        .bind(&self.ids)
        .bind(&self.event_ids)
        .bind(&self.subscription_ids)
        .bind(&self.created_at)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
        for (event_id, state) in rows {
            let count = pending.entry(event_id).or_insert(0);
            if state == "pending" {
                *count += 1;
            }
        }
        Ok(pending)
    }
}

/// The stored event with this id, else the one with this idempotency key (as SQLite checks them).
async fn find_existing_event(
    conn: &mut PgConnection,
    event: &NewEvent,
) -> StoreResult<Option<EventRow>> {
    let by_id = sqlx::query(SELECT_EVENT_BY_ID)
        .bind(&event.id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?;
    if let Some(row) = by_id {
        return event_from_row(&row).map(Some);
    }
    let Some(key) = &event.idempotency_key else {
        return Ok(None);
    };
    sqlx::query(
        "SELECT id, event_type, version, data, retryable, idempotency_key, created_at, owner
         FROM events WHERE idempotency_key = $1",
    )
    .bind(key)
    .fetch_optional(&mut *conn)
    .await
    .map_err(map_err)?
    .map(|row| event_from_row(&row))
    .transpose()
}

async fn count_sendable_deliveries(conn: &mut PgConnection, event_id: &str) -> StoreResult<u64> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM deliveries WHERE event_id = $1 AND state <> 'held'",
    )
    .bind(event_id)
    .fetch_one(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(count as u64)
}
