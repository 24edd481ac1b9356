//! Deliveries: one row per email, the source of truth the queue works from. This file has
//! what a delivery is and how one is written (inside the transaction of what caused it) and
//! read; `claim` has the workers' side (claims, outcomes, the relay), `log` the paged delivery
//! log of the facility Emails tab and the API.

mod claim;
mod log;
mod reports;

pub use claim::*;
pub use log::*;
pub use reports::*;

use chrono::{DateTime, Duration, Utc};

use super::Store;
use super::db::{Conn, DbResult, Row};
use crate::domain::{EmailAddress, EmailData};
use crate::params;

pub use crate::domain::emails::DeliveryKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    Queued,
    Sending,
    Sent,
    Deferred,
    Failed,
    Suppressed,
    /// The recipient's server accepted it, then reported it undeliverable (5.x.x).
    Bounced,
    /// The recipient reported it as spam (a complaint report).
    Complained,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 8] = [
        DeliveryStatus::Queued,
        DeliveryStatus::Sending,
        DeliveryStatus::Sent,
        DeliveryStatus::Deferred,
        DeliveryStatus::Failed,
        DeliveryStatus::Suppressed,
        DeliveryStatus::Bounced,
        DeliveryStatus::Complained,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Sending => "sending",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Deferred => "deferred",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Suppressed => "suppressed",
            DeliveryStatus::Bounced => "bounced",
            DeliveryStatus::Complained => "complained",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Sent
                | DeliveryStatus::Failed
                | DeliveryStatus::Suppressed
                | DeliveryStatus::Bounced
                | DeliveryStatus::Complained
        )
    }
}

/// An email to record (and, unless suppressed, to send).
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub storefront_id: i64,
    pub account_id: Option<i64>,
    pub recipient: EmailAddress,
    pub subject: String,
    /// What the email says besides the storefront and the link; its kind is the delivery's.
    pub data: EmailData,
    /// The link's token sealed with the server key (erased once the email is final).
    pub sealed_token: Option<Vec<u8>>,
    pub link_expires_at: Option<DateTime<Utc>>,
    /// Facilities whose Emails tab shows it, besides those of the account's contacts.
    pub facility_ids: Vec<i64>,
    /// When the relay should publish it again if no worker has taken it.
    pub relay_after: Duration,
    /// Recorded as `suppressed` with this reason instead of being queued.
    pub suppressed_reason: Option<String>,
    /// The writer already looked the recipient up on the suppression list (the sign-in
    /// paths do, before writing the token), so writing the delivery need not again.
    pub suppression_checked: bool,
}

impl NewDelivery {
    /// An email to `recipient` with no link, shown on the Emails tabs of the account's
    /// facilities; [`Self::with_link`] and [`Self::also_shown_at`] add to it.
    pub fn new(
        storefront_id: i64,
        account_id: Option<i64>,
        recipient: EmailAddress,
        subject: String,
        data: EmailData,
        relay_after: Duration,
    ) -> Self {
        Self {
            storefront_id,
            account_id,
            recipient,
            subject,
            data,
            sealed_token: None,
            link_expires_at: None,
            facility_ids: Vec::new(),
            relay_after,
            suppressed_reason: None,
            suppression_checked: false,
        }
    }

    /// Carries a link: its token sealed with the server key, and when the link expires.
    pub fn with_link(mut self, sealed_token: Vec<u8>, expires_at: DateTime<Utc>) -> Self {
        self.sealed_token = Some(sealed_token);
        self.link_expires_at = Some(expires_at);
        self
    }

    /// Shown on these facilities' Emails tabs too (the facility of the invoice it is about).
    pub fn also_shown_at(mut self, facility_ids: Vec<i64>) -> Self {
        self.facility_ids = facility_ids;
        self
    }
}

/// The answer of a store step that may have written a delivery in the transaction of its
/// change: the delivery to publish once that transaction committed (see
/// [`crate::services::Services::write_then_enqueue`]).
pub trait WroteDelivery {
    fn written_delivery(&self) -> Option<i64>;
}

/// The id of the delivery written, if one was (and it waits in `queued`).
impl WroteDelivery for Option<i64> {
    fn written_delivery(&self) -> Option<i64> {
        *self
    }
}

