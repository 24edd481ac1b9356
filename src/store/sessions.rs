//! Sessions of customers and of staff (see `audience`): started with a redeemed link or a
//! confirmed address, looked up on every request, ended by sign-out, by whatever ends a
//! subject's sessions, or by the sweep. Only the SHA-256 of a session id is stored.

use chrono::{DateTime, Duration, Utc};

use super::Store;
use super::audience::{Audience, CUSTOMERS, EVERY_AUDIENCE, Tables};
use super::db::{Conn, DbResult, Row, qualified};
use super::rows::{Account, StaffUser, account_from, staff_from};
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

/// A session to start for the browser that signs in.
#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub hash: &'a TokenHash,
    pub expires_at: DateTime<Utc>,
}

/// How stale `last_seen_at` may get before a request refreshes it (saves a write per page).
const TOUCH_EVERY: Duration = Duration::minutes(5);

/// A live session: its subject's row (the subject's columns first), its id and expiry.
struct Live {
    row: Row,
    id: i64,
    expires_at: DateTime<Utc>,
}

impl Store {
    /// A customer's session behind a cookie, if it is of this storefront and not expired.
    pub async fn session(
        &self,
        storefront_id: i64,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> DbResult<Option<SessionInfo>> {
        let live = self
            .live_session(Audience::Customer(storefront_id), hash, now)
            .await?;
        Ok(live.map(|s| SessionInfo {
            account: account_from(&s.row),
            session_id: s.id,
            expires_at: s.expires_at,
        }))
    }

    /// A console session behind a cookie, if it has not expired and its staff user is not
    /// disabled.
    pub async fn staff_session(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> DbResult<Option<StaffSession>> {
        let live = self.live_session(Audience::Staff, hash, now).await?;
        Ok(live.map(|s| StaffSession {
            staff: staff_from(&s.row),
            session_id: s.id,
        }))
    }

    /// The session behind a cookie of this audience, with its subject; refreshes
    /// `last_seen_at` when it is older than [`TOUCH_EVERY`].
    async fn live_session(
        &self,
        audience: Audience,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> DbResult<Option<Live>> {
        let t = audience.tables();
        let (scope, scope_value) = audience.scope("s.", 3);
        let sql = format!(
            "SELECT {columns}, s.id, s.expires_at, s.last_seen_at
             FROM {sessions} s JOIN {subjects} a ON {join}
             WHERE s.session_hash = $1 AND s.expires_at > $2{scope}",
            columns = qualified(t.subject_columns, "a"),
            sessions = t.sessions,
            subjects = t.subjects,
            join = t.session_subject,
        );
        let mut values = params![&hash.0, now];
        values.extend(scope_value);
        let Some(row) = self.db().query_opt(&sql, &values).await? else {
            return Ok(None);
        };
        let at = t.subject_columns.split(", ").count();
        let live = Live {
            id: row.i64(at),
            expires_at: row.ts(at + 1),
            row,
        };
        if now - live.row.ts(at + 2) > TOUCH_EVERY {
            self.db()
                .execute(
                    &format!("UPDATE {} SET last_seen_at = $2 WHERE id = $1", t.sessions),
                    &params![live.id, now],
                )
                .await?;
        }
        Ok(Some(live))
    }

    /// Ends one session (sign-out). Returns whether it existed.
    pub async fn delete_session(&self, audience: Audience, hash: &TokenHash) -> DbResult<bool> {
        let (scope, scope_value) = audience.scope("", 2);
        let sql = format!(
            "DELETE FROM {} WHERE session_hash = $1{scope}",
            audience.tables().sessions
        );
        let mut values = params![&hash.0];
        values.extend(scope_value);
        Ok(self.db().execute(&sql, &values).await? > 0)
    }

    /// Ends every session of an account (a support action).
    pub async fn delete_account_sessions(&self, account_id: i64) -> DbResult<u64> {
        end_sessions(&mut *self.db().conn().await?, &CUSTOMERS, account_id).await
    }

    /// Deletes the expired sessions of both audiences. Returns how many.
    pub async fn sweep_sessions(&self, now: DateTime<Utc>) -> DbResult<u64> {
        let mut swept = 0;
        for t in EVERY_AUDIENCE {
            swept += self
                .db()
                .execute(
                    &format!("DELETE FROM {} WHERE expires_at <= $1", t.sessions),
                    &params![now],
                )
                .await?;
        }
        Ok(swept)
    }
}

/// Starts a session for `subject_id` inside the caller's transaction (a redeemed link, a
/// confirmed address).
pub(super) async fn start_session(
    conn: &mut dyn Conn,
    audience: Audience,
    subject_id: i64,
    session: &NewSession<'_>,
    now: DateTime<Utc>,
) -> DbResult<()> {
    let hash = &session.hash.0;
    let (sql, values) = match audience {
        Audience::Customer(storefront_id) => (
            "INSERT INTO sessions (storefront_id, account_id, session_hash, created_at, expires_at, last_seen_at)
             VALUES ($1, $2, $3, $4, $5, $4)",
            params![storefront_id, subject_id, hash, now, session.expires_at],
        ),
        Audience::Staff => (
            "INSERT INTO staff_sessions (staff_user_id, session_hash, created_at, expires_at, last_seen_at)
             VALUES ($1, $2, $3, $4, $3)",
            params![subject_id, hash, now, session.expires_at],
        ),
    };
    conn.execute(sql, &values).await?;
    Ok(())
}

/// Ends every session of a subject inside the caller's transaction (an account merged away or
/// its address changed, a staff user disabled). Returns how many.
pub(super) async fn end_sessions(
    conn: &mut dyn Conn,
    tables: &Tables,
    subject_id: i64,
) -> DbResult<u64> {
    let sql = format!(
        "DELETE FROM {} WHERE {} = $1",
        tables.sessions, tables.subject_id
    );
    conn.execute(&sql, &params![subject_id]).await
}
