-- The event-type catalog, seeded with the original webhook specification's ten standard types and hookd's own test type.

CREATE TABLE event_types (
    name         TEXT PRIMARY KEY,
    description  TEXT NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    archived_at  INTEGER
) STRICT;

INSERT INTO event_types (name, description, created_at) VALUES
    ('order.created',     'An order was placed.',                        0),
    ('order.updated',     'An order changed.',                           0),
    ('order.cancelled',   'An order was cancelled.',                     0),
    ('payment.succeeded', 'A payment went through.',                     0),
    ('payment.failed',    'A payment was declined or failed.',           0),
    ('user.registered',   'A user signed up.',                           0),
    ('user.updated',      'A user''s profile changed.',                  0),
    ('invoice.issued',    'An invoice was issued.',                      0),
    ('shipment.created',  'A shipment was created.',                     0),
    ('refund.processed',  'A refund was processed.',                     0),
    ('webhook.test',      'A test event sent by hookd on request.',      0);
