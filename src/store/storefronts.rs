//! Storefronts (tenants) and accounts.

use chrono::{DateTime, Utc};

use super::Store;
use super::db::{DbResult, Row};
use crate::domain::{EmailAddress, Secret};
use crate::params;

#[derive(Debug, Clone)]
pub struct Storefront {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub from_name: String,
    pub from_email: String,
    pub reply_to: Option<String>,
    pub rent_url: String,
    pub custom_host: Option<String>,
    pub acss_debit: bool,
    pub dkim: Option<DkimSettings>,
}

#[derive(Debug, Clone)]
pub struct DkimSettings {
    pub domain: String,
    pub selector: String,
    pub private_key_pem: Secret<String>,
}

const STOREFRONT_COLUMNS: &str = "id, slug, name, from_name, from_email, reply_to, rent_url, custom_host, acss_debit, dkim_domain, dkim_selector, dkim_private_key";

fn storefront_from(r: &Row) -> Storefront {
    let dkim = match (r.opt_string(9), r.opt_string(10), r.opt_string(11)) {
        (Some(domain), Some(selector), Some(key)) => Some(DkimSettings {
            domain,
            selector,
            private_key_pem: Secret::new(key),
        }),
        _ => None,
    };
    Storefront {
        id: r.i64(0),
        slug: r.string(1),
        name: r.string(2),
        from_name: r.string(3),
        from_email: r.string(4),
        reply_to: r.opt_string(5),
        rent_url: r.string(6),
        custom_host: r.opt_string(7),
        acss_debit: r.bool(8),
        dkim,
    }
}

#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub storefront_id: i64,
    pub email: String,
    pub full_name: String,
    pub phone: String,
    pub stripe_customer_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Account {
    /// What the dashboard greets: the first word of the full name, or the address's local part.
    pub fn first_name(&self) -> String {
        first_name(&self.full_name, &self.email)
    }
}

pub fn first_name(full_name: &str, email: &str) -> String {
    full_name
        .split_whitespace()
        .next()
        .map(str::to_string)
        .unwrap_or_else(|| email.split('@').next().unwrap_or_default().to_string())
}

/// How many columns `ACCOUNT_COLUMNS` selects (a query's next column follows them).
pub(crate) const ACCOUNT_COLUMN_COUNT: usize = 7;

pub(crate) const ACCOUNT_COLUMNS: &str =
    "id, storefront_id, email, full_name, phone, stripe_customer_id, created_at";

pub(crate) fn account_from(r: &Row) -> Account {
    Account {
        id: r.i64(0),
        storefront_id: r.i64(1),
        email: r.string(2),
        full_name: r.string(3),
        phone: r.string(4),
        stripe_customer_id: r.opt_string(5),
        created_at: r.ts(6),
    }
}

/// What is needed to create a storefront.
#[derive(Debug, Clone)]
pub struct NewStorefront {
    pub slug: String,
    pub name: String,
    pub from_name: String,
    pub from_email: String,
    pub rent_url: String,
    pub custom_host: Option<String>,
}

impl Store {
    pub async fn storefront_by_slug(&self, slug: &str) -> DbResult<Option<Storefront>> {
        let sql = format!("SELECT {STOREFRONT_COLUMNS} FROM storefronts WHERE slug = $1");
        Ok(self
            .db()
            .query_opt(&sql, &params![slug])
            .await?
            .as_ref()
            .map(storefront_from))
    }

    pub async fn storefront_by_host(&self, host: &str) -> DbResult<Option<Storefront>> {
        let sql = format!("SELECT {STOREFRONT_COLUMNS} FROM storefronts WHERE custom_host = $1");
        Ok(self
            .db()
            .query_opt(&sql, &params![host.to_ascii_lowercase()])
            .await?
            .as_ref()
            .map(storefront_from))
    }

    pub async fn storefront(&self, id: i64) -> DbResult<Option<Storefront>> {
        let sql = format!("SELECT {STOREFRONT_COLUMNS} FROM storefronts WHERE id = $1");
        Ok(self
            .db()
            .query_opt(&sql, &params![id])
            .await?
            .as_ref()
            .map(storefront_from))
    }

    /// Every storefront, by name (the console's list for platform support).
    pub async fn storefronts(&self) -> DbResult<Vec<Storefront>> {
        let sql = format!("SELECT {STOREFRONT_COLUMNS} FROM storefronts ORDER BY name, id");
        Ok(self
            .db()
            .query(&sql, &[])
            .await?
            .iter()
            .map(storefront_from)
            .collect())
    }

    /// Creates a storefront, or updates the one with that slug. Returns its id.
    pub async fn upsert_storefront(&self, s: &NewStorefront, now: DateTime<Utc>) -> DbResult<i64> {
        let row = self
            .db()
            .query_one(
                "INSERT INTO storefronts (slug, name, from_name, from_email, rent_url, custom_host, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
                 ON CONFLICT (slug) DO UPDATE SET name = excluded.name, from_name = excluded.from_name,
                     from_email = excluded.from_email, rent_url = excluded.rent_url,
                     custom_host = excluded.custom_host, updated_at = excluded.updated_at
                 RETURNING id",
                &params![
                    s.slug.as_str(),
                    s.name.as_str(),
                    s.from_name.as_str(),
                    s.from_email.as_str(),
                    s.rent_url.as_str(),
                    s.custom_host.clone(),
                    now
                ],
            )
            .await?;
        Ok(row.i64(0))
    }

