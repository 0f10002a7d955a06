//! The one SQLite writer of the delivery hot path.
//!
//! SQLite lets one connection write at a time; two writers on separate connections wait for each
//! other in SQLite's sleeping busy handler. So every hot-path write (publish groups, claims, outcome
//! batches, lease releases, rescues) goes through one thread that owns one `rusqlite` connection.
//! It takes every job waiting in its channel, runs them all in one `BEGIN IMMEDIATE` transaction
//! (without savepoints; if a job fails, the group is re-run with one savepoint per job, so one bad
//! job cannot sink the others), commits once, then answers every job. WAL checkpoints run on a
//! thread of their own (`checkpoint`).
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

mod checkpoint;
mod publish;
mod queue;
mod sql;

use crate::store::fanout::{FanoutTargets, FilterCache};
use crate::store::group::{MAX_GROUP_EVENTS, PublishJob, PublisherStats};
use crate::store::*;
use rusqlite::{Connection, TransactionBehavior};
use std::path::PathBuf;
use std::rc::Rc;
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
        rescue: Rescue,
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
    let checkpointer = checkpoint::spawn(options.path.clone(), options.busy_timeout);
    let mut fanout = Fanout::default();
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
                Ok(conn) => commit_group(conn, part, &mut fanout),
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
                    checkpointer.committed();
                }
                Err((error, answers)) => {
                    tracing::warn!(%error, "database write group failed");
                    connection = None;
                    fanout.invalidate();
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
        // Two levels alternate every round: cached statements, not a fresh parse each time.
        conn.prepare_cached(&format!("PRAGMA synchronous = {wanted}"))
            .and_then(|mut statement| statement.raw_execute())
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

/// The subscriptions as publishing sees them, kept between rounds while nothing changed them: a
/// round reloads them only when the fan-out counter moved since they were read (`fanout_version`,
/// which triggers on `subscriptions` increment with every change that fan-out reads, from any
/// connection, this thread's auto-disable included), or when this thread lost its connection.
/// Publishing then costs O(events), not O(subscriptions) per round, and writes that fan-out does
/// not read (heartbeats, API keys, a purge) leave it alone.
#[derive(Default)]
struct Fanout {
    filters: FilterCache,
    loaded: Option<(i64, Rc<FanoutTargets>)>,
}

impl Fanout {
    /// The targets, read inside the publishing transaction (which holds the write lock, so the
    /// version read is the one the rows are read at).
    fn targets(&mut self, conn: &Connection) -> StoreResult<Rc<FanoutTargets>> {
        let version: i64 = conn
            .prepare_cached("SELECT version FROM fanout_version WHERE id = 1")
            .and_then(|mut statement| statement.query_row([], |row| row.get(0)))
            .map_err(sql::map_err)?;
        if let Some((loaded_at, targets)) = &self.loaded
            && *loaded_at == version
        {
            return Ok(Rc::clone(targets));
        }
        let targets = Rc::new(publish::load_fanout_targets(conn, &mut self.filters)?);
        self.loaded = Some((version, Rc::clone(&targets)));
        Ok(targets)
    }

    fn invalidate(&mut self) {
        self.loaded = None;
    }
}

/// What a job's statements produced, before the commit decides whether it stands.
enum Output {
    Published(Vec<Published>),
    Claimed(Vec<ClaimedDelivery>),
    Recorded(RecordReport),
    Changed(u64),
}

/// Why a group's transaction did not commit: a job failed (run without savepoints), or the
/// transaction itself failed.
enum GroupError {
    Job(StoreError),
    Transaction(StoreError),
}

/// Runs a group and answers every job. First all jobs in one transaction without savepoints: the
/// usual case, where none fails (a savepoint per job cost two statements and a sub-journal copy
/// of every page the job touched). If one fails, that transaction is rolled back and, unless the
/// job was alone, the group runs again with each job in its own savepoint, so a bad job fails
/// alone. On a transaction failure every job gets the error (nothing was committed).
fn commit_group(
    conn: &mut Connection,
    group: Vec<WriteJob>,
    fanout: &mut Fanout,
) -> Result<Vec<Answer>, (StoreError, Vec<Answer>)> {
    let attempt = match run_group(conn, &group, false, fanout) {
        // The rollback undid exactly the lone job's writes: its error is its answer.
        Err(GroupError::Job(error)) if group.len() == 1 => Ok(vec![Err(error)]),
        Err(GroupError::Job(_)) => run_group(conn, &group, true, fanout),
        other => other,
    };
    match attempt {
        Ok(outputs) => Ok(group.into_iter().zip(outputs).map(reply).collect()),
        Err(GroupError::Job(error) | GroupError::Transaction(error)) => {
            let answers = group.into_iter().map(abandon).collect();
            Err((error, answers))
        }
    }
}

/// Runs every job of `group` in one `BEGIN IMMEDIATE` transaction. Without `isolate`, the first
/// failing job rolls the whole transaction back (`GroupError::Job`); with it, each job runs in a
/// savepoint and a failing one is rolled back alone and yields its error; the rest commit.
fn run_group(
    conn: &mut Connection,
    group: &[WriteJob],
    isolate: bool,
    fanout: &mut Fanout,
) -> Result<Vec<StoreResult<Output>>, GroupError> {
    let transaction = |e| GroupError::Transaction(sql::map_err(e));
    let mut tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(transaction)?;
    let mut targets: Option<Rc<FanoutTargets>> = None;
    let mut outputs = Vec::with_capacity(group.len());
    for job in group {
        let output = match isolate {
            false => match run(&tx, job, &mut targets, fanout) {
                Ok(output) => Ok(output),
                // Dropping `tx` rolls it back.
                Err(error) => return Err(GroupError::Job(error)),
            },
            true => {
                let savepoint = tx.savepoint().map_err(transaction)?;
                let output = run(&savepoint, job, &mut targets, fanout);
                match output.is_ok() {
                    true => savepoint.commit().map_err(transaction)?,
                    // Rolls back to the savepoint and releases it.
                    false => savepoint.finish().map_err(transaction)?,
                }
                output
            }
        };
        outputs.push(output);
    }
    tx.commit().map_err(transaction)?;
    Ok(outputs)
}

/// Runs one job's statements.
fn run(
    conn: &Connection,
    job: &WriteJob,
    targets: &mut Option<Rc<FanoutTargets>>,
    fanout: &mut Fanout,
) -> StoreResult<Output> {
    match job {
        WriteJob::Publish(job) => {
            let targets = match targets {
                Some(targets) => &*targets,
                None => &*targets.insert(fanout.targets(conn)?),
            };
            publish::publish_job(conn, targets, &job.events).map(Output::Published)
        }
        WriteJob::Claim(request, _) => queue::claim(conn, request).map(Output::Claimed),
        WriteJob::Record(job, _) => {
            // A subscription this disables moves `fanout_version`: the next round reloads.
            queue::record(conn, job).map(Output::Recorded)
        }
        WriteJob::Release { owner, ids, .. } => {
            queue::release(conn, owner, ids).map(Output::Changed)
        }
        WriteJob::Rescue { rescue, .. } => queue::rescue(conn, rescue).map(Output::Changed),
    }
}

/// The answer for a job that ran, given what it produced.
fn reply((job, output): (WriteJob, StoreResult<Output>)) -> Answer {
    fn matched<T>(output: StoreResult<Output>, pick: fn(Output) -> Option<T>) -> StoreResult<T> {
        output.and_then(|output| {
            pick(output).ok_or_else(|| StoreError::Internal("writer: mismatched output".into()))
        })
    }
    match job {
        WriteJob::Publish(job) => answer(
            job.reply,
            matched(output, |o| match o {
                Output::Published(published) => Some(published),
                _ => None,
            }),
        ),
        WriteJob::Claim(_, reply) => answer(
            reply,
            matched(output, |o| match o {
                Output::Claimed(claimed) => Some(claimed),
                _ => None,
            }),
        ),
        WriteJob::Record(_, reply) => answer(
            reply,
            matched(output, |o| match o {
                Output::Recorded(report) => Some(report),
                _ => None,
            }),
        ),
        WriteJob::Release { reply, .. } | WriteJob::Rescue { reply, .. } => answer(
            reply,
            matched(output, |o| match o {
                Output::Changed(count) => Some(count),
                _ => None,
            }),
        ),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A migrated database with one subscription, one event and one delivery of it that already
    /// has attempt `att_1`.
    async fn database(dir: &std::path::Path) -> Connection {
        let conn = sql::migrated(dir).await;
        conn.execute_batch(
            "INSERT INTO subscriptions (id, url, events, secret, active, failure_count, created_at,
                                        updated_at)
                  VALUES ('wh_1', 'http://x', '[\"*\"]', 's', 1, 0, 0, 0);
             INSERT INTO events (id, event_type, version, data, retryable, created_at)
                  VALUES ('evt_1', 'a', '1', '{}', 1, 0);
             INSERT INTO deliveries (id, event_id, subscription_id, state, lease_owner,
                                     created_at, updated_at)
                  VALUES ('dlv_1', 'evt_1', 'wh_1', 'in_flight', 'wrk_1', 0, 0);
             INSERT INTO attempts (id, delivery_id, attempt, started_at, duration_ms,
                                   request_timestamp)
                  VALUES ('att_1', 'dlv_1', 1, 0, 0, 0);",
        )
        .unwrap();
        conn
    }

    fn publish(id: &str) -> (WriteJob, oneshot::Receiver<StoreResult<Vec<Published>>>) {
        let (reply, answer) = oneshot::channel();
        let event = NewEvent {
            id: id.into(),
            event_type: "a".into(),
            version: "1".into(),
            data: "{}".into(),
            retryable: true,
            idempotency_key: None,
            created_at: 1,
            only_subscription: None,
            owner: None,
        };
        let job = PublishJob {
            events: vec![event],
            reply,
        };
        (WriteJob::Publish(job), answer)
    }

    /// An outcome whose attempt id is taken: its insert fails with a conflict.
    fn conflicting_record() -> (WriteJob, oneshot::Receiver<StoreResult<RecordReport>>) {
        let (reply, answer) = oneshot::channel();
        let attempt = AttemptRow {
            id: "att_1".into(),
            delivery_id: "dlv_1".into(),
            attempt: 2,
            started_at: 1,
            duration_ms: 1,
            request_timestamp: 1,
            status: Some(200),
            response_excerpt: None,
            response_headers: None,
            error: None,
            error_class: None,
        };
        let job = RecordJob {
            owner: "wrk_1".into(),
            outcomes: vec![DeliveryOutcome {
                delivery_id: "dlv_1".into(),
                subscription_id: "wh_1".into(),
                attempt,
                outcome: Outcome::Delivered,
            }],
            disable_after_failures: 5,
            now: 1,
        };
        (WriteJob::Record(job, reply), answer)
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |row| row.get(0)).unwrap()
    }

    fn answered<T>(answers: Vec<Answer>, mut receiver: oneshot::Receiver<T>) -> T {
        answers.into_iter().for_each(|answer| answer(None));
        receiver.try_recv().unwrap()
    }

    /// One failing job in a group fails alone: the group runs again with savepoints, the other
    /// jobs commit and get their results, the failing one gets its own error and keeps nothing.
    #[tokio::test]
    async fn a_failing_job_fails_alone_and_the_rest_of_its_group_commits() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = database(dir.path()).await;
        let (first, first_answer) = publish("evt_2");
        let (bad, bad_answer) = conflicting_record();
        let (last, last_answer) = publish("evt_3");
        let answers = commit_group(&mut conn, vec![first, bad, last], &mut Fanout::default())
            .unwrap_or_else(|(error, _)| panic!("{error}"));
        let mut answers = answers.into_iter();
        let first = answered(answers.next().into_iter().collect(), first_answer);
        let bad = answered(answers.next().into_iter().collect(), bad_answer);
        let last = answered(answers.collect(), last_answer);
        assert_eq!(first.unwrap()[0].deliveries, 1);
        assert_eq!(last.unwrap()[0].deliveries, 1);
        assert!(matches!(bad, Err(StoreError::Conflict(_))), "{bad:?}");
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM events"), 3);
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM deliveries"), 3);
        // The failed record changed nothing: the delivery is still leased, one attempt logged.
        assert_eq!(
            count(
                &conn,
                "SELECT COUNT(*) FROM deliveries WHERE id = 'dlv_1' AND state = 'in_flight'"
            ),
            1
        );
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM attempts"), 1);
    }

    /// A lone failing job gets its own error, not a group failure, and leaves nothing behind.
    #[tokio::test]
    async fn a_lone_failing_job_gets_its_own_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = database(dir.path()).await;
        let (bad, bad_answer) = conflicting_record();
        let answers = commit_group(&mut conn, vec![bad], &mut Fanout::default())
            .unwrap_or_else(|(e, _)| panic!("{e}"));
        let bad = answered(answers, bad_answer);
        assert!(matches!(bad, Err(StoreError::Conflict(_))), "{bad:?}");
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM attempts"), 1);
        let (good, good_answer) = publish("evt_2");
        let answers = commit_group(&mut conn, vec![good], &mut Fanout::default())
            .unwrap_or_else(|(e, _)| panic!("{e}"));
        assert!(answered(answers, good_answer).is_ok());
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM events"), 2);
    }
}
