-- Cheaper state changes (mirrors migrations/sqlite/0009_state_indexes.sql, where each index's use
-- is explained): no index over every delivery keyed by `state` or `updated_at`.
--
-- Here a claim or an outcome changes `state`, which partial indexes' predicates name, so it is
-- never a HOT update and adds an entry to every index whose predicate holds for the new row. The two
-- dropped indexes held every row; the partial ones that replace them take a delivery delivered at
-- its first attempt only once, as `pending` at its insert. A generic plan proves a partial
-- predicate only from literals, which is why the delivery log repeats its state as one.
DROP INDEX deliveries_by_state_time;
DROP INDEX deliveries_by_state_created;
CREATE INDEX deliveries_by_state_created ON deliveries (state, created_at, id)
    WHERE state = 'pending' OR state = 'failed' OR state = 'dead' OR state = 'held';
CREATE INDEX deliveries_dead ON deliveries (state, updated_at, id) WHERE state = 'dead';
CREATE INDEX deliveries_failing ON deliveries (subscription_id, updated_at)
    WHERE state IN ('failed', 'dead');
