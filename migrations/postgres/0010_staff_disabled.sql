-- A staff user who left is disabled, not deleted (the audit log names them): a disabled user
-- gets no console link, and their sessions and unused links end when they are disabled.
ALTER TABLE staff_users ADD COLUMN disabled_at TIMESTAMPTZ;
