-- Nobody can lock a customer out (SPEC §8): the sign-in limits count links per requesting
-- client. Each customer's link and each console link records the bucket it was counted in: a
-- keyed hash (HMAC with the server key, 16 bytes; no raw address is stored) of the client's IP
-- address or IPv6 /64, or of the id of a browser carrying the signed device cookie. Links
-- issued by staff or a booking confirmation have none and count against no limit.
ALTER TABLE sign_in_tokens ADD COLUMN client_key BLOB;
ALTER TABLE staff_tokens ADD COLUMN client_key BLOB;

-- The limits count an account's links of the last window, per bucket and in all: one range of
-- this index each, read without touching the table (it replaces the index without client_key).
DROP INDEX sign_in_tokens_account;
CREATE INDEX sign_in_tokens_account_client ON sign_in_tokens (account_id, created_at, client_key);
DROP INDEX staff_tokens_staff;
CREATE INDEX staff_tokens_staff_client ON staff_tokens (staff_user_id, created_at, client_key);
