//! [`SubscriptionStore`] on either backend.
//!
//! Writes that must not interleave run in a write transaction ([`Backend::begin_write`]): SQLite
//! takes its one write lock at `BEGIN`; PostgreSQL locks the rows it reads ([`Backend::FOR_UPDATE`],
//! [`Backend::FOR_SHARE`]), as several nodes write at once.

use super::decode::{
    RowExt, apply_patch, check_sealing_key, decode_err, encode_json, headers_text, into_page,
    json_text, subscription_columns, subscription_from_row,
};
use super::{Backend, Exec, Sql, SqlStore, announce_work};
use crate::store::sealed::key_id_of;
use crate::store::*;
use hookd_core::EventFilter;

const SELECT_BY_ID: &str = concat!(
    "SELECT ",
    subscription_columns!(),
    " FROM subscriptions WHERE id = ?1"
);

/// Moves a subscription's queued (pending or failed) deliveries to `held` (`?1` subscription, `?2`
/// now). Callers disable the subscription first, in an earlier statement of the same transaction:
/// on PostgreSQL that row lock makes a concurrent outcome batch (which locks its subscriptions
/// first) either finish before this statement takes its snapshot, or see the subscription disabled.
/// The SQLite writer runs the same text when an outcome disables a subscription.
pub(crate) const HOLD_QUEUED: &str =
    "UPDATE deliveries SET state = 'held', next_attempt_at = NULL, updated_at = ?2
      WHERE subscription_id = ?1 AND state IN ('pending', 'failed')";

/// Disables an active subscription (`?1` id, `?2` reason, `?3` now); changes no row if it was not
/// active. Outcome batches run it when they disable a subscription, then [`HOLD_QUEUED`].
pub(crate) const DISABLE_SUBSCRIPTION: &str =
    "UPDATE subscriptions SET active = FALSE, disabled_reason = ?2, updated_at = ?3
      WHERE id = ?1 AND active";

/// Sets the failure count after a success (`?1` id, `?2` count); the guard skips the row write when
/// the count is already right (the usual case). Returns the row only when it was written.
pub(crate) const SET_FAILURE_COUNT: &str = "UPDATE subscriptions SET failure_count = ?2
  WHERE id = ?1 AND failure_count <> ?2 RETURNING failure_count";

/// Adds dead deliveries to the failure count (`?1` id, `?2` how many).
pub(crate) const ADD_FAILURES: &str = "UPDATE subscriptions SET failure_count = failure_count + ?2
  WHERE id = ?1 RETURNING failure_count";

/// Refuses a secret sealed with a key other than the one the database names, reading that name
/// inside `tx` (and, on PostgreSQL, holding it until `tx` ends: a rotation waits, and a write
/// waiting for a rotation sees its key).
async fn check_sealing_key_in<B: Backend>(
    tx: &mut B::Tx,
    written: Option<&str>,
) -> StoreResult<()> {
    if written.is_none() {
        return Ok(());
    }
    let text = format!(
        "SELECT key_id FROM sealing_key WHERE id = 1{}",
        B::FOR_SHARE
    );
    let stored = tx.optional(Sql::dynamic(text)).await?;
    let stored = stored.and_then(|row| row.opt_text("key_id"));
    check_sealing_key(stored.as_deref(), written)
}

/// The filters as stored: a JSON array of their texts.
fn events_text(events: &[EventFilter]) -> StoreResult<String> {
    let texts: Vec<String> = events.iter().map(EventFilter::to_string).collect();
    serde_json::to_string(&texts).map_err(|e| decode_err("events", e))
}

/// The insert of one subscription row.
fn insert_statement(row: &SubscriptionRow) -> StoreResult<Sql> {
    Ok(Sql::new(
        "INSERT INTO subscriptions (id, url, events, description, metadata, secret, active,
                                    disabled_reason, failure_count, created_at, updated_at,
                                    retry_policy, timeout_ms, headers, owner,
                                    legacy_signature, filter, signature_schemes,
                                    signing_key, signing_key_not_before)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18, ?19, ?20)",
    )
    .bind(&row.id)
    .bind(row.url.as_str())
    .bind(events_text(&row.events)?)
    .bind(&row.description)
    .bind(row.metadata.as_ref().map(json_text))
    .bind(&row.secret)
    .bind(row.active)
    .bind(&row.disabled_reason)
    .bind(row.failure_count)
    .bind(row.created_at)
    .bind(row.updated_at)
    .bind(row.retry_policy.as_ref().map(encode_json).transpose()?)
    .bind(row.timeout_ms)
    .bind(headers_text(&row.headers)?)
    .bind(&row.owner)
    .bind(row.legacy_signature.as_str())
    .bind(&row.filter)
    .bind(row.signature_schemes.to_stored())
    .bind(row.signing_key.as_ref().map(|k| k.key.clone()))
    .bind(row.signing_key.as_ref().map(|k| k.not_before)))
}

