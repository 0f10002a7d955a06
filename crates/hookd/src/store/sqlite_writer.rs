//! The one SQLite writer of the delivery hot path.
//!
//! SQLite lets one connection write at a time; two writers on separate connections wait for each
//! other in SQLite's sleeping busy handler. So every hot-path write (publish groups, claims, outcome
//! batches, lease releases, rescues) goes through one task that owns one connection. It takes every
//! job waiting in its channel, runs them all in one `BEGIN IMMEDIATE` transaction (each job in its own
//! savepoint, so one bad job cannot sink the others), commits once, then answers every job.
//!
//! Each round commits two transactions: first the queue bookkeeping (outcomes, releases and rescues,
//! which free capacity, then claims) with `synchronous=NORMAL`, then the publishes at the configured
//! level (an acknowledged event must survive what that level promises). Queue bookkeeping is
//! crash-safe in WAL, and the next publish commit's fsync makes it durable too (RELIABILITY.md); a
//! claim never waits for a publish's fsync.

use super::common::FanoutTarget;
use super::common::queued_subscriptions;
use super::common::{
    MAX_GROUP_EVENTS, PublishJob, PublisherStats, claimed_from_row, encode_json,
    prefixed_subscription_columns, response_headers_text,
};
use super::sqlite::{load_fanout_targets, map_err, publish_job};
use super::*;
use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{Connection, Row, Sqlite, SqliteConnection, Transaction};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{mpsc, oneshot};

type Reply<T> = oneshot::Sender<StoreResult<T>>;

/// Outcomes to record, as [`Store::record_outcomes`] takes them.
pub(crate) struct RecordJob {
    pub owner: String,
    pub outcomes: Vec<DeliveryOutcome>,
    pub disable_after_failures: i64,
    pub now: UnixMs,
}

/// One write waiting for its group to commit.
pub(crate) enum WriteJob {
    Publish(PublishJob),
    Claim(ClaimRequest, Reply<Vec<ClaimedDelivery>>),
    Record(RecordJob, Reply<RecordReport>),
    Release {
        owner: String,
        ids: Vec<String>,
        reply: Reply<u64>,
    },
    Rescue {
        now: UnixMs,
        reply: Reply<u64>,
    },
}

impl WriteJob {
    /// Rows this job writes, roughly: what bounds a group.
    fn weight(&self) -> usize {
        match self {
            Self::Publish(job) => job.events.len(),
            Self::Claim(request, _) => request.limit as usize,
            Self::Record(job, _) => job.outcomes.len(),
            Self::Release { ids, .. } => ids.len(),
            Self::Rescue { .. } => 1,
        }
    }

    /// Position in a round's queue transaction: capacity-freeing writes first, claims last.
    fn phase(&self) -> u8 {
        match self {
            Self::Claim(..) => 1,
            _ => 0,
        }
    }
}

/// Sends `job` to the writer and waits for the commit of its group.
pub(crate) async fn submit<T>(
    writer: &mpsc::Sender<WriteJob>,
    job: impl FnOnce(Reply<T>) -> WriteJob,
) -> StoreResult<T> {
    let (reply, answer) = oneshot::channel();
    let stopped = || StoreError::Unavailable("the database writer stopped".into());
    writer.send(job(reply)).await.map_err(|_| stopped())?;
    answer.await.map_err(|_| stopped())?
}

/// The answer to one job, sent once the group's fate is known (the commit's error wins).
type Answer = Box<dyn FnOnce(Option<&StoreError>) + Send>;

fn answer<T: Send + 'static>(reply: Reply<T>, result: StoreResult<T>) -> Answer {
    Box::new(move |commit_error| {
        let _ = reply.send(match commit_error {
            Some(error) => Err(error.clone()),
            None => result,
        });
    })
}

