//! Sign-in tokens: issuing (with the delivery row, in one transaction) and redeeming (with the
//! session, in one transaction).

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use super::Store;
use super::db::{DbResult, Dialect, Value};
use super::deliveries::{DeliveryKind, NewDelivery, insert_delivery};
use super::storefronts::{ACCOUNT_COLUMN_COUNT, ACCOUNT_COLUMNS, Account, account_from};
use crate::crypto::DeviceClaim;
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

/// At most `max` links within `window`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub max: u32,
    pub window: Duration,
}

/// The limits a sign-in request of a customer (or a staff member on the console) is held to,
/// with the client it came from (SPEC §8, nobody can lock a customer out).
#[derive(Debug, Clone)]
pub struct LinkLimit {
    /// Per account and client bucket: one IP (or IPv6 /64), or one browser with a valid device
    /// cookie. A stranger's requests spend only their own bucket.
    pub per_client: Window,
    /// Per account over all its links, against mail-bombing from many IPs. A valid device
    /// cookie is not held back by it.
    pub ceiling: Window,
    /// The keyed hash of the client's IP bucket (`Keys::client_bucket`).
    pub ip_bucket: Vec<u8>,
    /// The device cookie the request carried, checked once the account is known.
    pub device: Option<DeviceClaim>,
}

/// Why a request gets no link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// The client's own bucket is spent.
    PerClient,
    /// The account's ceiling is spent (and the request has no device cookie for it).
    Ceiling,
}

impl LinkLimit {
    /// The bucket a request for `subject_id` counts in, and whether it is a valid device's own.
    pub fn bucket_for(&self, subject_id: i64) -> (&[u8], bool) {
        match &self.device {
            Some(d) if d.is_for(subject_id) => (d.bucket(), true),
            _ => (&self.ip_bucket, false),
        }
    }

    /// The decision, given the links already in the request's bucket and the account's links
    /// in the ceiling's window.
    pub fn verdict(&self, device: bool, in_bucket: i64, in_ceiling: i64) -> Verdict {
        if in_bucket >= self.per_client.max as i64 {
            Verdict::PerClient
        } else if !device && in_ceiling >= self.ceiling.max as i64 {
            Verdict::Ceiling
        } else {
            Verdict::Allowed
        }
    }

