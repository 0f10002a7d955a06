-- Delivery engine (mirrors migrations/sqlite/0003_delivery.sql): per-subscription delivery settings,
-- secret rotation, the attempt log.

ALTER TABLE subscriptions ADD COLUMN retry_policy TEXT;          -- JSON RetryPolicy, NULL = server default
ALTER TABLE subscriptions ADD COLUMN timeout_ms BIGINT;          -- NULL = server default
ALTER TABLE subscriptions ADD COLUMN headers TEXT;               -- JSON object of custom headers, or NULL
ALTER TABLE subscriptions ADD COLUMN previous_secret TEXT;       -- still signs until previous_secret_expires_at
ALTER TABLE subscriptions ADD COLUMN previous_secret_expires_at BIGINT;

-- `failed` = the last attempt failed and a retry is scheduled; both it and `pending` are claimable.
-- The claim query's `state IN ('pending', 'failed') ... ORDER BY next_attempt_at` matches this
-- partial index's predicate, so it walks the index in order.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state IN ('pending', 'failed');
CREATE INDEX deliveries_by_state_time ON deliveries (state, updated_at);

CREATE TABLE attempts (
    id                TEXT COLLATE "C" PRIMARY KEY,
    delivery_id       TEXT COLLATE "C" NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    -- 1-based attempt number within the delivery's current run (a manual retry starts a new run).
    attempt           BIGINT NOT NULL,
    started_at        BIGINT NOT NULL,
    duration_ms       BIGINT NOT NULL,
    -- The `webhook-timestamp` sent (Unix seconds).
    request_timestamp BIGINT NOT NULL,
    status            BIGINT,
    -- At most 4 KiB of the response body, lossily decoded as UTF-8.
    response_excerpt  TEXT,
    error             TEXT,
    -- dns, connect, tls, timeout, http, blocked, or NULL on success.
    error_class       TEXT
);
CREATE INDEX attempts_by_delivery ON attempts (delivery_id, started_at);
CREATE INDEX attempts_by_time ON attempts (started_at);
