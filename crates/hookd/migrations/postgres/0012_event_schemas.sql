-- Event schemas and content filters (mirrors migrations/sqlite/0012_event_schemas.sql).
--
-- `event_types.schemas`: a JSON object of JSON Schemas (draft 2020-12) for the events' `data`,
-- keyed by envelope version, with "*" for every version without its own; NULL when the type has
-- none. `examples`: a JSON array of example `data` objects, each valid against its schema, or NULL.
-- `validate`: what a publish does with an event its schema refuses ('off', 'warn', 'enforce').
-- `updated_at`: bumped by every change of the type, so that a node's compiled-schema cache can tell
-- a stale entry.
--
-- `subscriptions.filter`: the subscription's content filter as JSON text, or NULL for none.
ALTER TABLE event_types ADD COLUMN schemas TEXT;
ALTER TABLE event_types ADD COLUMN examples TEXT;
ALTER TABLE event_types ADD COLUMN validate TEXT NOT NULL DEFAULT 'off'
    CHECK (validate IN ('off', 'warn', 'enforce'));
ALTER TABLE event_types ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN filter TEXT;
