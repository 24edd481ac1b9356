//! The operator side's people and keys: staff users, their console sign-in links and sessions
//! (only hashes, like the customers'), integration API keys, and the audit log.

use chrono::{DateTime, Duration, Utc};

use super::Store;
use super::db::{DbResult, Dialect, Row};
use super::tokens::{LinkLimit, Verdict};
use crate::domain::{EmailAddress, TokenHash};
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

const STAFF_COLUMNS: &str = "id, storefront_id, email, full_name, role";

fn staff_from(r: &Row) -> StaffUser {
    StaffUser {
        id: r.i64(0),
        storefront_id: r.opt_i64(1),
        email: r.string(2),
        full_name: r.string(3),
        role: Role::parse(&r.string(4)).unwrap_or(Role::Staff),
    }
}

/// A live console session.
#[derive(Debug, Clone)]
pub struct StaffSession {
    pub session_id: i64,
    pub staff: StaffUser,
}

#[derive(Debug, Clone)]
pub struct ApiKeyInfo {
    pub id: i64,
    pub storefront_id: i64,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: i64,
    pub storefront_id: Option<i64>,
    pub actor: String,
    pub action: String,
    pub details: serde_json::Value,
    pub created_at: DateTime<Utc>,
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

    /// Writes a console link (and its email, built by `delivery` from the staff user) unless
    /// the request is over a limit of `limit` (per client and per staff user, as for customers;
    /// see [`LinkLimit`]): then the email is recorded as `suppressed` and nothing is sent.
    /// `None` when there is no such staff user or the request is suppressed.
    pub async fn issue_staff_link<F>(
        &self,
        email: &EmailAddress,
        token_hash: &TokenHash,
        expires_at: DateTime<Utc>,
        limit: &LinkLimit,
        delivery: F,
        now: DateTime<Utc>,
    ) -> DbResult<Option<i64>>
    where
        F: FnOnce(&StaffUser) -> super::deliveries::NewDelivery + Send,
    {
        let mut tx = self.db().begin().await?;
        // PostgreSQL: the staff row's lock makes concurrent requests count one after another
        // (SQLite's BEGIN IMMEDIATE already holds the write lock).
        let lock = if self.dialect() == Dialect::Postgres {
            " FOR UPDATE"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {STAFF_COLUMNS} FROM staff_users WHERE email_key = $1 AND disabled_at IS NULL{lock}"
        );
        let Some(staff) = tx
            .query_opt(&sql, &params![email.key()])
            .await?
            .as_ref()
            .map(staff_from)
        else {
            tx.commit().await?;
            return Ok(None);
        };
        let (bucket, device) = limit.bucket_for(staff.id);
        let counts = tx
            .query_one(
                "SELECT
                     (SELECT COUNT(*) FROM staff_tokens
                      WHERE staff_user_id = $1 AND created_at > $2 AND client_key = $3),
                     (SELECT COUNT(*) FROM staff_tokens
                      WHERE staff_user_id = $1 AND created_at > $4 AND client_key IS NOT NULL)",
                &params![
                    staff.id,
                    now - limit.per_client.window,
                    bucket.to_vec(),
                    now - limit.ceiling.window
                ],
            )
            .await?;
        let verdict = limit.verdict(device, counts.i64(0), counts.i64(1));
        if verdict != Verdict::Allowed {
            let mut suppressed = delivery(&staff);
            suppressed.sealed_token = None;
            suppressed.suppressed_reason = Some(limit.reason(verdict));
            super::deliveries::insert_delivery(&mut *tx, &suppressed, now).await?;
            tx.commit().await?;
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO staff_tokens (token_hash, staff_user_id, created_at, expires_at, client_key) VALUES ($1, $2, $3, $4, $5)",
            &params![&token_hash.0, staff.id, now, expires_at, bucket.to_vec()],
        )
        .await?;
        let id = super::deliveries::insert_delivery(&mut *tx, &delivery(&staff), now).await?;
        tx.commit().await?;
        Ok(Some(id))
    }

