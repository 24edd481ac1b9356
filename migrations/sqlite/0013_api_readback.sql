-- Kept in step with migrations/postgres/0013_api_readback.sql.
CREATE INDEX facilities_storefront_page ON facilities (storefront_id, id);
CREATE INDEX contacts_storefront_page ON contacts (storefront_id, id);
CREATE INDEX rentals_storefront_page ON rentals (storefront_id, id);
CREATE INDEX invoices_storefront_page ON invoices (storefront_id, id);
CREATE INDEX accounts_storefront_page ON accounts (storefront_id, id);

CREATE TABLE idempotency_keys (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    storefront_id   INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL,
    fingerprint     BLOB NOT NULL,
    status          INTEGER,
    content_type    TEXT,
    body            BLOB,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    CONSTRAINT idempotency_keys_unique UNIQUE (storefront_id, idempotency_key)
);
CREATE INDEX idempotency_keys_expires ON idempotency_keys (expires_at);
