//! Group commit: publish calls wait in a channel; one task (PostgreSQL) or the writer thread (SQLite)
//! takes every call waiting, writes them in one transaction and answers each.

use super::{NewEvent, Published, StoreError, StoreResult};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

/// Most events one group commit takes before it commits; later publishers wait for the next group.
pub(crate) const MAX_GROUP_EVENTS: usize = 2_000;

/// One `Store::publish` call waiting for its group to commit.
pub(crate) struct PublishJob {
    pub events: Vec<NewEvent>,
    pub reply: oneshot::Sender<StoreResult<Vec<Published>>>,
}

/// How a group-commit publisher has batched work so far.
#[derive(Debug, Default)]
pub struct PublisherStats {
    /// Transactions committed (each is one fsync at SQLite's `synchronous=full`, one WAL flush on
    /// PostgreSQL).
    pub groups: AtomicU64,
    /// Publish requests answered from those transactions.
    pub requests: AtomicU64,
}

impl PublisherStats {
    /// (group commits, publish requests) so far.
    pub fn snapshot(&self) -> (u64, u64) {
        (
            self.groups.load(Ordering::Relaxed),
            self.requests.load(Ordering::Relaxed),
        )
    }
}

/// Hands `events` to the publisher task and waits for its group to commit.
pub(crate) async fn submit(
    publisher: &mpsc::Sender<PublishJob>,
    events: Vec<NewEvent>,
) -> StoreResult<Vec<Published>> {
    let (reply, answer) = oneshot::channel();
    publisher
        .send(PublishJob { events, reply })
        .await
        .map_err(|_| StoreError::Unavailable("publisher stopped".into()))?;
    answer
        .await
        .map_err(|_| StoreError::Unavailable("publisher stopped".into()))?
}

/// Waits for a job, then takes every job already waiting, up to [`MAX_GROUP_EVENTS`] events in all.
/// `None` when the store is gone (the channel is closed).
pub(crate) async fn next_group(jobs: &mut mpsc::Receiver<PublishJob>) -> Option<Vec<PublishJob>> {
    let first = jobs.recv().await?;
    let mut event_count = first.events.len();
    let mut group = vec![first];
    while event_count < MAX_GROUP_EVENTS {
        match jobs.try_recv() {
            Ok(job) => {
                event_count += job.events.len();
                group.push(job);
            }
            Err(_) => break,
        }
    }
    Some(group)
}

pub(crate) fn group_event_count(group: &[PublishJob]) -> usize {
    group.iter().map(|job| job.events.len()).sum()
}

/// Answers every job of a committed group with its own result.
pub(crate) fn answer_group(
    group: Vec<PublishJob>,
    results: Vec<StoreResult<Vec<Published>>>,
    stats: &PublisherStats,
) {
    stats.groups.fetch_add(1, Ordering::Relaxed);
    stats
        .requests
        .fetch_add(group.len() as u64, Ordering::Relaxed);
    for (job, result) in group.into_iter().zip(results) {
        let _ = job.reply.send(result);
    }
}

/// Answers every job of a group that did not commit with the same error.
pub(crate) fn fail_group(group: Vec<PublishJob>, error: &StoreError) {
    for job in group {
        let _ = job.reply.send(Err(error.clone()));
    }
}
