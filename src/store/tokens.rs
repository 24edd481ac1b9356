//! Sign-in tokens: issuing (with the delivery row, in one transaction) and redeeming (with the
//! session, in one transaction).

use chrono::{DateTime, Duration, Utc};

use super::Store;
use super::db::{DbResult, Dialect, Value};
use super::deliveries::{DeliveryKind, NewDelivery, insert_delivery};
use super::storefronts::{ACCOUNT_COLUMNS, Account, account_from};
use crate::domain::{EmailAddress, TokenHash};
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
    /// No account has that address (recorded in `unmatched_sign_ins`; nothing is sent).
    NoAccount,
    /// Token and delivery written; the delivery waits in `queued`.
    Queued { delivery_id: i64, account_id: i64 },
    /// Over the per-account limit: recorded as a `suppressed` delivery, no token.
    Suppressed { delivery_id: i64, account_id: i64 },
}

/// Whose link: an address typed on the sign-in page, or a known account (staff resend,
/// booking confirmation).
#[derive(Debug, Clone, Copy)]
pub enum LinkFor<'a> {
    Email(&'a EmailAddress),
    Account(i64),
}

/// A sign-in request for an address with no account: kept (the address only as a keyed hash)
/// for abuse monitoring, and written so that both answers cost the same.
#[derive(Debug, Clone)]
pub struct Unmatched {
    pub email_hash: Vec<u8>,
    pub client_ip: Option<String>,
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
    /// Issues a sign-in link: in one transaction, locks the account row (so the per-account
    /// limit holds across web nodes), counts its recent links, and writes the token with its
    /// delivery, or a `suppressed` delivery when over the limit. An unknown address records an
    /// `unmatched_sign_ins` row instead, so both answers do the same kind of work.
    pub async fn issue_sign_in_link<F>(
        &self,
        storefront_id: i64,
        who: LinkFor<'_>,
        make: F,
        unmatched: Option<Unmatched>,
        now: DateTime<Utc>,
    ) -> DbResult<IssueOutcome>
    where
        F: FnOnce(&Account) -> NewSignInLink + Send,
    {
        let mut tx = self.db().begin().await?;
        let (column, key) = match who {
            LinkFor::Email(e) => ("email_key", Value::from(e.key())),
            LinkFor::Account(id) => ("id", Value::from(id)),
        };
        // Serialise links of one account: a transaction-scoped advisory lock on its id (in
        // memory; a row lock would write to the account row). BEGIN IMMEDIATE already holds
        // SQLite's write lock.
        let lock = match self.dialect() {
            Dialect::Postgres => ", pg_advisory_xact_lock(id)::text",
            Dialect::Sqlite => "",
        };
        let sql = format!(
            "SELECT {ACCOUNT_COLUMNS}{lock} FROM accounts WHERE storefront_id = $1 AND {column} = $2"
        );
        let Some(account) = tx
            .query_opt(&sql, &[Value::from(storefront_id), key])
            .await?
            .as_ref()
            .map(account_from)
        else {
            if let Some(u) = unmatched {
                tx.execute(
                    "INSERT INTO unmatched_sign_ins (storefront_id, email_hash, client_ip, created_at) VALUES ($1, $2, $3, $4)",
                    &params![storefront_id, u.email_hash, u.client_ip, now],
                )
                .await?;
            }
            tx.commit().await?;
            return Ok(IssueOutcome::NoAccount);
        };
        let link = make(&account);
        let (max, since) = match link.limit {
            Some(l) => (l.max as i64, now - l.window),
            None => (i64::MAX, now),
        };
        let suppressed_reason = link.limit.map(|l| {
            format!(
                "not sent: {} sign-in links in {} minutes is the limit",
                l.max,
                l.window.num_minutes()
            )
        });
        let d = &link.delivery;
        let (delivery_id, status) = match self.dialect() {
            // One statement: count, token, delivery and its facilities.
            Dialect::Postgres => {
                let row = tx
                    .query_one(
                        "WITH recent AS (
                             SELECT COUNT(*) AS n FROM sign_in_tokens WHERE account_id = $1 AND created_at > $2),
                         tok AS (
                             INSERT INTO sign_in_tokens (storefront_id, account_id, token_hash, requested_by, redirect_path, created_at, expires_at)
                             SELECT $3, $1, $4, $5, $6, $7, $8 FROM recent WHERE recent.n < $9
                             RETURNING token_hash),
                         del AS (
                             INSERT INTO deliveries (storefront_id, account_id, kind, recipient, subject, status,
                                 last_error, payload, sealed_token, link_expires_at, created_at, updated_at, next_attempt_at, relay_at)
                             SELECT $3, $1, $10, $11, $12,
                                 CASE WHEN tok.token_hash IS NULL THEN 'suppressed' ELSE 'queued' END,
                                 CASE WHEN tok.token_hash IS NULL THEN $13 END,
                                 $14,
                                 CASE WHEN tok.token_hash IS NULL THEN NULL ELSE $15::bytea END,
                                 $8, $7, $7, $7,
                                 CASE WHEN tok.token_hash IS NULL THEN NULL ELSE $16::timestamptz END
                             FROM (SELECT 1) AS one LEFT JOIN tok ON TRUE
                             RETURNING id, status),
                         fac AS (
                             INSERT INTO delivery_facilities (facility_id, delivery_id)
                             SELECT DISTINCT c.facility_id, del.id FROM contacts c CROSS JOIN del WHERE c.account_id = $1
                             ON CONFLICT DO NOTHING)
                         SELECT id, status FROM del",
                        &params![
                            account.id,
                            since,
                            storefront_id,
                            &link.token_hash.0,
                            link.requested_by.as_str(),
                            link.redirect_path.clone(),
                            now,
                            link.expires_at,
                            max,
                            d.kind.as_str(),
                            d.recipient.as_str(),
                            d.subject.as_str(),
                            suppressed_reason,
                            d.payload.to_string(),
                            d.sealed_token.clone(),
                            now + d.relay_after
                        ],
                    )
                    .await?;
                (row.i64(0), row.string(1))
            }
            Dialect::Sqlite => {
                let recent = tx
                    .query_one(
                        "SELECT COUNT(*) FROM sign_in_tokens WHERE account_id = $1 AND created_at > $2",
                        &params![account.id, since],
                    )
                    .await?
                    .i64(0);
                if recent >= max {
                    let mut delivery = d.clone();
                    delivery.sealed_token = None;
                    delivery.suppressed_reason = suppressed_reason;
                    let id = insert_delivery(&mut *tx, &delivery, now).await?;
                    (id, "suppressed".to_string())
                } else {
                    tx.execute(
                            "INSERT INTO sign_in_tokens (storefront_id, account_id, token_hash, requested_by, redirect_path, created_at, expires_at)
                             VALUES ($1, $2, $3, $4, $5, $6, $7)",
                            &params![
                                storefront_id,
                                account.id,
                                &link.token_hash.0,
                                link.requested_by.as_str(),
                                link.redirect_path.clone(),
                                now,
                                link.expires_at
                            ],
                        )
                        .await?;
                    let id = insert_delivery(&mut *tx, d, now).await?;
                    (id, "queued".to_string())
                }
            }
        };
        if self.dialect() == Dialect::Postgres {
            for facility_id in &d.facility_ids {
                tx.execute(
                    "INSERT INTO delivery_facilities (facility_id, delivery_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &params![*facility_id, delivery_id],
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(if status == "suppressed" {
            IssueOutcome::Suppressed {
                delivery_id,
                account_id: account.id,
            }
        } else {
            IssueOutcome::Queued {
                delivery_id,
                account_id: account.id,
            }
        })
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

    /// Deletes unmatched sign-in records older than 30 days. Returns how many.
    pub async fn sweep_unmatched(&self, now: DateTime<Utc>) -> DbResult<u64> {
        self.db()
            .execute(
                "DELETE FROM unmatched_sign_ins WHERE created_at <= $1",
                &params![now - Duration::days(30)],
            )
            .await
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
