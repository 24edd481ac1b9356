//! Staff users: the operator's people (owner, manager, staff of one storefront) and platform
//! support, created by the command line, disabled rather than deleted. Their console links and
//! sessions are in `tokens` and `sessions`, with the customers'.

use chrono::{DateTime, Utc};

use super::Store;
use super::audience::STAFF;
use super::audit::insert_audit;
use super::db::{Conn, DbResult, Dialect, Row};
use super::sessions::end_sessions;
use super::tokens::end_links;
use crate::domain::EmailAddress;
use crate::params;

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
}

#[derive(Debug, Clone)]
pub struct StaffUser {
    pub id: i64,
    /// `None` for platform support.
    pub storefront_id: Option<i64>,
    pub email: String,
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
        email: r.string(2),
        full_name: r.string(3),
        role: Role::parse(&r.string(4)).unwrap_or(Role::Staff),
    }
}

impl Store {
    /// Creates a staff user (a taken address is `DbError::Unique`).
    pub async fn create_staff(
        &self,
        storefront_id: Option<i64>,
        email: &EmailAddress,
        full_name: &str,
        role: Role,
        now: DateTime<Utc>,
    ) -> DbResult<StaffUser> {
        let sql = format!(
            "INSERT INTO staff_users (storefront_id, email, email_key, full_name, role, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {STAFF_COLUMNS}"
        );
        Ok(staff_from(
            &self
                .db()
                .query_one(
                    &sql,
                    &params![
                        storefront_id,
                        email.as_str(),
                        email.key(),
                        full_name,
                        role.as_str(),
                        now
                    ],
                )
                .await?,
        ))
    }

    pub async fn staff_by_email(&self, email: &EmailAddress) -> DbResult<Option<StaffUser>> {
        let sql = format!("SELECT {STAFF_COLUMNS} FROM staff_users WHERE email_key = $1");
        Ok(self
            .db()
            .query_opt(&sql, &params![email.key()])
            .await?
            .as_ref()
            .map(staff_from))
    }

    /// A staff user by id.
    pub(super) async fn staff_user(&self, id: i64) -> DbResult<Option<StaffUser>> {
        let sql = format!("SELECT {STAFF_COLUMNS} FROM staff_users WHERE id = $1");
        Ok(self
            .db()
            .query_opt(&sql, &params![id])
            .await?
            .as_ref()
            .map(staff_from))
    }

    /// Disables (`disabled = true`) or enables a staff user by address; disabling ends their
    /// console sessions and unused links in the same transaction, with its audit entry.
    /// `None` when there is no such staff user or they already were in that state.
    pub async fn set_staff_disabled(
        &self,
        email: &EmailAddress,
        disabled: bool,
        now: DateTime<Utc>,
    ) -> DbResult<Option<StaffUser>> {
        let mut tx = self.db().begin().await?;
        let changed = if disabled {
            let sql = format!(
                "UPDATE staff_users SET disabled_at = $2
                 WHERE email_key = $1 AND disabled_at IS NULL RETURNING {STAFF_COLUMNS}"
            );
            tx.query_opt(&sql, &params![email.key(), now]).await?
        } else {
            let sql = format!(
                "UPDATE staff_users SET disabled_at = NULL
                 WHERE email_key = $1 AND disabled_at IS NOT NULL RETURNING {STAFF_COLUMNS}"
            );
            tx.query_opt(&sql, &params![email.key()]).await?
        };
        let Some(staff) = changed.as_ref().map(staff_from) else {
            tx.commit().await?;
            return Ok(None);
        };
        if disabled {
            end_sessions(&mut *tx, &STAFF, staff.id).await?;
            end_links(&mut *tx, &STAFF, staff.id, now).await?;
        }
        let action = if disabled {
            "staff.disabled"
        } else {
            "staff.enabled"
        };
        let details = serde_json::json!({ "staff_user_id": staff.id, "email": staff.email });
        insert_audit(&mut *tx, staff.storefront_id, None, action, &details, now).await?;
        tx.commit().await?;
        Ok(Some(staff))
    }
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
