-- The nodes whose workers hold leases (mirrors migrations/sqlite/0010_nodes.sql): each renews its
-- heartbeat every few seconds, so that the deliveries of a node that stopped renewing (it crashed,
-- or lost the database) return to the queue long before their leases run out. `id` is the worker's
-- lease owner (`deliveries.lease_owner`). `stopped_at` is set by a graceful stop.
CREATE TABLE nodes (
    id            TEXT COLLATE "C" PRIMARY KEY,
    role          TEXT NOT NULL,
    started_at    BIGINT NOT NULL,
    heartbeat_at  BIGINT NOT NULL,
    stopped_at    BIGINT
);
