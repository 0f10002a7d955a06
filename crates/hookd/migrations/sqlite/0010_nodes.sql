-- The nodes whose workers hold leases: each renews its heartbeat every few seconds, so that the
-- deliveries of a node that stopped renewing (it crashed, or lost the database) return to the queue
-- long before their leases run out. `id` is the worker's lease owner (`deliveries.lease_owner`).
-- `stopped_at` is set by a graceful stop. Timestamps are Unix milliseconds.
CREATE TABLE nodes (
    id            TEXT PRIMARY KEY,
    role          TEXT NOT NULL,
    started_at    INTEGER NOT NULL,
    heartbeat_at  INTEGER NOT NULL,
    stopped_at    INTEGER
);
