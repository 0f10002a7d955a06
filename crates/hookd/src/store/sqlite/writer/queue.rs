//! Queue bookkeeping, run by the writer inside its group transaction: claims, outcomes, lease
//! releases and rescues.

use super::RecordJob;
use super::sql::{self, MultiRow};
use crate::store::outcomes::{applied_effects, failure_count_update};
use crate::store::sql::decode::{
    ClaimedEvents, RowExt, SUBSCRIPTION_COLUMNS, claimed_from_row, encode_json, event_data_once,
    queued_subscriptions, rescuable, response_headers_text, subscription_from_row, within_bytes,
};
use crate::store::sql::subscriptions::{DISABLE_SUBSCRIPTION, HOLD_QUEUED};
use crate::store::*;
use hookd_core::outcome::FailureEffects;
use rusqlite::Connection;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

// ---------------------------------------------------------------------------------------------
// Claims
// ---------------------------------------------------------------------------------------------

/// The claim by due time, read: the `?2` oldest due rows (`deliveries_due`) of active
/// subscriptions, in claim order, each with its subscription's request timeout (`?3` the default)
/// and its event's size. Which of them to lease is decided by [`ClaimRequest::pick`].
const READ_WINDOW: &str = "
    SELECT d.row, d.subscription_id, d.event_id, COALESCE(s.timeout_ms, ?3) AS timeout_ms,
           s.active, octet_length(e.data) AS bytes
      FROM (SELECT rowid AS row, subscription_id, event_id, next_attempt_at
              FROM deliveries INDEXED BY deliveries_due
             WHERE state IN ('pending', 'failed') AND next_attempt_at <= ?1
             ORDER BY next_attempt_at LIMIT ?2) AS d
      CROSS JOIN subscriptions s ON s.id = d.subscription_id
      CROSS JOIN events e ON e.id = d.event_id
     ORDER BY d.next_attempt_at, d.row";

/// The claim by due time, leased: `?4` the picked rows as JSON `[[rowid, timeout_ms], …]`; `?1`
/// owner, `?2` now, `?3` lease margin.
const LEASE_PICKED: &str = "
    UPDATE deliveries
       SET state = 'in_flight', lease_owner = ?1, updated_at = ?2,
           lease_expires_at = ?2 + ?3 + (picked.value ->> 1)
      FROM json_each(?4) AS picked
     WHERE deliveries.rowid = picked.value ->> 0
       AND deliveries.state IN ('pending', 'failed')
    RETURNING deliveries.rowid AS row, deliveries.subscription_id AS subscription_id";

/// The claim by subscription (the skip scan; see [`claim`]): each subscription with queued work, at
/// most its room of its oldest due rows. Parameters: `?1` owner, `?2` now, `?3` lease margin, `?4`
/// default timeout, `?5` the listed rooms (JSON `[[subscription, room], …]`), `?6` limit, `?7`
/// default room, `?8` the most rows one subscription may give, `?9` and `?10` the byte room
/// ([`within_bytes`]).
pub(super) const CLAIM_DUE: &str = concat!(
    "WITH RECURSIVE
      listed(subscription_id, room) AS MATERIALIZED (
          SELECT value ->> 0, value ->> 1 FROM json_each(?5)),
      ",
    queued_subscriptions!("INDEXED BY deliveries_queued_by_subscription"),
    ",
      open(id, room, timeout_ms) AS MATERIALIZED (
          SELECT s.id, COALESCE(listed.room, ?7), COALESCE(s.timeout_ms, ?4)
            FROM queued CROSS JOIN subscriptions s ON s.id = queued.subscription_id
            LEFT JOIN listed ON listed.subscription_id = s.id
           WHERE s.active = 1 AND COALESCE(listed.room, ?7) > 0),
      candidates(id, event_id, next_attempt_at, timeout_ms) AS MATERIALIZED (
          SELECT row, event_id, next_attempt_at, timeout_ms FROM (
               SELECT d.rowid AS row, d.event_id, d.next_attempt_at, o.room, o.timeout_ms,
                      ROW_NUMBER() OVER (PARTITION BY o.id ORDER BY d.next_attempt_at) AS n
                 FROM open o CROSS JOIN deliveries d
                WHERE d.rowid IN (
                      SELECT q.rowid FROM deliveries q INDEXED BY deliveries_queued_by_subscription
                       WHERE q.subscription_id = o.id AND q.state IN ('pending', 'failed')
                         AND q.next_attempt_at <= ?2
                       ORDER BY q.next_attempt_at LIMIT ?8))
            WHERE n <= room
            ORDER BY next_attempt_at LIMIT ?6),
      ",
    within_bytes!(),
    "
    UPDATE deliveries
       SET state = 'in_flight', lease_owner = ?1, updated_at = ?2,
           lease_expires_at = ?2 + ?3 + picked.timeout_ms
      FROM (SELECT c.id AS row, c.timeout_ms FROM candidates c
             WHERE c.id IN (SELECT id FROM within_bytes)) AS picked
     WHERE deliveries.rowid = picked.row
    RETURNING deliveries.rowid AS row, deliveries.subscription_id AS subscription_id"
);

