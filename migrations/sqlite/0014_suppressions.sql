-- Delivery truth (see the PostgreSQL migration of the same name). SQLite cannot change a
-- CHECK constraint, so the two tables are rebuilt with the new statuses and outcomes.
CREATE TABLE deliveries_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    storefront_id   INTEGER NOT NULL,
    account_id      INTEGER,
    kind            TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'deferred', 'failed', 'suppressed', 'bounced', 'complained')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    payload         TEXT NOT NULL DEFAULT '{}',
    sealed_token    BLOB,
    link_expires_at INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    relay_at        INTEGER,
    sent_at         INTEGER,
    sent_started_at INTEGER,
    sent_code       INTEGER,
    sent_detail     TEXT,
    sent_worker     TEXT
);
INSERT INTO deliveries_new (id, storefront_id, account_id, kind, recipient, subject, status, attempts, last_error,
    payload, sealed_token, link_expires_at, created_at, updated_at, next_attempt_at, relay_at, sent_at,
    sent_started_at, sent_code, sent_detail, sent_worker)
SELECT id, storefront_id, account_id, kind, recipient, subject, status, attempts, last_error,
    payload, sealed_token, link_expires_at, created_at, updated_at, next_attempt_at, relay_at, sent_at,
    sent_started_at, sent_code, sent_detail, sent_worker
FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;
CREATE INDEX deliveries_relay ON deliveries (relay_at, id) WHERE relay_at IS NOT NULL;
CREATE INDEX deliveries_account ON deliveries (account_id, id DESC);
CREATE INDEX deliveries_storefront ON deliveries (storefront_id, id DESC);
CREATE INDEX deliveries_recipient_idx ON deliveries (lower(recipient), id);

CREATE TABLE delivery_attempts_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id     INTEGER NOT NULL,
    attempt         INTEGER NOT NULL,
    started_at      INTEGER NOT NULL,
    finished_at     INTEGER NOT NULL,
    outcome         TEXT NOT NULL CHECK (outcome IN ('sent', 'deferred', 'failed', 'bounced', 'complained', 'delayed')),
    smtp_code       INTEGER,
    detail          TEXT NOT NULL,
    worker          TEXT NOT NULL
);
INSERT INTO delivery_attempts_new SELECT * FROM delivery_attempts;
DROP TABLE delivery_attempts;
ALTER TABLE delivery_attempts_new RENAME TO delivery_attempts;
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, attempt);

CREATE TABLE suppressions (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    storefront_id INTEGER NOT NULL,
    address_key   TEXT NOT NULL,
    email         TEXT NOT NULL,
    reason        TEXT NOT NULL CHECK (reason IN ('hard_bounce', 'complaint')),
    detail        TEXT NOT NULL,
    delivery_id   INTEGER,
    created_at    INTEGER NOT NULL,
    lifted_at     INTEGER,
    lifted_by     TEXT
);
CREATE UNIQUE INDEX suppressions_in_force ON suppressions (storefront_id, address_key) WHERE lifted_at IS NULL;
CREATE INDEX suppressions_storefront ON suppressions (storefront_id, id DESC);