/// Runs until the store is dropped (the channel closes). If the connection fails it is reopened for
/// the next group, so hookd recovers by itself when the disk or file comes back.
pub(crate) async fn run_writer(
    connect: SqliteConnectOptions,
    durable: &'static str,
    mut jobs: mpsc::Receiver<WriteJob>,
    stats: Arc<PublisherStats>,
) {
    let mut connection: Option<SqliteConnection> = None;
    let mut level: Option<&'static str> = None;
    while let Some(group) = next_group(&mut jobs).await {
        // Two transactions per round: queue bookkeeping first, without an fsync, then the
        // publishes at the durable level. A claim must not wait for the publishes' fsync: under a
        // steady publish load that wait bounded each subscription to `cap / fsync time` deliveries
        // per second (measured: 672/s at 1,000 single-event publishes/s).
        let (publishes, mut queue): (Vec<_>, Vec<_>) = group
            .into_iter()
            .partition(|job| matches!(job, WriteJob::Publish(_)));
        queue.sort_by_key(WriteJob::phase);
        for (part, wanted, is_publish) in [(queue, "NORMAL", false), (publishes, durable, true)] {
            if part.is_empty() {
                continue;
            }
            let publishes = match is_publish {
                true => part.len(),
                false => 0,
            };
            let result = match prepare(&mut connection, &connect, &mut level, wanted).await {
                Ok(conn) => commit_group(conn, part).await,
                Err(error) => Err((error, part.into_iter().map(abandon).collect())),
            };
            match result {
                Ok(answers) => {
                    if publishes > 0 {
                        stats.groups.fetch_add(1, Ordering::Relaxed);
                        stats
                            .requests
                            .fetch_add(publishes as u64, Ordering::Relaxed);
                    }
                    answers.into_iter().for_each(|answer| answer(None));
                }
                Err((error, answers)) => {
                    tracing::warn!(%error, "database write group failed");
                    connection = None;
                    answers.into_iter().for_each(|answer| answer(Some(&error)));
                }
            }
        }
    }
}

/// The writer's connection, (re)opened if needed, set to the `synchronous` level the group needs.
async fn prepare<'c>(
    connection: &'c mut Option<SqliteConnection>,
    connect: &SqliteConnectOptions,
    level: &mut Option<&'static str>,
    wanted: &'static str,
) -> StoreResult<&'c mut SqliteConnection> {
    let conn = match connection {
        Some(conn) => conn,
        None => {
            *level = None;
            connection.insert(
                SqliteConnection::connect_with(connect)
                    .await
                    .map_err(map_err)?,
            )
        }
    };
    if *level != Some(wanted) {
        let pragma = format!("PRAGMA synchronous = {wanted}");
        sqlx::query(sqlx::AssertSqlSafe(pragma))
            .execute(&mut *conn)
            .await
            .map_err(map_err)?;
        *level = Some(wanted);
    }
    Ok(conn)
}

/// Waits for a job, then takes every job already waiting, up to about [`MAX_GROUP_EVENTS`] rows.
async fn next_group(jobs: &mut mpsc::Receiver<WriteJob>) -> Option<Vec<WriteJob>> {
    let first = jobs.recv().await?;
    let mut weight = first.weight();
    let mut group = vec![first];
    while weight < MAX_GROUP_EVENTS {
        match jobs.try_recv() {
            Ok(job) => {
                weight += job.weight();
                group.push(job);
            }
            Err(_) => break,
        }
    }
    Some(group)
}

/// Runs a group in one transaction. On failure every job gets the error (nothing was committed).
/// A job alone in its group runs without a savepoint (two statements fewer): if it fails, the whole
/// transaction is rolled back instead, which undoes the same writes.
async fn commit_group(
    conn: &mut SqliteConnection,
    group: Vec<WriteJob>,
) -> Result<Vec<Answer>, (StoreError, Vec<Answer>)> {
    let mut answers = Vec::with_capacity(group.len());
    let isolate = group.len() > 1;
    let mut jobs = group.into_iter();
    let outcome = async {
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let mut targets: Option<Vec<FanoutTarget>> = None;
        let mut all_ok = true;
        for job in jobs.by_ref() {
            let (ok, answer) = match isolate {
                true => run_isolated(&mut tx, job, &mut targets).await?,
                false => execute(&mut tx, job, &mut targets).await,
            };
            all_ok &= ok;
            answers.push(answer);
        }
        match all_ok {
            true => tx.commit().await.map_err(map_err),
            // Only a lone job can fail here (isolated ones were rolled back to their savepoint).
            false => tx.rollback().await.map_err(map_err),
        }
    }
    .await;
    match outcome {
        Ok(()) => Ok(answers),
        Err(error) => {
            // Jobs not reached yet still need their answer.
            answers.extend(jobs.map(abandon));
            Err((error, answers))
        }
    }
}

