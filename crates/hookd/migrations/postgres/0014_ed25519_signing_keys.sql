-- Standard Webhooks `v1a`: which schemes sign a subscription's deliveries, and its Ed25519 key pair
-- (`whsk_…`, sealed like the secret) with the previous one during a rotation overlap.
ALTER TABLE subscriptions ADD COLUMN signature_schemes TEXT NOT NULL DEFAULT 'v1';
ALTER TABLE subscriptions ADD COLUMN signing_key TEXT;
ALTER TABLE subscriptions ADD COLUMN signing_key_not_before BIGINT;
ALTER TABLE subscriptions ADD COLUMN previous_signing_key TEXT;
ALTER TABLE subscriptions ADD COLUMN previous_signing_key_not_before BIGINT;
ALTER TABLE subscriptions ADD COLUMN previous_signing_key_expires_at BIGINT;
