//! Delivery truth after the relay accepted an email: reports from the recipient's side (bounces,
//! delays, complaints) recorded on the delivery, and the storefront's suppression list they
//! feed. An address on the list gets no more email from the storefront: later deliveries to it
//! are written `suppressed` with the reason, until staff lift it.

use chrono::{DateTime, Utc};

use super::Store;
use super::db::{Conn, DbResult, Dialect};
use super::deliveries::DeliveryStatus;
use crate::domain::EmailAddress;
use crate::params;

/// Why an address is on the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuppressionReason {
    /// The recipient's server said the address does not exist or cannot receive (5.x.x).
    HardBounce,
    /// The recipient reported an email as spam.
    Complaint,
}

impl SuppressionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::HardBounce => "hard_bounce",
            SuppressionReason::Complaint => "complaint",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hard_bounce" => Some(SuppressionReason::HardBounce),
            "complaint" => Some(SuppressionReason::Complaint),
            _ => None,
        }
    }

    /// In the words of the Emails tab and the Suppressions page.
    pub fn describe(self) -> &'static str {
        match self {
            SuppressionReason::HardBounce => "hard bounce",
            SuppressionReason::Complaint => "spam complaint",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Suppression {
    pub id: i64,
    pub storefront_id: i64,
    pub email: EmailAddress,
    pub reason: SuppressionReason,
    /// The remote server's diagnostic, or the complaint's feedback type.
    pub detail: String,
    /// The delivery whose report put the address on the list.
    pub delivery_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub lifted_at: Option<DateTime<Utc>>,
    /// Who lifted it (a staff member's email, or the API key's label).
    pub lifted_by: Option<String>,
}

impl Suppression {
    /// What a delivery not sent because of this suppression records as its reason.
    pub fn not_sent_reason(&self) -> String {
        not_sent_reason(self.reason, &self.detail)
    }
}

/// What a delivery not sent because of a suppression records as its reason.
pub(crate) fn not_sent_reason(reason: SuppressionReason, detail: &str) -> String {
    format!(
        "not sent: the address is on the suppression list ({}: {detail})",
        reason.describe()
    )
}

const COLUMNS: &str =
    "id, storefront_id, email, reason, detail, delivery_id, created_at, lifted_at, lifted_by";

fn suppression_from(r: &super::Row) -> Suppression {
    Suppression {
        id: r.i64(0),
        storefront_id: r.i64(1),
        email: r.email(2),
        reason: SuppressionReason::parse(&r.string(3)).unwrap_or(SuppressionReason::HardBounce),
        detail: r.string(4),
        delivery_id: r.opt_i64(5),
        created_at: r.ts(6),
        lifted_at: r.opt_ts(7),
        lifted_by: r.opt_string(8),
    }
}

/// What a report from the recipient's side says happened to an email.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// Undeliverable for good (5.x.x): the delivery ends `bounced`, the address is suppressed.
    Bounce,
    /// Not delivered yet, still being tried (4.x.x): noted in the history only.
    Delay,
    /// Reported as spam: the delivery ends `complained`, the address is suppressed.
    Complaint,
}

/// One report about one delivery, as the bounce listener parsed it.
#[derive(Debug, Clone)]
pub struct DeliveryReport {
    pub kind: ReportKind,
    /// The enhanced status code (`5.1.1`), when the report gives one.
    pub status_code: Option<String>,
    /// The remote server's diagnostic (or the complaint's feedback type).
    pub diagnostic: String,
    /// Who reported it (the reporting MTA), for the history's worker column.
    pub reporter: String,
    pub received_at: DateTime<Utc>,
}

/// What recording a report changed.
#[derive(Debug, Clone)]
pub struct RecordedReport {
    pub delivery_id: i64,
    pub storefront_id: i64,
    pub account_id: Option<i64>,
    pub recipient: EmailAddress,
    /// The delivery's new status, when the report changed it.
    pub new_status: Option<DeliveryStatus>,
    /// The suppression the report added (none when the address was already suppressed).
    pub suppression: Option<Suppression>,
}

/// The suppression in force for an address of a storefront, inside the caller's transaction.
pub(crate) async fn suppression_in_force(
    conn: &mut dyn Conn,
    storefront_id: i64,
    email: &EmailAddress,
) -> DbResult<Option<Suppression>> {
    Ok(conn
        .query(
            &format!(
                "SELECT {COLUMNS} FROM suppressions
                 WHERE storefront_id = $1 AND address_key = $2 AND lifted_at IS NULL"
            ),
            &params![storefront_id, email.key()],
        )
        .await?
        .first()
        .map(suppression_from))
}

impl Store {
    /// The suppression in force for this address, if any.
    pub async fn suppression_for(
        &self,
        storefront_id: i64,
        email: &EmailAddress,
    ) -> DbResult<Option<Suppression>> {
        let mut conn = self.db().conn().await?;
        suppression_in_force(&mut *conn, storefront_id, email).await
    }