/// An answer for a job that never ran (its group failed first).
fn abandon(job: WriteJob) -> Answer {
    fn failed<T>() -> StoreResult<T> {
        Err(StoreError::Unavailable("write group failed".into()))
    }
    match job {
        WriteJob::Publish(job) => answer(job.reply, failed()),
        WriteJob::Claim(_, reply) => answer(reply, failed()),
        WriteJob::Record(_, reply) => answer(reply, failed()),
        WriteJob::Release { reply, .. } | WriteJob::Rescue { reply, .. } => answer(reply, failed()),
    }
}

/// Runs one job in a savepoint: its own failure rolls back only its writes. An error returned from
/// here (the savepoint itself failed) fails the whole group.
async fn run_isolated(
    tx: &mut Transaction<'_, Sqlite>,
    job: WriteJob,
    targets: &mut Option<Vec<FanoutTarget>>,
) -> StoreResult<(bool, Answer)> {
    let mut savepoint = tx.begin().await.map_err(map_err)?;
    let (ok, answer) = execute(&mut savepoint, job, targets).await;
    match ok {
        true => savepoint.commit().await.map_err(map_err)?,
        false => savepoint.rollback().await.map_err(map_err)?,
    }
    Ok((ok, answer))
}

/// Runs one job's statements. Returns whether it succeeded and its answer (sent after the commit).
async fn execute(
    conn: &mut SqliteConnection,
    job: WriteJob,
    targets: &mut Option<Vec<FanoutTarget>>,
) -> (bool, Answer) {
    fn done<T: Send + 'static>(reply: Reply<T>, result: StoreResult<T>) -> (bool, Answer) {
        (result.is_ok(), answer(reply, result))
    }
    match job {
        WriteJob::Publish(job) => {
            let targets = match targets {
                Some(targets) => Ok(&*targets),
                None => load_fanout_targets(conn)
                    .await
                    .map(|loaded| &*targets.insert(loaded)),
            };
            let result = match targets {
                Ok(targets) => publish_job(conn, targets, &job.events).await,
                Err(error) => Err(error),
            };
            done(job.reply, result)
        }
        WriteJob::Claim(request, reply) => done(reply, claim(conn, &request).await),
        WriteJob::Record(job, reply) => done(reply, record(conn, &job).await),
        WriteJob::Release { owner, ids, reply } => done(reply, release(conn, &owner, &ids).await),
        WriteJob::Rescue { now, reply } => done(reply, rescue(conn, now).await),
    }
}

// ---------------------------------------------------------------------------------------------
// Claims
// ---------------------------------------------------------------------------------------------

