-- Stripe webhook events not yet processed, by when they are due again.
CREATE INDEX stripe_events_due ON stripe_events (next_attempt_at) WHERE processed_at IS NULL;
-- Invoices waiting in a Stripe Checkout, for reconciliation.
CREATE INDEX invoices_in_checkout ON invoices (checkout_started_at)
    WHERE status = 'pending' AND checkout_session_id IS NOT NULL;
-- Invoices of a rental (rental history).
CREATE INDEX invoices_rental ON invoices (rental_id);
