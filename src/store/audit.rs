//! The audit log: who did what, when (support actions, resends, staff changes, sign-ups). A
//! change and its entry are written in one transaction ([`insert_audit`]).

use chrono::{DateTime, Utc};

use super::Store;
use super::db::{Conn, DbResult};
use super::rows::StaffUser;
use crate::params;

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
    /// Records an action in the audit log.
    pub async fn audit(
        &self,
        storefront_id: Option<i64>,
        staff: Option<&StaffUser>,
        action: &str,
        details: serde_json::Value,
        now: DateTime<Utc>,
    ) -> DbResult<()> {
        let mut conn = self.db().conn().await?;
        insert_audit(&mut *conn, storefront_id, staff, action, &details, now).await
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

/// Writes an audit entry inside the caller's transaction, so that a change and its entry
/// commit together.
pub(super) async fn insert_audit(
    conn: &mut dyn Conn,
    storefront_id: Option<i64>,
    staff: Option<&StaffUser>,
    action: &str,
    details: &serde_json::Value,
    now: DateTime<Utc>,
) -> DbResult<()> {
    conn.execute(
        "INSERT INTO audit_log (storefront_id, staff_user_id, actor, action, details, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &params![
            storefront_id,
            staff.map(|s| s.id),
            staff.map(|s| s.actor()).unwrap_or_else(|| "system".into()),
            action,
            details.to_string(),
            now
        ],
    )
    .await?;
    Ok(())
}