/// See [`claim`]. Parameters: `?1` owner, `?2` now, `?3` lease margin, `?4` default timeout, `?5`
/// the listed rooms (JSON `[[subscription, room], …]`), `?6` limit, `?7` default room, `?8` the most
/// rows one subscription may give.
const CLAIM_DUE: &str = concat!(
    "WITH RECURSIVE
      listed(subscription_id, room) AS MATERIALIZED (
          SELECT value ->> 0, value ->> 1 FROM json_each(?5)),
      ",
    queued_subscriptions!("INDEXED BY deliveries_queued_by_subscription"),
    ",
      open(id, room) AS MATERIALIZED (
          SELECT s.id, COALESCE(listed.room, ?7)
            FROM queued CROSS JOIN subscriptions s ON s.id = queued.subscription_id
            LEFT JOIN listed ON listed.subscription_id = s.id
           WHERE s.active = 1 AND COALESCE(listed.room, ?7) > 0)
    UPDATE deliveries
       SET state = 'in_flight', lease_owner = ?1, updated_at = ?2,
           lease_expires_at = ?2 + ?3 + COALESCE(
               (SELECT timeout_ms FROM subscriptions s
                 WHERE s.id = deliveries.subscription_id), ?4)
     WHERE id IN (
           SELECT id FROM (
               SELECT d.id, d.next_attempt_at, o.room,
                      ROW_NUMBER() OVER (PARTITION BY o.id ORDER BY d.next_attempt_at) AS n
                 FROM open o CROSS JOIN deliveries d
                WHERE d.id IN (
                      SELECT q.id FROM deliveries q INDEXED BY deliveries_queued_by_subscription
                       WHERE q.subscription_id = o.id AND q.state IN ('pending', 'failed')
                         AND q.next_attempt_at <= ?2
                       ORDER BY q.next_attempt_at LIMIT ?8))
            WHERE n <= room
            ORDER BY next_attempt_at LIMIT ?6)
    RETURNING id"
);

/// Leases due deliveries oldest first, at most each subscription's room (what the worker's window
/// for it has free), so nothing is claimed only to be released again.
///
/// A claim costs O(subscriptions with queued work + rows read), whatever the backlog: `queued`
/// lists the subscriptions that have pending or failed rows by a skip scan over the partial index
/// `deliveries_queued_by_subscription` (one seek per subscription: SQLite has no skip scan of its
/// own), `open` drops the inactive ones and those without room, and each open subscription gives
/// its oldest due rows from the same index. A subscription without room is therefore passed over
/// with one seek however long its backlog, and rows of other subscriptions behind that backlog are
/// still found (a scan of the oldest due rows across subscriptions would either read the whole
/// backlog or, bounded, starve them).
///
/// SQLite refuses a `LIMIT` that refers to the outer query, so each subscription gives at most
/// `take` rows (`ClaimRequest::most_of_one_subscription`: a fair share of `limit`, at least the
/// default room) and `ROW_NUMBER` keeps each one's own room. The statement names its index (`INDEXED BY`) and fixes
/// the join order (`CROSS JOIN`, materialized CTEs): left alone, SQLite's planner walks every
/// subscription and scans `queued` for each of their rows, or picks `deliveries_by_state_time` and
/// sorts every queued row (measured before: 528 deliveries/s with a 50k backlog). The test
/// `the_claim_seeks_each_subscription_with_queued_work` checks the plan.
async fn claim(
    conn: &mut SqliteConnection,
    request: &ClaimRequest,
) -> StoreResult<Vec<ClaimedDelivery>> {
    let ids: Vec<String> = sqlx::query_scalar(CLAIM_DUE)
        .bind(&request.owner)
        .bind(request.now)
        .bind(request.lease_margin_ms)
        .bind(request.default_timeout_ms)
        .bind(encode_json(&request.room)?)
        .bind(i64::from(request.limit))
        .bind(i64::from(request.default_room.unwrap_or(u32::MAX)))
        .bind(i64::from(request.most_of_one_subscription()))
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT d.id AS delivery_id, d.attempts AS delivery_attempts,
                e.id AS event_id, e.event_type, e.version, e.data, e.retryable,
                e.idempotency_key, e.created_at AS event_created_at,
                {}
           FROM deliveries d
           JOIN events e ON e.id = d.event_id
           JOIN subscriptions s ON s.id = d.subscription_id
          WHERE d.id IN (SELECT value FROM json_each(?1))
          ORDER BY d.next_attempt_at",
        prefixed_subscription_columns("s")
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(encode_json(&ids)?)
        .fetch_all(&mut *conn)
        .await
        .map_err(map_err)?;
    rows.iter().map(claimed_from_row).collect()
}

async fn release(conn: &mut SqliteConnection, owner: &str, ids: &[String]) -> StoreResult<u64> {
    // Back in the queue, unless the subscription was disabled meanwhile: then held, as its queue
    // was (a pending row of a disabled subscription would never be claimed).
    let done = sqlx::query(
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
    )
    .bind(owner)
    .bind(encode_json(&ids)?)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected())
}

