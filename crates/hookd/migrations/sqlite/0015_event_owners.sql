-- Events published to one owner (a customer of the operator): delivered only to that owner's
-- subscriptions, listed and erased by owner.
ALTER TABLE events ADD COLUMN owner TEXT;
CREATE INDEX events_by_owner ON events (owner, created_at, id) WHERE owner IS NOT NULL;
