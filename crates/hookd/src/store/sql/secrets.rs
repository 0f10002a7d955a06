//! [`SecretStore`] on either backend: the sealing key's name and the master-key rotation.

use super::decode::{RowExt, reseal_row};
use super::{Backend, Exec, Sql, SqlStore};
use crate::store::*;

#[async_trait]
impl<B: Backend> SecretStore for SqlStore<B> {
    async fn sealing_key_id(&self) -> StoreResult<Option<String>> {
        let sql = Sql::new("SELECT key_id FROM sealing_key WHERE id = 1");
        let row = self.db().optional(sql).await?;
        Ok(row.and_then(|row| row.opt_text("key_id")))
    }

    async fn reseal_secrets(
        &self,
        key_id: &str,
        reseal: &ResealFn<'_>,
        now: UnixMs,
    ) -> StoreResult<u64> {
        let mut tx = B::begin_write(&self.pool).await?;
        // First: from here on, writers of secrets (who read this row inside their own write
        // transaction, on PostgreSQL holding it FOR SHARE) wait for the commit and then find the
        // new key; the writers before it have committed, so the rows read below include theirs.
        let name = Sql::new("UPDATE sealing_key SET key_id = ?1, rotated_at = ?2 WHERE id = 1")
            .bind(key_id)
            .bind(now);
        tx.run(name).await?;
        let select = format!(
            "SELECT id, secret, previous_secret FROM subscriptions{}",
            B::FOR_UPDATE
        );
        let rows = tx.all(Sql::dynamic(select)).await?;
        let mut resealed = 0;
        for row in rows {
            let (id, secret, previous) = reseal_row(&row, reseal)?;
            resealed += 1 + u64::from(previous.is_some());
            let update = Sql::new(
                "UPDATE subscriptions SET secret = ?2, previous_secret = ?3 WHERE id = ?1",
            )
            .bind(id)
            .bind(secret)
            .bind(previous);
            tx.run(update).await?;
        }
        B::commit(tx).await?;
        Ok(resealed)
    }
}
