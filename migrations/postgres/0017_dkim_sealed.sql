-- DKIM private keys are stored sealed with the secret key (ChaCha20-Poly1305, the storefront's
-- id bound in), never in plaintext: `dkim_key_sealed`, with the key's algorithm and public key
-- (the DNS record's `k=` and `p=`, public by nature) beside it so the record can be shown
-- without opening the key. A plaintext key left in `dkim_private_key` by an earlier version is
-- sealed and the column cleared by the binary at start (`latchkey serve`, `worker`, `migrate`,
-- `admin`): SQL has no secret key to seal with.
ALTER TABLE storefronts ADD COLUMN dkim_key_sealed BYTEA;
ALTER TABLE storefronts ADD COLUMN dkim_key_type TEXT CHECK (dkim_key_type IN ('rsa', 'ed25519'));
ALTER TABLE storefronts ADD COLUMN dkim_public_key TEXT;
