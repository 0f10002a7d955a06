//! [`NodeStore`] on either backend: heartbeats of the nodes whose workers hold leases.

use super::decode::RowExt;
use super::{Backend, Exec, Sql, SqlStore};
use crate::store::*;

#[async_trait]
impl<B: Backend> NodeStore for SqlStore<B> {
    async fn heartbeat(
        &self,
        id: &str,
        role: &str,
        started_at: UnixMs,
        now: UnixMs,
    ) -> StoreResult<()> {
        let sql = Sql::new(
            "INSERT INTO nodes (id, role, started_at, heartbeat_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
        )
        .bind(id)
        .bind(role)
        .bind(started_at)
        .bind(now);
        self.db().run(sql).await.map(drop)
    }

    async fn stop_node(&self, id: &str, now: UnixMs) -> StoreResult<()> {
        let sql = Sql::new("UPDATE nodes SET stopped_at = ?2, heartbeat_at = ?2 WHERE id = ?1")
            .bind(id)
            .bind(now);
        self.db().run(sql).await.map(drop)
    }

    async fn list_nodes(&self, since: UnixMs) -> StoreResult<Vec<NodeRow>> {
        // The leases of one node are among the in-flight rows (`deliveries_leased`): as many as
        // the workers hold, whatever the table's size.
        let sql = Sql::new(
            "SELECT n.id, n.role, n.started_at, n.heartbeat_at, n.stopped_at,
                    (SELECT COUNT(*) FROM deliveries d
                      WHERE d.state = 'in_flight' AND d.lease_owner = n.id) AS leased
               FROM nodes n
              WHERE n.heartbeat_at >= ?1
              ORDER BY n.started_at DESC, n.id",
        )
        .bind(since);
        let rows = self.db().all(sql).await?;
        Ok(rows
            .iter()
            .map(|row| NodeRow {
                id: row.text("id"),
                role: row.text("role"),
                started_at: row.int("started_at"),
                heartbeat_at: row.int("heartbeat_at"),
                stopped_at: row.opt_int("stopped_at"),
                leased: row.int("leased"),
            })
            .collect())
    }

    async fn forget_nodes(&self, before: UnixMs) -> StoreResult<u64> {
        let sql = Sql::new(
            "DELETE FROM nodes WHERE heartbeat_at < ?1
                AND NOT EXISTS (SELECT 1 FROM deliveries d
                                 WHERE d.state = 'in_flight' AND d.lease_owner = nodes.id)",
        )
        .bind(before);
        self.db().run(sql).await
    }
}