    /// A storefront's suppressions in force, newest first, `limit` at a time from `before` (an
    /// id, exclusive).
    pub async fn suppressions_page(
        &self,
        storefront_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> DbResult<Vec<Suppression>> {
        let rows = self
            .db()
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM suppressions
                     WHERE storefront_id = $1 AND lifted_at IS NULL AND id < $2
                     ORDER BY id DESC LIMIT $3"
                ),
                &params![storefront_id, before.unwrap_or(i64::MAX), limit],
            )
            .await?;
        Ok(rows.iter().map(suppression_from).collect())
    }

    /// One suppression of the storefront (in force or lifted).
    pub async fn suppression(&self, storefront_id: i64, id: i64) -> DbResult<Option<Suppression>> {
        Ok(self
            .db()
            .query_opt(
                &format!("SELECT {COLUMNS} FROM suppressions WHERE storefront_id = $1 AND id = $2"),
                &params![storefront_id, id],
            )
            .await?
            .as_ref()
            .map(suppression_from))
    }

    /// Lifts a suppression in force, with its audit entry in the same transaction; `None`
    /// when the storefront has no such suppression in force.
    pub async fn lift_suppression(
        &self,
        storefront_id: i64,
        id: i64,
        by: &str,
        staff: Option<&super::StaffUser>,
        now: DateTime<Utc>,
    ) -> DbResult<Option<Suppression>> {
        let mut tx = self.db().begin().await?;
        let lifted = tx
            .query_opt(
                &format!(
                    "UPDATE suppressions SET lifted_at = $3, lifted_by = $4
                     WHERE storefront_id = $1 AND id = $2 AND lifted_at IS NULL
                     RETURNING {COLUMNS}"
                ),
                &params![storefront_id, id, now, by],
            )
            .await?
            .as_ref()
            .map(suppression_from);
        if let Some(s) = &lifted {
            super::insert_audit(
                &mut *tx,
                Some(storefront_id),
                staff,
                "suppression.lifted",
                &serde_json::json!({
                    "suppression_id": s.id,
                    "email": s.email.as_str(),
                    "reason": s.reason.as_str(),
                    "by": by,
                }),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(lifted)
    }

    /// Records a report about a delivery the product sent: an entry in its attempt history with
    /// the diagnostic, the new status (`bounced`, `complained`; a delay changes none), and for a
    /// bounce or complaint the address on the storefront's suppression list. `None` when there
    /// is no such delivery. A report about a delivery already bounced or complained about is
    /// recorded in the history without changing anything else.
    pub async fn record_delivery_report(
        &self,
        delivery_id: i64,
        report: &DeliveryReport,
    ) -> DbResult<Option<RecordedReport>> {
        let now = report.received_at;
        let mut tx = self.db().begin().await?;
        let lock = match self.dialect() {
            Dialect::Postgres => " FOR UPDATE",
            Dialect::Sqlite => "",
        };
        let Some(row) = tx
            .query_opt(
                &format!(
                    "SELECT storefront_id, account_id, recipient, status, attempts FROM deliveries WHERE id = $1{lock}"
                ),
                &params![delivery_id],
            )
            .await?
        else {
            tx.commit().await?;
            return Ok(None);
        };
        let storefront_id = row.i64(0);
        let recipient = row.email(2);
        let status = DeliveryStatus::parse(&row.string(3));
        let attempts = row.i64(4);
        let (outcome, new_status, reason) = match report.kind {
            ReportKind::Bounce => (
                "bounced",
                Some(DeliveryStatus::Bounced),
                Some(SuppressionReason::HardBounce),
            ),
            ReportKind::Complaint => (
                "complained",
                Some(DeliveryStatus::Complained),
                Some(SuppressionReason::Complaint),
            ),
            ReportKind::Delay => ("delayed", None, None),
        };
        let detail = match &report.status_code {
            Some(code) if !report.diagnostic.contains(code.as_str()) => {
                format!("{code} {}", report.diagnostic)
            }
            _ => report.diagnostic.clone(),
        };
        // After the sending try in the history (which is numbered `attempts`).
        tx.execute(
            "INSERT INTO delivery_attempts (delivery_id, attempt, started_at, finished_at, outcome, smtp_code, detail, worker)
             VALUES ($1, $2, $3, $3, $4, $5, $6, $7)",
            &params![
                delivery_id,
                attempts + 1,
                now,
                outcome,
                smtp_code(report.status_code.as_deref()),
                detail.clone(),
                report.reporter.clone()
            ],
        )
        .await?;
        // A bounce or complaint ends a delivery the relay had accepted; one already bounced
        // or complained about keeps its first verdict.
        let changed = match new_status {
            Some(s)
                if !matches!(
                    status,
                    Some(DeliveryStatus::Bounced | DeliveryStatus::Complained)
                ) =>
            {
                tx.execute(
                    "UPDATE deliveries SET status = $2, last_error = $3, updated_at = $4 WHERE id = $1",
                    &params![delivery_id, s.as_str(), detail.clone(), now],
                )
                .await?;
                Some(s)
            }
            _ => None,
        };
        let suppression = match reason {
            Some(reason) => {
                let on_conflict =
                    "ON CONFLICT (storefront_id, address_key) WHERE lifted_at IS NULL DO NOTHING";
                tx.query_opt(
                    &format!(
                        "INSERT INTO suppressions (storefront_id, address_key, email, reason, detail, delivery_id, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7) {on_conflict}
                         RETURNING {COLUMNS}"
                    ),
                    &params![
                        storefront_id,
                        recipient.key(),
                        recipient.as_str(),
                        reason.as_str(),
                        detail.clone(),
                        delivery_id,
                        now
                    ],
                )
                .await?
                .as_ref()
                .map(suppression_from)
            }
            None => None,
        };
        tx.commit().await?;
        Ok(Some(RecordedReport {
            delivery_id,
            storefront_id,
            account_id: row.opt_i64(1),
            recipient,
            new_status: changed,
            suppression,
        }))
    }
}

/// The basic SMTP code an enhanced status code stands for (`5.1.1` → 550, `4.2.2` → 450).
fn smtp_code(status: Option<&str>) -> Option<i64> {
    match status?.chars().next()? {
        '5' => Some(550),
        '4' => Some(450),
        _ => None,
    }
}
