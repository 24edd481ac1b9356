//! Sign-in links of customers and of staff: issuing them (held to the limits, with the
//! delivery row in the same transaction; an unknown customer address leaves an
//! `unmatched_sign_ins` row instead) and redeeming them once (with the session, in the same
//! transaction). Only the SHA-256 of a token is stored.

mod batch;
mod limits;

pub use limits::*;

use chrono::{DateTime, Duration, Utc};

use super::Store;
use super::accounts::{ACCOUNT_COLUMNS, Account, account_from};
use super::db::{DbResult, Dialect, Value};
use super::deliveries::{DeliveryKind, NewDelivery, insert_delivery};
use super::staff::{STAFF_COLUMNS, StaffUser, staff_from};
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

/// A magic link to issue, decided before the account is looked up; the store completes the
/// delivery (recipient, first name) from the account it finds.
#[derive(Debug, Clone)]
pub struct LinkRequest {
    pub storefront_id: i64,
    pub who: LinkFor,
    pub token_hash: TokenHash,
    /// The token sealed with the server key, for the Mailer (see `Keys::seal_token`).
    pub sealed_token: Vec<u8>,
    pub requested_by: RequestedBy,
    pub redirect_path: Option<String>,
    pub expires_at: DateTime<Utc>,
    /// `Some` for customers' own requests: the per-account limit.
    pub limit: Option<LinkLimit>,
    pub kind: DeliveryKind,
    pub subject: String,
    /// Template data besides `first_name` (which comes from the account).
    pub payload: serde_json::Map<String, serde_json::Value>,
    /// Facilities whose Emails tab shows it, besides those of the account's contacts.
    pub facility_ids: Vec<i64>,
    pub relay_after: Duration,
    /// Recorded when no account matches (customers' own requests).
    pub unmatched: Option<Unmatched>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueOutcome {
    /// No account has that address (recorded in `unmatched_sign_ins`; nothing is sent).
    NoAccount,
    /// Token and delivery written; the delivery waits in `queued`.
    Queued { delivery_id: i64, account_id: i64 },
    /// Over a limit: recorded as a `suppressed` delivery, no token.
    Suppressed { account_id: i64 },
}

/// Whose link: an address typed on the sign-in page, or a known account (staff resend,
/// booking confirmation).
#[derive(Debug, Clone)]
pub enum LinkFor {
    Email(EmailAddress),
    Account(i64),
}

/// A sign-in request for an address with no account: kept (the address only as a keyed hash)
/// for abuse monitoring, and written so that both answers cost the same.
#[derive(Debug, Clone)]
pub struct Unmatched {
    pub email_hash: Vec<u8>,
    pub client_ip: Option<String>,
}

impl LinkRequest {
    fn matches(&self, account: &Account) -> bool {
        account.storefront_id == self.storefront_id
            && match &self.who {
                LinkFor::Email(e) => account.email.to_lowercase() == e.key(),
                LinkFor::Account(id) => account.id == *id,
            }
    }

    fn delivery(&self, account: &Account, verdict: Verdict) -> NewDelivery {
        let allowed = verdict == Verdict::Allowed;
        let mut payload = self.payload.clone();
        payload.insert("first_name".into(), account.first_name().into());
        NewDelivery {
            storefront_id: self.storefront_id,
            account_id: Some(account.id),
            kind: self.kind,
            recipient: account.email.clone(),
            subject: self.subject.clone(),
            payload: serde_json::Value::Object(payload),
            sealed_token: allowed.then(|| self.sealed_token.clone()),
            link_expires_at: Some(self.expires_at),
            facility_ids: self.facility_ids.clone(),
            relay_after: self.relay_after,
            suppressed_reason: match &self.limit {
                Some(l) if !allowed => Some(l.reason(verdict)),
                _ => None,
            },
        }
    }
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
    /// Issues sign-in links, a batch of requests in one transaction: locks the accounts (so
    /// the per-account limit holds across web nodes), counts their recent links, and writes
    /// each token with its delivery, or a `suppressed` delivery when over the limit. An
    /// unknown address records an `unmatched_sign_ins` row instead, so both answers do the same
    /// kind of work. Returns one outcome per request, in order.
    pub async fn issue_sign_in_links(
        &self,
        requests: &[LinkRequest],
        now: DateTime<Utc>,
    ) -> DbResult<Vec<IssueOutcome>> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        match self.dialect() {
            Dialect::Postgres => self.issue_links_postgres(requests, now).await,
            Dialect::Sqlite => self.issue_links_sqlite(requests, now).await,
        }
    }

