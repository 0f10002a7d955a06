//! [`SecretStore`] on either backend: the sealing key's name and the master-key rotation.

use super::decode::{RowExt, SEALED_COLUMNS, reseal_row};
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
            "SELECT id, {} FROM subscriptions{}",
            SEALED_COLUMNS.join(", "),
            B::FOR_UPDATE
        );
        let rows = tx.all(Sql::dynamic(select)).await?;
        let mut resealed = 0;
        for row in rows {
            let (id, values) = reseal_row(&row, reseal)?;
            resealed += values.iter().flatten().count() as u64;
            let [secret, previous, key, previous_key] = <[Option<String>; 4]>::try_from(values)
                .map_err(|_| StoreError::Internal("sealed columns miscounted".into()))?;
            let update = Sql::new(
                "UPDATE subscriptions SET secret = ?2, previous_secret = ?3, signing_key = ?4,
                        previous_signing_key = ?5
                  WHERE id = ?1",
            )
            .bind(id)
            .bind(secret)
            .bind(previous)
            .bind(key)
            .bind(previous_key);
            tx.run(update).await?;
        }
        B::commit(tx).await?;
        Ok(resealed)
    }
}
