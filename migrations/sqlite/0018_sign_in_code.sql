-- The sign-in code (SPEC §11): a customer's own link also carries a 6-digit code that signs in
-- only the browser that asked for the link. The code is derived from the link's token hash with
-- a key of the server's, so it is stored nowhere; the row keeps a keyed hash of the random value
-- held in the asking browser's sign-in cookie (code_binding), found through the account's
-- links, and counts the codes tried there: the fifth wrong one uses the link up. Links without
-- a code (staff resends, booking confirmations, console links) have no binding.
ALTER TABLE sign_in_tokens ADD COLUMN code_binding BLOB;
ALTER TABLE sign_in_tokens ADD COLUMN code_tries INTEGER NOT NULL DEFAULT 0;