#[async_trait]
impl<B: Backend> SubscriptionStore for SqlStore<B> {
    async fn insert_subscriptions(&self, rows: &[SubscriptionRow]) -> StoreResult<()> {
        let mut tx = B::begin_write(&self.pool).await?;
        let mut checked: Vec<Option<&str>> = Vec::new();
        for row in rows {
            let key = key_id_of(&row.secret);
            if !checked.contains(&key) {
                check_sealing_key_in::<B>(&mut tx, key).await?;
                checked.push(key);
            }
            tx.run(insert_statement(row)?).await?;
        }
        B::commit(tx).await
    }

    async fn get_subscription(&self, id: &str) -> StoreResult<Option<SubscriptionRow>> {
        let row = self.db().optional(Sql::new(SELECT_BY_ID).bind(id)).await?;
        row.map(|row| subscription_from_row(&row)).transpose()
    }

    async fn list_subscriptions(
        &self,
        query: SubscriptionQuery,
    ) -> StoreResult<Page<SubscriptionRow>> {
        let sql = Sql::new(concat!(
            "SELECT ",
            subscription_columns!(),
            " FROM subscriptions
             WHERE (?1 IS NULL OR active = ?1)
               AND (?2 IS NULL OR (created_at, id) < (?2, ?3))
               AND (?5 IS NULL OR owner = ?5)
             ORDER BY created_at DESC, id DESC LIMIT ?4"
        ))
        .bind(query.active)
        .bind(query.after.as_ref().map(|c| c.created_at))
        .bind(query.after.as_ref().map(|c| c.id.clone()))
        .bind(i64::from(query.limit) + 1)
        .bind(&query.owner);
        let rows = self.db().all(sql).await?;
        let items = rows
            .iter()
            .map(subscription_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(into_page(items, query.limit, |s| Cursor {
            created_at: s.created_at,
            id: s.id.clone(),
        }))
    }

    async fn update_subscription(
        &self,
        id: &str,
        patch: SubscriptionPatch,
        now: UnixMs,
    ) -> StoreResult<Option<SubscriptionRow>> {
        let mut tx = B::begin_write(&self.pool).await?;
        // Locked: a concurrent patch (on any node) waits, then patches this one's result.
        let select = Sql::dynamic(format!("{SELECT_BY_ID}{}", B::FOR_UPDATE)).bind(id);
        let Some(row) = tx.optional(select).await? else {
            return Ok(None);
        };
        let mut sub = subscription_from_row(&row)?;
        if let Some(key) = patch
            .signing_key
            .as_ref()
            .or(patch.signing_key_if_missing.as_ref())
        {
            check_sealing_key_in::<B>(&mut tx, key_id_of(key)).await?;
        }
        let was_active = sub.active;
        apply_patch(&mut sub, patch, now);
        let update = Sql::new(
            "UPDATE subscriptions SET url = ?1, events = ?2, description = ?3, metadata = ?4,
                    active = ?5, disabled_reason = ?6, failure_count = ?7, updated_at = ?8,
                    retry_policy = ?9, timeout_ms = ?10, headers = ?11, owner = ?12,
                    legacy_signature = ?14, filter = ?15, signature_schemes = ?16,
                    signing_key = ?17, signing_key_not_before = ?18, previous_signing_key = ?19,
                    previous_signing_key_not_before = ?20, previous_signing_key_expires_at = ?21
             WHERE id = ?13",
        )
        .bind(sub.url.as_str())
        .bind(events_text(&sub.events)?)
        .bind(&sub.description)
        .bind(sub.metadata.as_ref().map(json_text))
        .bind(sub.active)
        .bind(&sub.disabled_reason)
        .bind(sub.failure_count)
        .bind(sub.updated_at)
        .bind(sub.retry_policy.as_ref().map(encode_json).transpose()?)
        .bind(sub.timeout_ms)
        .bind(headers_text(&sub.headers)?)
        .bind(&sub.owner)
        .bind(id)
        .bind(sub.legacy_signature.as_str())
        .bind(&sub.filter)
        .bind(sub.signature_schemes.to_stored())
        .bind(sub.signing_key.as_ref().map(|k| k.key.clone()))
        .bind(sub.signing_key.as_ref().map(|k| k.not_before))
        .bind(sub.previous_signing_key.as_ref().map(|k| k.key.clone()))
        .bind(sub.previous_signing_key.as_ref().map(|k| k.not_before))
        .bind(sub.previous_signing_key_expires_at);
        tx.run(update).await?;
        if was_active && !sub.active {
            tx.run(Sql::new(HOLD_QUEUED).bind(id).bind(now)).await?;
        }
        B::commit(tx).await?;
        Ok(Some(sub))
    }

    async fn delete_subscription(&self, id: &str) -> StoreResult<bool> {
        let sql = Sql::new("DELETE FROM subscriptions WHERE id = ?1").bind(id);
        Ok(self.db().run(sql).await? == 1)
    }

    async fn set_subscription_active(
        &self,
        id: &str,
        active: bool,
        reason: Option<String>,
        replay: bool,
        now: UnixMs,
    ) -> StoreResult<Option<(SubscriptionRow, u64)>> {
        let mut tx = B::begin_write(&self.pool).await?;
        // On PostgreSQL the row lock taken here, before `HOLD_QUEUED`, orders a disable against a
        // concurrent outcome batch, release or rescue (each locks the subscription row first).
        let update = Sql::new(
            "UPDATE subscriptions
                SET active = ?2, updated_at = ?3,
                    disabled_reason = CASE WHEN ?2 THEN NULL ELSE COALESCE(?4, disabled_reason) END,
                    failure_count = CASE WHEN ?2 THEN 0 ELSE failure_count END
              WHERE id = ?1",
        )
        .bind(id)
        .bind(active)
        .bind(now)
        .bind(reason);
        if tx.run(update).await? == 0 {
            return Ok(None);
        }
        let mut replayed = 0;
        if active && replay {
            let requeue = Sql::new(
                "UPDATE deliveries SET state = 'pending', attempts_before = attempts_before + attempts, attempts = 0,
                    next_attempt_at = ?2, updated_at = ?2
                  WHERE subscription_id = ?1 AND state = 'held'",
            )
            .bind(id)
            .bind(now);
            replayed = tx.run(requeue).await?;
            if replayed > 0 {
                announce_work::<B>(&mut tx).await?;
            }
        }
        if !active {
            tx.run(Sql::new(HOLD_QUEUED).bind(id).bind(now)).await?;
        }
        let row = tx.one(Sql::new(SELECT_BY_ID).bind(id)).await?;
        B::commit(tx).await?;
        Ok(Some((subscription_from_row(&row)?, replayed)))
    }

    async fn rotate_secret(
        &self,
        id: &str,
        new_secret: &str,
        previous_expires_at: Option<UnixMs>,
        now: UnixMs,
    ) -> StoreResult<Option<SubscriptionRow>> {
        let mut tx = B::begin_write(&self.pool).await?;
        check_sealing_key_in::<B>(&mut tx, key_id_of(new_secret)).await?;
        let sql = Sql::new(concat!(
            "UPDATE subscriptions
                SET previous_secret = CASE WHEN ?3 IS NULL THEN NULL ELSE secret END,
                    previous_secret_expires_at = ?3,
                    secret = ?2, updated_at = ?4
              WHERE id = ?1
             RETURNING ",
            subscription_columns!()
        ))
        .bind(id)
        .bind(new_secret)
        .bind(previous_expires_at)
        .bind(now);
        let row = tx.optional(sql).await?;
        B::commit(tx).await?;
        row.map(|row| subscription_from_row(&row)).transpose()
    }

    async fn rotate_signing_key(
        &self,
        id: &str,
        new_key: &str,
        previous_expires_at: Option<UnixMs>,
        now: UnixMs,
    ) -> StoreResult<Option<SubscriptionRow>> {
        let mut tx = B::begin_write(&self.pool).await?;
        check_sealing_key_in::<B>(&mut tx, key_id_of(new_key)).await?;
        // Without an overlap, or without a current key, nothing stays behind signing.
        let sql = Sql::new(concat!(
            "UPDATE subscriptions
                SET previous_signing_key = CASE WHEN ?3 IS NULL THEN NULL ELSE signing_key END,
                    previous_signing_key_not_before =
                        CASE WHEN ?3 IS NULL THEN NULL ELSE signing_key_not_before END,
                    previous_signing_key_expires_at =
                        CASE WHEN ?3 IS NULL OR signing_key IS NULL THEN NULL ELSE ?3 END,
                    signing_key = ?2, signing_key_not_before = ?4, updated_at = ?4
              WHERE id = ?1
             RETURNING ",
            subscription_columns!()
        ))
        .bind(id)
        .bind(new_key)
        .bind(previous_expires_at)
        .bind(now);
        let row = tx.optional(sql).await?;
        B::commit(tx).await?;
        row.map(|row| subscription_from_row(&row)).transpose()
    }
}
