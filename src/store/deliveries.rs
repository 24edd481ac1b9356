//! Deliveries (one row per email) and their attempts: the delivery log behind the facility
//! Emails tab, and the source of truth the queue works from.

use chrono::{DateTime, Duration, Utc};

use super::Store;
use super::db::{Conn, DbResult, Dialect, Row};
use crate::params;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryKind {
    SignIn,
    BookingConfirmation,
    EmailChanged,
    PaymentReceipt,
}

impl DeliveryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::SignIn => "sign_in",
            DeliveryKind::BookingConfirmation => "booking_confirmation",
            DeliveryKind::EmailChanged => "email_changed",
            DeliveryKind::PaymentReceipt => "payment_receipt",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "sign_in" => DeliveryKind::SignIn,
            "booking_confirmation" => DeliveryKind::BookingConfirmation,
            "email_changed" => DeliveryKind::EmailChanged,
            "payment_receipt" => DeliveryKind::PaymentReceipt,
            _ => return None,
        })
    }

    /// Kinds whose email carries a magic link.
    pub fn carries_link(self) -> bool {
        matches!(
            self,
            DeliveryKind::SignIn | DeliveryKind::BookingConfirmation
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    Queued,
    Sending,
    Sent,
    Deferred,
    Failed,
    Suppressed,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 6] = [
        DeliveryStatus::Queued,
        DeliveryStatus::Sending,
        DeliveryStatus::Sent,
        DeliveryStatus::Deferred,
        DeliveryStatus::Failed,
        DeliveryStatus::Suppressed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Deferred => "deferred",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Suppressed => "suppressed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Sent | DeliveryStatus::Failed | DeliveryStatus::Suppressed
        )
    }
}

/// An email to record (and, unless suppressed, to send).
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub storefront_id: i64,
    pub account_id: Option<i64>,
    pub kind: DeliveryKind,
    pub recipient: String,
    pub subject: String,
    /// What the template needs besides the storefront (names, amounts, paths).
    pub payload: serde_json::Value,
    /// The link's token sealed with the server key (erased once the email is final).
    pub sealed_token: Option<Vec<u8>>,
    pub link_expires_at: Option<DateTime<Utc>>,
    /// Facilities whose Emails tab shows it, besides those of the account's contacts.
    pub facility_ids: Vec<i64>,
    /// When the relay should publish it again if no worker has taken it.
    pub relay_after: Duration,
    /// Recorded as `suppressed` with this reason instead of being queued.
    pub suppressed_reason: Option<String>,
}

/// Writes a delivery inside the caller's transaction; returns its id.
pub(crate) async fn insert_delivery(
    conn: &mut dyn Conn,
    d: &NewDelivery,
    now: DateTime<Utc>,
) -> DbResult<i64> {
    let (status, relay_at, last_error) = match &d.suppressed_reason {
        Some(reason) => ("suppressed", None, Some(reason.clone())),
        None => ("queued", Some(now + d.relay_after), None),
    };
    let id = conn
        .query(
            "INSERT INTO deliveries (storefront_id, account_id, kind, recipient, subject, status,
                 last_error, payload, sealed_token, link_expires_at, created_at, updated_at, next_attempt_at, relay_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $11, $12)
             RETURNING id",
            &params![
                d.storefront_id,
                d.account_id,
                d.kind.as_str(),
                d.recipient.as_str(),
                d.subject.as_str(),
                status,
                last_error,
                d.payload.to_string(),
                d.sealed_token.clone(),
                d.link_expires_at,
                now,
                relay_at
            ],
        )
        .await?
        .first()
        .map(|r| r.i64(0))
        .ok_or_else(|| super::DbError::Query("insert returned no id".into()))?;
    if let Some(account_id) = d.account_id {
        conn.execute(
            "INSERT INTO delivery_facilities (facility_id, delivery_id)
             SELECT DISTINCT facility_id, CAST($1 AS BIGINT) FROM contacts WHERE account_id = $2
             ON CONFLICT DO NOTHING",
            &params![id, account_id],
        )
        .await?;
    }
    for facility_id in &d.facility_ids {
        conn.execute(
            "INSERT INTO delivery_facilities (facility_id, delivery_id) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
            &params![*facility_id, id],
        )
        .await?;
    }
    Ok(id)
}

/// A delivery a worker has taken: status `sending` until it finishes or its lease ends.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub id: i64,
    pub storefront_id: i64,
    pub account_id: Option<i64>,
    pub kind: DeliveryKind,
    pub recipient: String,
    pub subject: String,
    /// Attempts made before this one.
    pub attempts: i64,
    pub payload: serde_json::Value,
    pub sealed_token: Option<Vec<u8>>,
    pub link_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// How a claim treats a row another worker may still hold.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRules {
    pub now: DateTime<Utc>,
    /// The lease: if the worker dies, the row may be taken again after this.
    pub lease_until: DateTime<Utc>,
    /// The broker says an earlier consumer of this message died without acknowledging it.
    pub redelivered: bool,
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

