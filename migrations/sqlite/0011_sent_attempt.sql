-- The try that sent an email is recorded on the delivery row itself (see the PostgreSQL
-- migration of the same name).
ALTER TABLE deliveries ADD COLUMN sent_started_at INTEGER;
ALTER TABLE deliveries ADD COLUMN sent_code INTEGER;
ALTER TABLE deliveries ADD COLUMN sent_detail TEXT;
ALTER TABLE deliveries ADD COLUMN sent_worker TEXT;
