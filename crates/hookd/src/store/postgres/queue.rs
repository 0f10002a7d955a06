//! The queue on PostgreSQL: claims with `FOR UPDATE SKIP LOCKED` (several nodes claim at once and
//! take disjoint rows), outcome batches in a fixed number of statements (`UNNEST`), lease releases
//! and rescues that take row locks in a fixed order, and `LISTEN` for work queued by other nodes.

use super::{PgStore, connect_listener, map_err, notify_work, relay_work_notifications};
use crate::store::outcomes::{applied_effects, failure_count_update};
use crate::store::sql::decode::{
    ClaimDecoder, event_data_once, prefixed_subscription_columns, queued_subscriptions, rescuable,
    response_headers_text, within_bytes,
};
use crate::store::sql::postgres_text;
use crate::store::sql::subscriptions::{DISABLE_SUBSCRIPTION, HOLD_QUEUED};
use crate::store::*;
use hookd_core::outcome::FailureEffects;
use sqlx::PgConnection;
use std::collections::HashSet;
use std::sync::LazyLock;
use tokio::sync::Notify;

/// Leases due deliveries and returns them with their event and subscription, each statement in
/// one implicit transaction: oldest first, at most `room` per subscription (its cap minus what this
/// worker already has in flight there), so nothing is claimed only to be released again.
///
/// First by due time ([`CLAIM_WINDOW`]): the window's oldest due rows from `deliveries_due`
/// (`ClaimRequest::window`), locked with `FOR UPDATE SKIP LOCKED` as they are read (so concurrent
/// claimers, on this node or others, read disjoint windows without waiting for each other) and
/// ranked per subscription so that each gives at most its room. With many subscriptions this costs
/// the rows read, whatever the number of subscriptions with queued work. When that took fewer rows
/// than the limit and the window was full ([`DUE_AT_LEAST`]), rows of subscriptions without room
/// filled it and others may wait behind them: the rest of the claim
/// ([`ClaimRequest::remainder`]) is taken by subscription ([`CLAIM_DUE`]).
///
/// By subscription, a claim costs O(subscriptions with queued work + rows claimed), whatever the
/// backlog: `queued` lists the subscriptions that have pending or failed rows by a skip scan over
/// the partial index `deliveries_queued_by_subscription` (one seek per subscription: PostgreSQL 15
/// has no skip scan of its own), `open` drops the inactive ones and those without room, and
/// `candidates` takes each open subscription's oldest due rows from the same index (`LATERAL …
/// LIMIT room`). A subscription without room is passed over with one seek however long its
/// backlog, and the rows of other subscriptions behind it are still found. These candidates are
/// read without locks.
///
/// Both end alike: `within_bytes` keeps the candidates that fit the claim's byte room, and the
/// picked ones are locked with `FOR UPDATE OF d SKIP LOCKED` and re-checked (another node may have
/// claimed some meanwhile: they are skipped, not waited for), then leased.
fn claim_statement(candidates: &str) -> String {
    format!(
        "{candidates},
         {},
         picked AS (
             SELECT d.id FROM deliveries d
              WHERE d.id IN (SELECT id FROM within_bytes)
                AND d.state IN ('pending', 'failed') AND d.next_attempt_at <= $2
                FOR UPDATE SKIP LOCKED),
         claimed AS (
             UPDATE deliveries
                SET state = 'in_flight', lease_owner = $1, updated_at = $2,
                    lease_expires_at = $2 + $3 + COALESCE(
                        (SELECT s.timeout_ms FROM subscriptions s
                          WHERE s.id = deliveries.subscription_id), $4)
              WHERE id IN (SELECT id FROM picked)
             RETURNING id, attempts, attempts_before, event_id, subscription_id, next_attempt_at)
         SELECT c.id AS delivery_id, c.attempts AS delivery_attempts,
                c.attempts_before AS delivery_attempts_before,
                e.id AS event_id, e.event_type, e.version, e.retryable,
                e.idempotency_key, e.created_at AS event_created_at, e.owner AS event_owner, {},
                {}
           FROM claimed c
           JOIN events e ON e.id = c.event_id
           JOIN subscriptions s ON s.id = c.subscription_id
          ORDER BY c.next_attempt_at, c.id",
        within_bytes!(),
        event_data_once!("c.next_attempt_at, c.id"),
        prefixed_subscription_columns("s")
    )
}

