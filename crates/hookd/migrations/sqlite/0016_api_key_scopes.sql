-- What an API key may do: a comma-separated list of `admin`, `publish`, `read` (keys from before
-- scopes are admin keys), and the one owner the key is bound to, if any.
ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'admin';
ALTER TABLE api_keys ADD COLUMN owner TEXT;