/// A delivery written in the caller's transaction: its id, and whether it was recorded
/// `suppressed` (the address is on the suppression list, or a limit stopped it) rather than
/// `queued`. Only a queued one is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenDelivery {
    pub id: i64,
    pub suppressed: bool,
}

impl WrittenDelivery {
    /// The id to hand to the queue: none for a suppressed delivery (nothing is sent).
    pub fn to_publish(self) -> Option<i64> {
        (!self.suppressed).then_some(self.id)
    }
}

/// The delivery to publish, if one was written and it was not suppressed.
impl WroteDelivery for Option<WrittenDelivery> {
    fn written_delivery(&self) -> Option<i64> {
        self.and_then(WrittenDelivery::to_publish)
    }
}

/// Writes a delivery inside the caller's transaction; `suppressed` when the address is on the
/// storefront's suppression list (or the caller suppressed it): then it is never published.
pub(crate) async fn insert_delivery(
    conn: &mut dyn Conn,
    d: &NewDelivery,
    now: DateTime<Utc>,
) -> DbResult<WrittenDelivery> {
    // An address on the storefront's suppression list gets nothing more.
    let on_list = if d.suppression_checked || d.suppressed_reason.is_some() {
        None
    } else {
        crate::store::suppressions::suppression_in_force(conn, d.storefront_id, &d.recipient)
            .await?
            .map(|s| s.not_sent_reason())
    };
    let suppressed = d.suppressed_reason.is_some() || on_list.is_some();
    let (status, relay_at, last_error) = match d.suppressed_reason.as_ref().or(on_list.as_ref()) {
        Some(reason) => ("suppressed", None, Some(reason.clone())),
        None => ("queued", Some(now + d.relay_after), None),
    };
    let sealed_token = if on_list.is_some() {
        None
    } else {
        d.sealed_token.clone()
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
                d.data.kind().as_str(),
                d.recipient.as_str(),
                d.subject.as_str(),
                status,
                last_error,
                d.data.stored(),
                sealed_token,
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
    Ok(WrittenDelivery { id, suppressed })
}

/// A delivery as the log shows it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub storefront_id: i64,
    pub account_id: Option<i64>,
    pub kind: String,
    pub recipient: EmailAddress,
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
        recipient: r.email(4),
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

/// Moves an account's deliveries to another account (a merge), inside the caller's
/// transaction. Returns how many.
pub(crate) async fn move_deliveries(conn: &mut dyn Conn, from: i64, to: i64) -> DbResult<u64> {
    conn.execute(
        "UPDATE deliveries SET account_id = $1 WHERE account_id = $2",
        &params![to, from],
    )
    .await
}

impl Store {
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

    /// Every try at sending the delivery, in order: the `delivery_attempts` rows (tries that
    /// failed or were deferred), then the try that sent it, which the row itself records.
    pub async fn delivery_attempts(&self, delivery_id: i64) -> DbResult<Vec<Attempt>> {
        let rows = self
            .db()
            .query(
                "SELECT attempt, started_at, finished_at, outcome, smtp_code, detail, worker, id
                 FROM delivery_attempts WHERE delivery_id = $1
                 UNION ALL
                 SELECT attempts, sent_started_at, sent_at, 'sent', sent_code, sent_detail, sent_worker, NULL
                 FROM deliveries WHERE id = $1 AND sent_detail IS NOT NULL
                 ORDER BY 1, 8",
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

    /// Deliveries not yet final (queued, sending, deferred): the work still ahead. Each has a
    /// relay time ahead of the relay's place (see [`Store::take_relay_batch`]), so only the
    /// rows of the last minute or so are counted.
    pub async fn pending_deliveries(&self) -> DbResult<i64> {
        Ok(self
            .db()
            .query_one(
                "SELECT COUNT(*) FROM deliveries d, relay_progress p
                 WHERE p.id = 1 AND d.relay_at IS NOT NULL AND (d.relay_at, d.id) > (p.looked_at, p.looked_id)
                   AND d.status IN ('queued', 'sending', 'deferred')",
                &[],
            )
            .await?
            .i64(0))
    }
}