/// The claim by due time: the `$11` oldest due rows not locked by another claim.
static CLAIM_WINDOW: LazyLock<String> = LazyLock::new(|| {
    claim_statement(
        "WITH due AS (
             SELECT d.id, d.subscription_id, d.event_id, d.next_attempt_at FROM deliveries d
              WHERE d.state IN ('pending', 'failed') AND d.next_attempt_at <= $2
              ORDER BY d.next_attempt_at
              LIMIT $11
                FOR UPDATE SKIP LOCKED),
         candidates AS (
             SELECT id, event_id, next_attempt_at FROM (
                  SELECT due.id, due.event_id, due.next_attempt_at,
                         LEAST(COALESCE(listed.room, $7), $6) AS room,
                         ROW_NUMBER() OVER (PARTITION BY due.subscription_id
                                            ORDER BY due.next_attempt_at, due.id) AS n
                    FROM due JOIN subscriptions s ON s.id = due.subscription_id
                    LEFT JOIN UNNEST($5::text[], $8::int8[]) AS listed(subscription_id, room)
                      ON listed.subscription_id = due.subscription_id
                   WHERE s.active) AS ranked
              WHERE n <= room
              ORDER BY next_attempt_at, id
              LIMIT $6)",
    )
});

/// The claim by subscription (the skip scan).
static CLAIM_DUE: LazyLock<String> = LazyLock::new(|| {
    claim_statement(&format!(
        "WITH RECURSIVE {},
         open AS (
             SELECT s.id, LEAST(COALESCE(listed.room, $7), $6) AS room
               FROM queued JOIN subscriptions s ON s.id = queued.subscription_id
               LEFT JOIN UNNEST($5::text[], $8::int8[]) AS listed(subscription_id, room)
                 ON listed.subscription_id = s.id
              WHERE s.active AND COALESCE(listed.room, $7) > 0),
         candidates AS (
             SELECT due.id, due.event_id, due.next_attempt_at
               FROM open CROSS JOIN LATERAL (
                    SELECT d.id, d.event_id, d.next_attempt_at FROM deliveries d
                     WHERE d.subscription_id = open.id AND d.state IN ('pending', 'failed')
                       AND d.next_attempt_at <= $2
                     ORDER BY d.next_attempt_at
                     LIMIT open.room) due
              ORDER BY due.next_attempt_at
              LIMIT $6)",
        queued_subscriptions!(""),
    ))
});

/// Whether at least `$2` queued rows are due at `$1` (see [`CLAIM_WINDOW`]).
const DUE_AT_LEAST: &str = "SELECT count(*) AS n FROM (
    SELECT 1 FROM deliveries
     WHERE state IN ('pending', 'failed') AND next_attempt_at <= $1 LIMIT $2) AS due";

impl PgStore {
    /// Runs one claim statement ([`CLAIM_WINDOW`] with `window`, or [`CLAIM_DUE`]).
    async fn claim_with(
        &self,
        statement: &str,
        request: &ClaimRequest,
        window: Option<u32>,
        decoder: &mut ClaimDecoder,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let (listed_ids, listed_room): (Vec<&str>, Vec<i64>) = request
            .room
            .iter()
            .map(|(id, n)| (id.as_str(), i64::from(*n)))
            .unzip();
        let bytes = request.bytes.unwrap_or(ByteRoom {
            bytes: u64::MAX,
            first_regardless: true,
        });
        // The shared `within_bytes` fragment is written with `?N`.
        let mut query = sqlx::query(postgres_text(statement))
            .bind(&request.owner)
            .bind(request.now)
            .bind(request.lease_margin_ms)
            .bind(request.default_timeout_ms)
            .bind(listed_ids)
            .bind(i64::from(request.limit))
            .bind(i64::from(request.default_room.unwrap_or(u32::MAX)))
            .bind(listed_room)
            .bind(i64::try_from(bytes.bytes).unwrap_or(i64::MAX))
            .bind(bytes.first_regardless);
        if let Some(window) = window {
            query = query.bind(i64::from(window));
        }
        let rows = query.fetch_all(&self.pool).await.map_err(map_err)?;
        rows.iter().map(|row| decoder.decode(row)).collect()
    }
}

