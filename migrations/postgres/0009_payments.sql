-- Payments are never taken twice (SPEC §8).
-- Processing: a Checkout completed with its payment still on its way (a pre-authorized debit)
-- until Stripe says it succeeded (paid) or failed (pending again).
ALTER TABLE invoices DROP CONSTRAINT IF EXISTS invoices_status_check;
ALTER TABLE invoices ADD CONSTRAINT invoices_status_check
    CHECK (status IN ('pending', 'processing', 'paid', 'void'));
-- Which Checkout of the invoice this is: part of its Stripe idempotency key, so a retried
-- create reuses the key and a replacement Checkout (after one expired or failed) gets a new one.
ALTER TABLE invoices ADD COLUMN checkout_attempt BIGINT NOT NULL DEFAULT 0;
-- The same for an account's setup-mode Checkouts (adding a payment method).
ALTER TABLE accounts ADD COLUMN setup_checkout_attempt BIGINT NOT NULL DEFAULT 0;
-- Reconciliation also asks about payments still processing.
DROP INDEX IF EXISTS invoices_in_checkout;
CREATE INDEX invoices_in_checkout ON invoices (checkout_started_at)
    WHERE status IN ('pending', 'processing') AND checkout_session_id IS NOT NULL;
