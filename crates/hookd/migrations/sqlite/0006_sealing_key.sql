-- Which master key seals the subscription secrets (`hookd master-key rotate` sets it in the same
-- transaction that re-encrypts them). NULL until the first rotation: any key the node has is then
-- accepted. Every write of a secret checks it, so a node still sealing with a retired key cannot
-- commit a secret nobody will be able to open (see ARCHITECTURE.md, "Master key rotation").
CREATE TABLE sealing_key (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    key_id      TEXT,
    rotated_at  INTEGER
) STRICT;
INSERT INTO sealing_key (id, key_id, rotated_at) VALUES (1, NULL, NULL);
