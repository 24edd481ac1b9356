//! The audit log: who did what, when (support actions, resends, staff changes, sign-ups). A
//! change and its entry are written in one transaction ([`AUDIT_INSERT`], [`audit_params`]).

use chrono::{DateTime, Utc};

use super::Store;
use super::db::{DbResult, Value};
use super::staff::StaffUser;
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
) -> Vec<Value> {
    params![
        storefront_id,
        staff.map(|s| s.id),
        staff.map(|s| s.actor()).unwrap_or_else(|| "system".into()),
        action,
        details.to_string(),
        now
    ]
}