    /// SQLite: the same steps, one request after another inside one transaction (BEGIN
    /// IMMEDIATE holds the database's write lock, so the counts are exact).
    async fn issue_links_sqlite(
        &self,
        requests: &[LinkRequest],
        now: DateTime<Utc>,
    ) -> DbResult<Vec<IssueOutcome>> {
        let mut tx = self.db().begin().await?;
        let mut outcomes = Vec::with_capacity(requests.len());
        for r in requests {
            let (column, key) = match &r.who {
                LinkFor::Email(e) => ("email_key", Value::from(e.key())),
                LinkFor::Account(id) => ("id", Value::from(*id)),
            };
            let sql = format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE storefront_id = $1 AND {column} = $2"
            );
            let Some(account) = tx
                .query_opt(&sql, &[Value::from(r.storefront_id), key])
                .await?
                .as_ref()
                .map(account_from)
            else {
                if let Some(u) = &r.unmatched {
                    tx.execute(
                        "INSERT INTO unmatched_sign_ins (storefront_id, email_hash, client_ip, created_at) VALUES ($1, $2, $3, $4)",
                        &params![r.storefront_id, u.email_hash.clone(), u.client_ip.clone(), now],
                    )
                    .await?;
                }
                outcomes.push(IssueOutcome::NoAccount);
                continue;
            };
            let (verdict, bucket) = match &r.limit {
                None => (Verdict::Allowed, None),
                Some(limit) => {
                    let (bucket, device) = limit.bucket_for(account.id);
                    let counts = tx
                        .query_one(
                            COUNT_RECENT,
                            &params![
                                account.id,
                                now - limit.per_client.window,
                                bucket.to_vec(),
                                now - limit.ceiling.window
                            ],
                        )
                        .await?;
                    (
                        limit.verdict(device, counts.i64(0), counts.i64(1)),
                        Some(bucket.to_vec()),
                    )
                }
            };
            let allowed = verdict == Verdict::Allowed;
            if allowed {
                tx.execute(
                    "INSERT INTO sign_in_tokens (storefront_id, account_id, token_hash, requested_by, redirect_path, created_at, expires_at, client_key)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    &params![
                        r.storefront_id,
                        account.id,
                        &r.token_hash.0,
                        r.requested_by.as_str(),
                        r.redirect_path.clone(),
                        now,
                        r.expires_at,
                        bucket
                    ],
                )
                .await?;
            }
            let delivery_id =
                insert_delivery(&mut *tx, &r.delivery(&account, verdict), now).await?;
            outcomes.push(if allowed {
                IssueOutcome::Queued {
                    delivery_id,
                    account_id: account.id,
                }
            } else {
                IssueOutcome::Suppressed {
                    account_id: account.id,
                }
            });
        }
        tx.commit().await?;
        Ok(outcomes)
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
        F: FnOnce(&StaffUser) -> NewDelivery + Send,
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
            insert_delivery(&mut *tx, &suppressed, now).await?;
            tx.commit().await?;
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO staff_tokens (token_hash, staff_user_id, created_at, expires_at, client_key) VALUES ($1, $2, $3, $4, $5)",
            &params![&token_hash.0, staff.id, now, expires_at, bucket.to_vec()],
        )
        .await?;
        let id = insert_delivery(&mut *tx, &delivery(&staff), now).await?;
        tx.commit().await?;
        Ok(Some(id))
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
}
