//! The workers' side of deliveries: claiming rows for sending (a batch at once, leased),
//! recording each try and the new status together, and the relay that republishes rows the
//! broker never delivered.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use super::{DeliveryKind, DeliveryStatus};
use crate::domain::{EmailAddress, EmailData};
use crate::params;
use crate::store::Store;
use crate::store::db::{Conn, DbResult, Dialect, Row, Value};

/// A delivery a worker has taken: status `sending` until it finishes or its lease ends.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub storefront_id: i64,
    pub account_id: Option<i64>,
    pub kind: DeliveryKind,
    pub recipient: EmailAddress,
    pub subject: String,
    /// Attempts made before this one.
    pub attempts: i64,
    /// What the email says; an `Err` when the row's data cannot be read (the email fails).
    pub data: Result<EmailData, String>,
    pub sealed_token: Option<Vec<u8>>,
    pub link_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// `None` when the claim wrote its lease on the row (`sending`). `Some(relay time)` when it
    /// wrote nothing: a fresh row on its message's first delivery is held by that message alone
    /// (unacknowledged, the broker gives it to another consumer only if this one dies), and
    /// nothing else publishes it before its relay time. The holder sends and records the
    /// outcome well before then, or claims the row for real first ([`ClaimRules::hold_until`]).
    pub held_until: Option<DateTime<Utc>>,
    /// The language its account chose (`None`: none chosen, or no account), read with the row
    /// so that the Mailer needs no query of its own per email.
    pub account_language: Option<String>,
}

/// How a claim treats a row another worker may still hold.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRules {
    pub now: DateTime<Utc>,
    /// The lease: if the worker dies, the row may be taken again after this.
    pub lease_until: DateTime<Utc>,
    /// Claims without a write: a row still `queued`, never tried and never published again
    /// (its `updated_at` is its `created_at`), whose relay time is at least this, taken on its
    /// message's first delivery, is returned as it is and left `queued`
    /// ([`ClaimedDelivery::held_until`]). Most emails so cost the database a read, not an
    /// update. `None`: every row taken is leased.
    pub hold_until: Option<DateTime<Utc>>,
}

/// One try's record.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub smtp_code: Option<u16>,
    pub detail: String,
    pub worker: String,
}

/// Where a delivery goes after a try (or without one).
#[derive(Debug, Clone)]
pub enum Finish {
    Sent,
    Deferred {
        next_attempt_at: DateTime<Utc>,
        relay_at: DateTime<Utc>,
        error: String,
    },
    Failed {
        error: String,
    },
}

impl Finish {
    fn status(&self) -> DeliveryStatus {
        match self {
            Finish::Sent => DeliveryStatus::Sent,
            Finish::Deferred { .. } => DeliveryStatus::Deferred,
            Finish::Failed { .. } => DeliveryStatus::Failed,
        }
    }
}

/// The outcome of one claimed delivery, to record.
#[derive(Debug, Clone)]
pub struct FinishItem {
    pub claimed: ClaimedDelivery,
    pub attempt: Option<AttemptRecord>,
    pub finish: Finish,
    pub now: DateTime<Utc>,
}

impl FinishItem {
    /// The try that sent the email: it is recorded on the delivery row, so it gets no
    /// `delivery_attempts` row (see migration 0011).
    fn sending_try(&self) -> Option<&AttemptRecord> {
        match self.finish {
            Finish::Sent => self.attempt.as_ref(),
            _ => None,
        }
    }
}

/// Column arrays for the batched attempt insert.
#[derive(Default)]
struct AttemptRows {
    delivery: Vec<Option<i64>>,
    attempt: Vec<Option<i64>>,
    started: Vec<Option<DateTime<Utc>>>,
    finished: Vec<Option<DateTime<Utc>>>,
    outcome: Vec<Option<String>>,
    code: Vec<Option<i64>>,
    detail: Vec<Option<String>>,
    worker: Vec<Option<String>>,
}

