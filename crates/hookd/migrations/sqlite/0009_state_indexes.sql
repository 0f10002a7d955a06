-- Cheaper state changes: no index over every delivery keyed by `state` or `updated_at`.
--
-- A delivery is inserted once, then updated at its claim and at its outcome, each time with a new
-- `state` and `updated_at`. `deliveries_by_state_time (state, updated_at)` and
-- `deliveries_by_state_created (state, created_at, id)` held every row under those columns, so both
-- updates deleted and re-inserted an entry in each. Their readers now use partial indexes that a
-- delivery delivered at its first attempt never enters after its claim:
--
-- - the delivery log by state (newest first), the overview's backlog counts, the replay of held
--   rows: `deliveries_by_state_created` again, without `delivered` (the dense majority: the log
--   walks `deliveries_by_time` for it) and `in_flight` (`deliveries_leased` holds those rows; the
--   log sorts them, as many as the leases). A new row enters as `pending` and leaves at its claim;
-- - the dead-letter list (by `updated_at`), its redrive and count, the dead-letter groups:
--   `deliveries_dead`. `state` leads although it is constant, so that SQLite's planner takes this
--   index, which gives the order, over `deliveries_by_state_created`, which has `state` too;
-- - "recover failed since T" (`subscription_id = ? AND state IN ('failed', 'dead') AND updated_at
--   >= ?`): `deliveries_failing`, one seek per subscription (was: every failed or dead row since T).
--
-- SQLite uses a partial index only for a query with a condition that is the index's predicate word
-- for word, or `state = '…'` for one arm of an `OR` predicate; hence the `OR` in the first and the
-- exact `IN` list of the readers in the third. The metrics' `GROUP BY state` over every row becomes
-- a count of all rows (on the narrowest index) plus one count per state but `delivered` through
-- these indexes (`common::delivery_counts`).
DROP INDEX deliveries_by_state_time;
DROP INDEX deliveries_by_state_created;
CREATE INDEX deliveries_by_state_created ON deliveries (state, created_at, id)
    WHERE state = 'pending' OR state = 'failed' OR state = 'dead' OR state = 'held';
CREATE INDEX deliveries_dead ON deliveries (state, updated_at, id) WHERE state = 'dead';
CREATE INDEX deliveries_failing ON deliveries (subscription_id, updated_at)
    WHERE state IN ('failed', 'dead');
