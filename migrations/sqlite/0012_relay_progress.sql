-- The relay looks at each delivery once, when its relay time comes (see the PostgreSQL
-- migration of the same name).
DROP INDEX deliveries_relay;
CREATE INDEX deliveries_relay ON deliveries (relay_at, id) WHERE relay_at IS NOT NULL;

CREATE TABLE relay_progress (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    looked_at  INTEGER NOT NULL,
    looked_id  INTEGER NOT NULL
);
INSERT INTO relay_progress (id, looked_at, looked_id) VALUES (1, 0, 0);
