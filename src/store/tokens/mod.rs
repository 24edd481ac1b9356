//! Sign-in links of customers and of staff: issuing them (held to the limits, with the
//! delivery row in the same transaction; an unknown customer address leaves an
//! `unmatched_sign_ins` row instead) and redeeming them once (with the session, in the same
//! transaction). Only the SHA-256 of a token is stored.

mod batch;
mod limits;

pub use limits::*;

use chrono::{DateTime, Duration, Utc};

use super::Store;
use super::audience::{Audience, CUSTOMERS, EVERY_AUDIENCE, STAFF, Tables};
use super::db::{Conn, DbResult, Dialect, Value};
use super::deliveries::{NewDelivery, insert_delivery};
use super::rows::{ACCOUNT_COLUMNS, Account, StaffUser, account_from, lock_active_staff};
use super::sessions::{NewSession, start_session};
use crate::domain::emails::{BookedRental, Booking, EmailData, Greeting};
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
    /// Which email carries the link; the greeting's name comes from the account.
    pub email: LinkEmail,
    pub subject: String,
    /// Facilities whose Emails tab shows it, besides those of the account's contacts.
    pub facility_ids: Vec<i64>,
    pub relay_after: Duration,
    /// Recorded when no account matches (customers' own requests).
    pub unmatched: Option<Unmatched>,
    /// A customer's own request from a browser: the keyed hash of the random value in the
    /// asking browser's sign-in cookie (see `Keys::sign_in_binding`); the email then carries
    /// the link's sign-in code, which works only in that browser.
    pub code_binding: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueOutcome {
    /// No account has that address (recorded in `unmatched_sign_ins`; nothing is sent).
    NoAccount,
    /// Token and delivery written; the delivery waits in `queued`.
    Queued { delivery_id: i64, account_id: i64 },
    /// Over a limit, or the address is on the suppression list: recorded as a `suppressed`
    /// delivery, no token.
    Suppressed { account_id: i64, by: SuppressedBy },
}

/// What stopped a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuppressedBy {
    /// A sign-in limit (per client, or the account's ceiling).
    Limit,
    /// The address is on the storefront's suppression list (a hard bounce or a complaint).
    List,
}

impl super::deliveries::WroteDelivery for IssueOutcome {
    fn written_delivery(&self) -> Option<i64> {
        match self {
            IssueOutcome::Queued { delivery_id, .. } => Some(*delivery_id),
            IssueOutcome::NoAccount | IssueOutcome::Suppressed { .. } => None,
        }
    }
}

/// The email a customer's link goes out in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEmail {
    SignIn,
    BookingConfirmation(BookedRental),
}

impl LinkEmail {
    fn data(&self, first_name: String, requested_by: RequestedBy, code: bool) -> EmailData {
        match self {
            LinkEmail::SignIn => EmailData::SignIn(Greeting {
                first_name,
                code,
                sent_by_staff: requested_by == RequestedBy::Staff,
            }),
            LinkEmail::BookingConfirmation(rental) => EmailData::BookingConfirmation(Booking {
                first_name,
                rental: rental.clone(),
            }),
        }
    }
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
                LinkFor::Email(e) => account.email.same_as(e),
                LinkFor::Account(id) => account.id == *id,
            }
    }

    /// The delivery a request writes: its link, or `suppressed` with the reason (over a
    /// limit, or `suppressed`: the address is on the storefront's suppression list).
    fn delivery(
        &self,
        account: &Account,
        verdict: Verdict,
        suppressed: Option<String>,
    ) -> NewDelivery {
        let allowed = verdict == Verdict::Allowed && suppressed.is_none();
        NewDelivery {
            storefront_id: self.storefront_id,
            account_id: Some(account.id),
            recipient: account.email.clone(),
            subject: self.subject.clone(),
            data: self.email.data(
                account.first_name(),
                self.requested_by,
                self.code_binding.is_some(),
            ),
            sealed_token: allowed.then(|| self.sealed_token.clone()),
            link_expires_at: Some(self.expires_at),
            facility_ids: self.facility_ids.clone(),
            relay_after: self.relay_after,
            suppressed_reason: match &self.limit {
                _ if suppressed.is_some() => suppressed,
                Some(l) if !allowed => Some(l.reason(verdict)),
                _ => None,
            },
            suppression_checked: true,
        }
    }
}

/// A link that a GET may show a sign-in page for.
#[derive(Debug, Clone)]
pub struct LiveToken {
    /// The account, or the staff user, it signs in.
    pub subject_id: i64,
    pub expires_at: DateTime<Utc>,
}

