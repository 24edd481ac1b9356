//! Delivery truth after the relay accepted an email: reports from the recipient's side (bounces,
//! delays, complaints) recorded on the delivery, and the storefront's suppression list they
//! feed. An address on the list gets no more email from the storefront: later deliveries to it
//! are written `suppressed` with the reason, until staff lift it.

use chrono::{DateTime, Utc};

use super::Store;
use super::db::{Conn, DbResult};
use super::page::{Page, keyset_params, page_of};
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

pub(crate) const COLUMNS: &str =
    "id, storefront_id, email, reason, detail, delivery_id, created_at, lifted_at, lifted_by";

pub(crate) fn suppression_from(r: &super::Row) -> Suppression {
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
    /// id, exclusive), keyset-paged like the other read-backs ([`super::page`]).
    pub async fn suppressions_page(
        &self,
        storefront_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> DbResult<Page<Suppression>> {
        let rows = self
            .db()
            .query(
                // `keyset` with the lifted ones left out.
                &format!(
                    "SELECT {COLUMNS} FROM suppressions
                     WHERE storefront_id = $1 AND lifted_at IS NULL AND id < $2
                     ORDER BY id DESC LIMIT $3"
                ),
                &keyset_params(storefront_id, before, limit),
            )
            .await?;
        Ok(page_of(
            rows.iter().map(suppression_from).collect(),
            limit,
            |s| s.id,
        ))
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

    /// Lifts a suppression in force, with its audit entry and its `suppression.lifted` webhook
    /// event in the same transaction; `None` when the storefront has no such suppression in
    /// force.
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
            let data = serde_json::json!({
                "suppression_id": s.id,
                "email": s.email.as_str(),
                "reason": s.reason.as_str(),
                "lifted_by": by,
            });
            let event = super::events::NewEvent::new(
                storefront_id,
                crate::domain::events::EventType::SuppressionLifted,
                data,
            );
            super::events::emit_event(&mut *tx, event, now).await?;
        }
        tx.commit().await?;
        Ok(lifted)
    }
}
