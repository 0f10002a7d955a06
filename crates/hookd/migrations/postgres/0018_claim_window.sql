-- Claims by due time: the queued (pending or failed) deliveries in `next_attempt_at` order. A claim
-- first reads a window of the oldest due rows here and takes those whose subscription has room, so
-- with many subscriptions a claim costs the rows it reads, not one seek per subscription with
-- queued work. Only when that window is full of rows of subscriptions without room (one endpoint's
-- backlog ahead of the others) does the claim fall back to the skip scan over
-- `deliveries_queued_by_subscription`, which passes over such a backlog with one seek.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state IN ('pending', 'failed');