    /// What the Emails tab says of a suppressed request.
    pub fn reason(&self, verdict: Verdict) -> String {
        let (w, whom) = match verdict {
            Verdict::Ceiling => (self.ceiling, "for one account"),
            _ => (self.per_client, "from one client"),
        };
        format!(
            "not sent: {} sign-in links in {} minutes {whom} is the limit",
            w.max,
            w.window.num_minutes()
        )
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

/// What one request becomes once its account is known.
struct Planned<'a> {
    request: &'a LinkRequest,
    account: Option<&'a Account>,
    verdict: Verdict,
    /// The bucket its token is counted in (customers' own requests).
    bucket: Option<Vec<u8>>,
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

    /// PostgreSQL: four statements whatever the batch size.
    async fn issue_links_postgres(
        &self,
        requests: &[LinkRequest],
        now: DateTime<Utc>,
    ) -> DbResult<Vec<IssueOutcome>> {
        let mut tx = self.db().begin().await?;
        // Each account is locked with a transaction-scoped advisory lock on its id (in memory;
        // a row lock would write to the account row).
        let (mut by_email_sf, mut by_email_key, mut by_id_sf, mut by_id) =
            (vec![], vec![], vec![], vec![]);
        // The same keys once per bucket a request may count in (its IP's, and its device
        // cookie's when it has one): the counts are read per account and bucket.
        let (mut email_sf, mut email_key, mut email_bucket) = (vec![], vec![], vec![]);
        let (mut id_sf, mut id_id, mut id_bucket) = (vec![], vec![], vec![]);
        for r in requests {
            let buckets: Vec<Option<Vec<u8>>> = match &r.limit {
                None => vec![None],
                Some(l) => std::iter::once(Some(l.ip_bucket.clone()))
                    .chain(l.device.as_ref().map(|d| Some(d.bucket().to_vec())))
                    .collect(),
            };
            match &r.who {
                LinkFor::Email(e) => {
                    by_email_sf.push(Some(r.storefront_id));
                    by_email_key.push(Some(e.key()));
                    for b in buckets {
                        email_sf.push(Some(r.storefront_id));
                        email_key.push(Some(e.key()));
                        email_bucket.push(b);
                    }
                }
                LinkFor::Account(id) => {
                    by_id_sf.push(Some(r.storefront_id));
                    by_id.push(Some(*id));
                    for b in buckets {
                        id_sf.push(Some(r.storefront_id));
                        id_id.push(Some(*id));
                        id_bucket.push(b);
                    }
                }
            }
        }
        // Round trip 1, three statements sent together: BEGIN; the locks, in id order so that
        // two batches never wait for each other in a cycle; then the accounts with their recent
        // links (per bucket, and in the ceiling's window), in a statement of its own so that
        // links committed by whoever held a lock before us are counted.
        const MATCHED: &str = "SELECT a.* FROM accounts a
                 JOIN unnest($1::bigint[], $2::text[]) AS k(sf, key)
                 ON a.storefront_id = k.sf AND a.email_key = k.key
             UNION
             SELECT a.* FROM accounts a
                 JOIN unnest($3::bigint[], $4::bigint[]) AS k(sf, id)
                 ON a.storefront_id = k.sf AND a.id = k.id";
        let lock = format!(
            "SELECT pg_advisory_xact_lock(id)::text FROM ({MATCHED} ORDER BY id OFFSET 0) AS a"
        );
        let select = format!(
            "SELECT {ACCOUNT_COLUMNS}, a.bucket,
                 (SELECT COUNT(*) FROM sign_in_tokens t
                  WHERE t.account_id = a.id AND t.created_at > $7 AND t.client_key = a.bucket),
                 (SELECT COUNT(*) FROM sign_in_tokens t
                  WHERE t.account_id = a.id AND t.created_at > $8 AND t.client_key IS NOT NULL)
             FROM (SELECT a.*, k.bucket FROM accounts a
                     JOIN unnest($1::bigint[], $2::text[], $3::bytea[]) AS k(sf, key, bucket)
                     ON a.storefront_id = k.sf AND a.email_key = k.key
                   UNION
                   SELECT a.*, k.bucket FROM accounts a
                     JOIN unnest($4::bigint[], $5::bigint[], $6::bytea[]) AS k(sf, id, bucket)
                     ON a.storefront_id = k.sf AND a.id = k.id) AS a"
        );
        let (per_client, ceiling) = requests
            .iter()
            .find_map(|r| r.limit.as_ref())
            .map(|l| (l.per_client.window, l.ceiling.window))
            .unwrap_or_default();
        let keys = [
            Value::I64s(by_email_sf),
            Value::Texts(by_email_key),
            Value::I64s(by_id_sf),
            Value::I64s(by_id),
        ];
        let counted = [
            Value::I64s(email_sf),
            Value::Texts(email_key),
            Value::Blobs(email_bucket),
            Value::I64s(id_sf),
            Value::I64s(id_id),
            Value::Blobs(id_bucket),
            Value::Ts(now - per_client),
            Value::Ts(now - ceiling),
        ];
        let rows = tx
            .query_many(&[(&lock, &keys), (&select, &counted)])
            .await?
            .pop()
            .unwrap_or_default();
        let mut accounts: Vec<Account> = rows.iter().map(account_from).collect();
        accounts.sort_by_key(|a| a.id);
        accounts.dedup_by_key(|a| a.id);
        let mut recent = Recent::default();
        for r in &rows {
            let id = r.i64(0);
            if let Some(bucket) = r.opt_bytes(ACCOUNT_COLUMN_COUNT) {
                recent
                    .in_bucket
                    .insert((id, bucket), r.i64(ACCOUNT_COLUMN_COUNT + 1));
            }
            recent
                .in_ceiling
                .insert(id, r.i64(ACCOUNT_COLUMN_COUNT + 2));
        }
        let planned = plan(requests, &accounts, &mut recent);

        // Round trip 2: everything in one statement, and COMMIT.
        let mut tok = TokenRows::default();
        let mut del = DeliveryRows::default();
        let (mut extra_sealed, mut extra_facility) = (vec![], vec![]);
        let (mut un_sf, mut un_hash, mut un_ip) = (vec![], vec![], vec![]);
        for p in &planned {
            let r = p.request;
            match p.account {
                None => {
                    if let Some(u) = &r.unmatched {
                        un_sf.push(Some(r.storefront_id));
                        un_hash.push(Some(u.email_hash.clone()));
                        un_ip.push(u.client_ip.clone());
                    }
                }
                Some(account) => {
                    if p.verdict == Verdict::Allowed {
                        tok.push(r, account, p.bucket.clone(), now);
                        for f in &r.facility_ids {
                            extra_sealed.push(Some(r.sealed_token.clone()));
                            extra_facility.push(Some(*f));
                        }
                    }
                    del.push(&r.delivery(account, p.verdict), now);
                }
            }
        }
        let tok_client_keys = Value::Blobs(std::mem::take(&mut tok.client_key));
        let mut values = tok.into_values();
        values.extend(del.into_values());
        values.push(Value::Ts(now));
        values.extend([
            Value::I64s(un_sf),
            Value::Blobs(un_hash),
            Value::Texts(un_ip),
            Value::Blobs(extra_sealed),
            Value::I64s(extra_facility),
        ]);
        values.push(tok_client_keys);
        let inserted = tx
            .query_and_commit(
                "WITH tok AS (
                     INSERT INTO sign_in_tokens (token_hash, storefront_id, account_id, requested_by, redirect_path, created_at, expires_at, client_key)
                     SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[], $25::bytea[])),
                 del AS (
                     INSERT INTO deliveries (storefront_id, account_id, kind, recipient, subject, status, last_error, payload,
                         sealed_token, link_expires_at, created_at, updated_at, next_attempt_at, relay_at)
                     SELECT s, a, k, r, subj, st, le, p, sealed, lea, $19, $19, $19, ra
                     FROM unnest($8::bigint[], $9::bigint[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
                         $15::text[], $16::bytea[], $17::timestamptz[], $18::timestamptz[])
                         AS x(s, a, k, r, subj, st, le, p, sealed, lea, ra)
                     RETURNING id, account_id, sealed_token),
                 fac AS (
                     INSERT INTO delivery_facilities (facility_id, delivery_id)
                     SELECT DISTINCT c.facility_id, del.id FROM del JOIN contacts c ON c.account_id = del.account_id
                     UNION
                     SELECT f.facility_id, del.id FROM del JOIN unnest($23::bytea[], $24::bigint[]) AS f(sealed, facility_id)
                         ON del.sealed_token = f.sealed
                     ON CONFLICT DO NOTHING),
                 unm AS (
                     INSERT INTO unmatched_sign_ins (storefront_id, email_hash, client_ip, created_at)
                     SELECT s, h, ip, $19 FROM unnest($20::bigint[], $21::bytea[], $22::text[]) AS u(s, h, ip))
                 SELECT id, sealed_token FROM del WHERE sealed_token IS NOT NULL",
                &values,
            )
            .await?;
        let ids: HashMap<Vec<u8>, i64> = inserted
            .iter()
            .map(|row| (row.bytes(1), row.i64(0)))
            .collect();
        Ok(planned
            .iter()
            .map(|p| match p.account {
                None => IssueOutcome::NoAccount,
                Some(a) if p.verdict == Verdict::Allowed => IssueOutcome::Queued {
                    delivery_id: ids
                        .get(&p.request.sealed_token)
                        .copied()
                        .unwrap_or_default(),
                    account_id: a.id,
                },
                Some(a) => IssueOutcome::Suppressed { account_id: a.id },
            })
            .collect())
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

/// SQLite: an account's links in one bucket, and in the ceiling's window.
const COUNT_RECENT: &str = "SELECT
     (SELECT COUNT(*) FROM sign_in_tokens WHERE account_id = $1 AND created_at > $2 AND client_key = $3),
     (SELECT COUNT(*) FROM sign_in_tokens WHERE account_id = $1 AND created_at > $4 AND client_key IS NOT NULL)";

/// Links already counted, per (account, bucket) and per account (the ceiling).
#[derive(Default)]
struct Recent {
    in_bucket: HashMap<(i64, Vec<u8>), i64>,
    in_ceiling: HashMap<i64, i64>,
}

/// Decides which requests get a link: an account's recent links plus those earlier in this
/// batch must stay under its limits.
fn plan<'a>(
    requests: &'a [LinkRequest],
    accounts: &'a [Account],
    recent: &mut Recent,
) -> Vec<Planned<'a>> {
    requests
        .iter()
        .map(|request| {
            let account = accounts.iter().find(|a| request.matches(a));
            let (verdict, bucket) = match (account, &request.limit) {
                (Some(a), Some(limit)) => {
                    let (bucket, device) = limit.bucket_for(a.id);
                    let key = (a.id, bucket.to_vec());
                    let in_bucket = recent.in_bucket.get(&key).copied().unwrap_or(0);
                    let in_ceiling = recent.in_ceiling.get(&a.id).copied().unwrap_or(0);
                    let verdict = limit.verdict(device, in_bucket, in_ceiling);
                    if verdict == Verdict::Allowed {
                        recent.in_bucket.insert(key, in_bucket + 1);
                        recent.in_ceiling.insert(a.id, in_ceiling + 1);
                    }
                    (verdict, Some(bucket.to_vec()))
                }
                (Some(_), None) => (Verdict::Allowed, None),
                // No account: nothing is issued (the verdict is not used).
                (None, _) => (Verdict::PerClient, None),
            };
            Planned {
                request,
                account,
                verdict,
                bucket,
            }
        })
        .collect()
}

