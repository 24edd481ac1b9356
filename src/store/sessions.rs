//! Sessions of customers and of staff: only the SHA-256 of the session id is stored.

use chrono::{DateTime, Duration, Utc};

use super::Store;
use super::accounts::{ACCOUNT_COLUMNS, Account, account_from};
use super::db::DbResult;
use super::staff::{STAFF_COLUMNS, StaffUser, staff_from};
use crate::domain::TokenHash;
use crate::params;

/// A live session with its account.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub session_id: i64,
    pub expires_at: DateTime<Utc>,
    pub account: Account,
}

/// A live console session.
#[derive(Debug, Clone)]
pub struct StaffSession {
    pub session_id: i64,
    pub staff: StaffUser,
}

/// How stale `last_seen_at` may get before a request refreshes it (saves a write per page).
const TOUCH_EVERY: Duration = Duration::minutes(5);

impl Store {
    /// The session behind a cookie, if it is of this storefront and not expired.
    pub async fn session(
        &self,
        storefront_id: i64,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> DbResult<Option<SessionInfo>> {
        let cols = ACCOUNT_COLUMNS
            .split(", ")
            .map(|c| format!("a.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {cols}, s.id, s.expires_at, s.last_seen_at FROM sessions s
             JOIN accounts a ON a.id = s.account_id
             WHERE s.session_hash = $1 AND s.storefront_id = $2 AND a.storefront_id = $2 AND s.expires_at > $3"
        );
        let Some(row) = self
            .db()
            .query_opt(&sql, &params![&hash.0, storefront_id, now])
            .await?
        else {
            return Ok(None);
        };
        let info = SessionInfo {
            account: account_from(&row),
            session_id: row.i64(7),
            expires_at: row.ts(8),
        };
        if now - row.ts(9) > TOUCH_EVERY {
            self.db()
                .execute(
                    "UPDATE sessions SET last_seen_at = $2 WHERE id = $1",
                    &params![info.session_id, now],
                )
                .await?;
        }
        Ok(Some(info))
    }

    /// Ends one session (sign-out). Returns whether it existed.
    pub async fn delete_session(&self, storefront_id: i64, hash: &TokenHash) -> DbResult<bool> {
        Ok(self
            .db()
            .execute(
                "DELETE FROM sessions WHERE session_hash = $1 AND storefront_id = $2",
                &params![&hash.0, storefront_id],
            )
            .await?
            > 0)
    }

    /// Ends every session of an account (merge, support action).
    pub async fn delete_account_sessions(&self, account_id: i64) -> DbResult<u64> {
        self.db()
            .execute(
                "DELETE FROM sessions WHERE account_id = $1",
                &params![account_id],
            )
            .await
    }

    pub async fn sweep_sessions(&self, now: DateTime<Utc>) -> DbResult<u64> {
        self.db()
            .execute("DELETE FROM sessions WHERE expires_at <= $1", &params![now])
            .await
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
}