/// Binds a claim's parameters to [`CLAIM_DUE`].
pub(super) fn bind_claim(q: &mut sql::Binder<'_, '_>, request: &ClaimRequest, rooms: &str) {
    q.bind(&request.owner)
        .bind(request.now)
        .bind(request.lease_margin_ms)
        .bind(request.default_timeout_ms)
        .bind(rooms)
        .bind(i64::from(request.limit))
        .bind(i64::from(request.default_room.unwrap_or(u32::MAX)))
        .bind(i64::from(request.most_of_one_subscription()));
    let bytes = request.bytes.unwrap_or(ByteRoom {
        bytes: u64::MAX,
        first_regardless: true,
    });
    q.bind(i64::try_from(bytes.bytes).unwrap_or(i64::MAX))
        .bind(bytes.first_regardless);
}

/// What a claimed delivery is sent with, in claim order: the delivery and its event. Subscriptions
/// are read once per claim ([`claimed_subscriptions`]), not joined to every row.
const CLAIMED_ROWS: &str = concat!(
    "SELECT d.id AS delivery_id, d.attempts AS delivery_attempts,
        d.attempts_before AS delivery_attempts_before,
        d.subscription_id, e.id AS event_id, e.event_type, e.version, e.retryable,
        e.idempotency_key, e.created_at AS event_created_at, e.owner AS event_owner, ",
    event_data_once!("d.next_attempt_at, d.rowid"),
    "
   FROM deliveries d
   JOIN events e ON e.id = d.event_id
  WHERE d.rowid IN (SELECT value FROM json_each(?1))
  ORDER BY d.next_attempt_at, d.rowid"
);

/// The subscriptions of a claim's rows, each decoded once.
fn claimed_subscriptions(
    conn: &Connection,
    ids: &[&str],
) -> StoreResult<HashMap<String, Arc<SubscriptionRow>>> {
    static SQL: OnceLock<String> = OnceLock::new();
    let sql = SQL.get_or_init(|| {
        format!(
            "SELECT {SUBSCRIPTION_COLUMNS} FROM subscriptions
              WHERE id IN (SELECT value FROM json_each(?1))"
        )
    });
    let ids = encode_json(&ids)?;
    let rows = sql::query(
        conn,
        sql,
        |q| {
            q.bind(&ids);
        },
        |row| subscription_from_row(row),
    )?;
    Ok(rows
        .into_iter()
        .map(|row| (row.id.clone(), Arc::new(row)))
        .collect())
}