/// Column arrays for the batched token insert.
#[derive(Default)]
struct TokenRows {
    hash: Vec<Option<Vec<u8>>>,
    storefront: Vec<Option<i64>>,
    account: Vec<Option<i64>>,
    requested_by: Vec<Option<String>>,
    redirect: Vec<Option<String>>,
    created: Vec<Option<DateTime<Utc>>>,
    expires: Vec<Option<DateTime<Utc>>>,
    client_key: Vec<Option<Vec<u8>>>,
}

impl TokenRows {
    fn push(
        &mut self,
        r: &LinkRequest,
        account: &Account,
        bucket: Option<Vec<u8>>,
        now: DateTime<Utc>,
    ) {
        self.client_key.push(bucket);
        self.hash.push(Some(r.token_hash.0.to_vec()));
        self.storefront.push(Some(r.storefront_id));
        self.account.push(Some(account.id));
        self.requested_by
            .push(Some(r.requested_by.as_str().to_string()));
        self.redirect.push(r.redirect_path.clone());
        self.created.push(Some(now));
        self.expires.push(Some(r.expires_at));
    }

    fn into_values(self) -> Vec<Value> {
        vec![
            Value::Blobs(self.hash),
            Value::I64s(self.storefront),
            Value::I64s(self.account),
            Value::Texts(self.requested_by),
            Value::Texts(self.redirect),
            Value::Tss(self.created),
            Value::Tss(self.expires),
        ]
    }
}