async fn rescue(conn: &mut SqliteConnection, now: UnixMs) -> StoreResult<u64> {
    // Held instead of pending when the subscription was disabled meanwhile (as in `release`).
    let done = sqlx::query(
        "UPDATE deliveries INDEXED BY deliveries_leased
            SET state = CASE WHEN (SELECT active FROM subscriptions s
                                    WHERE s.id = deliveries.subscription_id) = 0
                             THEN 'held' ELSE 'pending' END,
                next_attempt_at = CASE WHEN (SELECT active FROM subscriptions s
                                              WHERE s.id = deliveries.subscription_id) = 0
                                       THEN NULL ELSE ?1 END,
                lease_owner = NULL, lease_expires_at = NULL, updated_at = ?1
          WHERE state = 'in_flight' AND lease_expires_at < ?1",
    )
    .bind(now)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(done.rows_affected())
}

// ---------------------------------------------------------------------------------------------
// Outcomes
// ---------------------------------------------------------------------------------------------

/// Records a batch with a fixed number of statements, whatever its size: one insert for the
/// attempts, one update for the deliveries, then one update per subscription whose failure count
/// changes.
async fn record(conn: &mut SqliteConnection, job: &RecordJob) -> StoreResult<RecordReport> {
    if job.outcomes.is_empty() {
        return Ok(RecordReport::default());
    }
    insert_attempts(conn, &job.outcomes).await?;
    let applied: HashSet<String> = apply_outcomes(conn, &job.owner, &job.outcomes, job.now)
        .await?
        .into_iter()
        .collect();
    let mut report = RecordReport {
        applied: applied.len() as u64,
        stale: (job.outcomes.len() - applied.len()) as u64,
        disabled: Vec::new(),
    };
    let mut seen = HashSet::new();
    let counted = job
        .outcomes
        .iter()
        .filter(|o| applied.contains(&o.delivery_id) && seen.insert(o.delivery_id.as_str()));
    for (subscription, effect) in FailureEffects::tally(counted) {
        if apply_failure_effect(
            conn,
            subscription,
            &effect,
            job.disable_after_failures,
            job.now,
        )
        .await?
        {
            report.disabled.push(subscription.to_owned());
        }
    }
    Ok(report)
}

async fn insert_attempts(
    conn: &mut SqliteConnection,
    outcomes: &[DeliveryOutcome],
) -> StoreResult<()> {
    // A delivery deleted meanwhile (its subscription was deleted) gets no attempt row.
    const INSERT: MultiRow = MultiRow {
        head: "INSERT INTO attempts (id, delivery_id, attempt, started_at, duration_ms,
                                     request_timestamp, status, response_excerpt, error,
                                     error_class, response_headers)
               SELECT * FROM (",
        columns: 11,
        tail: ") AS a WHERE EXISTS (SELECT 1 FROM deliveries WHERE id = a.column2)",
    };
    let headers = outcomes
        .iter()
        .map(|o| response_headers_text(&o.attempt.response_headers))
        .collect::<StoreResult<Vec<_>>>()?;
    let rows: Vec<_> = outcomes.iter().zip(headers).collect();
    INSERT
        .run(conn, &rows, |q, (o, headers)| {
            let a = &o.attempt;
            q.bind(a.id.clone())
                .bind(a.delivery_id.clone())
                .bind(a.attempt)
                .bind(a.started_at)
                .bind(a.duration_ms)
                .bind(a.request_timestamp)
                .bind(a.status)
                .bind(a.response_excerpt.clone())
                .bind(a.error.clone())
                .bind(a.error_class.clone())
                .bind(headers.clone())
        })
        .await?;
    Ok(())
}

