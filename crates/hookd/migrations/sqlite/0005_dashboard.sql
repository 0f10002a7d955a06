-- Dashboard and subscriber portal: subscription owners, UI sessions, indexes for the screens.

-- The subscriber's id in the operator's system; the portal shows one owner's subscriptions only.
ALTER TABLE subscriptions ADD COLUMN owner TEXT;
CREATE INDEX subscriptions_by_owner ON subscriptions (owner, created_at, id) WHERE owner IS NOT NULL;

-- Browser sessions of the dashboard (`operator`), of the portal (`portal`), and one-time portal links
-- (`link`, exchanged once for a `portal` session). Only the SHA-256 of each token is stored.
CREATE TABLE ui_sessions (
    token_hash    BLOB PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('operator', 'portal', 'link')),
    -- The subscriber whose data a portal session or link may see; NULL for operators.
    owner         TEXT,
    -- Portal: 1 when the session may change things (capability `manage`), 0 for read-only.
    can_manage    INTEGER NOT NULL CHECK (can_manage IN (0, 1)),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    CHECK ((kind = 'operator') = (owner IS NULL))
) STRICT;
CREATE INDEX ui_sessions_by_expiry ON ui_sessions (expires_at);

-- The delivery log pages newest first, unfiltered or by state, without scanning.
CREATE INDEX deliveries_by_time ON deliveries (created_at, id);
CREATE INDEX deliveries_by_state_created ON deliveries (state, created_at, id);
