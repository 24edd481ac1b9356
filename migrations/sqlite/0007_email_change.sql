-- A new email address waiting to be confirmed (SPEC §8): one single-use link sent to the new
-- address, tied to the account and to that address. Only the SHA-256 of the token is kept.
-- Until the link is used, the account keeps its old address.
CREATE TABLE email_change_tokens (
    token_hash      BLOB PRIMARY KEY,
    storefront_id   INTEGER NOT NULL,
    account_id      INTEGER NOT NULL,
    new_email       TEXT NOT NULL,
    new_email_key   TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    used_at         INTEGER
);
CREATE INDEX email_change_tokens_account ON email_change_tokens (account_id, created_at);
