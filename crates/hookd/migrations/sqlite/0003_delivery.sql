-- Delivery engine: per-subscription delivery settings, secret rotation, the attempt log.

ALTER TABLE subscriptions ADD COLUMN retry_policy TEXT;          -- JSON RetryPolicy, NULL = server default
ALTER TABLE subscriptions ADD COLUMN timeout_ms INTEGER;         -- NULL = server default
ALTER TABLE subscriptions ADD COLUMN headers TEXT;               -- JSON object of custom headers, or NULL
ALTER TABLE subscriptions ADD COLUMN previous_secret TEXT;       -- still signs until previous_secret_expires_at
ALTER TABLE subscriptions ADD COLUMN previous_secret_expires_at INTEGER;

-- `failed` = the last attempt failed and a retry is scheduled; both it and `pending` are claimable.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state IN ('pending', 'failed');
CREATE INDEX deliveries_by_state_time ON deliveries (state, updated_at);

CREATE TABLE attempts (
    id                TEXT PRIMARY KEY,
    delivery_id       TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    -- 1-based attempt number within the delivery's current run (a manual retry starts a new run).
    attempt           INTEGER NOT NULL,
    started_at        INTEGER NOT NULL,
    duration_ms       INTEGER NOT NULL,
    -- The `webhook-timestamp` sent (Unix seconds).
    request_timestamp INTEGER NOT NULL,
    status            INTEGER,
    -- At most 4 KiB of the response body, lossily decoded as UTF-8.
    response_excerpt  TEXT,
    error             TEXT,
    -- dns, connect, tls, timeout, http, blocked, or NULL on success.
    error_class       TEXT
) STRICT;
CREATE INDEX attempts_by_delivery ON attempts (delivery_id, started_at);
CREATE INDEX attempts_by_time ON attempts (started_at);