/// Applies every outcome whose delivery `owner` still leases; returns the ids applied.
async fn apply_outcomes(
    conn: &mut SqliteConnection,
    owner: &str,
    outcomes: &[DeliveryOutcome],
    now: UnixMs,
) -> StoreResult<Vec<String>> {
    // A retry for a subscription disabled meanwhile is held instead.
    const APPLY: MultiRow = MultiRow {
        head: "UPDATE deliveries
                  SET state = CASE
                          WHEN o.column2 = 'failed' AND (SELECT active FROM subscriptions
                                                          WHERE id = deliveries.subscription_id) = 0
                          THEN 'held' ELSE o.column2 END,
                      next_attempt_at = o.column3, attempts = attempts + 1,
                      last_status = o.column4, last_error = o.column5,
                      lease_owner = NULL, lease_expires_at = NULL, updated_at = o.column7
                 FROM (",
        columns: 7,
        tail: ") AS o
                WHERE deliveries.id = o.column1 AND deliveries.lease_owner = o.column6
                  AND deliveries.state = 'in_flight'
               RETURNING deliveries.id",
    };
    let rows = APPLY
        .run(conn, outcomes, |q, o| {
            let (state, next_attempt_at) = match o.outcome {
                Outcome::Delivered => ("delivered", None),
                Outcome::Retry { at } => ("failed", Some(at)),
                Outcome::Dead => ("dead", None),
                Outcome::Gone => ("held", None),
            };
            q.bind(o.delivery_id.clone())
                .bind(state)
                .bind(next_attempt_at)
                .bind(o.attempt.status)
                .bind(o.attempt.error.clone())
                .bind(owner.to_owned())
                .bind(now)
        })
        .await?;
    Ok(rows.iter().map(|row| row.get::<String, _>(0)).collect())
}

/// What a batch of applied outcomes does to one subscription's consecutive-failure count, in the
/// order they happened: a success resets it, a dead delivery adds one, `410 Gone` disables.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct FailureEffects {
    /// A delivery succeeded: the count restarts from zero before `dead` is added.
    pub reset: bool,
    /// Dead deliveries after the last success.
    pub dead: i64,
    pub gone: bool,
}

impl FailureEffects {
    /// Per subscription, in first-seen order.
    pub fn tally<'a>(outcomes: impl Iterator<Item = &'a DeliveryOutcome>) -> Vec<(&'a str, Self)> {
        let mut order: Vec<&str> = Vec::new();
        let mut effects: HashMap<&str, Self> = HashMap::new();
        for outcome in outcomes {
            let id = outcome.subscription_id.as_str();
            let effect = effects.entry(id).or_insert_with(|| {
                order.push(id);
                Self::default()
            });
            match outcome.outcome {
                Outcome::Delivered => {
                    effect.reset = true;
                    effect.dead = 0;
                }
                Outcome::Dead => effect.dead += 1,
                Outcome::Gone => effect.gone = true,
                Outcome::Retry { .. } => {}
            }
        }
        order
            .into_iter()
            .filter_map(|id| effects.remove(id).map(|effect| (id, effect)))
            .collect()
    }
}

/// Applies one subscription's tally; true if this disabled it (its queued deliveries are held).
async fn apply_failure_effect(
    conn: &mut SqliteConnection,
    id: &str,
    effect: &FailureEffects,
    disable_after_failures: i64,
    now: UnixMs,
) -> StoreResult<bool> {
    let count: Option<i64> = match (effect.reset, effect.dead) {
        (false, 0) => None,
        // The guard skips the row write when the count is already right (the usual success case).
        (true, dead) => sqlx::query_scalar(
            "UPDATE subscriptions SET failure_count = ?2
              WHERE id = ?1 AND failure_count != ?2 RETURNING failure_count",
        )
        .bind(id)
        .bind(dead)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?
        .or(Some(dead)),
        (false, dead) => sqlx::query_scalar(
            "UPDATE subscriptions SET failure_count = failure_count + ?2
              WHERE id = ?1 RETURNING failure_count",
        )
        .bind(id)
        .bind(dead)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?,
    };
    let reason = match count {
        _ if effect.gone => "the endpoint answered 410 Gone".to_owned(),
        Some(count) if effect.dead > 0 && count >= disable_after_failures => {
            format!("auto-disabled after {count} consecutive failed deliveries")
        }
        _ => return Ok(false),
    };
    super::sqlite::disable_subscription(conn, id, &reason, now).await
}