    pub async fn account_by_email(
        &self,
        storefront_id: i64,
        email: &EmailAddress,
    ) -> DbResult<Option<Account>> {
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE storefront_id = $1 AND email_key = $2"
        );
        Ok(self
            .db()
            .query_opt(&sql, &params![storefront_id, email.key()])
            .await?
            .as_ref()
            .map(account_from))
    }

    /// An account of this storefront (never of another).
    pub async fn account(&self, storefront_id: i64, account_id: i64) -> DbResult<Option<Account>> {
        let sql =
            format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE storefront_id = $1 AND id = $2");
        Ok(self
            .db()
            .query_opt(&sql, &params![storefront_id, account_id])
            .await?
            .as_ref()
            .map(account_from))
    }

    /// Creates an account; a taken address is `DbError::Unique`.
    pub async fn create_account(
        &self,
        storefront_id: i64,
        email: &EmailAddress,
        full_name: &str,
        phone: &str,
        now: DateTime<Utc>,
    ) -> DbResult<Account> {
        let sql = format!(
            "INSERT INTO accounts (storefront_id, email, email_key, full_name, phone, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING {ACCOUNT_COLUMNS}"
        );
        let row = self
            .db()
            .query_one(
                &sql,
                &params![
                    storefront_id,
                    email.as_str(),
                    email.key(),
                    full_name,
                    phone,
                    now
                ],
            )
            .await?;
        Ok(account_from(&row))
    }
}

/// What Account's Save changes did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountUpdate {
    Saved {
        /// When the email is new: the confirmation email to the new address (the account
        /// keeps its old address until the link is used).
        confirmation_delivery: Option<i64>,
    },
    /// Another account of the storefront has that address: nothing was saved.
    EmailTaken,
    /// The account asked for `max` address changes within the window already (each one
    /// emails an address of the customer's choosing): nothing was saved.
    TooManyChanges,
    NoSuchAccount,
}

/// New values for an account's profile, already validated.
#[derive(Debug, Clone)]
pub struct ProfileChange {
    pub full_name: String,
    pub email: EmailAddress,
    pub phone: String,
}

impl Store {
    /// Saves the name and phone. A new email is not applied: when it is free, the pending
    /// change (`confirmation`'s link) and its email to the new address are written in the same
    /// transaction (`confirmation` builds them from the account as it is); when another
    /// account has it, or the account asked for `max_changes` changes within `window`, nothing
    /// is saved (the account row is locked, so the count holds across web nodes).
    pub async fn update_profile<F>(
        &self,
        storefront_id: i64,
        account_id: i64,
        change: &ProfileChange,
        (max_changes, window): (u32, chrono::Duration),
        confirmation: F,
        now: DateTime<Utc>,
    ) -> DbResult<AccountUpdate>
    where
        F: FnOnce(&Account) -> (super::NewEmailChange, super::deliveries::NewDelivery) + Send,
    {
        let mut tx = self.db().begin().await?;
        let lock = match self.dialect() {
            super::db::Dialect::Postgres => " FOR UPDATE",
            super::db::Dialect::Sqlite => "",
        };
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE storefront_id = $1 AND id = $2{lock}"
        );
        let Some(old) = tx
            .query_opt(&sql, &params![storefront_id, account_id])
            .await?
            .as_ref()
            .map(account_from)
        else {
            tx.commit().await?;
            return Ok(AccountUpdate::NoSuchAccount);
        };
        let changed = old.email.to_lowercase() != change.email.key();
        if changed {
            let taken = tx
                .query_opt(
                    "SELECT id FROM accounts WHERE storefront_id = $1 AND email_key = $2 AND id <> $3",
                    &params![storefront_id, change.email.key(), account_id],
                )
                .await?;
            if taken.is_some() {
                tx.commit().await?;
                return Ok(AccountUpdate::EmailTaken);
            }
            let recent = tx
                .query_one(
                    "SELECT COUNT(*) FROM email_change_tokens WHERE account_id = $1 AND created_at > $2",
                    &params![account_id, now - window],
                )
                .await?
                .i64(0);
            if recent >= max_changes as i64 {
                tx.commit().await?;
                return Ok(AccountUpdate::TooManyChanges);
            }
        }
        tx.execute(
            "UPDATE accounts SET full_name = $3, phone = $4, updated_at = $5
             WHERE storefront_id = $1 AND id = $2",
            &params![
                storefront_id,
                account_id,
                change.full_name.as_str(),
                change.phone.as_str(),
                now
            ],
        )
        .await?;
        let mut confirmation_delivery = None;
        if changed {
            let (pending, delivery) = confirmation(&old);
            super::email_change::insert_email_change(
                &mut *tx,
                storefront_id,
                account_id,
                &change.email,
                &pending,
                now,
            )
            .await?;
            confirmation_delivery =
                Some(super::deliveries::insert_delivery(&mut *tx, &delivery, now).await?);
        }
        tx.commit().await?;
        Ok(AccountUpdate::Saved {
            confirmation_delivery,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::first_name;

    #[test]
    fn first_name_falls_back_to_the_address() {
        assert_eq!(first_name("Alex Martin", "alex@example.com"), "Alex");
        assert_eq!(first_name("  ", "sam@example.com"), "sam");
    }
}
