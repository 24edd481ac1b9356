-- The try that sent an email is recorded on the delivery row itself (when it started, the
-- server's reply and the worker), not as a delivery_attempts row: most emails go out on their
-- first try, and one row fewer per email is one heap tuple and two index entries fewer on the
-- sending path. Tries that failed or were deferred keep their delivery_attempts rows, and the
-- attempt history is those rows followed by the sending try. Rows sent before this migration
-- keep their sending try in delivery_attempts (sent_detail is NULL on them).
ALTER TABLE deliveries
    ADD COLUMN sent_started_at TIMESTAMPTZ,
    ADD COLUMN sent_code       BIGINT,
    ADD COLUMN sent_detail     TEXT,
    ADD COLUMN sent_worker     TEXT;
