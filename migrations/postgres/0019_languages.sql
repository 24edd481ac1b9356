-- Languages (SPEC §10): a storefront's default language, and the one a customer chose on the
-- Account page (NULL: follow the storefront). Tags are those of the folders under locales/.
ALTER TABLE storefronts ADD COLUMN language TEXT NOT NULL DEFAULT 'en';
ALTER TABLE accounts ADD COLUMN language TEXT;
