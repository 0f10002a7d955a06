-- What the original webhook specification's `X-Webhook-Signature` signs for a subscription:
-- 'body' (the body as sent; its Node receiver's form) or 'python_sorted' (its Python receiver's
-- `json.dumps(body, sort_keys=True)`).
ALTER TABLE subscriptions ADD COLUMN legacy_signature TEXT NOT NULL DEFAULT 'body';