impl AttemptRows {
    fn push(&mut self, item: &FinishItem, attempts: i64, a: &AttemptRecord) {
        self.delivery.push(Some(item.claimed.id));
        self.attempt.push(Some(attempts));
        self.started.push(Some(a.started_at));
        self.finished.push(Some(a.finished_at));
        self.outcome
            .push(Some(item.finish.status().as_str().to_string()));
        self.code.push(a.smtp_code.map(i64::from));
        self.detail.push(Some(a.detail.clone()));
        self.worker.push(Some(a.worker.clone()));
    }

    fn into_values(self) -> Vec<Value> {
        vec![
            Value::I64s(self.delivery),
            Value::I64s(self.attempt),
            Value::Tss(self.started),
            Value::Tss(self.finished),
            Value::Texts(self.outcome),
            Value::I64s(self.code),
            Value::Texts(self.detail),
            Value::Texts(self.worker),
        ]
    }

    /// One parameter list per row (SQLite).
    fn rows(self) -> Vec<Vec<Value>> {
        (0..self.delivery.len())
            .map(|i| {
                params![
                    self.delivery[i],
                    self.attempt[i],
                    self.started[i],
                    self.finished[i],
                    self.outcome[i].clone(),
                    self.code[i],
                    self.detail[i].clone(),
                    self.worker[i].clone()
                ]
            })
            .collect()
    }
}

/// Column arrays for the batched status update.
#[derive(Default)]
struct OutcomeRows {
    id: Vec<Option<i64>>,
    status: Vec<Option<String>>,
    attempts: Vec<Option<i64>>,
    error: Vec<Option<String>>,
    at: Vec<Option<DateTime<Utc>>>,
    next_at: Vec<Option<DateTime<Utc>>>,
    relay_at: Vec<Option<DateTime<Utc>>>,
    is_final: Vec<bool>,
    prev: Vec<Option<i64>>,
    /// The sending try, when this outcome is `sent` (recorded on the row, not as an attempt).
    sent_started: Vec<Option<DateTime<Utc>>>,
    sent_code: Vec<Option<i64>>,
    sent_detail: Vec<Option<String>>,
    sent_worker: Vec<Option<String>>,
    /// The claim wrote nothing: the row may still be `queued`.
    held: Vec<bool>,
}

impl OutcomeRows {
    fn push(&mut self, item: &FinishItem, attempts: i64) {
        let now = item.now;
        let (error, next_at, relay_at) = match &item.finish {
            Finish::Sent => (None, now, None),
            Finish::Deferred {
                next_attempt_at,
                relay_at,
                error,
            } => (Some(error.clone()), *next_attempt_at, Some(*relay_at)),
            Finish::Failed { error } => (Some(error.clone()), now, None),
        };
        let status = item.finish.status();
        self.id.push(Some(item.claimed.id));
        self.status.push(Some(status.as_str().to_string()));
        self.attempts.push(Some(attempts));
        self.error.push(error);
        self.at.push(Some(now));
        self.next_at.push(Some(next_at));
        self.relay_at.push(relay_at);
        self.is_final.push(status.is_final());
        self.prev.push(Some(item.claimed.attempts));
        let sent = item.sending_try();
        self.sent_started.push(sent.map(|a| a.started_at));
        self.sent_code
            .push(sent.and_then(|a| a.smtp_code.map(i64::from)));
        self.sent_detail.push(sent.map(|a| a.detail.clone()));
        self.sent_worker.push(sent.map(|a| a.worker.clone()));
        self.held.push(item.claimed.held_until.is_some());
    }

    fn into_values(self) -> Vec<Value> {
        vec![
            Value::I64s(self.id),
            Value::Texts(self.status),
            Value::I64s(self.attempts),
            Value::Texts(self.error),
            Value::Tss(self.at),
            Value::Tss(self.next_at),
            Value::Tss(self.relay_at),
            Value::Bools(self.is_final),
            Value::I64s(self.prev),
            Value::Tss(self.sent_started),
            Value::I64s(self.sent_code),
            Value::Texts(self.sent_detail),
            Value::Texts(self.sent_worker),
            Value::Bools(self.held),
        ]
    }