#[async_trait]
impl QueueStore for PgStore {
    /// Starts a task that `LISTEN`s on [`WORK_CHANNEL`] and wakes `waker` on every notification. It
    /// returns once the first `LISTEN` is in place (or has failed: the task then keeps retrying), and
    /// the task ends when the store is dropped.
    async fn listen_for_work(&self, waker: Arc<Notify>) -> StoreResult<()> {
        let first = match connect_listener(&self.connect).await {
            Ok(listener) => Some(listener),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for work from other nodes yet; retrying");
                None
            }
        };
        let mut closed = self.closed.subscribe();
        let relay = relay_work_notifications(self.connect.clone(), first, waker);
        tokio::spawn(async move {
            tokio::select! {
                _ = closed.changed() => {}
                _ = relay => {}
            }
        });
        Ok(())
    }

    async fn claim_due(&self, request: ClaimRequest) -> StoreResult<Vec<ClaimedDelivery>> {
        let window = request.window();
        let mut decoder = ClaimDecoder::default();
        let mut claimed = self
            .claim_with(&CLAIM_WINDOW, &request, Some(window), &mut decoder)
            .await?;
        if let Some(rest) = request.remainder(&claimed) {
            let passed_over = i64::from(window) - claimed.len() as i64;
            let due: i64 = sqlx::query_scalar(DUE_AT_LEAST)
                .bind(request.now)
                .bind(passed_over)
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)?;
            if due >= passed_over {
                claimed.extend(
                    self.claim_with(&CLAIM_DUE, &rest, None, &mut decoder)
                        .await?,
                );
            }
        }
        Ok(claimed)
    }

    async fn record_outcomes(
        &self,
        owner: &str,
        mut outcomes: Vec<DeliveryOutcome>,
        disable_after_failures: i64,
        now: UnixMs,
    ) -> StoreResult<RecordReport> {
        // Subscription by subscription (a stable sort keeps each one's outcomes in order). The
        // subscription rows this may write are locked first, in one statement and in id order, so
        // that two nodes recording at once (or a disable) cannot deadlock with this transaction.
        // Healthy subscriptions (only successes, no failures counted) are not locked at all: nodes
        // delivering to the same endpoints record side by side.
        outcomes.sort_by(|a, b| a.subscription_id.cmp(&b.subscription_id));
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let locked = lock_subscriptions(&mut tx, &outcomes).await?;
        insert_attempts(&mut tx, &outcomes).await?;
        let applied: HashSet<String> = apply_outcomes(&mut tx, owner, &outcomes, now)
            .await?
            .into_iter()
            .collect();
        let (mut report, effects) = applied_effects(&outcomes, &applied);
        for (subscription, effect) in effects {
            // One that was not locked had only successes and a count of zero: nothing to write.
            if locked.contains(subscription)
                && apply_failure_effect(&mut tx, subscription, &effect, disable_after_failures, now)
                    .await?
            {
                report.disabled.push(subscription.to_owned());
            }
        }
        tx.commit().await.map_err(map_err)?;
        Ok(report)
    }

    async fn release_leases(&self, owner: &str, delivery_ids: &[String]) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // Back in the queue, unless the subscription was disabled meanwhile: then held, as its
        // queue was (a pending row of a disabled subscription would never be claimed). The share
        // locks (taken in id order) make a concurrent disable either wait for this release, so that
        // it holds the rows released, or finish first, so that this reads `active = false`.
        let released = sqlx::query(
            "WITH subs AS MATERIALIZED (
                 SELECT s.id, s.active FROM subscriptions s
                  WHERE s.id IN (SELECT subscription_id FROM deliveries WHERE id = ANY($2::text[]))
                  ORDER BY s.id
                    FOR SHARE)
             UPDATE deliveries d
                SET state = CASE WHEN subs.active THEN 'pending' ELSE 'held' END,
                    next_attempt_at = CASE WHEN subs.active THEN d.next_attempt_at END,
                    lease_owner = NULL, lease_expires_at = NULL
               FROM subs
              WHERE subs.id = d.subscription_id
                AND d.lease_owner = $1 AND d.state = 'in_flight' AND d.id = ANY($2::text[])",
        )
        .bind(owner)
        .bind(delivery_ids)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        // Released rows are due at once: another node may take them (e.g. this one is stopping).
        if released > 0 {
            notify_work(&mut tx).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(released)
    }

    async fn rescue_leases(&self, rescue: Rescue) -> StoreResult<u64> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        // Every node runs this. First the subscriptions of the rows to rescue are share-locked, in
        // id order, *waiting* for any recorder or disable that holds them: a row goes to `held`
        // instead of `pending` when its subscription was disabled meanwhile, and the lock orders
        // this against a concurrent disable (as in `release_leases`). Skipping locked
        // subscriptions instead starved the rescue under load: recorders lock the subscriptions
        // of every batch they write, so a busy subscription was nearly always locked, and a dead
        // node's deliveries waited for passes that kept skipping them (for 10–25 s in the
        // `cluster` benchmark, whatever the node timeout). Then the rows themselves: `SKIP LOCKED`
        // leaves a row that another rescuer (or a late recorder) holds to that one; each is
        // rescued once.
        let locked: Vec<String> = sqlx::query_scalar(postgres_text(concat!(
            "SELECT s.id FROM subscriptions s
              WHERE s.id IN (SELECT d.subscription_id FROM deliveries d WHERE ",
            rescuable!(),
            ") ORDER BY s.id FOR SHARE"
        )))
        .bind(rescue.now)
        .bind(rescue.expired_before)
        .bind(rescue.dead_before)
        .bind(&rescue.rescuer)
        .fetch_all(&mut *tx)
        .await
        .map_err(map_err)?;
        if locked.is_empty() {
            return Ok(0);
        }
        let rescued = sqlx::query(postgres_text(concat!(
            "WITH expired AS MATERIALIZED (
                 SELECT id, subscription_id FROM deliveries
                  WHERE ",
            rescuable!(),
            " AND subscription_id = ANY(?5)
                    FOR UPDATE SKIP LOCKED)
             UPDATE deliveries d
                SET state = CASE WHEN s.active THEN 'pending' ELSE 'held' END,
                    next_attempt_at = CASE WHEN s.active THEN ?1 END,
                    lease_owner = NULL, lease_expires_at = NULL, updated_at = ?1
               FROM expired JOIN subscriptions s ON s.id = expired.subscription_id
              WHERE d.id = expired.id"
        )))
        .bind(rescue.now)
        .bind(rescue.expired_before)
        .bind(rescue.dead_before)
        .bind(&rescue.rescuer)
        .bind(&locked)
        .execute(&mut *tx)
        .await
        .map_err(map_err)?
        .rows_affected();
        if rescued > 0 {
            notify_work(&mut tx).await?;
        }
        tx.commit().await.map_err(map_err)?;
        Ok(rescued)
    }

    async fn next_due_at(&self) -> StoreResult<Option<UnixMs>> {
        // The first row of `deliveries_due`: one seek.
        sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM deliveries WHERE state IN ('pending', 'failed')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)
    }
}

