//! Invoices: what an account sees on Billing, the operator's upserts by external reference
//! and their read-back, and paying one through Stripe Checkout (the Checkout noted on the invoice and its attempt
//! counter, Processing while a debit is on its way, and the receipt or failure email written
//! in the transaction that changes the status).

use chrono::{DateTime, NaiveDate, Utc};

use super::Store;
use super::contacts::contact_by_ref;
use super::db::{Conn, DbResult, Row, Value, qualified};
use super::deliveries::{NewDelivery, WrittenDelivery, insert_delivery};
use super::page::{Page, keyset, keyset_params, page_of};
use super::rentals::rental_by_ref;
use super::rows::{ACCOUNT_COLUMNS, Account, account_from};
use super::upsert::{Unresolved, UpsertResult, Upserted, insert_or_update};
use crate::domain::Money;
use crate::domain::events::EventType;
use crate::params;

#[derive(Debug, Clone)]
pub struct Invoice {
    pub id: i64,
    pub storefront_id: i64,
    pub facility_id: i64,
    pub facility_name: String,
    pub rental_id: Option<i64>,
    pub number: String,
    pub description: String,
    pub amount: Money,
    pub issued_on: NaiveDate,
    pub due_on: NaiveDate,
    pub status: String,
    pub paid_at: Option<DateTime<Utc>>,
    pub checkout_session_id: Option<String>,
    /// Which Checkout of the invoice the next (or current) one is: part of its Stripe
    /// idempotency key, moved on when a Checkout is expired, replaced or its payment failed.
    pub checkout_attempt: i64,
}

/// The Billing filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvoiceFilter {
    All,
    Pending,
    Paid,
}

impl InvoiceFilter {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "" | "all" => InvoiceFilter::All,
            "pending" => InvoiceFilter::Pending,
            "paid" => InvoiceFilter::Paid,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            InvoiceFilter::All => "all",
            InvoiceFilter::Pending => "pending",
            InvoiceFilter::Paid => "paid",
        }
    }
}

const INVOICE_COLUMNS: &str = "i.id, i.storefront_id, i.facility_id, f.name, i.rental_id, i.number, i.description, i.amount_minor, i.currency, i.issued_on, i.due_on, i.status, i.paid_at, i.checkout_session_id, i.checkout_attempt";

/// Invoices an account may see: those of its contacts, on its storefront.
const ACCOUNT_INVOICES: &str = "FROM invoices i
     JOIN contacts c ON c.id = i.contact_id
     JOIN facilities f ON f.id = i.facility_id
     WHERE c.account_id = $1 AND i.storefront_id = $2";

fn invoice_from(r: &Row) -> Invoice {
    Invoice {
        id: r.i64(0),
        storefront_id: r.i64(1),
        facility_id: r.i64(2),
        facility_name: r.string(3),
        rental_id: r.opt_i64(4),
        number: r.string(5),
        description: r.string(6),
        amount: Money::new(r.i64(7), &r.string(8)).unwrap_or(Money::new(0, "USD").expect("valid")),
        issued_on: r.date(9),
        due_on: r.date(10),
        status: r.string(11),
        paid_at: r.opt_ts(12),
        checkout_session_id: r.opt_string(13),
        checkout_attempt: r.i64(14),
    }
}

#[derive(Debug, Clone)]
pub struct InvoiceFields {
    pub contact_ref: String,
    pub rental_ref: Option<String>,
    pub number: String,
    pub description: String,
    pub amount_minor: i64,
    pub currency: String,
    pub issued_on: NaiveDate,
    pub due_on: NaiveDate,
    pub status: String,
}

