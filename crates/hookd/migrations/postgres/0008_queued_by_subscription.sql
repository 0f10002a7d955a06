-- Claims per subscription (mirrors migrations/sqlite/0008_queued_by_subscription.sql): each
-- subscription's queued (pending or failed) deliveries, oldest due first. The claim lists the
-- subscriptions that have queued work by a skip scan over this index (one seek per subscription)
-- and takes at most each one's room of due rows from it, so a claim costs O(subscriptions with
-- queued work + rows claimed): a subscription the worker holds its window of is passed over with
-- one seek, however long its backlog. `deliveries_due`, walked in `next_attempt_at` order, had to
-- read through all of such a backlog to reach the rows of other subscriptions behind it; this
-- index replaces it (`next_due_at` takes the first row of each subscription here). It must go:
-- while it exists, the generic plan of the claim (a prepared statement) walks it for each
-- subscription, filtering on `subscription_id`, because it cannot know how the rows cluster.
-- `deliveries_by_subscription` stays for the delivery log: every state, in `created_at` order.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_queued_by_subscription ON deliveries (subscription_id, next_attempt_at)
    WHERE state IN ('pending', 'failed');