    pub async fn live_staff_token(&self, hash: &TokenHash, now: DateTime<Utc>) -> DbResult<bool> {
        Ok(self
            .db()
            .query_opt(
                "SELECT 1 FROM staff_tokens t JOIN staff_users u ON u.id = t.staff_user_id
                 WHERE t.token_hash = $1 AND t.used_at IS NULL AND t.expires_at > $2
                   AND u.disabled_at IS NULL",
                &params![&hash.0, now],
            )
            .await?
            .is_some())
    }

    /// The staff member a live console link is for, without using it up.
    pub async fn staff_token_owner(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> DbResult<Option<StaffUser>> {
        let cols = STAFF_COLUMNS
            .split(", ")
            .map(|c| format!("u.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {cols} FROM staff_tokens t JOIN staff_users u ON u.id = t.staff_user_id
             WHERE t.token_hash = $1 AND t.used_at IS NULL AND t.expires_at > $2"
        );
        Ok(self
            .db()
            .query_opt(&sql, &params![&hash.0, now])
            .await?
            .as_ref()
            .map(staff_from))
    }

    /// Consumes a console link once and starts the console session.
    pub async fn redeem_staff_token(
        &self,
        hash: &TokenHash,
        session_hash: &TokenHash,
        session_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> DbResult<Option<i64>> {
        let mut tx = self.db().begin().await?;
        let Some(row) = tx
            .query_opt(
                "UPDATE staff_tokens SET used_at = $2
                 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2
                   AND staff_user_id IN (SELECT id FROM staff_users WHERE disabled_at IS NULL)
                 RETURNING staff_user_id",
                &params![&hash.0, now],
            )
            .await?
        else {
            tx.commit().await?;
            return Ok(None);
        };
        let staff_id = row.i64(0);
        tx.execute(
            "INSERT INTO staff_sessions (staff_user_id, session_hash, created_at, expires_at, last_seen_at)
             VALUES ($1, $2, $3, $4, $3)",
            &params![staff_id, &session_hash.0, now, session_expires_at],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(staff_id))
    }

    pub async fn staff_session(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> DbResult<Option<StaffSession>> {
        let cols = STAFF_COLUMNS
            .split(", ")
            .map(|c| format!("u.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {cols}, s.id FROM staff_sessions s JOIN staff_users u ON u.id = s.staff_user_id
             WHERE s.session_hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL"
        );
        Ok(self
            .db()
            .query_opt(&sql, &params![&hash.0, now])
            .await?
            .map(|r| StaffSession {
                staff: staff_from(&r),
                session_id: r.i64(5),
            }))
    }

    pub async fn delete_staff_session(&self, hash: &TokenHash) -> DbResult<()> {
        self.db()
            .execute(
                "DELETE FROM staff_sessions WHERE session_hash = $1",
                &params![&hash.0],
            )
            .await?;
        Ok(())
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
            tx.execute(
                "DELETE FROM staff_sessions WHERE staff_user_id = $1",
                &params![staff.id],
            )
            .await?;
            tx.execute(
                "UPDATE staff_tokens SET used_at = $2 WHERE staff_user_id = $1 AND used_at IS NULL",
                &params![staff.id, now],
            )
            .await?;
        }
        let action = if disabled {
            "staff.disabled"
        } else {
            "staff.enabled"
        };
        let details = serde_json::json!({ "staff_user_id": staff.id, "email": staff.email });
        tx.execute(
            AUDIT_INSERT,
            &audit_params(staff.storefront_id, None, action, &details, now),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(staff))
    }

    /// Deletes expired console sessions and long-expired console links.
    pub async fn sweep_staff(&self, now: DateTime<Utc>) -> DbResult<u64> {
        let sessions = self
            .db()
            .execute(
                "DELETE FROM staff_sessions WHERE expires_at <= $1",
                &params![now],
            )
            .await?;
        let tokens = self
            .db()
            .execute(
                "DELETE FROM staff_tokens WHERE expires_at <= $1",
                &params![now - Duration::days(1)],
            )
            .await?;
        Ok(sessions + tokens)
    }

    /// Stores a new API key's hash; the key itself is shown once by the caller.
    pub async fn create_api_key(
        &self,
        storefront_id: i64,
        name: &str,
        key_hash: &TokenHash,
        prefix: &str,
        now: DateTime<Utc>,
    ) -> DbResult<i64> {
        Ok(self
            .db()
            .query_one(
                "INSERT INTO api_keys (storefront_id, name, key_hash, prefix, created_at)
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &params![storefront_id, name, &key_hash.0, prefix, now],
            )
            .await?
            .i64(0))
    }

    /// The storefront an API key opens, if the key is known and not revoked.
    pub async fn api_key(&self, key_hash: &TokenHash) -> DbResult<Option<ApiKeyInfo>> {
        Ok(self
            .db()
            .query_opt(
                "SELECT id, storefront_id, name FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
                &params![&key_hash.0],
            )
            .await?
            .map(|r| ApiKeyInfo {
                id: r.i64(0),
                storefront_id: r.i64(1),
                name: r.string(2),
            }))
    }

    pub async fn revoke_api_key(
        &self,
        storefront_id: i64,
        id: i64,
        now: DateTime<Utc>,
    ) -> DbResult<bool> {
        Ok(self
            .db()
            .execute(
                "UPDATE api_keys SET revoked_at = $3 WHERE storefront_id = $1 AND id = $2 AND revoked_at IS NULL",
                &params![storefront_id, id, now],
            )
            .await?
            == 1)
    }

    /// Records an action in the audit log.
    pub async fn audit(
        &self,
        storefront_id: Option<i64>,
        staff: Option<&StaffUser>,
        action: &str,
        details: serde_json::Value,
        now: DateTime<Utc>,
    ) -> DbResult<()> {
        self.db()
            .execute(
                AUDIT_INSERT,
                &audit_params(storefront_id, staff, action, &details, now),
            )
            .await?;
        Ok(())
    }

    /// The newest audit entries (of one storefront, or all).
    pub async fn audit_entries(
        &self,
        storefront_id: Option<i64>,
        limit: i64,
    ) -> DbResult<Vec<AuditEntry>> {
        let rows = match storefront_id {
            Some(sf) => self
                .db()
                .query(
                    "SELECT id, storefront_id, actor, action, details, created_at FROM audit_log
                         WHERE storefront_id = $1 ORDER BY id DESC LIMIT $2",
                    &params![sf, limit],
                )
                .await?,
            None => self
                .db()
                .query(
                    "SELECT id, storefront_id, actor, action, details, created_at FROM audit_log
                         ORDER BY id DESC LIMIT $1",
                    &params![limit],
                )
                .await?,
        };
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                id: r.i64(0),
                storefront_id: r.opt_i64(1),
                actor: r.string(2),
                action: r.string(3),
                details: serde_json::from_str(&r.string(4)).unwrap_or_default(),
                created_at: r.ts(5),
            })
            .collect())
    }
}

/// One audit entry; [`audit_params`] gives its parameters, so a change and its entry can be
/// written in one transaction.
pub(crate) const AUDIT_INSERT: &str =
    "INSERT INTO audit_log (storefront_id, staff_user_id, actor, action, details, created_at)
     VALUES ($1, $2, $3, $4, $5, $6)";

pub(crate) fn audit_params(
    storefront_id: Option<i64>,
    staff: Option<&StaffUser>,
    action: &str,
    details: &serde_json::Value,
    now: DateTime<Utc>,
) -> Vec<super::db::Value> {
    params![
        storefront_id,
        staff.map(|s| s.id),
        staff.map(|s| s.actor()).unwrap_or_else(|| "system".into()),
        action,
        details.to_string(),
        now
    ]
}