    /// One parameter list per row (SQLite).
    fn rows(self) -> Vec<Vec<Value>> {
        (0..self.id.len())
            .map(|i| {
                params![
                    self.id[i],
                    self.status[i].clone(),
                    self.attempts[i],
                    self.error[i].clone(),
                    self.at[i],
                    self.next_at[i],
                    self.relay_at[i],
                    self.is_final[i],
                    self.prev[i],
                    self.sent_started[i],
                    self.sent_code[i],
                    self.sent_detail[i].clone(),
                    self.sent_worker[i].clone(),
                    self.held[i]
                ]
            })
            .collect()
    }
}

/// A row the relay found waiting too long, now published again.
#[derive(Debug, Clone, Copy)]
pub struct RelayItem {
    pub id: i64,
}

/// One step of the relay along the deliveries whose relay time has come.
#[derive(Debug, Clone, Default)]
pub struct RelayStep {
    /// Rows the relay passed (sent and failed ones among them): fewer than the limit means it
    /// has caught up with now.
    pub looked_at: usize,
    /// Rows still waiting, to publish again.
    pub publish: Vec<RelayItem>,
}

/// The statuses of a delivery still to be sent.
const WAITING: &str = "('queued', 'sending', 'deferred')";

impl Store {
    /// Takes deliveries for sending, a batch at once: each `(id, redelivered)` gets its row
    /// (now `sending`, leased until `rules.lease_until`) or `None` when another worker has it,
    /// it is final, or a deferred row is not due yet; the caller then acknowledges the message
    /// and moves on. A message the broker redelivered after its consumer died may take a row
    /// still leased to that consumer.
    pub async fn claim_deliveries(
        &self,
        items: &[(i64, bool)],
        rules: ClaimRules,
    ) -> DbResult<Vec<Option<ClaimedDelivery>>> {
        const CLAIMABLE: &str = "(d.status = 'queued'
             OR (d.status = 'deferred' AND d.next_attempt_at <= $4)
             OR (d.status = 'sending' AND (d.next_attempt_at <= $2 OR r.redelivered)))";
        // The claim's columns, then what tells a fresh row (`fresh`).
        const COLUMNS: &str =
            "d.id, d.storefront_id, d.account_id, d.kind, d.recipient, d.subject, d.attempts,
             d.payload, d.sealed_token, d.link_expires_at, d.created_at, d.relay_at,
             (SELECT a.language FROM accounts a WHERE a.id = d.account_id)";
        const FRESHNESS: &str = "d.status, d.updated_at";
        let due = rules.now + Duration::seconds(1);
        let mut claimed: HashMap<i64, ClaimedDelivery> = HashMap::new();
        // First deliveries: the rows are read, and the fresh ones taken as they are. (Fresh is
        // decided here, not in SQL: with a condition on `relay_at` in the statement, its generic
        // plan may walk the relay index instead of looking the ids up.)
        let first: Vec<i64> = items
            .iter()
            .filter(|(_, r)| !r)
            .map(|(id, _)| *id)
            .collect();
        if let Some(hold_until) = rules.hold_until
            && !first.is_empty()
        {
            let rows = match self.dialect() {
                Dialect::Postgres => {
                    self.batches()
                        .query(
                            &format!(
                                "SELECT {COLUMNS}, {FRESHNESS} FROM deliveries d WHERE d.id = ANY($1::bigint[])"
                            ),
                            &[Value::I64s(first.iter().map(|id| Some(*id)).collect())],
                        )
                        .await?
                }
                Dialect::Sqlite => {
                    let sql = format!(
                        "SELECT {} FROM deliveries WHERE id = $1",
                        format!("{COLUMNS}, {FRESHNESS}")
                            .replace("d.account_id", "deliveries.account_id")
                            .replace("d.", "")
                    );
                    let mut rows = Vec::new();
                    for id in &first {
                        rows.extend(self.batches().query(&sql, &params![*id]).await?);
                    }
                    rows
                }
            };
            let fresh: Vec<Row> = rows
                .into_iter()
                .filter(|r| {
                    r.string(13) == DeliveryStatus::Queued.as_str()
                        && r.i64(6) == 0
                        && r.ts(14) == r.ts(10)
                        && r.opt_ts(11).is_some_and(|relay_at| relay_at >= hold_until)
                })
                .collect();
            take_rows(&mut claimed, &fresh, true);
        }
        let rest: Vec<(i64, bool)> = items
            .iter()
            .filter(|(id, _)| !claimed.contains_key(id))
            .copied()
            .collect();
        if !rest.is_empty() {
            let rows = match self.dialect() {
                // One statement for the batch. It need not wait for its WAL flush: if the
                // database loses a claim in a crash, the row is taken again, as when its lease
                // runs out (the email may go twice either way; sending is at-least-once).
                // set_config(…, true) scopes the setting to this statement's own transaction.
                // The lease is kept in `next_attempt_at` and `relay_at` is left alone, so the
                // claim changes no indexed column: PostgreSQL updates the row in place (HOT)
                // without touching an index.
                Dialect::Postgres => {
                    let (ids, redelivered): (Vec<_>, Vec<_>) =
                        rest.iter().map(|(id, r)| (Some(*id), *r)).unzip();
                    let sql = format!(
                        "UPDATE deliveries d SET status = 'sending', updated_at = $2, next_attempt_at = $3
                         FROM (SELECT * FROM unnest($1::bigint[], $5::bool[]) AS u(id, redelivered)) AS r,
                              (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed
                         WHERE d.id = r.id AND {CLAIMABLE}
                         RETURNING {COLUMNS}"
                    );
                    self.batches()
                        .query(
                            &sql,
                            &[
                                Value::I64s(ids),
                                Value::Ts(rules.now),
                                Value::Ts(rules.lease_until),
                                Value::Ts(due),
                                Value::Bools(redelivered),
                            ],
                        )
                        .await?
                }
                Dialect::Sqlite => {
                    // One row per statement (SQLite has no arrays), all in one transaction.
                    let claimable = CLAIMABLE.replace("d.", "").replace("r.redelivered", "$5");
                    let sql = format!(
                        "UPDATE deliveries SET status = 'sending', updated_at = $2, next_attempt_at = $3
                         WHERE id = $1 AND {claimable}
                         RETURNING {}",
                        COLUMNS
                            .replace("d.account_id", "deliveries.account_id")
                            .replace("d.", "")
                    );
                    let mut tx = self.batches().begin().await?;
                    let mut rows = Vec::new();
                    for (id, redelivered) in &rest {
                        rows.extend(
                            tx.query(
                                &sql,
                                &params![*id, rules.now, rules.lease_until, due, *redelivered],
                            )
                            .await?,
                        );
                    }
                    tx.commit().await?;
                    rows
                }
            };
            take_rows(&mut claimed, &rows, false);
        }
        // A delivery named twice in one batch is claimed once.
        Ok(items.iter().map(|(id, _)| claimed.remove(id)).collect())
    }

