//! Bounces and complaints coming back (SPEC §9): what the bounce listener received for a
//! delivery's VERP address, recorded on the delivery (`bounced`, `complained`, or a `delayed`
//! entry in its history, with the remote server's diagnostic) and, for a hard bounce or a
//! complaint, the address put on the storefront's suppression list. [`StoreSink`] is the
//! listener's [`BounceSink`]: the listener knows SMTP and MIME, this knows the store.

use std::sync::Arc;

use crate::error::AppError;
use crate::mail::bounce::{self, BounceSink, ParsedReport, ReportError};
use crate::metrics::OutcomeLabel;
use crate::services::Services;
use crate::store::{DeliveryReport, RecordedReport, ReportKind};

/// What became of one message received for a delivery.
#[derive(Debug, Clone)]
pub enum ReportOutcome {
    /// Recorded on the delivery (its new status and the suppression it added, if any).
    Recorded(RecordedReport),
    /// The VERP address was genuine but names no delivery (deleted since, or another
    /// installation sharing the secret key): nothing recorded.
    UnknownDelivery,
    /// Not a bounce or complaint (an auto-reply, a malformed report): nothing recorded.
    Ignored(ReportError),
}

/// The report as the store records it: a 5.x.x notice is a bounce, a 4.x.x one a delay.
pub fn delivery_report(parsed: &ParsedReport, svc: &Services) -> DeliveryReport {
    let kind = match parsed.kind {
        bounce::ReportKind::Bounce { permanent: true } => ReportKind::Bounce,
        bounce::ReportKind::Bounce { permanent: false } => ReportKind::Delay,
        bounce::ReportKind::Complaint => ReportKind::Complaint,
    };
    let diagnostic = match (&parsed.diagnostic, kind) {
        (Some(d), ReportKind::Complaint) => format!(
            "spam complaint (Feedback-Type: {}): {d}",
            parsed.feedback_type.as_deref().unwrap_or("abuse")
        ),
        (Some(d), _) => d.clone(),
        (None, ReportKind::Complaint) => format!(
            "spam complaint (Feedback-Type: {})",
            parsed.feedback_type.as_deref().unwrap_or("abuse")
        ),
        (None, _) => "the report gives no diagnostic".to_string(),
    };
    DeliveryReport {
        kind,
        status_code: parsed.status.clone(),
        diagnostic,
        reporter: parsed
            .reporting_mta
            .clone()
            .unwrap_or_else(|| "unknown reporting MTA".to_string()),
        received_at: svc.now(),
    }
}

/// Records what the listener received for `delivery_id`, logs it and counts it.
pub async fn record(
    svc: &Services,
    delivery_id: i64,
    parsed: Result<ParsedReport, ReportError>,
) -> Result<ReportOutcome, AppError> {
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => {
            tracing::info!(delivery_id, reason = %e, "bounce report ignored: nothing recorded");
            count(svc, "ignored");
            return Ok(ReportOutcome::Ignored(e));
        }
    };
    let report = delivery_report(&parsed, svc);
    let Some(recorded) = svc
        .store
        .record_delivery_report(delivery_id, &report)
        .await?
    else {
        tracing::info!(
            delivery_id,
            "bounce report refused: its VERP address names no delivery"
        );
        count(svc, "unknown_delivery");
        return Ok(ReportOutcome::UnknownDelivery);
    };
    let outcome = match (report.kind, recorded.new_status) {
        (ReportKind::Delay, _) => "delayed",
        (ReportKind::Bounce, Some(_)) => "bounced",
        (ReportKind::Complaint, Some(_)) => "complained",
        (_, None) => "repeated",
    };
    tracing::info!(
        delivery_id,
        storefront_id = recorded.storefront_id,
        outcome,
        status = report.status_code.as_deref().unwrap_or(""),
        reporter = %report.reporter,
        suppressed = recorded.suppression.is_some(),
        "bounce report accepted"
    );
    count(svc, outcome);
    Ok(ReportOutcome::Recorded(recorded))
}

fn count(svc: &Services, outcome: &'static str) {
    svc.metrics
        .bounce_reports
        .get_or_create(&OutcomeLabel { outcome })
        .inc();
}

/// The bounce listener's sink: records each report through [`record`]. A store failure makes
/// the listener answer 451, so the sending MTA tries again later.
pub struct StoreSink {
    svc: Arc<Services>,
}

impl StoreSink {
    pub fn new(svc: Arc<Services>) -> Self {
        Self { svc }
    }
}

#[async_trait::async_trait]
impl BounceSink for StoreSink {
    async fn report(
        &self,
        delivery_id: i64,
        parsed: Result<ParsedReport, ReportError>,
    ) -> Result<(), String> {
        record(&self.svc, delivery_id, parsed)
            .await
            .map(|_| ())
            .map_err(|e| {
                tracing::warn!(delivery_id, error = %e, "bounce report not recorded: the sender will retry");
                e.to_string()
            })
    }
}
