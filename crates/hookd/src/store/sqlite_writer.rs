//! The one SQLite writer of the delivery hot path.
//!
//! SQLite lets one connection write at a time; two writers on separate connections wait for each
//! other in SQLite's sleeping busy handler. So every hot-path write (publish groups, claims, outcome
//! batches, lease releases, rescues) goes through one thread that owns one `rusqlite` connection.
//! It takes every job waiting in its channel, runs them all in one `BEGIN IMMEDIATE` transaction
//! (each job in its own savepoint, so one bad job cannot sink the others), commits once, then
//! answers every job.
//!
//! A thread of its own, not a task on an async driver: `sqlx-sqlite` runs each statement on its
//! worker thread and hands it back, two context switches per statement, and a round is 10–20
//! statements (measured: ≈ 35% of hookd's CPU went to scheduling). Here a round costs one hand-off
//! in (the channel) and one wake-up per answered job.
//!
//! Each round commits two transactions: first the queue bookkeeping (outcomes, releases and rescues,
//! which free capacity, then claims) with `synchronous=NORMAL`, then the publishes at the configured
//! level (an acknowledged event must survive what that level promises). Queue bookkeeping is
//! crash-safe in WAL, and the next publish commit's fsync makes it durable too (RELIABILITY.md); a
//! claim never waits for a publish's fsync.

mod publish;
mod queue;
mod sql;

pub(crate) use queue::FailureEffects;

use super::common::{FanoutTarget, MAX_GROUP_EVENTS, PublishJob, PublisherStats};
use super::*;
use rusqlite::{Connection, TransactionBehavior};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
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

/// Where and how the writer opens its connection.
pub(crate) struct WriterOptions {
    pub path: PathBuf,
    pub busy_timeout: Duration,
    /// `PRAGMA synchronous` for publishes.
    pub durable: &'static str,
}

/// Starts the writer thread. It runs until the store is dropped (the channel closes).
pub(crate) fn spawn_writer(
    options: WriterOptions,
    jobs: mpsc::Receiver<WriteJob>,
    stats: Arc<PublisherStats>,
) -> StoreResult<()> {
    std::thread::Builder::new()
        .name("hookd-sqlite-writer".into())
        .spawn(move || run_writer(options, jobs, stats))
        .map(drop)
        .map_err(|e| StoreError::Internal(format!("cannot start the database writer: {e}")))
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

/// The writer thread's loop. If the connection fails it is reopened for the next group, so hookd
/// recovers by itself when the disk or file comes back.
fn run_writer(
    options: WriterOptions,
    mut jobs: mpsc::Receiver<WriteJob>,
    stats: Arc<PublisherStats>,
) {
    let mut connection: Option<Connection> = None;
    let mut level: Option<&'static str> = None;
    while let Some(group) = next_group(&mut jobs) {
        // Two transactions per round: queue bookkeeping first, without an fsync, then the
        // publishes at the durable level. A claim must not wait for the publishes' fsync: under a
        // steady publish load that wait bounded each subscription to `cap / fsync time` deliveries
        // per second (measured: 672/s at 1,000 single-event publishes/s).
        let (publishes, mut queue): (Vec<_>, Vec<_>) = group
            .into_iter()
            .partition(|job| matches!(job, WriteJob::Publish(_)));
        queue.sort_by_key(WriteJob::phase);
        for (part, wanted, is_publish) in
            [(queue, "NORMAL", false), (publishes, options.durable, true)]
        {
            if part.is_empty() {
                continue;
            }
            let publishes = match is_publish {
                true => part.len(),
                false => 0,
            };
            let result = match prepare(&mut connection, &options, &mut level, wanted) {
                Ok(conn) => commit_group(conn, part),
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
fn prepare<'c>(
    connection: &'c mut Option<Connection>,
    options: &WriterOptions,
    level: &mut Option<&'static str>,
    wanted: &'static str,
) -> StoreResult<&'c mut Connection> {
    let conn = match connection {
        Some(conn) => conn,
        None => {
            *level = None;
            connection.insert(sql::open(&options.path, options.busy_timeout)?)
        }
    };
    if *level != Some(wanted) {
        conn.pragma_update(None, "synchronous", wanted)
            .map_err(sql::map_err)?;
        *level = Some(wanted);
    }
    Ok(conn)
}

/// Waits for a job, then takes every job already waiting, up to about [`MAX_GROUP_EVENTS`] rows.
fn next_group(jobs: &mut mpsc::Receiver<WriteJob>) -> Option<Vec<WriteJob>> {
    let first = jobs.blocking_recv()?;
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
fn commit_group(
    conn: &mut Connection,
    group: Vec<WriteJob>,
) -> Result<Vec<Answer>, (StoreError, Vec<Answer>)> {
    let mut answers = Vec::with_capacity(group.len());
    let isolate = group.len() > 1;
    let mut jobs = group.into_iter();
    let mut outcome = || {
        let mut tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql::map_err)?;
        let mut targets: Option<Vec<FanoutTarget>> = None;
        let mut all_ok = true;
        for job in jobs.by_ref() {
            let (ok, answer) = match isolate {
                true => run_isolated(&mut tx, job, &mut targets)?,
                false => execute(&tx, job, &mut targets),
            };
            all_ok &= ok;
            answers.push(answer);
        }
        match all_ok {
            true => tx.commit().map_err(sql::map_err),
            // Only a lone job can fail here (isolated ones were rolled back to their savepoint).
            false => tx.rollback().map_err(sql::map_err),
        }
    };
    match outcome() {
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
fn run_isolated(
    tx: &mut rusqlite::Transaction<'_>,
    job: WriteJob,
    targets: &mut Option<Vec<FanoutTarget>>,
) -> StoreResult<(bool, Answer)> {
    let savepoint = tx.savepoint().map_err(sql::map_err)?;
    let (ok, answer) = execute(&savepoint, job, targets);
    match ok {
        true => savepoint.commit().map_err(sql::map_err)?,
        false => savepoint.finish().map_err(sql::map_err)?,
    }
    Ok((ok, answer))
}

/// Runs one job's statements. Returns whether it succeeded and its answer (sent after the commit).
fn execute(
    conn: &Connection,
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
                None => publish::load_fanout_targets(conn).map(|loaded| &*targets.insert(loaded)),
            };
            let result = match targets {
                Ok(targets) => publish::publish_job(conn, targets, &job.events),
                Err(error) => Err(error),
            };
            done(job.reply, result)
        }
        WriteJob::Claim(request, reply) => done(reply, queue::claim(conn, &request)),
        WriteJob::Record(job, reply) => done(reply, queue::record(conn, &job)),
        WriteJob::Release { owner, ids, reply } => done(reply, queue::release(conn, &owner, &ids)),
        WriteJob::Rescue { now, reply } => done(reply, queue::rescue(conn, now)),
    }
}
