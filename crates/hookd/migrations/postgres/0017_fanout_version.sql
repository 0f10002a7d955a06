-- A counter that every change of what fan-out reads (a subscription created or deleted, or its
-- event types, content filter, state or owner changed) increments in the same transaction, so a
-- publisher keeps its copy of the subscriptions until the counter moves (on any node).
CREATE TABLE fanout_version (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  BIGINT NOT NULL
);
INSERT INTO fanout_version (id, version) VALUES (1, 0);
CREATE FUNCTION fanout_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE fanout_version SET version = version + 1 WHERE id = 1;
    RETURN NULL;
END;
$$;
CREATE TRIGGER fanout_version_insert_delete AFTER INSERT OR DELETE ON subscriptions
    FOR EACH ROW EXECUTE FUNCTION fanout_version_bump();
CREATE TRIGGER fanout_version_update AFTER UPDATE OF events, filter, active, owner ON subscriptions
    FOR EACH ROW
    WHEN (OLD.events IS DISTINCT FROM NEW.events OR OLD.filter IS DISTINCT FROM NEW.filter
          OR OLD.active IS DISTINCT FROM NEW.active OR OLD.owner IS DISTINCT FROM NEW.owner)
    EXECUTE FUNCTION fanout_version_bump();