/// Leases due deliveries oldest first, at most each subscription's room (what the worker's window
/// for it has free), so nothing is claimed only to be released again.
///
/// First by due time: [`READ_WINDOW`] reads the window's oldest due rows from `deliveries_due`
/// (`ClaimRequest::window`), [`ClaimRequest::pick`] keeps at most each subscription's room of them
/// within the limit and the byte room (in Rust: a lookup of each row's subscription among the
/// rooms, where a join in SQLite walked every listed room for every row), and [`LEASE_PICKED`]
/// leases those. With many subscriptions this costs the rows read, whatever the number of
/// subscriptions with queued work. When that took fewer rows than the limit and the window was
/// full, rows of subscriptions without room filled it and others may wait behind them: the rest of
/// the claim ([`ClaimRequest::remainder`]) is taken by subscription ([`CLAIM_DUE`]).
///
/// By subscription, a claim costs O(subscriptions with queued work + rows read), whatever the
/// backlog: `queued` lists the subscriptions that have pending or failed rows by a skip scan over
/// the partial index `deliveries_queued_by_subscription` (one seek per subscription: SQLite has no
/// skip scan of its own), `open` drops the inactive ones and those without room, and each open
/// subscription gives its oldest due rows from the same index (`candidates`). A subscription
/// without room is therefore passed over with one seek however long its backlog, and rows of
/// other subscriptions behind that backlog are still found.
///
/// There `within_bytes` keeps the prefix of the candidates that fits the byte room, reading each
/// one's event size by its primary key, as `pick` does for the window.
///
/// SQLite refuses a `LIMIT` that refers to the outer query, so in the claim by subscription each
/// one gives at most `take` rows (`ClaimRequest::most_of_one_subscription`: a fair share of
/// `limit`, at least the default room) and `ROW_NUMBER` keeps each one's own room. The statements
/// name their index (`INDEXED BY`) and fix the join order (`CROSS JOIN`, materialized CTEs): left
/// alone, SQLite's planner walks every subscription and scans `queued` for each of their rows, or
/// picks a state index and sorts every queued row (measured: 528 deliveries/s with a 50k
/// backlog). The tests `the_claim_seeks_each_subscription_with_queued_work` and
/// `the_claim_by_due_time_reads_its_window_only` check the plans.
///
/// Each candidate brings its subscription's request timeout along, so a lease's expiry costs no
/// lookup per row, and the rows are read back without their subscription: each subscription is
/// read and decoded once per claim ([`claimed_subscriptions`]).
///
/// Rows are named by `rowid`, not by their text `id`: each candidate is then one seek in the table
/// instead of a seek in the primary key's index and then the table (the claim reads each row three
/// times). A rowid is only stable within a transaction (`VACUUM` may renumber a table without an
/// `INTEGER PRIMARY KEY`), and all these statements run in the writer's one transaction.
pub(super) fn claim(
    conn: &Connection,
    request: &ClaimRequest,
) -> StoreResult<Vec<ClaimedDelivery>> {
    let window_size = request.window();
    let window = sql::query(
        conn,
        READ_WINDOW,
        |q| {
            q.bind(request.now)
                .bind(i64::from(window_size))
                .bind(request.default_timeout_ms);
        },
        |row| {
            Ok((
                row.int("row"),
                row.int("timeout_ms"),
                row.flag("active"),
                WindowRow {
                    subscription_id: row.text("subscription_id"),
                    event_id: row.text("event_id"),
                    bytes: row.int("bytes").max(0) as u64,
                },
            ))
        },
    )?;
    let full = window.len() >= window_size as usize;
    // The active rows, split into what the lease needs (rowid, timeout) and what `pick` reads.
    let (leases, rows): (Vec<(i64, i64)>, Vec<WindowRow>) = window
        .into_iter()
        .filter(|(_, _, active, _)| *active)
        .map(|(row, timeout_ms, _, window_row)| ((row, timeout_ms), window_row))
        .unzip();
    let picked: Vec<(i64, i64)> = request
        .pick(&rows)
        .into_iter()
        .map(|index| leases[index])
        .collect();
    let mut events = ClaimedEvents::new();
    let mut claimed = match picked.is_empty() {
        true => Vec::new(),
        false => {
            let picked = encode_json(&picked)?;
            let leased = sql::query(
                conn,
                LEASE_PICKED,
                |q| {
                    q.bind(&request.owner)
                        .bind(request.now)
                        .bind(request.lease_margin_ms)
                        .bind(&picked);
                },
                |row| Ok((row.int("row"), row.text("subscription_id"))),
            )?;
            read_leased(conn, &leased, &mut events)?
        }
    };
    if full && let Some(rest) = request.remainder(&claimed) {
        let rooms = encode_json(&rest.room)?;
        let leased = sql::query(
            conn,
            CLAIM_DUE,
            |q| bind_claim(q, &rest, &rooms),
            |row| Ok((row.int("row"), row.text("subscription_id"))),
        )?;
        claimed.extend(read_leased(conn, &leased, &mut events)?);
    }
    Ok(claimed)
}

