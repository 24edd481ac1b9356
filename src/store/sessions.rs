//! Sessions: only the SHA-256 of the session id is stored.

use chrono::{DateTime, Duration, Utc};

use super::Store;
use super::db::DbResult;
use super::storefronts::{ACCOUNT_COLUMNS, Account, account_from};
use crate::domain::TokenHash;
use crate::params;

/// A live session with its account.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub session_id: i64,
    pub expires_at: DateTime<Utc>,
    pub account: Account,
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
}
