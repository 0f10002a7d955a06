-- hookd core schema (PostgreSQL), mirroring migrations/sqlite/0001_core.sql. Timestamps are Unix
-- milliseconds (BIGINT). Identifiers use the "C" collation so that they sort and compare byte by byte,
-- as in SQLite (cursor pagination orders by them). Forward-only: never edit a released migration; add
-- a new file instead.

CREATE TABLE api_keys (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    -- The first characters of the key, shown in listings so that operators can tell keys apart.
    prefix      TEXT NOT NULL,
    -- SHA-256 of the whole key; the key itself is never stored.
    hash        BYTEA NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE subscriptions (
    id               TEXT COLLATE "C" PRIMARY KEY,
    url              TEXT NOT NULL,
    -- JSON array of event filters ("order.created", "order.*", "*"), as text like every JSON column
    -- here: the store reads it back exactly as written.
    events           TEXT NOT NULL,
    description      TEXT,
    -- JSON object, or NULL.
    metadata         TEXT,
    secret           TEXT NOT NULL,
    active           BOOLEAN NOT NULL,
    disabled_reason  TEXT,
    failure_count    BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE TABLE events (
    id               TEXT COLLATE "C" PRIMARY KEY,
    event_type       TEXT COLLATE "C" NOT NULL,
    version          TEXT NOT NULL,
    -- The `data` object exactly as the publisher sent it: TEXT, never JSONB (which would reorder keys
    -- and change the bytes that were signed).
    data             TEXT NOT NULL,
    retryable        BOOLEAN NOT NULL,
    idempotency_key  TEXT,
    created_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX events_idempotency_key ON events (idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_by_time ON events (created_at, id);
CREATE INDEX events_by_type_time ON events (event_type, created_at, id);

-- One row per (event, subscription). The worker claims rows with a lease; see ARCHITECTURE.md.
CREATE TABLE deliveries (
    id                TEXT COLLATE "C" PRIMARY KEY,
    event_id          TEXT COLLATE "C" NOT NULL REFERENCES events (id),
    subscription_id   TEXT COLLATE "C" NOT NULL REFERENCES subscriptions (id) ON DELETE CASCADE,
    state             TEXT NOT NULL
                      CHECK (state IN ('pending', 'in_flight', 'delivered', 'failed', 'dead', 'held')),
    attempts          BIGINT NOT NULL DEFAULT 0,
    next_attempt_at   BIGINT,
    lease_owner       TEXT,
    lease_expires_at  BIGINT,
    last_status       BIGINT,
    last_error        TEXT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    UNIQUE (event_id, subscription_id)
);
-- "Due deliveries, oldest first": the claim query walks this index.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
-- Expired leases, for the rescuer.
CREATE INDEX deliveries_leased ON deliveries (lease_expires_at) WHERE state = 'in_flight';
CREATE INDEX deliveries_by_subscription ON deliveries (subscription_id, created_at, id);
CREATE INDEX subscriptions_by_time ON subscriptions (created_at, id);