/// The leased rows (`(rowid, subscription)`) read back with their events and subscriptions, in
/// claim order (each event once in `events`, across both statements of a claim).
fn read_leased(
    conn: &Connection,
    leased: &[(i64, String)],
    events: &mut ClaimedEvents,
) -> StoreResult<Vec<ClaimedDelivery>> {
    if leased.is_empty() {
        return Ok(Vec::new());
    }
    let mut subscription_ids: Vec<&str> = leased.iter().map(|(_, s)| s.as_str()).collect();
    subscription_ids.sort_unstable();
    subscription_ids.dedup();
    let subscriptions = claimed_subscriptions(conn, &subscription_ids)?;
    let rows = encode_json(&leased.iter().map(|(row, _)| *row).collect::<Vec<_>>())?;
    sql::query(
        conn,
        CLAIMED_ROWS,
        |q| {
            q.bind(&rows);
        },
        |row| {
            let id = row.text("subscription_id");
            let subscription = subscriptions.get(&id).ok_or_else(|| {
                StoreError::Internal(format!("claimed a delivery of unknown subscription {id}"))
            })?;
            claimed_from_row(row, Arc::clone(subscription), events)
        },
    )
}

pub(super) fn release(conn: &Connection, owner: &str, ids: &[String]) -> StoreResult<u64> {
    // Back in the queue, unless the subscription was disabled meanwhile: then held, as its queue
    // was (a pending row of a disabled subscription would never be claimed).
    let ids = encode_json(&ids)?;
    sql::execute(
        conn,
        "UPDATE deliveries
            SET state = CASE WHEN (SELECT active FROM subscriptions s
                                    WHERE s.id = deliveries.subscription_id) = 0
                             THEN 'held' ELSE 'pending' END,
                next_attempt_at = CASE WHEN (SELECT active FROM subscriptions s
                                              WHERE s.id = deliveries.subscription_id) = 0
                                       THEN NULL ELSE next_attempt_at END,
                lease_owner = NULL, lease_expires_at = NULL
          WHERE lease_owner = ?1 AND state = 'in_flight'
            AND id IN (SELECT value FROM json_each(?2))",
        |q| {
            q.bind(owner).bind(&ids);
        },
    )
}

