//! The rows that several entities read and the single-row steps their transactions take: a
//! customer account and a staff user, the columns a query selects them with and how a row
//! becomes one, the lock on an account or an active staff user, and an account's address. The
//! entity files (`accounts`, `staff`, `tokens`, `sessions`, `email_changes`, …) build on these,
//! so none of them needs another's file for the row it joins.

use chrono::{DateTime, Utc};

use super::db::{Conn, DbResult, Dialect, Row};
use crate::domain::EmailAddress;
use crate::params;

#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub storefront_id: i64,
    pub email: EmailAddress,
    pub full_name: String,
    pub phone: String,
    pub stripe_customer_id: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The language the customer chose (a tag of `locales/`); `None` follows the storefront.
    pub language: Option<String>,
}

impl Account {
    /// What the dashboard greets: the first word of the full name, or the address's local part.
    pub fn first_name(&self) -> String {
        first_name(&self.full_name, &self.email)
    }
}

pub fn first_name(full_name: &str, email: &EmailAddress) -> String {
    full_name
        .split_whitespace()
        .next()
        .map(str::to_string)
        .unwrap_or_else(|| email.local().to_string())
}

/// How many columns `ACCOUNT_COLUMNS` selects (a query's next column follows them).
pub(crate) const ACCOUNT_COLUMN_COUNT: usize = 8;

pub(crate) const ACCOUNT_COLUMNS: &str =
    "id, storefront_id, email, full_name, phone, stripe_customer_id, created_at, language";

pub(crate) fn account_from(r: &Row) -> Account {
    Account {
        id: r.i64(0),
        storefront_id: r.i64(1),
        email: r.email(2),
        full_name: r.string(3),
        phone: r.string(4),
        stripe_customer_id: r.opt_string(5),
        created_at: r.ts(6),
        language: r.opt_string(7),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Owner,
    Manager,
    Staff,
    /// Platform support: every storefront, and the support tools.
    Support,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Manager => "manager",
            Role::Staff => "staff",
            Role::Support => "support",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "owner" => Role::Owner,
            "manager" => Role::Manager,
            "staff" => Role::Staff,
            "support" => Role::Support,
            _ => return None,
        })
    }

    /// May resend a customer's portal link.
    pub fn can_resend(self) -> bool {
        matches!(self, Role::Owner | Role::Manager | Role::Support)
    }

    /// May link contacts and merge accounts.
    pub fn can_support(self) -> bool {
        self == Role::Support
    }

    /// May add, enable, disable and delete the storefront's webhook endpoints and send them a
    /// test event.
    pub fn can_manage_webhooks(self) -> bool {
        matches!(self, Role::Owner | Role::Manager)
    }

    /// May see the storefront's webhook endpoints and their attempts (platform support, to
    /// help; not front-desk staff: a URL may carry the operator's own credentials).
    pub fn can_see_webhooks(self) -> bool {
        matches!(self, Role::Owner | Role::Manager | Role::Support)
    }
}

#[derive(Debug, Clone)]
pub struct StaffUser {
    pub id: i64,
    /// `None` for platform support.
    pub storefront_id: Option<i64>,
    pub email: EmailAddress,
    pub full_name: String,
    pub role: Role,
}

impl StaffUser {
    /// May this staff member see this storefront?
    pub fn sees(&self, storefront_id: i64) -> bool {
        self.role == Role::Support || self.storefront_id == Some(storefront_id)
    }

    /// How the audit log names them.
    pub fn actor(&self) -> String {
        format!(
            "{} <{}> ({})",
            self.full_name,
            self.email,
            self.role.as_str()
        )
    }
}

pub(super) const STAFF_COLUMNS: &str = "id, storefront_id, email, full_name, role";

pub(super) fn staff_from(r: &Row) -> StaffUser {
    StaffUser {
        id: r.i64(0),
        storefront_id: r.opt_i64(1),
        email: r.email(2),
        full_name: r.string(3),
        role: Role::parse(&r.string(4)).unwrap_or(Role::Staff),
    }
}

/// An account of the storefront, read in the caller's transaction and locked until it ends
/// (PostgreSQL: `FOR UPDATE`; SQLite's BEGIN IMMEDIATE already holds the write lock), so that
/// what the transaction counts and checks holds across web nodes.
pub(super) async fn lock_account(
    conn: &mut dyn Conn,
    dialect: Dialect,
    storefront_id: i64,
    account_id: i64,
) -> DbResult<Option<Account>> {
    let lock = match dialect {
        Dialect::Postgres => " FOR UPDATE",
        Dialect::Sqlite => "",
    };
    let sql = format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE storefront_id = $1 AND id = $2{lock}"
    );
    Ok(conn
        .query_opt(&sql, &params![storefront_id, account_id])
        .await?
        .as_ref()
        .map(account_from))
}

/// Whether an account of the storefront (other than `except`) has this address (its
/// lower-case key).
pub(super) async fn address_taken(
    conn: &mut dyn Conn,
    storefront_id: i64,
    email_key: &str,
    except: Option<i64>,
) -> DbResult<bool> {
    let row = match except {
        None => {
            conn.query_opt(
                "SELECT id FROM accounts WHERE storefront_id = $1 AND email_key = $2",
                &params![storefront_id, email_key],
            )
            .await?
        }
        Some(id) => {
            conn.query_opt(
                "SELECT id FROM accounts WHERE storefront_id = $1 AND email_key = $2 AND id <> $3",
                &params![storefront_id, email_key, id],
            )
            .await?
        }
    };
    Ok(row.is_some())
}

/// Switches an account to a confirmed new address, in the caller's transaction (a taken
/// address is `DbError::Unique`).
pub(super) async fn set_address(
    conn: &mut dyn Conn,
    storefront_id: i64,
    account_id: i64,
    (email, email_key): (&str, &str),
    now: DateTime<Utc>,
) -> DbResult<()> {
    conn.execute(
        "UPDATE accounts SET email = $3, email_key = $4, updated_at = $5
         WHERE storefront_id = $1 AND id = $2",
        &params![storefront_id, account_id, email, email_key, now],
    )
    .await?;
    Ok(())
}

/// The staff user with this address, unless disabled, read in the caller's transaction and
/// locked until it ends (PostgreSQL: `FOR UPDATE`; SQLite's BEGIN IMMEDIATE already holds the
/// write lock).
pub(super) async fn lock_active_staff(
    conn: &mut dyn Conn,
    dialect: Dialect,
    email: &EmailAddress,
) -> DbResult<Option<StaffUser>> {
    let lock = match dialect {
        Dialect::Postgres => " FOR UPDATE",
        Dialect::Sqlite => "",
    };
    let sql = format!(
        "SELECT {STAFF_COLUMNS} FROM staff_users WHERE email_key = $1 AND disabled_at IS NULL{lock}"
    );
    Ok(conn
        .query_opt(&sql, &params![email.key()])
        .await?
        .as_ref()
        .map(staff_from))
}

#[cfg(test)]
mod tests {
    use super::{EmailAddress, first_name};

    #[test]
    fn first_name_falls_back_to_the_address() {
        let alex = EmailAddress::parse("alex@example.com").unwrap();
        assert_eq!(first_name("Alex Martin", &alex), "Alex");
        let sam = EmailAddress::parse("sam@example.com").unwrap();
        assert_eq!(first_name("  ", &sam), "sam");
    }
}