#[derive(Debug, Clone)]
pub struct InvoiceRecord {
    pub id: i64,
    pub external_ref: String,
    pub facility_ref: String,
    /// As stored: an invoice already paid stays paid when an upsert says `pending`.
    pub fields: InvoiceFields,
    pub paid_at: Option<DateTime<Utc>>,
    /// The Stripe Checkout Session it is being (or was) paid through.
    pub checkout_session_id: Option<String>,
    /// The Stripe PaymentIntent of its payment.
    pub payment_intent_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An invoice as the API shows it; the statement goes on with its `WHERE`.
const INVOICE_RECORD: &str = "SELECT i.id, i.external_ref, c.external_ref, r.external_ref, f.external_ref, i.number,
        i.description, i.amount_minor, i.currency, i.issued_on, i.due_on, i.status, i.paid_at,
        i.created_at, i.updated_at, i.checkout_session_id, i.payment_intent_id
     FROM invoices i JOIN contacts c ON c.id = i.contact_id JOIN facilities f ON f.id = i.facility_id
     LEFT JOIN rentals r ON r.id = i.rental_id";

fn invoice_record_from(r: &Row) -> InvoiceRecord {
    InvoiceRecord {
        id: r.i64(0),
        external_ref: r.string(1),
        facility_ref: r.string(4),
        fields: InvoiceFields {
            contact_ref: r.string(2),
            rental_ref: r.opt_string(3),
            number: r.string(5),
            description: r.string(6),
            amount_minor: r.i64(7),
            currency: r.string(8),
            issued_on: r.date(9),
            due_on: r.date(10),
            status: r.string(11),
        },
        paid_at: r.opt_ts(12),
        checkout_session_id: r.opt_string(15),
        payment_intent_id: r.opt_string(16),
        created_at: r.ts(13),
        updated_at: r.ts(14),
    }
}

impl Store {
    pub async fn account_invoices(
        &self,
        storefront_id: i64,
        account_id: i64,
        filter: InvoiceFilter,
    ) -> DbResult<Vec<Invoice>> {
        let status = match filter {
            InvoiceFilter::All => "",
            // Not paid yet: waiting for payment, or a debit on its way.
            InvoiceFilter::Pending => "AND i.status IN ('pending', 'processing')",
            InvoiceFilter::Paid => "AND i.status = 'paid'",
        };
        let sql = format!(
            "SELECT {INVOICE_COLUMNS} {ACCOUNT_INVOICES} {status} ORDER BY i.issued_on DESC, i.id DESC"
        );
        Ok(self
            .db()
            .query(&sql, &params![account_id, storefront_id])
            .await?
            .iter()
            .map(invoice_from)
            .collect())
    }

    /// One invoice, only if the account may see it.
    pub async fn account_invoice(
        &self,
        storefront_id: i64,
        account_id: i64,
        invoice_id: i64,
    ) -> DbResult<Option<Invoice>> {
        let sql = format!("SELECT {INVOICE_COLUMNS} {ACCOUNT_INVOICES} AND i.id = $3");
        Ok(self
            .db()
            .query_opt(&sql, &params![account_id, storefront_id, invoice_id])
            .await?
            .as_ref()
            .map(invoice_from))
    }

    pub async fn invoice(&self, invoice_id: i64) -> DbResult<Option<Invoice>> {
        let sql = format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices i JOIN facilities f ON f.id = i.facility_id WHERE i.id = $1"
        );
        Ok(self
            .db()
            .query_opt(&sql, &params![invoice_id])
            .await?
            .as_ref()
            .map(invoice_from))
    }

