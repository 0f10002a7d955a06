-- Receipts of the inbound endpoint POST /webhooks/{id}: each verified webhook-id once per subscription.

CREATE TABLE received (
    id               TEXT PRIMARY KEY,
    subscription_id  TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    -- The sender's `webhook-id` (hookd's event id): the idempotency key.
    webhook_id       TEXT NOT NULL,
    event_type       TEXT,
    received_at      INTEGER NOT NULL,
    UNIQUE (subscription_id, webhook_id)
) STRICT;
CREATE INDEX received_by_subscription ON received (subscription_id, received_at, id);