/// A delivery as the log shows it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub storefront_id: i64,
    pub account_id: Option<i64>,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub has_sealed_token: bool,
}

pub(crate) const DELIVERY_COLUMNS: &str = "id, storefront_id, account_id, kind, recipient, subject, status, attempts, last_error, created_at, updated_at, next_attempt_at, sent_at, sealed_token IS NOT NULL";

pub(crate) fn delivery_from(r: &Row) -> Delivery {
    Delivery {
        id: r.i64(0),
        storefront_id: r.i64(1),
        account_id: r.opt_i64(2),
        kind: r.string(3),
        recipient: r.string(4),
        subject: r.string(5),
        status: DeliveryStatus::parse(&r.string(6)).unwrap_or(DeliveryStatus::Failed),
        attempts: r.i64(7),
        last_error: r.opt_string(8),
        created_at: r.ts(9),
        updated_at: r.ts(10),
        next_attempt_at: r.ts(11),
        sent_at: r.opt_ts(12),
        has_sealed_token: r.bool(13),
    }
}

#[derive(Debug, Clone)]
pub struct Attempt {
    pub attempt: i64,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: String,
    pub smtp_code: Option<i64>,
    pub detail: String,
    pub worker: String,
}

/// A row the relay found waiting too long, now published again.
#[derive(Debug, Clone, Copy)]
pub struct RelayItem {
    pub id: i64,
}

impl Store {
    /// Takes a delivery for sending. `None` when another worker has it, it is final, or a
    /// deferred row is not due yet: the caller acknowledges the message and moves on.
    pub async fn claim_delivery(
        &self,
        id: i64,
        rules: ClaimRules,
    ) -> DbResult<Option<ClaimedDelivery>> {
        // The claim need not wait for its WAL flush: if the database loses it in a crash, the
        // row is simply taken again, as it would be when its lease ran out (the email may go
        // twice either way; sending is at-least-once). set_config(…, true) scopes the setting
        // to this statement's own transaction.
        let relaxed = match self.dialect() {
            Dialect::Postgres => {
                "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS relaxed"
            }
            Dialect::Sqlite => "",
        };
        let sql = format!(
            "UPDATE deliveries SET status = 'sending', updated_at = $2, next_attempt_at = $3, relay_at = $3
             {relaxed}
             WHERE id = $1 AND (
                 status = 'queued'
                 OR (status = 'deferred' AND next_attempt_at <= $4)
                 OR (status = 'sending' AND (next_attempt_at <= $2 OR $5)))
             RETURNING id, storefront_id, account_id, kind, recipient, subject, attempts, payload,
                 sealed_token, link_expires_at, created_at"
        );
        let row = self
            .db()
            .query_opt(
                &sql,
                &params![
                    id,
                    rules.now,
                    rules.lease_until,
                    rules.now + Duration::seconds(1),
                    rules.redelivered
                ],
            )
            .await?;
        Ok(row.map(|r| ClaimedDelivery {
            id: r.i64(0),
            storefront_id: r.i64(1),
            account_id: r.opt_i64(2),
            kind: DeliveryKind::parse(&r.string(3)).unwrap_or(DeliveryKind::SignIn),
            recipient: r.string(4),
            subject: r.string(5),
            attempts: r.i64(6),
            payload: serde_json::from_str(&r.string(7)).unwrap_or(serde_json::Value::Null),
            sealed_token: r.opt_bytes(8),
            link_expires_at: r.opt_ts(9),
            created_at: r.ts(10),
        }))
    }

