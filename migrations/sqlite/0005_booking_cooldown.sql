-- When a booking confirmation of a rental was last sent through the integration API: a
-- second one inside the cooldown (`resend_cooldown_seconds`) is refused, so an operator's
-- retry loop does not email the customer a new magic link on every try. Claimed with a
-- conditional UPDATE before the link is issued, so concurrent requests send one.
ALTER TABLE rentals ADD COLUMN booking_confirmed_at INTEGER;