/// Locks, in id order and before anything else is written, the rows of the batch's subscriptions
/// that recording may write: those with a retry, a dead delivery or a `410 Gone` among their
/// outcomes, and those with failures counted (a success resets the count). Returns their ids.
///
/// Without it a retry (`failed`) could be written while another transaction disables the
/// subscription: the disable's `hold_queued` does not see the uncommitted row, and the outcome's
/// check of `active` reads the subscription as it was before the disable committed; the `failed` row
/// would then wait forever on a disabled subscription. With the lock, a disable (which updates the
/// subscription row before holding its queue) either waits for this transaction, so that
/// `hold_queued` sees its `failed` rows, or commits first, so that the outcomes, written by later
/// statements, read `active = false` and write `held`. A success needs no such order (`delivered`
/// is final either way), so a subscription with only successes and a zero count is not locked; if
/// another recorder counts a failure on it meanwhile, that count stands (the two were concurrent).
///
/// `FOR NO KEY UPDATE` rather than `FOR SHARE` (as `release_leases` takes): this transaction may
/// update the row itself (failure count, auto-disable), and two recorders upgrading share locks on
/// the same row would deadlock. Rows are locked in id order, as every other transaction that locks
/// several subscriptions does, and before any delivery row, as the disable paths lock them; no row
/// is locked later in the transaction. Publishing is not blocked: its foreign-key checks take
/// `FOR KEY SHARE`, which does not conflict.
async fn lock_subscriptions(
    conn: &mut PgConnection,
    outcomes: &[DeliveryOutcome],
) -> StoreResult<HashSet<String>> {
    let mut all: Vec<&str> = outcomes
        .iter()
        .map(|o| o.subscription_id.as_str())
        .collect();
    all.dedup();
    let failing: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.outcome != Outcome::Delivered)
        .map(|o| o.subscription_id.as_str())
        .collect();
    sqlx::query_scalar(
        "SELECT id FROM subscriptions
          WHERE id = ANY($1::text[]) AND (id = ANY($2::text[]) OR failure_count <> 0)
          ORDER BY id FOR NO KEY UPDATE",
    )
    .bind(all)
    .bind(failing)
    .fetch_all(&mut *conn)
    .await
    .map(|ids: Vec<String>| ids.into_iter().collect())
    .map_err(map_err)
}

