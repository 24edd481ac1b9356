//! Sign-in tokens: issuing (with the delivery row, in one transaction) and redeeming (with the
//! session, in one transaction).

use chrono::{DateTime, Duration, Utc};

use super::Store;
use super::db::{DbResult, Dialect};
use super::deliveries::{DeliveryKind, NewDelivery, insert_delivery};
use crate::domain::TokenHash;
use crate::params;

/// Who asked for a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestedBy {
    Customer,
    Staff,
    Booking,
}

impl RequestedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestedBy::Customer => "customer",
            RequestedBy::Staff => "staff",
            RequestedBy::Booking => "booking",
        }
    }
}

/// The per-account limit: at most `max` links within `window`.
#[derive(Debug, Clone, Copy)]
pub struct LinkLimit {
    pub max: u32,
    pub window: Duration,
}

/// A magic link to issue, with the email that carries it.
#[derive(Debug, Clone)]
pub struct NewSignInLink {
    pub storefront_id: i64,
    pub account_id: i64,
    pub token_hash: TokenHash,
    pub requested_by: RequestedBy,
    pub redirect_path: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub limit: Option<LinkLimit>,
    /// The delivery; its `sealed_token` carries the token to the Mailer.
    pub delivery: NewDelivery,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueOutcome {
    /// Token and delivery written; the delivery waits in `queued`.
    Queued { delivery_id: i64 },
    /// Over the per-account limit: recorded as a `suppressed` delivery, no token.
    Suppressed { delivery_id: i64 },
}

/// A token that a GET may show a sign-in page for.
#[derive(Debug, Clone)]
pub struct LiveToken {
    pub account_id: i64,
    pub expires_at: DateTime<Utc>,
}

/// A redeemed token: the session was started.
#[derive(Debug, Clone)]
pub struct Redeemed {
    pub account_id: i64,
    pub redirect_path: Option<String>,
}

impl Store {
    /// Writes the token and its delivery in one transaction, after counting the account's
    /// recent links under a lock on the account row (so the limit holds across web nodes).
    pub async fn issue_sign_in_link(
        &self,
        link: &NewSignInLink,
        now: DateTime<Utc>,
    ) -> DbResult<IssueOutcome> {
        let mut tx = self.db().begin().await?;
        let lock = match self.dialect() {
            Dialect::Postgres => {
                "SELECT id FROM accounts WHERE id = $1 AND storefront_id = $2 FOR UPDATE"
            }
            // BEGIN IMMEDIATE already holds SQLite's write lock.
            Dialect::Sqlite => "SELECT id FROM accounts WHERE id = $1 AND storefront_id = $2",
        };
        tx.query_one(lock, &params![link.account_id, link.storefront_id])
            .await?;
        if let Some(limit) = link.limit {
            let recent = tx
                .query_one(
                    "SELECT COUNT(*) FROM sign_in_tokens WHERE account_id = $1 AND created_at > $2",
                    &params![link.account_id, now - limit.window],
                )
                .await?
                .i64(0);
            if recent >= limit.max as i64 {
                let mut delivery = link.delivery.clone();
                delivery.sealed_token = None;
                delivery.suppressed_reason = Some(format!(
                    "not sent: {} sign-in links in {} minutes is the limit",
                    limit.max,
                    limit.window.num_minutes()
                ));
                let delivery_id = insert_delivery(&mut *tx, &delivery, None, now).await?;
                tx.commit().await?;
                return Ok(IssueOutcome::Suppressed { delivery_id });
            }
        }
        let token_id = tx
            .query_one(
                "INSERT INTO sign_in_tokens (storefront_id, account_id, token_hash, requested_by, redirect_path, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                &params![
                    link.storefront_id,
                    link.account_id,
                    &link.token_hash.0,
                    link.requested_by.as_str(),
                    link.redirect_path.clone(),
                    now,
                    link.expires_at
                ],
            )
            .await?
            .i64(0);
        let delivery_id = insert_delivery(&mut *tx, &link.delivery, Some(token_id), now).await?;
        tx.commit().await?;
        Ok(IssueOutcome::Queued { delivery_id })
    }

    /// Looks a token up without consuming it (mail scanners prefetch links).
    pub async fn live_token(
        &self,
        storefront_id: i64,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> DbResult<Option<LiveToken>> {
        let row = self
            .db()
            .query_opt(
                "SELECT account_id, expires_at FROM sign_in_tokens
                 WHERE token_hash = $1 AND storefront_id = $2 AND used_at IS NULL AND expires_at > $3",
                &params![&hash.0, storefront_id, now],
            )
            .await?;
        Ok(row.map(|r| LiveToken {
            account_id: r.i64(0),
            expires_at: r.ts(1),
        }))
    }

    /// Consumes the token exactly once and starts the session in the same transaction. Of
    /// many concurrent calls with one token, one gets `Some`.
    pub async fn redeem_sign_in_token(
        &self,
        storefront_id: i64,
        hash: &TokenHash,
        session_hash: &TokenHash,
        session_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> DbResult<Option<Redeemed>> {
        let mut tx = self.db().begin().await?;
        let Some(row) = tx
            .query_opt(
                "UPDATE sign_in_tokens SET used_at = $3
                 WHERE token_hash = $1 AND storefront_id = $2 AND used_at IS NULL AND expires_at > $3
                 RETURNING account_id, redirect_path",
                &params![&hash.0, storefront_id, now],
            )
            .await?
        else {
            return Ok(None);
        };
        let redeemed = Redeemed {
            account_id: row.i64(0),
            redirect_path: row.opt_string(1),
        };
        tx.execute(
            "INSERT INTO sessions (storefront_id, account_id, session_hash, created_at, expires_at, last_seen_at)
             VALUES ($1, $2, $3, $4, $5, $4)",
            &params![
                storefront_id,
                redeemed.account_id,
                &session_hash.0,
                now,
                session_expires_at
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(redeemed))
    }

    /// Deletes tokens that expired more than a day ago (kept that long so support can see a
    /// link that was just too late). Returns how many.
    pub async fn sweep_tokens(&self, now: DateTime<Utc>) -> DbResult<u64> {
        self.db()
            .execute(
                "DELETE FROM sign_in_tokens WHERE expires_at <= $1",
                &params![now - Duration::days(1)],
            )
            .await
    }
}

/// The kind of delivery a sign-in link travels in.
pub fn link_delivery_kind(requested_by: RequestedBy) -> DeliveryKind {
    match requested_by {
        RequestedBy::Booking => DeliveryKind::BookingConfirmation,
        RequestedBy::Customer | RequestedBy::Staff => DeliveryKind::SignIn,
    }
}