    /// Records outcomes, a batch at once: each try's attempt row (when there was a try), the
    /// new status and the `delivery.sent` / `delivery.failed` events of the storefronts with an
    /// endpoint for them commit together. The sealed token is erased once the status is final.
    /// Each result is false when the row had moved on (another worker took it after the lease).
    pub async fn finish_deliveries(&self, items: &[FinishItem]) -> DbResult<FinishedBatch> {
        let mut att = AttemptRows::default();
        let mut upd = OutcomeRows::default();
        for item in items {
            let attempts = item.claimed.attempts + item.attempt.is_some() as i64;
            if let Some(a) = &item.attempt
                && item.sending_try().is_none()
            {
                att.push(item, attempts, a);
            }
            upd.push(item, attempts);
        }
        const UPDATE: &str = "UPDATE deliveries AS d SET status = u.status, attempts = u.attempts,
                 last_error = COALESCE(u.error, d.last_error), updated_at = u.at, next_attempt_at = u.next_at,
                 relay_at = COALESCE(u.relay_at, d.relay_at), sent_at = CASE WHEN u.status = 'sent' THEN u.at ELSE d.sent_at END,
                 sealed_token = CASE WHEN u.final THEN NULL ELSE d.sealed_token END,
                 sent_started_at = u.sent_started, sent_code = u.sent_code, sent_detail = u.sent_detail,
                 sent_worker = u.sent_worker";
        const UPDATE_WHERE: &str =
            "WHERE d.id = u.id AND d.attempts = u.prev AND (d.status = 'sending' OR (u.held AND d.status = 'queued'))
                 RETURNING d.id, d.storefront_id, d.account_id, d.kind, d.recipient, d.status,
                     u.error, u.at";
        let events;
        let updated: Vec<i64> = match self.dialect() {
            // One statement for the batch, the events of its outcomes with it.
            Dialect::Postgres => {
                let mut values = att.into_values();
                values.extend(upd.into_values());
                let sql = format!(
                    "WITH att AS (
                         INSERT INTO delivery_attempts (delivery_id, attempt, started_at, finished_at, outcome, smtp_code, detail, worker)
                         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::timestamptz[], $5::text[],
                             $6::bigint[], $7::text[], $8::text[])),
                     upd AS (
                         {UPDATE}
                         FROM unnest($9::bigint[], $10::text[], $11::bigint[], $12::text[], $13::timestamptz[],
                             $14::timestamptz[], $15::timestamptz[], $16::bool[], $17::bigint[],
                             $18::timestamptz[], $19::bigint[], $20::text[], $21::text[], $22::bool[])
                             AS u(id, status, attempts, error, at, next_at, relay_at, final, prev,
                                  sent_started, sent_code, sent_detail, sent_worker, held)
                         {UPDATE_WHERE}),
                     -- A sending try whose row had moved on (another worker took it after the
                     -- lease) is still a try: it gets an attempt row, as failed tries do.
                     lost AS (
                         INSERT INTO delivery_attempts (delivery_id, attempt, started_at, finished_at, outcome, smtp_code, detail, worker)
                         SELECT s.id, s.attempts, s.sent_started, s.at, 'sent', s.sent_code, s.sent_detail, s.sent_worker
                         FROM unnest($9::bigint[], $11::bigint[], $13::timestamptz[], $18::timestamptz[],
                             $19::bigint[], $20::text[], $21::text[])
                             AS s(id, attempts, at, sent_started, sent_code, sent_detail, sent_worker)
                         WHERE s.sent_detail IS NOT NULL AND s.id NOT IN (SELECT id FROM upd)),
                     {OUTCOME_EVENTS}
                     SELECT id, (SELECT COUNT(*) FROM hook_deliveries) FROM upd"
                );
                let rows = self.batches().query(&sql, &values).await?;
                events = rows.first().map_or(0, |r| r.i64(1) as usize);
                rows.iter().map(|r| r.i64(0)).collect()
            }
            Dialect::Sqlite => {
                let mut tx = self.batches().begin().await?;
                for row in att.rows() {
                    tx.execute(
                        "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, finished_at, outcome, smtp_code, detail, worker)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        &row,
                    )
                    .await?;
                }
                let sql = "UPDATE deliveries SET status = $2, attempts = $3, last_error = COALESCE($4, last_error),
                         updated_at = $5, next_attempt_at = $6, relay_at = COALESCE($7, relay_at),
                         sent_at = CASE WHEN $2 = 'sent' THEN $5 ELSE sent_at END,
                         sealed_token = CASE WHEN $8 THEN NULL ELSE sealed_token END,
                         sent_started_at = $10, sent_code = $11, sent_detail = $12, sent_worker = $13
                     WHERE id = $1 AND attempts = $9 AND (status = 'sending' OR ($14 AND status = 'queued'))
                     RETURNING id";
                let mut ids = Vec::new();
                for row in upd.rows() {
                    ids.extend(tx.query(sql, &row).await?.iter().map(|r| r.i64(0)));
                }
                // A sending try whose row had moved on still gets its attempt row.
                for item in items {
                    if let Some(a) = item.sending_try()
                        && !ids.contains(&item.claimed.id)
                    {
                        tx.execute(
                            "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, finished_at, outcome, smtp_code, detail, worker)
                             VALUES ($1, $2, $3, $4, 'sent', $5, $6, $7)",
                            &params![
                                item.claimed.id,
                                item.claimed.attempts + 1,
                                a.started_at,
                                item.now,
                                a.smtp_code.map(i64::from),
                                a.detail.clone(),
                                a.worker.clone()
                            ],
                        )
                        .await?;
                    }
                }
                events = emit_outcome_events(&mut *tx, items, &ids).await?;
                tx.commit().await?;
                ids
            }
        };
        Ok(FinishedBatch {
            written: items
                .iter()
                .map(|i| updated.contains(&i.claimed.id))
                .collect(),
            events,
        })
    }

    /// Gives a delivery still waiting a new relay time (a row whose write committed late). The
    /// row is then no longer fresh: its worker claims it with a lease (see
    /// [`ClaimRules::hold_until`]).
    pub async fn relay_later(
        &self,
        id: i64,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> DbResult<()> {
        self.db()
            .execute(
                &format!(
                    "UPDATE deliveries SET relay_at = $2, updated_at = $3 WHERE id = $1 AND status IN {WAITING}"
                ),
                &params![id, at, now],
            )
            .await?;
        Ok(())
    }

    /// Moves the relay on by up to `limit` rows whose relay time has passed, in (relay time,
    /// id) order from where it last looked (`relay_progress`). Every delivery keeps its relay
    /// time once written (see migration 0012), so the relay looks at each one when that time
    /// comes: rows sent or failed by then are passed over; rows still waiting (queued or
    /// deferred rows the broker never delivered, sending rows whose worker died) are given
    /// `again_at` and returned, to publish again; a row a live worker holds (`sending`, its
    /// lease in `next_attempt_at` not yet over) is left to that worker and looked at again
    /// when its lease ends. Each waiting row so keeps a relay time ahead of the relay's place.
    /// Every row it touches gets `updated_at = now`: a row published again is no longer fresh,
    /// so whichever copy of its message comes first claims it with a lease
    /// ([`ClaimRules::hold_until`]). One node at a time moves the relay (the progress row is locked; a node that finds it
    /// locked looks at nothing).
    pub async fn take_relay_batch(
        &self,
        now: DateTime<Utc>,
        again_at: DateTime<Utc>,
        limit: i64,
    ) -> DbResult<RelayStep> {
        match self.dialect() {
            Dialect::Postgres => {
                let sql = format!(
                    "WITH progress AS (
                         SELECT looked_at, looked_id FROM relay_progress WHERE id = 1 FOR UPDATE SKIP LOCKED),
                     passed AS (
                         SELECT d.id, d.relay_at FROM deliveries d, progress p
                         WHERE d.relay_at IS NOT NULL AND (d.relay_at, d.id) > (p.looked_at, p.looked_id)
                           AND d.relay_at <= $1
                         ORDER BY d.relay_at, d.id LIMIT $3),
                     moved AS (
                         UPDATE relay_progress SET looked_at = last.relay_at, looked_id = last.id
                         FROM (SELECT relay_at, id FROM passed ORDER BY relay_at DESC, id DESC LIMIT 1) AS last
                         WHERE relay_progress.id = 1),
                     waiting AS (
                         UPDATE deliveries d SET updated_at = $1, relay_at = CASE
                             WHEN d.status = 'sending' AND d.next_attempt_at > $1 THEN d.next_attempt_at
                             ELSE $2 END
                         FROM passed WHERE d.id = passed.id AND d.status IN {WAITING}
                         RETURNING d.id, NOT (d.status = 'sending' AND d.next_attempt_at > $1) AS publish)
                     SELECT (SELECT COUNT(*) FROM passed), w.id
                     FROM (SELECT 1) AS one LEFT JOIN (SELECT id FROM waiting WHERE publish) AS w ON true"
                );
                let rows = self
                    .db()
                    .query(&sql, &params![now, again_at, limit])
                    .await?;
                Ok(RelayStep {
                    looked_at: rows.first().map(|r| r.i64(0)).unwrap_or(0) as usize,
                    publish: rows
                        .iter()
                        .filter_map(|r| r.opt_i64(1))
                        .map(|id| RelayItem { id })
                        .collect(),
                })
            }
            Dialect::Sqlite => {
                // One writer at a time: the progress needs no lock of its own.
                let mut tx = self.batches().begin().await?;
                let passed = tx
                    .query(
                        "SELECT d.id, d.relay_at, d.status, d.next_attempt_at
                         FROM deliveries d, relay_progress p
                         WHERE p.id = 1 AND d.relay_at IS NOT NULL
                           AND (d.relay_at, d.id) > (p.looked_at, p.looked_id) AND d.relay_at <= $1
                         ORDER BY d.relay_at, d.id LIMIT $2",
                        &params![now, limit],
                    )
                    .await?;
                let mut step = RelayStep {
                    looked_at: passed.len(),
                    publish: Vec::new(),
                };
                for row in &passed {
                    let status = DeliveryStatus::parse(&row.string(2));
                    if status.is_none_or(|s| s.is_final()) {
                        continue;
                    }
                    let lease = row.ts(3);
                    let held = status == Some(DeliveryStatus::Sending) && lease > now;
                    tx.execute(
                        "UPDATE deliveries SET relay_at = $2, updated_at = $3 WHERE id = $1",
                        &params![row.i64(0), if held { lease } else { again_at }, now],
                    )
                    .await?;
                    if !held {
                        step.publish.push(RelayItem { id: row.i64(0) });
                    }
                }
                if let Some(last) = passed.last() {
                    tx.execute(
                        "UPDATE relay_progress SET looked_at = $1, looked_id = $2 WHERE id = 1",
                        &params![last.ts(1), last.i64(0)],
                    )
                    .await?;
                }
                tx.commit().await?;
                Ok(step)
            }
        }
    }
}

