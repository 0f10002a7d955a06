-- hookd core schema (SQLite). Timestamps are Unix milliseconds (INTEGER). Forward-only: never edit a
-- released migration; add a new file instead.

CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    -- The first characters of the key, shown in listings so that operators can tell keys apart.
    prefix      TEXT NOT NULL,
    -- SHA-256 of the whole key; the key itself is never stored.
    hash        BLOB NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;

CREATE TABLE subscriptions (
    id               TEXT PRIMARY KEY,
    url              TEXT NOT NULL,
    -- JSON array of event filters ("order.created", "order.*", "*").
    events           TEXT NOT NULL,
    description      TEXT,
    -- JSON object, or NULL.
    metadata         TEXT,
    secret           TEXT NOT NULL,
    active           INTEGER NOT NULL CHECK (active IN (0, 1)),
    disabled_reason  TEXT,
    failure_count    INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;

CREATE TABLE events (
    id               TEXT PRIMARY KEY,
    event_type       TEXT NOT NULL,
    version          TEXT NOT NULL,
    -- The `data` object exactly as the publisher sent it.
    data             TEXT NOT NULL,
    retryable        INTEGER NOT NULL CHECK (retryable IN (0, 1)),
    idempotency_key  TEXT,
    created_at       INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX events_idempotency_key ON events (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_by_time ON events (created_at, id);
CREATE INDEX events_by_type_time ON events (event_type, created_at, id);

-- One row per (event, subscription). The worker claims rows with a lease; see ARCHITECTURE.md.
CREATE TABLE deliveries (
    id                TEXT PRIMARY KEY,
    event_id          TEXT NOT NULL REFERENCES events (id),
    subscription_id   TEXT NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    state             TEXT NOT NULL
                      CHECK (state IN ('pending', 'in_flight', 'delivered', 'failed', 'dead', 'held')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   INTEGER,
    lease_owner       TEXT,
    lease_expires_at  INTEGER,
    last_status       INTEGER,
    last_error        TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    UNIQUE (event_id, subscription_id)
) STRICT;
-- "Due deliveries, oldest first": the claim query walks this index.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
-- Expired leases, for the rescuer.
CREATE INDEX deliveries_leased ON deliveries (lease_expires_at) WHERE state = 'in_flight';
CREATE INDEX deliveries_by_subscription ON deliveries (subscription_id, created_at, id);
CREATE INDEX subscriptions_by_time ON subscriptions (created_at, id);