/// Logs every attempt in one statement, one array per column (attempts of deliveries deleted
/// meanwhile are dropped, as in SQLite).
async fn insert_attempts(conn: &mut PgConnection, outcomes: &[DeliveryOutcome]) -> StoreResult<()> {
    let attempts: Vec<&AttemptRow> = outcomes.iter().map(|o| &o.attempt).collect();
    let ids: Vec<&str> = attempts.iter().map(|a| a.id.as_str()).collect();
    let delivery_ids: Vec<&str> = attempts.iter().map(|a| a.delivery_id.as_str()).collect();
    let numbers: Vec<i64> = attempts.iter().map(|a| a.attempt).collect();
    let started_at: Vec<i64> = attempts.iter().map(|a| a.started_at).collect();
    let durations: Vec<i64> = attempts.iter().map(|a| a.duration_ms).collect();
    let timestamps: Vec<i64> = attempts.iter().map(|a| a.request_timestamp).collect();
    let statuses: Vec<Option<i64>> = attempts.iter().map(|a| a.status).collect();
    let excerpts: Vec<Option<&str>> = attempts
        .iter()
        .map(|a| a.response_excerpt.as_deref())
        .collect();
    let errors: Vec<Option<&str>> = attempts.iter().map(|a| a.error.as_deref()).collect();
    let classes: Vec<Option<&str>> = attempts.iter().map(|a| a.error_class.as_deref()).collect();
    let headers: Vec<Option<String>> = attempts
        .iter()
        .map(|a| response_headers_text(&a.response_headers))
        .collect::<StoreResult<_>>()?;
    sqlx::query(
        "INSERT INTO attempts (id, delivery_id, attempt, started_at, duration_ms, request_timestamp,
                               status, response_excerpt, error, error_class, response_headers)
         SELECT a.* FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
                                $6::bigint[], $7::bigint[], $8::text[], $9::text[], $10::text[],
                                $11::text[])
                      AS a (id, delivery_id, attempt, started_at, duration_ms, request_timestamp,
                            status, response_excerpt, error, error_class, response_headers)
          WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.id = a.delivery_id)",
    )
    .bind(ids)
    .bind(delivery_ids)
    .bind(numbers)
    .bind(started_at)
    .bind(durations)
    .bind(timestamps)
    .bind(statuses)
    .bind(excerpts)
    .bind(errors)
    .bind(classes)
    .bind(headers)
    .execute(&mut *conn)
    .await
    .map_err(map_err)?;
    Ok(())
}