/// Reads claimed rows (the claim's columns) into `claimed`; `held` when the claim wrote
/// nothing (the row's relay time is then how long its message holds it).
fn take_rows(claimed: &mut HashMap<i64, ClaimedDelivery>, rows: &[Row], held: bool) {
    for r in rows {
        let kind = DeliveryKind::parse(&r.string(3)).unwrap_or(DeliveryKind::SignIn);
        claimed.insert(
            r.i64(0),
            ClaimedDelivery {
                id: r.i64(0),
                storefront_id: r.i64(1),
                account_id: r.opt_i64(2),
                kind,
                recipient: r.email(4),
                subject: r.string(5),
                attempts: r.i64(6),
                data: serde_json::from_str(&r.string(7))
                    .and_then(|json| EmailData::read(kind, json))
                    .map_err(|e| format!("the {} email's data cannot be read: {e}", kind.as_str())),
                sealed_token: r.opt_bytes(8),
                link_expires_at: r.opt_ts(9),
                created_at: r.ts(10),
                held_until: if held { r.opt_ts(11) } else { None },
                account_language: r.opt_string(12),
            },
        );
    }
}

/// What [`Store::finish_deliveries`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedBatch {
    /// Per item: false when the row had moved on (another worker took it after the lease).
    pub written: Vec<bool>,
    /// Webhook event deliveries written with the outcomes (to nudge the webhook relay).
    pub events: usize,
}