/// Column arrays for the batched delivery insert.
#[derive(Default)]
struct DeliveryRows {
    storefront: Vec<Option<i64>>,
    account: Vec<Option<i64>>,
    kind: Vec<Option<String>>,
    recipient: Vec<Option<String>>,
    subject: Vec<Option<String>>,
    status: Vec<Option<String>>,
    last_error: Vec<Option<String>>,
    payload: Vec<Option<String>>,
    sealed: Vec<Option<Vec<u8>>>,
    link_expires: Vec<Option<DateTime<Utc>>>,
    relay_at: Vec<Option<DateTime<Utc>>>,
}

impl DeliveryRows {
    fn push(&mut self, d: &NewDelivery, now: DateTime<Utc>) {
        let suppressed = d.suppressed_reason.is_some();
        self.storefront.push(Some(d.storefront_id));
        self.account.push(d.account_id);
        self.kind.push(Some(d.kind.as_str().to_string()));
        self.recipient.push(Some(d.recipient.clone()));
        self.subject.push(Some(d.subject.clone()));
        self.status.push(Some(
            if suppressed { "suppressed" } else { "queued" }.to_string(),
        ));
        self.last_error.push(d.suppressed_reason.clone());
        self.payload.push(Some(d.payload.to_string()));
        self.sealed.push(d.sealed_token.clone());
        self.link_expires.push(d.link_expires_at);
        self.relay_at
            .push((!suppressed).then(|| now + d.relay_after));
    }

    fn into_values(self) -> Vec<Value> {
        vec![
            Value::I64s(self.storefront),
            Value::I64s(self.account),
            Value::Texts(self.kind),
            Value::Texts(self.recipient),
            Value::Texts(self.subject),
            Value::Texts(self.status),
            Value::Texts(self.last_error),
            Value::Texts(self.payload),
            Value::Blobs(self.sealed),
            Value::Tss(self.link_expires),
            Value::Tss(self.relay_at),
        ]
    }
}
