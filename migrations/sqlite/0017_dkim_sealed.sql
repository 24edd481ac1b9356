-- DKIM private keys stored sealed (see the PostgreSQL migration of the same name).
ALTER TABLE storefronts ADD COLUMN dkim_key_sealed BLOB;
ALTER TABLE storefronts ADD COLUMN dkim_key_type TEXT CHECK (dkim_key_type IN ('rsa', 'ed25519'));
ALTER TABLE storefronts ADD COLUMN dkim_public_key TEXT;