    /// Records the outcome of a claimed delivery: the attempt row (when there was a try) and
    /// the new status, in one transaction. The sealed token is erased once the status is final.
    /// Returns false when the row had moved on (another worker took it after the lease).
    pub async fn finish_delivery(
        &self,
        claimed: &ClaimedDelivery,
        attempt: Option<&AttemptRecord>,
        finish: &Finish,
        now: DateTime<Utc>,
    ) -> DbResult<bool> {
        let status = finish.status();
        let attempts = claimed.attempts + attempt.is_some() as i64;
        let (error, next_attempt_at, relay_at) = match finish {
            Finish::Sent => (None, now, None),
            Finish::Deferred {
                next_attempt_at,
                relay_at,
                error,
            } => (Some(error.clone()), *next_attempt_at, Some(*relay_at)),
            Finish::Failed { error } => (Some(error.clone()), now, None),
        };
        const UPDATE: &str = "UPDATE deliveries SET status = $2, attempts = $3, last_error = COALESCE($4, last_error),
                 updated_at = $5, next_attempt_at = $6, relay_at = $7,
                 sent_at = CASE WHEN $2 = 'sent' THEN $5 ELSE sent_at END,
                 sealed_token = CASE WHEN $8 THEN NULL ELSE sealed_token END
             WHERE id = $1 AND status = 'sending' AND attempts = $9";
        let mut values = params![
            claimed.id,
            status.as_str(),
            attempts,
            error,
            now,
            next_attempt_at,
            relay_at,
            status.is_final(),
            claimed.attempts
        ];
        let Some(a) = attempt else {
            return Ok(self.db().execute(UPDATE, &values).await? == 1);
        };
        values.extend(params![
            a.started_at,
            a.finished_at,
            a.smtp_code.map(i64::from),
            a.detail.as_str(),
            a.worker.as_str()
        ]);
        const INSERT: &str = "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, finished_at, outcome, smtp_code, detail, worker)
             VALUES ($1, $3, $10, $11, $2, $12, $13, $14)";
        match self.dialect() {
            // One statement: the attempt row and the status change commit together.
            Dialect::Postgres => {
                let sql = format!(
                    "WITH att AS ({INSERT} RETURNING 1), upd AS ({UPDATE} RETURNING 1)
                     SELECT (SELECT COUNT(*) FROM upd)"
                );
                Ok(self.db().query_one(&sql, &values).await?.i64(0) == 1)
            }
            Dialect::Sqlite => {
                let mut tx = self.db().begin().await?;
                tx.execute(INSERT, &values).await?;
                let updated = tx.execute(UPDATE, &values[..9]).await?;
                tx.commit().await?;
                Ok(updated == 1)
            }
        }
    }

    /// Takes up to `limit` rows whose relay time has passed (queued or deferred rows the broker
    /// never delivered, sending rows whose worker died), and pushes their relay time forward
    /// so this node owns republishing them. The caller publishes each one.
    pub async fn take_relay_batch(
        &self,
        now: DateTime<Utc>,
        again_at: DateTime<Utc>,
        limit: i64,
    ) -> DbResult<Vec<RelayItem>> {
        let sql = match self.dialect() {
            Dialect::Postgres => {
                "UPDATE deliveries SET relay_at = $2 WHERE id IN (
                     SELECT id FROM deliveries WHERE relay_at IS NOT NULL AND relay_at <= $1
                     ORDER BY relay_at LIMIT $3 FOR UPDATE SKIP LOCKED)
                 RETURNING id"
            }
            Dialect::Sqlite => {
                "UPDATE deliveries SET relay_at = $2 WHERE id IN (
                     SELECT id FROM deliveries WHERE relay_at IS NOT NULL AND relay_at <= $1
                     ORDER BY relay_at LIMIT $3)
                 RETURNING id"
            }
        };
        let rows = self.db().query(sql, &params![now, again_at, limit]).await?;
        Ok(rows.iter().map(|r| RelayItem { id: r.i64(0) }).collect())
    }

    pub async fn delivery(&self, id: i64) -> DbResult<Option<Delivery>> {
        let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = $1");
        Ok(self
            .db()
            .query_opt(&sql, &params![id])
            .await?
            .as_ref()
            .map(delivery_from))
    }

    /// The newest deliveries of an account, newest first.
    pub async fn account_deliveries(&self, account_id: i64, limit: i64) -> DbResult<Vec<Delivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE account_id = $1 ORDER BY id DESC LIMIT $2"
        );
        Ok(self
            .db()
            .query(&sql, &params![account_id, limit])
            .await?
            .iter()
            .map(delivery_from)
            .collect())
    }

    pub async fn delivery_attempts(&self, delivery_id: i64) -> DbResult<Vec<Attempt>> {
        let rows = self
            .db()
            .query(
                "SELECT attempt, started_at, finished_at, outcome, smtp_code, detail, worker
                 FROM delivery_attempts WHERE delivery_id = $1 ORDER BY attempt, id",
                &params![delivery_id],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Attempt {
                attempt: r.i64(0),
                started_at: r.ts(1),
                finished_at: r.ts(2),
                outcome: r.string(3),
                smtp_code: r.opt_i64(4),
                detail: r.string(5),
                worker: r.string(6),
            })
            .collect())
    }

    /// Deliveries not yet final (queued, sending, deferred): the work still ahead.
    pub async fn pending_deliveries(&self) -> DbResult<i64> {
        Ok(self
            .db()
            .query_one(
                "SELECT COUNT(*) FROM deliveries WHERE relay_at IS NOT NULL",
                &[],
            )
            .await?
            .i64(0))
    }
}
