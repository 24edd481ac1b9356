-- The relay looks at each delivery once, when its relay time comes, instead of finding the
-- rows still waiting through an index of them alone. Until now an email's outcome set
-- relay_at to NULL (taking the row out of the partial index deliveries_relay): a change to an
-- indexed column, so PostgreSQL wrote a new row version with an entry in each of the table's
-- five indexes for every email sent. Now relay_at keeps its value when the email is sent or
-- fails, the outcome changes no indexed column and is updated in place (HOT), and the relay
-- walks the index from where it last looked (relay_progress) to now: rows it passes that are
-- still waiting are published again and given a later relay time, final ones are skipped.
-- The index is ordered by (relay_at, id), because a batch of links shares one relay time
-- and the relay's place must fall between two rows.
DROP INDEX deliveries_relay;
CREATE INDEX deliveries_relay ON deliveries (relay_at, id) WHERE relay_at IS NOT NULL;

CREATE TABLE relay_progress (
    id         SMALLINT PRIMARY KEY CHECK (id = 1),
    -- The last row the relay looked at: (relay_at, id).
    looked_at  TIMESTAMPTZ NOT NULL,
    looked_id  BIGINT NOT NULL
);
-- Before this migration only rows still waiting had a relay time, so the relay starts at the
-- beginning of the index.
INSERT INTO relay_progress (id, looked_at, looked_id) VALUES (1, '1970-01-01 00:00:00+00', 0);