pub(super) fn rescue(conn: &Connection, rescue: &Rescue) -> StoreResult<u64> {
    // Held instead of pending when the subscription was disabled meanwhile (as in `release`).
    sql::execute(
        conn,
        concat!(
            "UPDATE deliveries INDEXED BY deliveries_leased
                SET state = CASE WHEN (SELECT active FROM subscriptions s
                                        WHERE s.id = deliveries.subscription_id) = 0
                                 THEN 'held' ELSE 'pending' END,
                    next_attempt_at = CASE WHEN (SELECT active FROM subscriptions s
                                                  WHERE s.id = deliveries.subscription_id) = 0
                                           THEN NULL ELSE ?1 END,
                    lease_owner = NULL, lease_expires_at = NULL, updated_at = ?1
              WHERE ",
            rescuable!()
        ),
        |q| {
            q.bind(rescue.now)
                .bind(rescue.expired_before)
                .bind(rescue.dead_before)
                .bind(&rescue.rescuer);
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Outcomes
// ---------------------------------------------------------------------------------------------

/// Records a batch with a fixed number of statements, whatever its size: one insert for the
/// attempts, one update for the deliveries, then one update per subscription whose failure count
/// changes.
pub(super) fn record(conn: &Connection, job: &RecordJob) -> StoreResult<RecordReport> {
    if job.outcomes.is_empty() {
        return Ok(RecordReport::default());
    }
    insert_attempts(conn, &job.outcomes)?;
    let applied: HashSet<String> = apply_outcomes(conn, &job.owner, &job.outcomes, job.now)?
        .into_iter()
        .collect();
    let (mut report, effects) = applied_effects(&job.outcomes, &applied);
    for (subscription, effect) in effects {
        if apply_failure_effect(
            conn,
            subscription,
            &effect,
            job.disable_after_failures,
            job.now,
        )? {
            report.disabled.push(subscription.to_owned());
        }
    }
    Ok(report)
}

/// A delivery deleted meanwhile (its subscription was deleted) gets no attempt row.
static INSERT_ATTEMPTS: MultiRow = MultiRow::new(
    "INSERT INTO attempts (id, delivery_id, attempt, started_at, duration_ms, request_timestamp,
                           status, response_excerpt, error, error_class, response_headers)
     SELECT * FROM (",
    11,
    ") AS a WHERE EXISTS (SELECT 1 FROM deliveries WHERE id = a.column2)",
);

fn insert_attempts(conn: &Connection, outcomes: &[DeliveryOutcome]) -> StoreResult<()> {
    let headers = outcomes
        .iter()
        .map(|o| response_headers_text(&o.attempt.response_headers))
        .collect::<StoreResult<Vec<_>>>()?;
    let rows: Vec<_> = outcomes.iter().zip(headers).collect();
    INSERT_ATTEMPTS.run(
        conn,
        &rows,
        |q, (o, headers)| {
            let a = &o.attempt;
            q.bind(&a.id)
                .bind(&a.delivery_id)
                .bind(a.attempt)
                .bind(a.started_at)
                .bind(a.duration_ms)
                .bind(a.request_timestamp)
                .bind(a.status)
                .bind(&a.response_excerpt)
                .bind(&a.error)
                .bind(&a.error_class)
                .bind(headers);
        },
        |_| Ok(()),
    )?;
    Ok(())
}

/// A retry for a subscription disabled meanwhile is held instead.
static APPLY_OUTCOMES: MultiRow = MultiRow::new(
    "UPDATE deliveries
        SET state = CASE
                WHEN o.column2 = 'failed' AND (SELECT active FROM subscriptions
                                                WHERE id = deliveries.subscription_id) = 0
                THEN 'held' ELSE o.column2 END,
            next_attempt_at = o.column3, attempts = attempts + 1,
            last_status = o.column4, last_error = o.column5,
            lease_owner = NULL, lease_expires_at = NULL, updated_at = o.column7
       FROM (",
    7,
    ") AS o
      WHERE deliveries.id = o.column1 AND deliveries.lease_owner = o.column6
        AND deliveries.state = 'in_flight'
     RETURNING deliveries.id AS id",
);

/// Applies every outcome whose delivery `owner` still leases; returns the ids applied.
fn apply_outcomes(
    conn: &Connection,
    owner: &str,
    outcomes: &[DeliveryOutcome],
    now: UnixMs,
) -> StoreResult<Vec<String>> {
    APPLY_OUTCOMES.run(
        conn,
        outcomes,
        |q, o| {
            let (state, next_attempt_at) = match o.outcome {
                Outcome::Delivered => ("delivered", None),
                Outcome::Retry { at } => ("failed", Some(at)),
                Outcome::Dead => ("dead", None),
                Outcome::Gone => ("held", None),
            };
            q.bind(&o.delivery_id)
                .bind(state)
                .bind(next_attempt_at)
                .bind(o.attempt.status)
                .bind(&o.attempt.error)
                .bind(owner)
                .bind(now);
        },
        |row| Ok(row.text("id")),
    )
}

/// Applies one subscription's tally; true if this disabled it (its queued deliveries are held).
fn apply_failure_effect(
    conn: &Connection,
    id: &str,
    effect: &FailureEffects,
    disable_after_failures: i64,
    now: UnixMs,
) -> StoreResult<bool> {
    let count = match failure_count_update(effect) {
        None => None,
        Some((statement, argument, unwritten)) => sql::query(
            conn,
            statement,
            |q| {
                q.bind(id).bind(argument);
            },
            |row| Ok(row.int("failure_count")),
        )?
        .first()
        .copied()
        .or(unwritten),
    };
    let Some(reason) = effect.disable_reason(count, disable_after_failures) else {
        return Ok(false);
    };
    disable_subscription(conn, id, &reason, now)
}

/// Disables an active subscription and holds its queued deliveries; false if it was not active.
fn disable_subscription(
    conn: &Connection,
    id: &str,
    reason: &str,
    now: UnixMs,
) -> StoreResult<bool> {
    let disabled = sql::execute(conn, DISABLE_SUBSCRIPTION, |q| {
        q.bind(id).bind(reason).bind(now);
    })?;
    if disabled == 0 {
        return Ok(false);
    }
    sql::execute(conn, HOLD_QUEUED, |q| {
        q.bind(id).bind(now);
    })?;
    tracing::warn!(subscription = %id, %reason, "subscription disabled");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A migrated database of 21 subscriptions: `wh_0` with a backlog of 100,000 due rows, older
    /// than the 20 rows each of the 20 others; opened as the writer opens it.
    async fn backlogged_database(dir: &std::path::Path) -> Connection {
        let conn = super::sql::migrated(dir).await;
        conn.execute_batch(
            "INSERT INTO subscriptions (id, url, events, secret, active, failure_count, created_at,
                                        updated_at)
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 20)
             SELECT 'wh_' || i, 'http://x', '[\"*\"]', 's', 1, 0, 0, 0 FROM n;
             INSERT INTO events (id, event_type, version, data, retryable, created_at)
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100400)
             SELECT printf('evt_%08d', i), 'a', '1', '{}', 1, i FROM n;
             INSERT INTO deliveries (id, event_id, subscription_id, state, next_attempt_at,
                                     created_at, updated_at)
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100400)
             SELECT printf('dlv_%08d', i), printf('evt_%08d', i),
                    CASE WHEN i <= 100000 THEN 'wh_0' ELSE 'wh_' || (1 + i % 20) END,
                    'pending', i, i, i
               FROM n;",
        )
        .unwrap();
        conn
    }

    fn backlog_claim() -> ClaimRequest {
        ClaimRequest {
            owner: "wrk_test".into(),
            now: 200_000,
            limit: 64,
            default_timeout_ms: 10_000,
            lease_margin_ms: 1_000,
            default_room: Some(16),
            room: vec![("wh_0".into(), 0), ("wh_3".into(), 2)],
            bytes: None,
        }
    }

    /// With 100,000 due rows of a subscription without room in front of the others', the claim
    /// reads no table in full and never walks deliveries in `next_attempt_at` order across
    /// subscriptions: it seeks each subscription with queued work (the skip scan) and reads each
    /// open one's oldest rows from `deliveries_queued_by_subscription`. A plan that scanned the
    /// backlog (O(backlog)) fails here.
    #[tokio::test]
    async fn the_claim_seeks_each_subscription_with_queued_work() {
        let dir = tempfile::tempdir().unwrap();
        let conn = backlogged_database(dir.path()).await;
        conn.execute(
            "UPDATE subscriptions SET timeout_ms = 2500 WHERE id = 'wh_3'",
            [],
        )
        .unwrap();
        let request = backlog_claim();
        let rooms = encode_json(&request.room).unwrap();
        let plan = sql::query(
            &conn,
            &format!("EXPLAIN QUERY PLAN {CLAIM_DUE}"),
            |q| bind_claim(q, &request, &rooms),
            |row| Ok(row.text("detail")),
        )
        .unwrap();
        eprintln!("{}", plan.join("\n"));
        for expected in [
            // The skip scan: the next subscription with queued rows, one seek each.
            "SEARCH d USING INDEX deliveries_queued_by_subscription (subscription_id>?)",
            // Each open subscription's oldest due rows.
            "SEARCH q USING INDEX deliveries_queued_by_subscription (subscription_id=? AND next_attempt_at<?)",
            // The candidates, then the update, by rowid: no lookup in the text primary key's index.
            "SEARCH d USING INTEGER PRIMARY KEY (rowid=?)",
            "SEARCH deliveries USING INTEGER PRIMARY KEY (rowid=?)",
            // The byte room: each candidate's event size by the event's primary key.
            "SEARCH e USING INDEX sqlite_autoindex_events_1 (id=?)",
        ] {
            assert!(
                plan.iter().any(|step| step == expected),
                "{expected}: {plan:?}"
            );
        }
        // The lease's timeout comes with the candidates (from `open`), not from a lookup of the
        // subscription per row.
        let subscription_lookups = plan
            .iter()
            .filter(|step| step.contains("autoindex_subscriptions"))
            .count();
        assert_eq!(subscription_lookups, 1, "{plan:?}");
        for step in &plan {
            let mut words = step.split(' ');
            let scans_deliveries = words.next() == Some("SCAN")
                && matches!(words.next(), Some("d" | "q" | "deliveries"));
            assert!(!scans_deliveries, "a scan of deliveries: {plan:?}");
            assert!(!step.contains("deliveries_by_"), "another index: {plan:?}");
            assert!(
                !step.contains("autoindex_deliveries"),
                "by text id: {plan:?}"
            );
        }

        let claimed = claim(&conn, &request).unwrap();
        let mut per_subscription: HashMap<String, usize> = HashMap::new();
        for delivery in &claimed {
            *per_subscription
                .entry(delivery.subscription.id.clone())
                .or_default() += 1;
        }
        assert_eq!(claimed.len(), 64, "{per_subscription:?}");
        assert!(!per_subscription.contains_key("wh_0"));
        assert_eq!(per_subscription.get("wh_3"), Some(&2));

        // Each lease lasts its subscription's timeout (or the default) plus the margin.
        let leases = sql::query(
            &conn,
            "SELECT subscription_id, lease_expires_at, lease_owner FROM deliveries
              WHERE state = 'in_flight'",
            |_| {},
            |row| {
                Ok((
                    row.text("subscription_id"),
                    row.int("lease_expires_at"),
                    row.text("lease_owner"),
                ))
            },
        )
        .unwrap();
        assert_eq!(leases.len(), 64);
        for (subscription, expires, owner) in leases {
            let timeout = match subscription.as_str() {
                "wh_3" => 2_500,
                _ => 10_000,
            };
            assert_eq!(expires, 200_000 + 1_000 + timeout, "{subscription}");
            assert_eq!(owner, "wrk_test");
        }
        let wh_3 = claimed
            .iter()
            .find(|d| d.subscription.id == "wh_3")
            .unwrap();
        assert_eq!(wh_3.subscription.timeout_ms, Some(2_500));
    }

    /// With 2,000 subscriptions that each have one due row, the claim reads the oldest due rows
    /// from `deliveries_due` and never seeks subscription by subscription: it leases the 64 oldest
    /// rows, whatever the number of subscriptions with queued work.
    #[tokio::test]
    async fn the_claim_by_due_time_reads_its_window_only() {
        let dir = tempfile::tempdir().unwrap();
        let conn = super::sql::migrated(dir.path()).await;
        conn.execute_batch(
            "INSERT INTO subscriptions (id, url, events, secret, active, failure_count, created_at,
                                        updated_at)
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 1999)
             SELECT printf('wh_%04d', i), 'http://x', '[\"*\"]', 's', 1, 0, 0, 0 FROM n;
             INSERT INTO events (id, event_type, version, data, retryable, created_at)
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 1999)
             SELECT printf('evt_%04d', i), 'a', '1', '{}', 1, i FROM n;
             INSERT INTO deliveries (id, event_id, subscription_id, state, next_attempt_at,
                                     created_at, updated_at)
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 1999)
             SELECT printf('dlv_%04d', i), printf('evt_%04d', i), printf('wh_%04d', (i * 7) % 2000),
                    'pending', 1000 + i, i, i
               FROM n;",
        )
        .unwrap();
        let request = ClaimRequest {
            room: Vec::new(),
            ..backlog_claim()
        };
        let plan = sql::query(
            &conn,
            &format!("EXPLAIN QUERY PLAN {READ_WINDOW}"),
            |q| {
                q.bind(request.now)
                    .bind(i64::from(request.window()))
                    .bind(request.default_timeout_ms);
            },
            |row| Ok(row.text("detail")),
        )
        .unwrap();
        assert!(
            plan.iter()
                .any(|step| step
                    == "SEARCH deliveries USING INDEX deliveries_due (next_attempt_at<?)"),
            "{plan:?}"
        );
        for step in &plan {
            assert!(!step.contains("queued_by_subscription"), "{plan:?}");
            // `d` is the window itself (a co-routine over `deliveries_due`).
            assert!(
                !matches!(step.as_str(), "SCAN deliveries" | "SCAN s" | "SCAN e"),
                "{plan:?}"
            );
        }

        let claimed = claim(&conn, &request).unwrap();
        let mut ids: Vec<&str> = claimed.iter().map(|d| d.delivery_id.as_str()).collect();
        ids.sort_unstable();
        let oldest: Vec<String> = (0..64).map(|i| format!("dlv_{i:04}")).collect();
        assert_eq!(ids, oldest);
    }
}
