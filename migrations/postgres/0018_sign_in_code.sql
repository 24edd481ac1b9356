-- The sign-in code (SPEC §11): a customer's own link also carries a 6-digit code that signs in
-- only the browser that asked for the link. The row keeps a keyed hash (HMAC with the server
-- key) of the code together with a random value held in that browser's cookie, never the code;
-- and the wrong tries: the fifth uses the link up. Links without a code (staff resends,
-- booking confirmations, console links) have no hash.
ALTER TABLE sign_in_tokens ADD COLUMN code_hash BYTEA;
ALTER TABLE sign_in_tokens ADD COLUMN code_tries INTEGER NOT NULL DEFAULT 0;
