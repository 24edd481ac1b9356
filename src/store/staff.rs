//! Staff users: the operator's people (owner, manager, staff of one storefront) and platform
//! support, created by the command line, disabled rather than deleted. Their console links and
//! sessions are in `tokens` and `sessions`, with the customers'; the staff user row and its role
//! in `rows`.

use chrono::{DateTime, Utc};

use super::Store;
use super::audience::STAFF;
use super::audit::insert_audit;
use super::db::DbResult;
use super::rows::{Role, STAFF_COLUMNS, StaffUser, staff_from};
use super::sessions::end_sessions;
use super::tokens::end_links;
use crate::domain::EmailAddress;
use crate::params;

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
