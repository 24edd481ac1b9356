-- The Emails tab and the API filter deliveries by recipient (matched whole, without regard
-- to case). This index finds one recipient's deliveries directly, newest first, so the filter
-- shows them on one page however many deliveries the storefront has.
CREATE INDEX deliveries_recipient_idx ON deliveries (lower(recipient), id);
