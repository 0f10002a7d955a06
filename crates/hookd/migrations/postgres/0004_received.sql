-- Receipts of the inbound endpoint POST /webhooks/{id} (mirrors migrations/sqlite/0004_received.sql):
-- each verified webhook-id once per subscription.

CREATE TABLE received (
    id               TEXT COLLATE "C" PRIMARY KEY,
    subscription_id  TEXT COLLATE "C" NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    -- The sender's `webhook-id` (hookd's event id): the idempotency key.
    webhook_id       TEXT NOT NULL,
    event_type       TEXT,
    received_at      BIGINT NOT NULL,
    UNIQUE (subscription_id, webhook_id)
);
CREATE INDEX received_by_subscription ON received (subscription_id, received_at, id);
