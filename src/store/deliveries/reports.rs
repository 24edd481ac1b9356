//! Reports from the recipient's side about an email the relay accepted (bounces, delays,
//! complaints), recorded on the delivery with the storefront's suppression list they feed
//! ([`crate::store::Suppression`]).

use chrono::{DateTime, Utc};
use serde_json::json;

use super::DeliveryStatus;
use crate::domain::EmailAddress;
use crate::domain::events::EventType;
use crate::params;
use crate::store::Store;
use crate::store::db::{DbResult, Dialect};
use crate::store::events::{NewEvent, emit_events};
use crate::store::suppressions::{COLUMNS, Suppression, SuppressionReason, suppression_from};

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
    /// Webhook event deliveries written with it (`delivery.bounced` / `delivery.complained`,
    /// `suppression.added`), for the webhook relay.
    pub events: usize,
}

impl Store {
    /// Records a report about a delivery the product sent: an entry in its attempt history with
    /// the diagnostic, the new status (`bounced`, `complained`; a delay changes none), and for a
    /// bounce or complaint the address on the storefront's suppression list. `None` when there
    /// is no such delivery. A report about a delivery already bounced or complained about is
    /// recorded in the history without changing anything else. The webhook events of what
    /// changed (`delivery.bounced` / `delivery.complained`, `suppression.added`) are written in
    /// the same transaction.
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
                    "SELECT storefront_id, account_id, recipient, status, attempts, kind FROM deliveries WHERE id = $1{lock}"
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
        let mut events = Vec::new();
        if let Some(s) = changed {
            let event_type = match s {
                DeliveryStatus::Complained => EventType::DeliveryComplained,
                _ => EventType::DeliveryBounced,
            };
            events.push(NewEvent::new(
                storefront_id,
                event_type,
                json!({
                    "delivery_id": delivery_id,
                    "kind": row.string(5),
                    "recipient": recipient.as_str(),
                    "account_id": row.opt_i64(1),
                    "status_code": report.status_code,
                    "diagnostic": report.diagnostic,
                }),
            ));
        }
        if let Some(s) = &suppression {
            events.push(NewEvent::new(
                storefront_id,
                EventType::SuppressionAdded,
                json!({
                    "suppression_id": s.id,
                    "email": s.email.as_str(),
                    "reason": s.reason.as_str(),
                    "detail": s.detail,
                    "delivery_id": s.delivery_id,
                }),
            ));
        }
        let events = emit_events(&mut *tx, &events, now).await?.len();
        tx.commit().await?;
        Ok(Some(RecordedReport {
            delivery_id,
            storefront_id,
            account_id: row.opt_i64(1),
            recipient,
            new_status: changed,
            suppression,
            events,
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