// ---------------------------------------------------------------------------------------------
// Multi-row statements
// ---------------------------------------------------------------------------------------------

/// A statement run over many rows: `head`, then `VALUES (?, …), …` with `columns` placeholders
/// per row, then `tail`.
pub(super) struct MultiRow {
    pub head: &'static str,
    pub columns: usize,
    pub tail: &'static str,
}

/// Most rows per statement (SQLite allows 32,766 bound parameters).
const MAX_ROWS_PER_STATEMENT: usize = 256;

type SqliteQuery = sqlx::query::Query<'static, Sqlite, sqlx::sqlite::SqliteArguments>;

impl MultiRow {
    /// Runs the statement over `rows`, binding each with `bind`, in chunks whose sizes are powers
    /// of two (so at most nine distinct statements are prepared and cached per `MultiRow`). Values
    /// are bound, not embedded in JSON: parsing a JSON argument per row cost more than the writes.
    /// Returns what the statement returns (`RETURNING`), all chunks together.
    /// Every value is bound per row: sqlx numbers anonymous `?` on its own, so mixing them with
    /// numbered ones (`?1`) binds the wrong values.
    pub async fn run<T>(
        &self,
        conn: &mut SqliteConnection,
        rows: &[T],
        bind: impl Fn(SqliteQuery, &T) -> SqliteQuery,
    ) -> StoreResult<Vec<SqliteRow>> {
        let mut returned = Vec::new();
        let mut rest = rows;
        while !rest.is_empty() {
            let size = chunk_size(rest.len());
            let (chunk, tail) = rest.split_at(size);
            let query = chunk
                .iter()
                .fold(sqlx::query(sqlx::AssertSqlSafe(self.sql(size))), &bind);
            returned.extend(query.fetch_all(&mut *conn).await.map_err(map_err)?);
            rest = tail;
        }
        Ok(returned)
    }

    fn sql(&self, rows: usize) -> String {
        let row = format!("({})", vec!["?"; self.columns].join(", "));
        format!(
            "{} VALUES {} {}",
            self.head,
            vec![row; rows].join(", "),
            self.tail
        )
    }
}