    /// Creates or replaces an invoice by its external reference. An invoice already paid
    /// (through the portal, or an earlier upsert) stays paid when the upsert says `pending`;
    /// `paid_at` is kept while it stays paid. One whose payment is processing (a debit on its
    /// way) stays processing when the upsert says `pending`.
    pub async fn upsert_invoice(
        &self,
        storefront_id: i64,
        external_ref: &str,
        i: &InvoiceFields,
        now: DateTime<Utc>,
    ) -> UpsertResult<InvoiceRecord> {
        let mut tx = self.db().begin().await?;
        let Some(contact) = contact_by_ref(&mut *tx, storefront_id, &i.contact_ref).await? else {
            return Ok(Err(Unresolved::Contact));
        };
        let (contact_id, facility_id) = (contact.id, contact.facility_id);
        let mut rental_id = None;
        if let Some(rental_ref) = &i.rental_ref {
            let Some(rental) = rental_by_ref(&mut *tx, storefront_id, rental_ref).await? else {
                return Ok(Err(Unresolved::Rental));
            };
            if rental.contact_id != contact_id {
                return Ok(Err(Unresolved::RentalOfAnotherContact));
            }
            rental_id = Some(rental.id);
        }
        let common = [
            Value::from(storefront_id),
            Value::from(external_ref),
            Value::from(facility_id),
            Value::from(contact_id),
            Value::from(rental_id),
            Value::from(i.number.as_str()),
            Value::from(i.description.as_str()),
            Value::from(i.amount_minor),
            Value::from(i.currency.as_str()),
            Value::from(i.issued_on),
            Value::from(i.due_on),
            Value::from(i.status.as_str()),
            Value::from(now),
        ];
        let mut insert_values = common.to_vec();
        insert_values.push(Value::from((i.status == "paid").then_some(now)));
        let (id, created) = insert_or_update(
            &mut *tx,
            (
                "INSERT INTO invoices (storefront_id, external_ref, facility_id, contact_id, rental_id, number,
                     description, amount_minor, currency, issued_on, due_on, status, created_at, updated_at, paid_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14)
                 ON CONFLICT (storefront_id, external_ref) DO NOTHING RETURNING id",
                &insert_values,
            ),
            (
                "UPDATE invoices SET facility_id = $3, contact_id = $4, rental_id = $5, number = $6,
                     description = $7, amount_minor = $8, currency = $9, issued_on = $10, due_on = $11,
                     status = CASE WHEN status IN ('paid', 'processing') AND $12 = 'pending' THEN status ELSE $12 END,
                     paid_at = CASE WHEN $12 = 'paid' OR (status = 'paid' AND $12 = 'pending')
                                    THEN COALESCE(paid_at, $13) ELSE NULL END,
                     updated_at = $13
                 WHERE storefront_id = $1 AND external_ref = $2 RETURNING id",
                &common,
            ),
        )
        .await?;
        let sql = format!("{INVOICE_RECORD} WHERE i.id = $1");
        let row = tx.query_one(&sql, &params![id]).await?;
        tx.commit().await?;
        Ok(Ok(Upserted {
            record: invoice_record_from(&row),
            created,
        }))
    }

    /// A page of the storefront's invoices as the API shows them, newest first.
    pub async fn invoice_records(
        &self,
        storefront_id: i64,
        before: Option<i64>,
        limit: i64,
    ) -> DbResult<Page<InvoiceRecord>> {
        let sql = format!("{INVOICE_RECORD} {}", keyset("i"));
        let rows = self
            .db()
            .query(&sql, &keyset_params(storefront_id, before, limit))
            .await?;
        let items = rows.iter().map(invoice_record_from).collect();
        Ok(page_of(items, limit, |i: &InvoiceRecord| i.id))
    }

    /// The storefront's invoice with this reference (`None` for another storefront's).
    pub async fn invoice_record(
        &self,
        storefront_id: i64,
        external_ref: &str,
    ) -> DbResult<Option<InvoiceRecord>> {
        let sql = format!("{INVOICE_RECORD} WHERE i.storefront_id = $1 AND i.external_ref = $2");
        Ok(self
            .db()
            .query_opt(&sql, &params![storefront_id, external_ref])
            .await?
            .as_ref()
            .map(invoice_record_from))
    }

    /// Notes the Checkout Session an invoice is being paid through, if the invoice is still
    /// waiting for payment at `attempt` with no other Checkout noted (a concurrent press of Pay
    /// may have noted this same session already). Returns whether the session is the noted one.
    pub async fn start_invoice_checkout(
        &self,
        invoice_id: i64,
        attempt: i64,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> DbResult<bool> {
        let updated = self
            .db()
            .execute(
                "UPDATE invoices SET checkout_session_id = $3, checkout_started_at = COALESCE(checkout_started_at, $4),
                     updated_at = $4
                 WHERE id = $1 AND status = 'pending' AND checkout_attempt = $2
                     AND (checkout_session_id IS NULL OR checkout_session_id = $3)",
                &params![invoice_id, attempt, session_id, now],
            )
            .await?;
        Ok(updated == 1)
    }

    /// Invoices left in a Checkout since before `before`: (invoice id, session id).
    pub async fn invoices_in_checkout(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> DbResult<Vec<(i64, String)>> {
        Ok(self
            .db()
            .query(
                "SELECT id, checkout_session_id FROM invoices
                 WHERE status IN ('pending', 'processing') AND checkout_session_id IS NOT NULL
                     AND checkout_started_at < $1
                 ORDER BY checkout_started_at LIMIT $2",
                &params![before, limit],
            )
            .await?
            .iter()
            .map(|r| (r.i64(0), r.string(1)))
            .collect())
    }

    /// Forgets a Checkout Session that expired or is being replaced, if it is still the one
    /// noted, and moves the invoice on to its next attempt (so the next Checkout gets a new
    /// idempotency key). Returns whether it did.
    pub async fn clear_invoice_checkout(
        &self,
        invoice_id: i64,
        session_id: &str,
        now: DateTime<Utc>,
    ) -> DbResult<bool> {
        let updated = self
            .db()
            .execute(
                "UPDATE invoices SET checkout_session_id = NULL, checkout_started_at = NULL,
                     checkout_attempt = checkout_attempt + 1, updated_at = $3
                 WHERE id = $1 AND checkout_session_id = $2 AND status = 'pending'",
                &params![invoice_id, session_id, now],
            )
            .await?;
        Ok(updated == 1)
    }

    /// Marks a pending invoice Processing: its Checkout completed but the payment is still on
    /// its way (a pre-authorized debit). Returns whether it changed (a repeated or late event,
    /// after the invoice was paid, changes nothing).
    pub async fn mark_invoice_processing(
        &self,
        invoice_id: i64,
        payment_intent: Option<&str>,
        now: DateTime<Utc>,
    ) -> DbResult<bool> {
        let updated = self
            .db()
            .execute(
                "UPDATE invoices SET status = 'processing', updated_at = $2,
                     payment_intent_id = COALESCE($3, payment_intent_id)
                 WHERE id = $1 AND status = 'pending'",
                &params![invoice_id, now, payment_intent],
            )
            .await?;
        Ok(updated == 1)
    }

    /// Marks a pending (or processing) invoice paid and writes its receipt email in the same
    /// transaction. Returns the receipt's delivery (suppressed when the address is on the suppression list), or `None` when the invoice was neither
    /// (already paid: a repeated event changes nothing).
    pub async fn mark_invoice_paid<F>(
        &self,
        invoice_id: i64,
        payment_intent: Option<&str>,
        receipt: F,
        now: DateTime<Utc>,
    ) -> DbResult<Option<WrittenDelivery>>
    where
        F: FnOnce(&Invoice, &Account) -> NewDelivery + Send,
    {
        let mut tx = self.db().begin().await?;
        let updated = tx
            .execute(
                "UPDATE invoices SET status = 'paid', paid_at = $2, updated_at = $2,
                     payment_intent_id = COALESCE($3, payment_intent_id)
                 WHERE id = $1 AND status IN ('pending', 'processing')",
                &params![invoice_id, now, payment_intent],
            )
            .await?;
        let delivery = if updated == 0 {
            None
        } else {
            super::events::emit_invoice_event(
                &mut *tx,
                invoice_id,
                EventType::InvoicePaid,
                None,
                now,
            )
            .await?;
            email_owner(&mut *tx, invoice_id, receipt, now).await?
        };
        tx.commit().await?;
        Ok(delivery)
    }

    /// A debit that was processing failed: the invoice waits for payment again (its next
    /// Checkout is a new attempt) and the customer's email saying so is written in the same
    /// transaction. Only a processing invoice changes, and only for its own PaymentIntent when
    /// one is named; returns the email's delivery id, or `None` when nothing changed.
    pub async fn mark_invoice_payment_failed<F>(
        &self,
        invoice_id: i64,
        payment_intent: Option<&str>,
        notice: F,
        now: DateTime<Utc>,
    ) -> DbResult<Option<WrittenDelivery>>
    where
        F: FnOnce(&Invoice, &Account) -> NewDelivery + Send,
    {
        const FAILED: &str = "UPDATE invoices SET status = 'pending', checkout_session_id = NULL,
                 checkout_started_at = NULL, checkout_attempt = checkout_attempt + 1,
                 payment_intent_id = NULL, updated_at = $2
             WHERE id = $1 AND status = 'processing'";
        let mut tx = self.db().begin().await?;
        // The PaymentIntent that failed, for the event: the one Stripe named, else the one the
        // invoice held (the update clears it).
        let failed_intent = match payment_intent {
            Some(pi) => Some(pi.to_string()),
            None => tx
                .query_opt(
                    "SELECT payment_intent_id FROM invoices WHERE id = $1",
                    &params![invoice_id],
                )
                .await?
                .and_then(|r| r.opt_string(0)),
        };
        let updated = match payment_intent {
            Some(pi) => {
                tx.execute(
                    &format!("{FAILED} AND (payment_intent_id IS NULL OR payment_intent_id = $3)"),
                    &params![invoice_id, now, pi],
                )
                .await?
            }
            None => tx.execute(FAILED, &params![invoice_id, now]).await?,
        };
        let delivery = if updated == 0 {
            None
        } else {
            super::events::emit_invoice_event(
                &mut *tx,
                invoice_id,
                EventType::InvoicePaymentFailed,
                failed_intent.as_deref(),
                now,
            )
            .await?;
            email_owner(&mut *tx, invoice_id, notice, now).await?
        };
        tx.commit().await?;
        Ok(delivery)
    }
}

/// Writes an email to the owner of an invoice (the account of its contact), inside the
/// transaction that changed the invoice. `None` when no account owns it.
async fn email_owner<F>(
    tx: &mut dyn Conn,
    invoice_id: i64,
    email: F,
    now: DateTime<Utc>,
) -> DbResult<Option<WrittenDelivery>>
where
    F: FnOnce(&Invoice, &Account) -> NewDelivery + Send,
{
    let sql = format!(
        "SELECT {INVOICE_COLUMNS} FROM invoices i JOIN facilities f ON f.id = i.facility_id WHERE i.id = $1"
    );
    let invoice = invoice_from(&tx.query_one(&sql, &params![invoice_id]).await?);
    let cols = qualified(ACCOUNT_COLUMNS, "a");
    let owner = tx
        .query_opt(
            &format!(
                "SELECT {cols} FROM invoices i JOIN contacts c ON c.id = i.contact_id
                 JOIN accounts a ON a.id = c.account_id WHERE i.id = $1"
            ),
            &params![invoice_id],
        )
        .await?
        .as_ref()
        .map(account_from);
    Ok(match owner {
        Some(account) => Some(insert_delivery(tx, &email(&invoice, &account), now).await?),
        None => None,
    })
}
