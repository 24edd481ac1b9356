-- Signed event webhooks (see the PostgreSQL migration of the same name).
-- Signed event webhooks to the operator's systems (SPEC §9). An endpoint belongs to one
-- storefront; its signing secret is sealed with the server key (shown once, when created).
-- An endpoint failing for three days is disabled with the reason; `first_failure_at` is the
-- start of the current run of failures (cleared by a success).
CREATE TABLE webhook_endpoints (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    storefront_id    INTEGER NOT NULL REFERENCES storefronts(id),
    url              TEXT NOT NULL,
    secret_sealed    BLOB NOT NULL,
    event_types      TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    enabled          INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    disabled_at      INTEGER,
    disabled_reason  TEXT,
    first_failure_at INTEGER
);
CREATE INDEX webhook_endpoints_storefront ON webhook_endpoints (storefront_id, id);

-- One row per event that at least one endpoint subscribed to; `body` is the exact JSON sent.
CREATE TABLE webhook_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id     TEXT NOT NULL UNIQUE,
    storefront_id INTEGER NOT NULL,
    type          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    body          TEXT NOT NULL
);

-- One event to one endpoint: `pending` (waiting for its try at next_attempt_at), `sending`
-- (a worker holds it until lease_until), `delivered` or `failed` (given up). The relay
-- publishes a row whose relay_at came (NULL once final), as the mail relay does.
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    endpoint_id     INTEGER NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    event_id        INTEGER NOT NULL REFERENCES webhook_events(id),
    storefront_id   INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    relay_at        INTEGER,
    delivered_at    INTEGER
);
CREATE INDEX webhook_deliveries_relay ON webhook_deliveries (relay_at) WHERE relay_at IS NOT NULL;
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id DESC);

-- Every try: the HTTP status or the connection error, a short excerpt of the answer, how long.
CREATE TABLE webhook_attempts (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id      INTEGER NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt          INTEGER NOT NULL,
    started_at       INTEGER NOT NULL,
    duration_ms      INTEGER NOT NULL,
    http_status      INTEGER,
    error            TEXT,
    response_excerpt TEXT NOT NULL,
    worker           TEXT NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, attempt);
