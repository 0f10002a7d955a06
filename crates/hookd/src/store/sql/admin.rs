//! [`AdminStore`] on either backend: API keys, the event-type catalog, inbound receipts.

use super::decode::{api_key_from_row, event_type_from_row, into_page, receipt_from_row};
use super::{Backend, Exec, Sql, SqlStore};
use crate::store::*;

#[async_trait]
impl<B: Backend> AdminStore for SqlStore<B> {
    async fn ping(&self) -> StoreResult<()> {
        self.db().run(Sql::new("SELECT 1")).await.map(drop)
    }

    async fn insert_api_key(&self, key: NewApiKey) -> StoreResult<()> {
        let sql = Sql::new(
            "INSERT INTO api_keys (id, name, prefix, hash, created_at, scopes, owner)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(key.id)
        .bind(key.name)
        .bind(key.prefix)
        .bind(&key.hash)
        .bind(key.created_at)
        .bind(key.scopes.to_stored())
        .bind(key.owner);
        self.db().run(sql).await.map(drop)
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKeyRow>> {
        let sql = Sql::new(
            "SELECT id, name, prefix, scopes, owner, created_at, revoked_at FROM api_keys
             ORDER BY created_at, id",
        );
        let rows = self.db().all(sql).await?;
        Ok(rows.iter().map(api_key_from_row).collect())
    }

    async fn revoke_api_key(&self, id: &str, now: UnixMs) -> StoreResult<bool> {
        let sql =
            Sql::new("UPDATE api_keys SET revoked_at = ?1 WHERE id = ?2 AND revoked_at IS NULL")
                .bind(now)
                .bind(id);
        Ok(self.db().run(sql).await? == 1)
    }

    async fn api_key_by_hash(&self, hash: &[u8]) -> StoreResult<Option<ApiKeyRow>> {
        let sql = Sql::new(
            "SELECT id, name, prefix, scopes, owner, created_at, revoked_at FROM api_keys
             WHERE hash = ?1 AND revoked_at IS NULL",
        )
        .bind(hash);
        let row = self.db().optional(sql).await?;
        Ok(row.as_ref().map(api_key_from_row))
    }

    async fn list_event_types(&self, include_archived: bool) -> StoreResult<Vec<EventTypeRow>> {
        let sql = Sql::new(
            "SELECT name, description, created_at, archived_at, schemas, examples, validate,
                    updated_at
               FROM event_types WHERE ?1 OR archived_at IS NULL ORDER BY name",
        )
        .bind(include_archived);
        let rows = self.db().all(sql).await?;
        Ok(rows.iter().map(event_type_from_row).collect())
    }

    async fn add_event_type(&self, row: EventTypeRow) -> StoreResult<EventTypeRow> {
        let sql = Sql::new(
            "INSERT INTO event_types (name, description, created_at, schemas, examples, validate,
                                      updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (name) DO UPDATE
                SET description = excluded.description, archived_at = NULL,
                    created_at = excluded.created_at, schemas = excluded.schemas,
                    examples = excluded.examples, validate = excluded.validate,
                    updated_at = CASE WHEN excluded.updated_at > event_types.updated_at
                                      THEN excluded.updated_at
                                      ELSE event_types.updated_at + 1 END
                WHERE event_types.archived_at IS NOT NULL
             RETURNING name, description, created_at, archived_at, schemas, examples, validate,
                       updated_at",
        )
        .bind(&row.name)
        .bind(&row.description)
        .bind(row.created_at)
        .bind(&row.schemas)
        .bind(&row.examples)
        .bind(&row.validate)
        .bind(row.updated_at);
        match self.db().optional(sql).await? {
            Some(stored) => Ok(event_type_from_row(&stored)),
            None => Err(StoreError::Conflict(format!(
                "event type {:?} already exists",
                row.name
            ))),
        }
    }

    async fn archive_event_type(&self, name: &str, now: UnixMs) -> StoreResult<bool> {
        let sql = Sql::new(
            "UPDATE event_types SET archived_at = ?1 WHERE name = ?2 AND archived_at IS NULL",
        )
        .bind(now)
        .bind(name);
        Ok(self.db().run(sql).await? == 1)
    }

    async fn event_type_exists(&self, name: &str) -> StoreResult<bool> {
        let sql = Sql::new("SELECT name FROM event_types WHERE name = ?1 AND archived_at IS NULL")
            .bind(name);
        Ok(self.db().optional(sql).await?.is_some())
    }

    async fn get_event_type(&self, name: &str) -> StoreResult<Option<EventTypeRow>> {
        let sql = Sql::new(
            "SELECT name, description, created_at, archived_at, schemas, examples, validate,
                    updated_at
               FROM event_types WHERE name = ?1",
        )
        .bind(name);
        Ok(self
            .db()
            .optional(sql)
            .await?
            .as_ref()
            .map(event_type_from_row))
    }

    async fn update_event_type(
        &self,
        row: &EventTypeRow,
        expected_updated_at: UnixMs,
    ) -> StoreResult<bool> {
        let sql = Sql::new(
            "UPDATE event_types
                SET description = ?2, schemas = ?3, examples = ?4, validate = ?5, updated_at = ?6
              WHERE name = ?1 AND updated_at = ?7",
        )
        .bind(&row.name)
        .bind(&row.description)
        .bind(&row.schemas)
        .bind(&row.examples)
        .bind(&row.validate)
        .bind(row.updated_at)
        .bind(expected_updated_at);
        Ok(self.db().run(sql).await? == 1)
    }

    async fn date_builtin_event_types(&self, now: UnixMs) -> StoreResult<u64> {
        let sql = Sql::new("UPDATE event_types SET created_at = ?1 WHERE created_at = 0").bind(now);
        self.db().run(sql).await
    }

    async fn record_receipt(&self, receipt: ReceiptRow) -> StoreResult<bool> {
        let sql = Sql::new(
            "INSERT INTO received (id, subscription_id, webhook_id, event_type, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (subscription_id, webhook_id) DO NOTHING",
        )
        .bind(receipt.id)
        .bind(receipt.subscription_id)
        .bind(receipt.webhook_id)
        .bind(receipt.event_type)
        .bind(receipt.received_at);
        Ok(self.db().run(sql).await? == 1)
    }

    async fn list_receipts(
        &self,
        subscription_id: &str,
        after: Option<Cursor>,
        limit: u32,
    ) -> StoreResult<Page<ReceiptRow>> {
        let sql = Sql::new(
            "SELECT id, subscription_id, webhook_id, event_type, received_at FROM received
              WHERE subscription_id = ?1 AND (?2 IS NULL OR (received_at, id) < (?2, ?3))
              ORDER BY received_at DESC, id DESC LIMIT ?4",
        )
        .bind(subscription_id)
        .bind(after.as_ref().map(|c| c.created_at))
        .bind(after.map(|c| c.id))
        .bind(i64::from(limit) + 1);
        let rows = self.db().all(sql).await?;
        let items = rows.iter().map(receipt_from_row).collect();
        Ok(into_page(items, limit, |r: &ReceiptRow| Cursor {
            created_at: r.received_at,
            id: r.id.clone(),
        }))
    }
}
