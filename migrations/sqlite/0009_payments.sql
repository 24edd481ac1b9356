-- Payments are never taken twice (SPEC §8).
-- Processing: a Checkout completed with its payment still on its way (a pre-authorized debit)
-- until Stripe says it succeeded (paid) or failed (pending again). SQLite cannot change a
-- CHECK constraint in place, so the table is rebuilt (nothing references it).
CREATE TABLE invoices_rebuilt (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    storefront_id   INTEGER NOT NULL REFERENCES storefronts(id),
    facility_id     INTEGER NOT NULL REFERENCES facilities(id),
    contact_id      INTEGER NOT NULL REFERENCES contacts(id),
    rental_id       INTEGER REFERENCES rentals(id),
    external_ref    TEXT NOT NULL,
    number          TEXT NOT NULL,
    description     TEXT NOT NULL,
    amount_minor    INTEGER NOT NULL CHECK (amount_minor >= 0),
    currency        TEXT NOT NULL,
    issued_on       TEXT NOT NULL,
    due_on          TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'paid', 'void')),
    paid_at         INTEGER,
    checkout_session_id TEXT,
    checkout_started_at INTEGER,
    payment_intent_id TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    -- Which Checkout of the invoice this is: part of its Stripe idempotency key, so a retried
    -- create reuses the key and a replacement Checkout gets a new one.
    checkout_attempt INTEGER NOT NULL DEFAULT 0,
    UNIQUE (storefront_id, external_ref)
);
INSERT INTO invoices_rebuilt (id, storefront_id, facility_id, contact_id, rental_id, external_ref,
        number, description, amount_minor, currency, issued_on, due_on, status, paid_at,
        checkout_session_id, checkout_started_at, payment_intent_id, created_at, updated_at)
    SELECT id, storefront_id, facility_id, contact_id, rental_id, external_ref,
        number, description, amount_minor, currency, issued_on, due_on, status, paid_at,
        checkout_session_id, checkout_started_at, payment_intent_id, created_at, updated_at
    FROM invoices;
DROP TABLE invoices;
ALTER TABLE invoices_rebuilt RENAME TO invoices;
CREATE INDEX invoices_contact ON invoices (contact_id, issued_on DESC);
CREATE INDEX invoices_rental ON invoices (rental_id);
-- Reconciliation also asks about payments still processing.
CREATE INDEX invoices_in_checkout ON invoices (checkout_started_at)
    WHERE status IN ('pending', 'processing') AND checkout_session_id IS NOT NULL;
-- The same attempt counter for an account's setup-mode Checkouts (adding a payment method).
ALTER TABLE accounts ADD COLUMN setup_checkout_attempt INTEGER NOT NULL DEFAULT 0;