/// Applies every outcome whose delivery `owner` still leases, in one statement; returns the ids
/// applied. A retry for a subscription disabled meanwhile is held instead.
async fn apply_outcomes(
    conn: &mut PgConnection,
    owner: &str,
    outcomes: &[DeliveryOutcome],
    now: UnixMs,
) -> StoreResult<Vec<String>> {
    let mut ids = Vec::with_capacity(outcomes.len());
    let mut states = Vec::with_capacity(outcomes.len());
    let mut next = Vec::with_capacity(outcomes.len());
    let mut statuses = Vec::with_capacity(outcomes.len());
    let mut errors = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        let (state, next_attempt_at) = match outcome.outcome {
            Outcome::Delivered => ("delivered", None),
            Outcome::Retry { at } => ("failed", Some(at)),
            Outcome::Dead => ("dead", None),
            Outcome::Gone => ("held", None),
        };
        ids.push(outcome.delivery_id.as_str());
        states.push(state);
        next.push(next_attempt_at);
        statuses.push(outcome.attempt.status);
        errors.push(outcome.attempt.error.as_deref());
    }
    sqlx::query_scalar(
        "UPDATE deliveries
            SET state = CASE
                    WHEN o.state = 'failed' AND (SELECT s.active FROM subscriptions s
                                                  WHERE s.id = deliveries.subscription_id) = FALSE
                    THEN 'held' ELSE o.state END,
                next_attempt_at = o.next_attempt_at, attempts = attempts + 1,
                last_status = o.status, last_error = o.error,
                lease_owner = NULL, lease_expires_at = NULL, updated_at = $7
           FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::text[])
                AS o (id, state, next_attempt_at, status, error)
          WHERE deliveries.id = o.id AND deliveries.lease_owner = $6
            AND deliveries.state = 'in_flight'
         RETURNING deliveries.id",
    )
    .bind(ids)
    .bind(states)
    .bind(next)
    .bind(statuses)
    .bind(errors)
    .bind(owner)
    .bind(now)
    .fetch_all(&mut *conn)
    .await
    .map_err(map_err)
}

/// Applies one subscription's tally (success resets the consecutive-failure count, a dead delivery
/// increments it and disables the subscription at the threshold, `410 Gone` disables it at once);
/// true if this disabled it (its queued deliveries are held).
async fn apply_failure_effect(
    conn: &mut PgConnection,
    id: &str,
    effect: &FailureEffects,
    disable_after_failures: i64,
    now: UnixMs,
) -> StoreResult<bool> {
    let count = match failure_count_update(effect) {
        None => None,
        Some((statement, argument, unwritten)) => {
            sqlx::query_scalar::<_, i64>(postgres_text(statement))
                .bind(id)
                .bind(argument)
                .fetch_optional(&mut *conn)
                .await
                .map_err(map_err)?
                .or(unwritten)
        }
    };
    let Some(reason) = effect.disable_reason(count, disable_after_failures) else {
        return Ok(false);
    };
    let disabled = sqlx::query(postgres_text(DISABLE_SUBSCRIPTION))
        .bind(id)
        .bind(&reason)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    if disabled.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(postgres_text(HOLD_QUEUED))
        .bind(id)
        .bind(now)
        .execute(&mut *conn)
        .await
        .map_err(map_err)?;
    tracing::warn!(subscription = %id, %reason, "subscription disabled");
    Ok(true)
}
