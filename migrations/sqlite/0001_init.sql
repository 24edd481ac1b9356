-- Latchkey schema, SQLite. Kept in step with migrations/postgres/0001_init.sql.
-- Timestamps are integer microseconds since the Unix epoch (UTC); dates are ISO text; money is integer minor units with an ISO currency code.
--
-- The tables written on every sign-in and every send (sign_in_tokens, deliveries,
-- delivery_facilities, delivery_attempts, unmatched_sign_ins) carry no foreign keys: each
-- foreign-key check takes a share lock on the parent row, and every sign-in of a storefront
-- would lock the same storefront row, which PostgreSQL serialises through multixacts (measured:
-- it was the largest cost of a sign-in). Their parents (storefronts, facilities, accounts) are
-- never deleted; an account merge moves or ends its rows explicitly.

CREATE TABLE storefronts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    slug            TEXT NOT NULL UNIQUE,
    name            TEXT NOT NULL,
    from_name       TEXT NOT NULL,
    from_email      TEXT NOT NULL,
    reply_to        TEXT,
    rent_url        TEXT NOT NULL,
    custom_host     TEXT UNIQUE,
    acss_debit      INTEGER NOT NULL DEFAULT 0,
    dkim_domain     TEXT,
    dkim_selector   TEXT,
    dkim_private_key TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE TABLE facilities (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    storefront_id   INTEGER NOT NULL REFERENCES storefronts(id),
    external_ref    TEXT NOT NULL,
    name            TEXT NOT NULL,
    address         TEXT NOT NULL DEFAULT '',
    phone           TEXT NOT NULL DEFAULT '',
    email           TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (storefront_id, external_ref)
);

CREATE TABLE accounts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    storefront_id   INTEGER NOT NULL REFERENCES storefronts(id),
    email           TEXT NOT NULL,
    email_key       TEXT NOT NULL,
    full_name       TEXT NOT NULL,
    phone           TEXT NOT NULL DEFAULT '',
    stripe_customer_id TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    CONSTRAINT accounts_email_unique UNIQUE (storefront_id, email_key)
);

CREATE TABLE contacts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    storefront_id   INTEGER NOT NULL REFERENCES storefronts(id),
    facility_id     INTEGER NOT NULL REFERENCES facilities(id),
    account_id      INTEGER REFERENCES accounts(id),
    external_ref    TEXT NOT NULL,
    full_name       TEXT NOT NULL,
    email           TEXT NOT NULL DEFAULT '',
    phone           TEXT NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (storefront_id, external_ref)
);
CREATE INDEX contacts_account ON contacts (account_id);
CREATE INDEX contacts_facility ON contacts (facility_id);

CREATE TABLE rentals (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    storefront_id   INTEGER NOT NULL REFERENCES storefronts(id),
    facility_id     INTEGER NOT NULL REFERENCES facilities(id),
    contact_id      INTEGER NOT NULL REFERENCES contacts(id),
    external_ref    TEXT NOT NULL,
    label           TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('upcoming', 'active', 'ended', 'cancelled')),
    starts_on       TEXT NOT NULL,
    ends_on         TEXT,
    rate_minor      INTEGER NOT NULL DEFAULT 0,
    currency        TEXT NOT NULL DEFAULT 'USD',
    rate_period     TEXT NOT NULL DEFAULT 'month',
    delivery_status TEXT,
    tracking_url    TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (storefront_id, external_ref)
);
CREATE INDEX rentals_contact ON rentals (contact_id);

CREATE TABLE agreements (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    rental_id       INTEGER NOT NULL UNIQUE REFERENCES rentals(id),
    file_name       TEXT NOT NULL,
    body            BLOB NOT NULL,
    signed_at       INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);

CREATE TABLE invoices (
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
    status          TEXT NOT NULL CHECK (status IN ('pending', 'paid', 'void')),
    paid_at         INTEGER,
    checkout_session_id TEXT,
    checkout_started_at INTEGER,
    payment_intent_id TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (storefront_id, external_ref)
);
CREATE INDEX invoices_contact ON invoices (contact_id, issued_on DESC);

CREATE TABLE payment_methods (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id      INTEGER NOT NULL REFERENCES accounts(id),
    stripe_id       TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL,
    brand           TEXT NOT NULL DEFAULT '',
    last4           TEXT NOT NULL DEFAULT '',
    exp_month       INTEGER,
    exp_year        INTEGER,
    created_at      INTEGER NOT NULL
);
CREATE INDEX payment_methods_account ON payment_methods (account_id);

CREATE TABLE stripe_events (
    event_id        TEXT PRIMARY KEY,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    received_at     INTEGER NOT NULL,
    processed_at    INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    last_error      TEXT
);

-- One magic link. Only the SHA-256 of the token is kept.
CREATE TABLE sign_in_tokens (
    token_hash      BLOB PRIMARY KEY,
    storefront_id   INTEGER NOT NULL,
    account_id      INTEGER NOT NULL,
    requested_by    TEXT NOT NULL CHECK (requested_by IN ('customer', 'staff', 'booking')),
    redirect_path   TEXT,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER
);
-- The per-account limit counts an account's recent links.
CREATE INDEX sign_in_tokens_account ON sign_in_tokens (account_id, created_at);

-- One signed-in browser. Only the SHA-256 of the session id is kept.
CREATE TABLE sessions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    storefront_id   INTEGER NOT NULL,
    account_id      INTEGER NOT NULL REFERENCES accounts(id),
    session_hash    BLOB NOT NULL UNIQUE,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL
);
CREATE INDEX sessions_account ON sessions (account_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- One email. The row is the source of truth for the queue: it is written in the same
-- transaction as what caused it, and the relay republishes rows the broker never got.
CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    storefront_id   INTEGER NOT NULL,
    account_id      INTEGER,
    kind            TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'sending', 'sent', 'deferred', 'failed', 'suppressed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    payload         TEXT NOT NULL DEFAULT '{}',
    -- The link's token, sealed with the server key, erased once the email is sent or failed.
    sealed_token    BLOB,
    link_expires_at INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    relay_at        INTEGER,
    sent_at         INTEGER
);
-- The relay's work: rows not yet final, by when they are due.
CREATE INDEX deliveries_relay ON deliveries (relay_at) WHERE relay_at IS NOT NULL;
-- An account's recent emails.
CREATE INDEX deliveries_account ON deliveries (account_id, id DESC);

-- Which facilities' Emails tabs show a delivery (the facilities of the account's contacts, or
-- the facility of the rental it is about).
CREATE TABLE delivery_facilities (
    facility_id     INTEGER NOT NULL,
    delivery_id     INTEGER NOT NULL,
    PRIMARY KEY (facility_id, delivery_id)
);
CREATE INDEX delivery_facilities_delivery ON delivery_facilities (delivery_id);

-- One try at sending a delivery, with the SMTP server's reply.
CREATE TABLE delivery_attempts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id     INTEGER NOT NULL,
    attempt         INTEGER NOT NULL,
    started_at      INTEGER NOT NULL,
    finished_at     INTEGER NOT NULL,
    outcome         TEXT NOT NULL CHECK (outcome IN ('sent', 'deferred', 'failed')),
    smtp_code       INTEGER,
    detail          TEXT NOT NULL,
    worker          TEXT NOT NULL
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, attempt);
