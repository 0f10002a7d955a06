-- Which master key seals the subscription secrets (mirrors migrations/sqlite/0006_sealing_key.sql).
-- NULL until the first rotation. Writers of a secret hold this row FOR SHARE and the rotation
-- updates it first, so a secret sealed with a retired key cannot commit after a rotation.
CREATE TABLE sealing_key (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    key_id      TEXT,
    rotated_at  BIGINT
);
INSERT INTO sealing_key (id, key_id, rotated_at) VALUES (1, NULL, NULL);