/// The largest power of two not above `remaining`, capped at [`MAX_ROWS_PER_STATEMENT`].
fn chunk_size(remaining: usize) -> usize {
    match remaining >= MAX_ROWS_PER_STATEMENT {
        true => MAX_ROWS_PER_STATEMENT,
        false => 1 << (usize::BITS - 1 - remaining.leading_zeros()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two_up_to_the_cap() {
        let mut sizes = Vec::new();
        let mut left = 1_000;
        while left > 0 {
            let size = chunk_size(left);
            sizes.push(size);
            left -= size;
        }
        assert_eq!(sizes, vec![256, 256, 256, 128, 64, 32, 8]);
        assert_eq!(chunk_size(1), 1);
        assert_eq!(chunk_size(3), 2);
    }

    fn outcome(subscription: &str, delivery: &str, outcome: Outcome) -> DeliveryOutcome {
        DeliveryOutcome {
            delivery_id: delivery.into(),
            subscription_id: subscription.into(),
            outcome,
            attempt: AttemptRow {
                id: format!("att_{delivery}"),
                delivery_id: delivery.into(),
                attempt: 1,
                started_at: 0,
                duration_ms: 0,
                request_timestamp: 0,
                status: None,
                response_excerpt: None,
                response_headers: None,
                error: None,
                error_class: None,
            },
        }
    }

    #[test]
    fn tally_counts_dead_after_the_last_success_per_subscription() {
        let outcomes = [
            outcome("a", "1", Outcome::Dead),
            outcome("b", "2", Outcome::Dead),
            outcome("a", "3", Outcome::Delivered),
            outcome("a", "4", Outcome::Dead),
            outcome("a", "5", Outcome::Retry { at: 9 }),
            outcome("b", "6", Outcome::Dead),
            outcome("c", "7", Outcome::Gone),
        ];
        let tally = FailureEffects::tally(outcomes.iter());
        assert_eq!(
            tally,
            vec![
                (
                    "a",
                    FailureEffects {
                        reset: true,
                        dead: 1,
                        gone: false
                    }
                ),
                (
                    "b",
                    FailureEffects {
                        reset: false,
                        dead: 2,
                        gone: false
                    }
                ),
                (
                    "c",
                    FailureEffects {
                        reset: false,
                        dead: 0,
                        gone: true
                    }
                ),
            ]
        );
    }

    /// A database of 21 subscriptions: `wh_0` with a backlog of 100,000 due rows, older than the
    /// 20 rows each of the 20 others.
    async fn backlogged_database(dir: &std::path::Path) -> SqliteConnection {
        let options = SqliteConnectOptions::new()
            .filename(dir.join("hookd.db"))
            .create_if_missing(true)
            .foreign_keys(true);
        let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
        super::super::sqlite::MIGRATOR.run(&mut conn).await.unwrap();
        for seed in [
            "INSERT INTO subscriptions (id, url, events, secret, active, failure_count, created_at,
                                        updated_at)
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 20)
             SELECT 'wh_' || i, 'http://x', '[\"*\"]', 's', 1, 0, 0, 0 FROM n",
            "INSERT INTO events (id, event_type, version, data, retryable, created_at)
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100400)
             SELECT printf('evt_%08d', i), 'a', '1', '{}', 1, i FROM n",
            "INSERT INTO deliveries (id, event_id, subscription_id, state, next_attempt_at,
                                     created_at, updated_at)
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100400)
             SELECT printf('dlv_%08d', i), printf('evt_%08d', i),
                    CASE WHEN i <= 100000 THEN 'wh_0' ELSE 'wh_' || (1 + i % 20) END,
                    'pending', i, i, i
               FROM n",
        ] {
            sqlx::query(seed).execute(&mut conn).await.unwrap();
        }
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
        let mut conn = backlogged_database(dir.path()).await;
        let request = backlog_claim();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {CLAIM_DUE}"
        )))
        .bind(&request.owner)
        .bind(request.now)
        .bind(request.lease_margin_ms)
        .bind(request.default_timeout_ms)
        .bind(encode_json(&request.room).unwrap())
        .bind(i64::from(request.limit))
        .bind(i64::from(request.default_room.unwrap()))
        .bind(i64::from(request.most_of_one_subscription()))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        let plan: Vec<String> = rows.iter().map(|row| row.get("detail")).collect();
        eprintln!("{}", plan.join("\n"));
        for expected in [
            // The skip scan: the next subscription with queued rows, one seek each.
            "SEARCH d USING INDEX deliveries_queued_by_subscription (subscription_id>?)",
            // Each open subscription's oldest due rows.
            "SEARCH q USING INDEX deliveries_queued_by_subscription (subscription_id=? AND next_attempt_at<?)",
            // The candidates, by primary key; then the update, by primary key.
            "SEARCH d USING INDEX sqlite_autoindex_deliveries_1 (id=?)",
        ] {
            assert!(
                plan.iter().any(|step| step == expected),
                "{expected}: {plan:?}"
            );
        }
        for step in &plan {
            let mut words = step.split(' ');
            let scans_deliveries = words.next() == Some("SCAN")
                && matches!(words.next(), Some("d" | "q" | "deliveries"));
            assert!(!scans_deliveries, "a scan of deliveries: {plan:?}");
            assert!(!step.contains("deliveries_by_"), "another index: {plan:?}");
        }

        let claimed = claim(&mut conn, &request).await.unwrap();
        let mut per_subscription: HashMap<String, usize> = HashMap::new();
        for delivery in &claimed {
            *per_subscription
                .entry(delivery.subscription.id.clone())
                .or_default() += 1;
        }
        assert_eq!(claimed.len(), 64, "{per_subscription:?}");
        assert!(!per_subscription.contains_key("wh_0"));
        assert_eq!(per_subscription.get("wh_3"), Some(&2));
    }
}
