//! PostgreSQL's way of issuing a batch of customers' sign-in links: two round trips whatever
//! the batch size (the accounts locked and their recent links counted, then every token,
//! delivery and unmatched request written in one statement with COMMIT).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::limits::Verdict;
use super::{IssueOutcome, LinkFor, LinkRequest, SuppressedBy};
use crate::store::Store;
use crate::store::db::{DbResult, Value};
use crate::store::deliveries::NewDelivery;
use crate::store::rows::{ACCOUNT_COLUMN_COUNT, ACCOUNT_COLUMNS, Account, account_from};
use crate::store::suppressions::{SuppressionReason, not_sent_reason};

/// What one request becomes once its account is known.
struct Planned<'a> {
    request: &'a LinkRequest,
    account: Option<&'a Account>,
    verdict: Verdict,
    /// The bucket its token is counted in (customers' own requests).
    bucket: Option<Vec<u8>>,
    /// Why nothing is sent when the address is on the suppression list.
    suppressed: Option<String>,
}

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
    suppressed: &HashMap<i64, String>,
    recent: &mut Recent,
) -> Vec<Planned<'a>> {
    requests
        .iter()
        .map(|request| {
            let account = accounts.iter().find(|a| request.matches(a));
            let suppressed = account.and_then(|a| suppressed.get(&a.id).cloned());
            let (verdict, bucket) = match (account, &request.limit) {
                // On the suppression list: no link, and nothing counted against the limits.
                (Some(_), _) if suppressed.is_some() => (Verdict::Allowed, None),
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
                suppressed,
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
    code_binding: Vec<Option<Vec<u8>>>,
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
        self.code_binding.push(r.code_binding.clone());
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
        self.kind.push(Some(d.data.kind().as_str().to_string()));
        self.recipient.push(Some(d.recipient.to_string()));
        self.subject.push(Some(d.subject.clone()));
        self.status.push(Some(
            if suppressed { "suppressed" } else { "queued" }.to_string(),
        ));
        self.last_error.push(d.suppressed_reason.clone());
        self.payload.push(Some(d.data.stored()));
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

impl Store {
    /// PostgreSQL: four statements whatever the batch size.
    pub(super) async fn issue_links_postgres(
        &self,
        requests: &[LinkRequest],
        now: DateTime<Utc>,
    ) -> DbResult<Vec<IssueOutcome>> {
        let mut tx = self.batches().begin().await?;
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
                  WHERE t.account_id = a.id AND t.created_at > $8 AND t.client_key IS NOT NULL),
                 (SELECT s.reason || ' ' || s.detail FROM suppressions s
                  WHERE s.storefront_id = a.storefront_id AND s.address_key = a.email_key AND s.lifted_at IS NULL)
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
        let mut suppressed = HashMap::new();
        for r in &rows {
            if let Some((reason, detail)) = r
                .opt_string(ACCOUNT_COLUMN_COUNT + 3)
                .as_deref()
                .and_then(|s| s.split_once(' '))
                && let Some(reason) = SuppressionReason::parse(reason)
            {
                suppressed.insert(r.i64(0), not_sent_reason(reason, detail));
            }
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
        let planned = plan(requests, &accounts, &suppressed, &mut recent);

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
                    let allowed = p.verdict == Verdict::Allowed && p.suppressed.is_none();
                    if allowed {
                        tok.push(r, account, p.bucket.clone(), now);
                        for f in &r.facility_ids {
                            extra_sealed.push(Some(r.sealed_token.clone()));
                            extra_facility.push(Some(*f));
                        }
                    }
                    del.push(&r.delivery(account, p.verdict, p.suppressed.clone()), now);
                }
            }
        }
        let tok_client_keys = Value::Blobs(std::mem::take(&mut tok.client_key));
        let tok_code_bindings = Value::Blobs(std::mem::take(&mut tok.code_binding));
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
        values.push(tok_code_bindings);
        let inserted = tx
            .query_and_commit(
                "WITH tok AS (
                     INSERT INTO sign_in_tokens (token_hash, storefront_id, account_id, requested_by, redirect_path, created_at, expires_at, client_key, code_binding)
                     SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[], $25::bytea[], $26::bytea[])),
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
                Some(a) if p.verdict == Verdict::Allowed && p.suppressed.is_none() => {
                    IssueOutcome::Queued {
                        delivery_id: ids
                            .get(&p.request.sealed_token)
                            .copied()
                            .unwrap_or_default(),
                        account_id: a.id,
                    }
                }
                Some(a) => IssueOutcome::Suppressed {
                    account_id: a.id,
                    by: if p.suppressed.is_some() {
                        SuppressedBy::List
                    } else {
                        SuppressedBy::Limit
                    },
                },
            })
            .collect())
    }
}
