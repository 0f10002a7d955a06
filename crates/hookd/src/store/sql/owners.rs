//! [`OwnerStore`] on either backend: owners counted from their subscriptions, and erasure in
//! bounded steps.

use super::decode::RowExt;
use super::{Backend, Exec, Sql, SqlStore};
use crate::store::*;

/// Counts per owner; `?1` the owner to start after (exclusive) or NULL, `?2` the page size.
const OWNER_COUNTS: &str = "SELECT owner, COUNT(*) AS subscriptions,
            SUM(CASE WHEN active THEN 0 ELSE 1 END) AS disabled,
            SUM(CASE WHEN NOT active OR failure_count > 0 THEN 1 ELSE 0 END) AS failing
       FROM subscriptions
      WHERE owner IS NOT NULL AND (?1 IS NULL OR owner > ?1)
      GROUP BY owner ORDER BY owner LIMIT ?2";

fn owner_from_row(row: &impl RowExt) -> OwnerRow {
    OwnerRow {
        owner: row.text("owner"),
        subscriptions: row.int("subscriptions"),
        disabled: row.int("disabled"),
        failing: row.int("failing"),
    }
}

/// The owner's (`?1`) `?2` oldest events published before `?3`, in `events_by_owner` order.
macro_rules! oldest_events {
    () => {
        "SELECT id FROM events WHERE owner = ?1 AND created_at < ?3
          ORDER BY created_at, id LIMIT ?2"
    };
}

#[async_trait]
impl<B: Backend> OwnerStore for SqlStore<B> {
    async fn list_owners(&self, after: Option<&str>, limit: u32) -> StoreResult<Vec<OwnerRow>> {
        let sql = Sql::new(OWNER_COUNTS).bind(after).bind(i64::from(limit));
        let rows = self.db().all(sql).await?;
        Ok(rows.iter().map(owner_from_row).collect())
    }

    async fn get_owner(&self, owner: &str) -> StoreResult<Option<OwnerRow>> {
        let sql = Sql::new(
            "SELECT owner, COUNT(*) AS subscriptions,
                    SUM(CASE WHEN active THEN 0 ELSE 1 END) AS disabled,
                    SUM(CASE WHEN NOT active OR failure_count > 0 THEN 1 ELSE 0 END) AS failing
               FROM subscriptions WHERE owner = ?1 GROUP BY owner",
        )
        .bind(owner);
        if let Some(row) = self.db().optional(sql).await? {
            return Ok(Some(owner_from_row(&row)));
        }
        let events = Sql::new("SELECT id FROM events WHERE owner = ?1 LIMIT 1").bind(owner);
        Ok(self.db().optional(events).await?.map(|_| OwnerRow {
            owner: owner.to_owned(),
            subscriptions: 0,
            disabled: 0,
            failing: 0,
        }))
    }

    async fn erase_owner_step(
        &self,
        owner: &str,
        before: UnixMs,
        limit: u32,
    ) -> StoreResult<Erased> {
        let limit = i64::from(limit);
        let mut tx = B::begin_write(&self.pool).await?;
        let mut erased = Erased::default();
        // The deliveries of its subscriptions first (their attempts go with them), whoever
        // published their events.
        let of_subscriptions = Sql::new(
            "DELETE FROM deliveries WHERE id IN (
                 SELECT d.id FROM deliveries d JOIN subscriptions s ON s.id = d.subscription_id
                  WHERE s.owner = ?1 LIMIT ?2)",
        )
        .bind(owner)
        .bind(limit);
        erased.deliveries += tx.run(of_subscriptions).await?;
        if erased.deliveries == 0 {
            // Then its oldest events, each with what deliveries it still has: both statements take
            // the same events (the index's order, in one transaction), so each step removes them
            // from the front of `events_by_owner` and none is read again by the next.
            let of_events = Sql::new(concat!(
                "DELETE FROM deliveries WHERE event_id IN (",
                oldest_events!(),
                ")"
            ))
            .bind(owner)
            .bind(limit)
            .bind(before);
            erased.deliveries += tx.run(of_events).await?;
            let events = Sql::new(concat!(
                "DELETE FROM events WHERE id IN (",
                oldest_events!(),
                ")"
            ))
            .bind(owner)
            .bind(limit)
            .bind(before);
            erased.events += tx.run(events).await?;
        }
        if erased.is_empty() {
            let subscriptions = Sql::new(
                "DELETE FROM subscriptions WHERE id IN (
                     SELECT id FROM subscriptions WHERE owner = ?1 LIMIT ?2)",
            )
            .bind(owner)
            .bind(limit);
            erased.subscriptions += tx.run(subscriptions).await?;
            let sessions = Sql::new("DELETE FROM ui_sessions WHERE owner = ?1").bind(owner);
            tx.run(sessions).await?;
            // Keys bound to the owner hold its id and could publish to it again: they go too.
            let keys = Sql::new("DELETE FROM api_keys WHERE owner = ?1").bind(owner);
            tx.run(keys).await?;
        }
        B::commit(tx).await?;
        Ok(erased)
    }
}