/// The `delivery.sent` / `delivery.failed` events of the outcomes in `upd` (webhooks, SPEC §9),
/// as part of the PostgreSQL outcome statement: an outcome whose storefront has no enabled
/// endpoint subscribed to its type joins nothing in `hooked` (one probe of the endpoints'
/// storefront index) and writes no row. Each event gets its id in `hook_events` (materialised
/// once: it calls a volatile function), its row in `webhook_events` with the exact JSON sent,
/// built as [`crate::store::event_body`] builds it, and a `pending` delivery per endpoint, due
/// at once for the webhook relay. The SQLite path writes the same through
/// [`emit_outcome_events`].
const OUTCOME_EVENTS: &str = "hooked AS (
         SELECT u.id, u.storefront_id, u.at, e.id AS endpoint_id
         FROM upd u JOIN webhook_endpoints e ON e.storefront_id = u.storefront_id AND e.enabled
             AND 'delivery.' || u.status = ANY (string_to_array(e.event_types, ','))
         WHERE u.status IN ('sent', 'failed')),
     hook_events AS (
         SELECT u.id, u.storefront_id, u.at, 'delivery.' || u.status AS type,
             'evt_' || left(replace(gen_random_uuid()::text, '-', ''), 24) AS public_id,
             jsonb_build_object('delivery_id', u.id, 'kind', u.kind, 'recipient', u.recipient,
                 'account_id', u.account_id,
                 'error', CASE WHEN u.status = 'failed' THEN u.error END) AS data
         FROM upd u WHERE u.id IN (SELECT id FROM hooked)),
     hook_event_rows AS (
         INSERT INTO webhook_events (public_id, storefront_id, type, created_at, body)
         SELECT v.public_id, v.storefront_id, v.type, v.at,
             jsonb_build_object('id', v.public_id, 'type', v.type,
                 'created', to_char(v.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                 'storefront', s.slug, 'data', v.data)::text
         FROM hook_events v JOIN storefronts s ON s.id = v.storefront_id
         RETURNING id, public_id),
     hook_deliveries AS (
         INSERT INTO webhook_deliveries (endpoint_id, event_id, storefront_id, status, created_at,
             updated_at, next_attempt_at, relay_at)
         SELECT h.endpoint_id, r.id, h.storefront_id, 'pending', h.at, h.at, h.at, h.at
         FROM hook_event_rows r JOIN hook_events v ON v.public_id = r.public_id
             JOIN hooked h ON h.id = v.id
         RETURNING id)";

/// `delivery.sent` / `delivery.failed` for the outcomes written (webhooks, SPEC §9), in their
/// transaction (the SQLite path; PostgreSQL's is [`OUTCOME_EVENTS`]). Answers the event
/// deliveries written.
async fn emit_outcome_events(
    conn: &mut dyn Conn,
    items: &[FinishItem],
    written: &[i64],
) -> DbResult<usize> {
    use crate::domain::events::EventType;
    use crate::store::events::{NewEvent, emit_events};
    let Some(now) = items.iter().map(|i| i.now).max() else {
        return Ok(0);
    };
    let events: Vec<NewEvent> = items
        .iter()
        .filter(|i| written.contains(&i.claimed.id))
        .filter_map(|i| {
            let (t, error) = match &i.finish {
                Finish::Sent => (EventType::DeliverySent, None),
                Finish::Failed { error } => (EventType::DeliveryFailed, Some(error.clone())),
                Finish::Deferred { .. } => return None,
            };
            let c = &i.claimed;
            let data = serde_json::json!({"delivery_id": c.id, "kind": c.kind.as_str(), "recipient": c.recipient.as_str(), "account_id": c.account_id, "error": error});
            Some(NewEvent::new(c.storefront_id, t, data))
        })
        .collect();
    Ok(emit_events(conn, &events, now).await?.len())
}
