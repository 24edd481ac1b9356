-- The operator side: staff users and their sign-in links and sessions, API keys for the
-- integration API, the audit log of support actions.

-- A staff member of one storefront (owner, manager, staff) or platform support (no
-- storefront). One staff identity per email address.
CREATE TABLE staff_users (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    storefront_id   INTEGER REFERENCES storefronts(id),
    email           TEXT NOT NULL,
    email_key       TEXT NOT NULL UNIQUE,
    full_name       TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('owner', 'manager', 'staff', 'support')),
    created_at      INTEGER NOT NULL,
    CHECK ((role = 'support') = (storefront_id IS NULL))
);

-- Console magic links and sessions: only hashes, like the customers'.
CREATE TABLE staff_tokens (
    token_hash      BLOB PRIMARY KEY,
    staff_user_id   INTEGER NOT NULL REFERENCES staff_users(id),
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER
);
CREATE INDEX staff_tokens_staff ON staff_tokens (staff_user_id, created_at);

CREATE TABLE staff_sessions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    staff_user_id   INTEGER NOT NULL REFERENCES staff_users(id),
    session_hash    BLOB NOT NULL UNIQUE,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    last_seen_at    INTEGER NOT NULL
);
CREATE INDEX staff_sessions_expires ON staff_sessions (expires_at);

-- An integration API key of one storefront; only its SHA-256 is kept.
CREATE TABLE api_keys (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    storefront_id   INTEGER NOT NULL REFERENCES storefronts(id),
    name            TEXT NOT NULL,
    key_hash        BLOB NOT NULL UNIQUE,
    prefix          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    revoked_at      INTEGER,
    last_used_at    INTEGER
);

-- Who did what, when: support actions (linking contacts, merging accounts) and resends.
CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    storefront_id   INTEGER,
    staff_user_id   INTEGER,
    actor           TEXT NOT NULL,
    action          TEXT NOT NULL,
    details         TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX audit_log_storefront ON audit_log (storefront_id, id DESC);

-- When staff last resent an account's portal link (the resend cooldown).
ALTER TABLE accounts ADD COLUMN last_link_resent_at INTEGER;

-- The integration API lists a storefront's deliveries, newest first.
CREATE INDEX deliveries_storefront ON deliveries (storefront_id, id DESC);
