-- Sign-in requests for addresses with no account. The address is kept only as a keyed hash
-- (HMAC with the server key): enough to see repeated probing, not to read it back.
CREATE TABLE unmatched_sign_ins (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    storefront_id   INTEGER NOT NULL,
    email_hash      BLOB NOT NULL,
    client_ip       TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX unmatched_sign_ins_created ON unmatched_sign_ins (created_at);
