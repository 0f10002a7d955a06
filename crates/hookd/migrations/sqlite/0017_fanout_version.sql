-- A counter that every change of what fan-out reads (a subscription created or deleted, or its
-- event types, content filter, state or owner changed) increments in the same transaction, so a
-- publisher keeps its copy of the subscriptions until the counter moves.
CREATE TABLE fanout_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  INTEGER NOT NULL
) STRICT;
INSERT INTO fanout_version (id, version) VALUES (1, 0);
CREATE TRIGGER fanout_version_insert AFTER INSERT ON subscriptions
BEGIN
    UPDATE fanout_version SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER fanout_version_delete AFTER DELETE ON subscriptions
BEGIN
    UPDATE fanout_version SET version = version + 1 WHERE id = 1;
END;
CREATE TRIGGER fanout_version_update AFTER UPDATE OF events, filter, active, owner ON subscriptions
WHEN OLD.events IS NOT NEW.events OR OLD.filter IS NOT NEW.filter
     OR OLD.active IS NOT NEW.active OR OLD.owner IS NOT NEW.owner
BEGIN
    UPDATE fanout_version SET version = version + 1 WHERE id = 1;
END;