/// A code tried on one of the links of the browser that tried it (SPEC §11).
#[derive(Debug, Clone)]
pub struct CodeTry {
    /// The link's token hash (its code is derived from it).
    pub token_hash: TokenHash,
    /// Codes tried on the link so far, this one included.
    pub tries: i64,
}

/// A redeemed link: the session was started.
#[derive(Debug, Clone)]
pub struct Redeemed {
    /// The account, or the staff user, now signed in.
    pub subject_id: i64,
    /// Where the link lands (a customer's link may name a path).
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
            let Some(account) = account_for_link(&mut *tx, r.storefront_id, &r.who).await? else {
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
                    let (verdict, bucket) =
                        limit.check(&mut *tx, &CUSTOMERS, account.id, now).await?;
                    (verdict, Some(bucket))
                }
            };
            let suppressed = crate::store::suppressions::suppression_in_force(
                &mut *tx,
                r.storefront_id,
                &account.email,
            )
            .await?
            .map(|s| s.not_sent_reason());
            let allowed = verdict == Verdict::Allowed && suppressed.is_none();
            if allowed {
                tx.execute(
                    "INSERT INTO sign_in_tokens (storefront_id, account_id, token_hash, requested_by, redirect_path, created_at, expires_at, client_key, code_binding)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    &params![
                        r.storefront_id,
                        account.id,
                        &r.token_hash.0,
                        r.requested_by.as_str(),
                        r.redirect_path.clone(),
                        now,
                        r.expires_at,
                        bucket,
                        r.code_binding.clone()
                    ],
                )
                .await?;
            }
            let by_list = suppressed.is_some();
            let delivery_id =
                insert_delivery(&mut *tx, &r.delivery(&account, verdict, suppressed), now)
                    .await?
                    .id;
            outcomes.push(if allowed {
                IssueOutcome::Queued {
                    delivery_id,
                    account_id: account.id,
                }
            } else {
                IssueOutcome::Suppressed {
                    account_id: account.id,
                    by: if by_list {
                        SuppressedBy::List
                    } else {
                        SuppressedBy::Limit
                    },
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
        // The staff row's lock makes concurrent requests count one after another.
        let Some(staff) = lock_active_staff(&mut *tx, self.dialect(), email).await? else {
            tx.commit().await?;
            return Ok(None);
        };
        let (verdict, bucket) = limit.check(&mut *tx, &STAFF, staff.id, now).await?;
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
            &params![&token_hash.0, staff.id, now, expires_at, bucket],
        )
        .await?;
        let written = insert_delivery(&mut *tx, &delivery(&staff), now).await?;
        tx.commit().await?;
        Ok(written.to_publish())
    }

    /// Looks a link up without consuming it (mail scanners prefetch links).
    pub async fn live_token(
        &self,
        audience: Audience,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> DbResult<Option<LiveToken>> {
        let t = audience.tables();
        let (scope, scope_value) = audience.scope("", 3);
        let sql = format!(
            "SELECT {subject}, expires_at FROM {tokens}
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2{scope}",
            subject = t.subject_id,
            tokens = t.tokens,
        );
        let mut values = params![&hash.0, now];
        values.extend(scope_value);
        Ok(self
            .db()
            .query_opt(&sql, &values)
            .await?
            .map(|r| LiveToken {
                subject_id: r.i64(0),
                expires_at: r.ts(1),
            }))
    }

    /// The staff member a live console link is for, without using it up.
    pub async fn staff_token_owner(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> DbResult<Option<StaffUser>> {
        match self.live_token(Audience::Staff, hash, now).await? {
            Some(live) => self.staff_user(live.subject_id).await,
            None => Ok(None),
        }
    }

    /// Consumes a link exactly once and starts the session in the same transaction. Of many
    /// concurrent calls with one link, one gets `Some`.
    pub async fn redeem_token(
        &self,
        audience: Audience,
        hash: &TokenHash,
        session_hash: &TokenHash,
        session_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> DbResult<Option<Redeemed>> {
        let t = audience.tables();
        let (scope, scope_value) = audience.scope("", 3);
        let sql = format!(
            "UPDATE {tokens} SET used_at = $2
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2{scope}
             RETURNING {subject}, {redirect}",
            tokens = t.tokens,
            subject = t.subject_id,
            redirect = t.redirect_path,
        );
        let mut values = params![&hash.0, now];
        values.extend(scope_value);
        let mut tx = self.db().begin().await?;
        let Some(row) = tx.query_opt(&sql, &values).await? else {
            return Ok(None);
        };
        let redeemed = Redeemed {
            subject_id: row.i64(0),
            redirect_path: row.opt_string(1),
        };
        let session = NewSession {
            hash: session_hash,
            expires_at: session_expires_at,
        };
        start_session(&mut *tx, audience, redeemed.subject_id, &session, now).await?;
        tx.commit().await?;
        Ok(Some(redeemed))
    }

    /// A sign-in code is tried in a browser: counts one try on each live link of the address
    /// whose binding is that browser's and that has tries left, and returns them. Counting
    /// before the code is compared caps the tries even when many arrive at once; links of
    /// other browsers are never touched, so nobody can spend a customer's tries.
    pub async fn try_sign_in_code(
        &self,
        storefront_id: i64,
        email_key: &str,
        binding: &[u8],
        max_tries: i64,
        now: DateTime<Utc>,
    ) -> DbResult<Vec<CodeTry>> {
        let rows = self
            .db()
            .query(
                "UPDATE sign_in_tokens SET code_tries = code_tries + 1
                 WHERE account_id IN (SELECT id FROM accounts WHERE storefront_id = $1 AND email_key = $2)
                   AND storefront_id = $1 AND code_binding = $3
                   AND used_at IS NULL AND expires_at > $4 AND code_tries < $5
                 RETURNING token_hash, code_tries",
                &params![storefront_id, email_key, binding, now, max_tries],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| CodeTry {
                token_hash: TokenHash(r.bytes(0).try_into().unwrap_or([0; 32])),
                tries: r.i64(1),
            })
            .collect())
    }

    /// Ends the links whose last code try was wrong and was their last (used up: the link
    /// with its code). Returns how many.
    pub async fn end_code_links(
        &self,
        storefront_id: i64,
        token_hashes: &[TokenHash],
        now: DateTime<Utc>,
    ) -> DbResult<u64> {
        let mut ended = 0;
        for hash in token_hashes {
            ended += self
                .db()
                .execute(
                    "UPDATE sign_in_tokens SET used_at = $3
                     WHERE token_hash = $1 AND storefront_id = $2 AND used_at IS NULL",
                    &params![&hash.0, storefront_id, now],
                )
                .await?;
        }
        Ok(ended)
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

    /// Deletes the links of both audiences that expired more than a day ago (kept that long so
    /// support can see a link that was just too late). Returns how many.
    pub async fn sweep_tokens(&self, now: DateTime<Utc>) -> DbResult<u64> {
        let mut swept = 0;
        for t in EVERY_AUDIENCE {
            swept += self
                .db()
                .execute(
                    &format!("DELETE FROM {} WHERE expires_at <= $1", t.tokens),
                    &params![now - Duration::days(1)],
                )
                .await?;
        }
        Ok(swept)
    }
}

/// Ends every unused link of a subject (an address changed, a staff user disabled), inside
/// the caller's transaction. Returns how many.
pub(super) async fn end_links(
    conn: &mut dyn Conn,
    tables: &Tables,
    subject_id: i64,
    now: DateTime<Utc>,
) -> DbResult<u64> {
    let sql = format!(
        "UPDATE {} SET used_at = $2 WHERE {} = $1 AND used_at IS NULL",
        tables.tokens, tables.subject_id
    );
    conn.execute(&sql, &params![subject_id, now]).await
}

/// Deletes every link of a subject (an account merged into another), inside the caller's
/// transaction. Returns how many.
pub(super) async fn delete_links(
    conn: &mut dyn Conn,
    tables: &Tables,
    subject_id: i64,
) -> DbResult<u64> {
    let sql = format!(
        "DELETE FROM {} WHERE {} = $1",
        tables.tokens, tables.subject_id
    );
    conn.execute(&sql, &params![subject_id]).await
}

/// The account a link request is for (by the address typed, or by id), in the issuing
/// transaction.
pub(super) async fn account_for_link(
    conn: &mut dyn Conn,
    storefront_id: i64,
    who: &LinkFor,
) -> DbResult<Option<Account>> {
    let (column, key) = match who {
        LinkFor::Email(e) => ("email_key", Value::from(e.key())),
        LinkFor::Account(id) => ("id", Value::from(*id)),
    };
    let sql = format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE storefront_id = $1 AND {column} = $2"
    );
    Ok(conn
        .query_opt(&sql, &[Value::from(storefront_id), key])
        .await?
        .as_ref()
        .map(account_from))
}
