//! Invoices, payment methods and Stripe's webhook events.

use chrono::{DateTime, NaiveDate, Utc};

use super::Store;
use super::db::{DbResult, Dialect, Row, Value};
use super::deliveries::{NewDelivery, insert_delivery};
use super::storefronts::{ACCOUNT_COLUMNS, Account, account_from};
use crate::domain::Money;
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentMethod {
    pub id: i64,
    pub stripe_id: String,
    /// `card` or `acss_debit`.
    pub kind: String,
    /// Card brand, or the bank's name for a pre-authorized debit.
    pub brand: String,
    pub last4: String,
    pub exp_month: Option<i64>,
    pub exp_year: Option<i64>,
}

/// A payment method as Stripe reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPaymentMethod {
    pub stripe_id: String,
    pub kind: String,
    pub brand: String,
    pub last4: String,
    pub exp_month: Option<i64>,
    pub exp_year: Option<i64>,
}

fn payment_method_from(r: &Row) -> PaymentMethod {
    PaymentMethod {
        id: r.i64(0),
        stripe_id: r.string(1),
        kind: r.string(2),
        brand: r.string(3),
        last4: r.string(4),
        exp_month: r.opt_i64(5),
        exp_year: r.opt_i64(6),
    }
}

/// Where a webhook event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventState {
    /// First time seen (now recorded).
    New,
    /// Seen before but not processed yet (an earlier try failed).
    Pending,
    /// Already processed: nothing to do.
    Done,
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
    /// transaction. Returns the receipt's delivery id, or `None` when the invoice was neither
    /// (already paid: a repeated event changes nothing).
    pub async fn mark_invoice_paid<F>(
        &self,
        invoice_id: i64,
        payment_intent: Option<&str>,
        receipt: F,
        now: DateTime<Utc>,
    ) -> DbResult<Option<i64>>
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
    ) -> DbResult<Option<i64>>
    where
        F: FnOnce(&Invoice, &Account) -> NewDelivery + Send,
    {
        const FAILED: &str = "UPDATE invoices SET status = 'pending', checkout_session_id = NULL,
                 checkout_started_at = NULL, checkout_attempt = checkout_attempt + 1,
                 payment_intent_id = NULL, updated_at = $2
             WHERE id = $1 AND status = 'processing'";
        let mut tx = self.db().begin().await?;
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
            email_owner(&mut *tx, invoice_id, notice, now).await?
        };
        tx.commit().await?;
        Ok(delivery)
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

    /// Which setup-mode Checkout of the account the next one is (its idempotency key).
    pub async fn setup_checkout_attempt(&self, account_id: i64) -> DbResult<i64> {
        Ok(self
            .db()
            .query_one(
                "SELECT setup_checkout_attempt FROM accounts WHERE id = $1",
                &params![account_id],
            )
            .await?
            .i64(0))
    }

    /// Moves the account on from setup attempt `attempt` once its Checkout is opened, so the
    /// next press opens a new one; a concurrent press that opened the same one changes nothing.
    pub async fn setup_checkout_opened(&self, account_id: i64, attempt: i64) -> DbResult<()> {
        self.db()
            .execute(
                "UPDATE accounts SET setup_checkout_attempt = $2 + 1
                 WHERE id = $1 AND setup_checkout_attempt = $2",
                &params![account_id, attempt],
            )
            .await?;
        Ok(())
    }

    pub async fn payment_methods(&self, account_id: i64) -> DbResult<Vec<PaymentMethod>> {
        Ok(self
            .db()
            .query(
                "SELECT id, stripe_id, kind, brand, last4, exp_month, exp_year FROM payment_methods
                 WHERE account_id = $1 ORDER BY id",
                &params![account_id],
            )
            .await?
            .iter()
            .map(payment_method_from)
            .collect())
    }

    /// One payment method, only if it is the account's.
    pub async fn account_payment_method(
        &self,
        account_id: i64,
        id: i64,
    ) -> DbResult<Option<PaymentMethod>> {
        Ok(self
            .db()
            .query_opt(
                "SELECT id, stripe_id, kind, brand, last4, exp_month, exp_year FROM payment_methods
                 WHERE account_id = $1 AND id = $2",
                &params![account_id, id],
            )
            .await?
            .as_ref()
            .map(payment_method_from))
    }

    /// Makes the stored payment methods of an account what Stripe says they are.
    pub async fn replace_payment_methods(
        &self,
        account_id: i64,
        methods: &[NewPaymentMethod],
        now: DateTime<Utc>,
    ) -> DbResult<()> {
        let mut tx = self.db().begin().await?;
        let keep: Vec<Option<String>> = methods.iter().map(|m| Some(m.stripe_id.clone())).collect();
        match self.dialect() {
            Dialect::Postgres => {
                tx.execute(
                    "DELETE FROM payment_methods WHERE account_id = $1 AND NOT (stripe_id = ANY($2))",
                    &[Value::from(account_id), Value::Texts(keep)],
                )
                .await?;
            }
            Dialect::Sqlite => {
                let stored = tx
                    .query(
                        "SELECT stripe_id FROM payment_methods WHERE account_id = $1",
                        &params![account_id],
                    )
                    .await?;
                for row in stored {
                    let id = row.string(0);
                    if !methods.iter().any(|m| m.stripe_id == id) {
                        tx.execute(
                            "DELETE FROM payment_methods WHERE account_id = $1 AND stripe_id = $2",
                            &params![account_id, id],
                        )
                        .await?;
                    }
                }
            }
        }
        for m in methods {
            tx.execute(
                "INSERT INTO payment_methods (account_id, stripe_id, kind, brand, last4, exp_month, exp_year, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (stripe_id) DO UPDATE SET account_id = excluded.account_id, kind = excluded.kind,
                     brand = excluded.brand, last4 = excluded.last4, exp_month = excluded.exp_month,
                     exp_year = excluded.exp_year",
                &params![
                    account_id,
                    m.stripe_id.as_str(),
                    m.kind.as_str(),
                    m.brand.as_str(),
                    m.last4.as_str(),
                    m.exp_month,
                    m.exp_year,
                    now
                ],
            )
            .await?;
        }
        tx.commit().await
    }

    pub async fn delete_payment_method(&self, account_id: i64, stripe_id: &str) -> DbResult<()> {
        self.db()
            .execute(
                "DELETE FROM payment_methods WHERE account_id = $1 AND stripe_id = $2",
                &params![account_id, stripe_id],
            )
            .await?;
        Ok(())
    }

    /// Stores the account's Stripe customer unless one was stored meanwhile; returns the one
    /// that is stored.
    pub async fn set_stripe_customer(&self, account_id: i64, customer: &str) -> DbResult<String> {
        self.db()
            .execute(
                "UPDATE accounts SET stripe_customer_id = $2 WHERE id = $1 AND stripe_customer_id IS NULL",
                &params![account_id, customer],
            )
            .await?;
        Ok(self
            .db()
            .query_one(
                "SELECT stripe_customer_id FROM accounts WHERE id = $1",
                &params![account_id],
            )
            .await?
            .string(0))
    }

    pub async fn account_by_stripe_customer(&self, customer: &str) -> DbResult<Option<Account>> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE stripe_customer_id = $1");
        Ok(self
            .db()
            .query_opt(&sql, &params![customer])
            .await?
            .as_ref()
            .map(account_from))
    }

    /// Records a webhook event (once per event id) and says whether it still needs work.
    pub async fn record_stripe_event(
        &self,
        event_id: &str,
        event_type: &str,
        payload: &str,
        now: DateTime<Utc>,
    ) -> DbResult<EventState> {
        let inserted = self
            .db()
            .execute(
                "INSERT INTO stripe_events (event_id, event_type, payload, received_at, next_attempt_at)
                 VALUES ($1, $2, $3, $4, $4) ON CONFLICT (event_id) DO NOTHING",
                &params![event_id, event_type, payload, now],
            )
            .await?;
        if inserted == 1 {
            return Ok(EventState::New);
        }
        let row = self
            .db()
            .query_one(
                "SELECT processed_at IS NOT NULL FROM stripe_events WHERE event_id = $1",
                &params![event_id],
            )
            .await?;
        Ok(if row.bool(0) {
            EventState::Done
        } else {
            EventState::Pending
        })
    }

    pub async fn mark_stripe_event_processed(
        &self,
        event_id: &str,
        now: DateTime<Utc>,
    ) -> DbResult<()> {
        self.db()
            .execute(
                "UPDATE stripe_events SET processed_at = $2, attempts = attempts + 1, last_error = NULL,
                     next_attempt_at = NULL
                 WHERE event_id = $1",
                &params![event_id, now],
            )
            .await?;
        Ok(())
    }

    /// Records a failed try; the next one is due after a delay that doubles with each failure
    /// (30 s, 1 min, 2 min, … up to about 2 hours). Returns the attempts so far.
    pub async fn mark_stripe_event_failed(
        &self,
        event_id: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> DbResult<i64> {
        let attempts = self
            .db()
            .query_one(
                "SELECT attempts FROM stripe_events WHERE event_id = $1",
                &params![event_id],
            )
            .await?
            .i64(0)
            + 1;
        let delay = chrono::Duration::seconds(30 << (attempts - 1).clamp(0, 8));
        self.db()
            .execute(
                "UPDATE stripe_events SET attempts = $2, last_error = $3, next_attempt_at = $4
                 WHERE event_id = $1",
                &params![event_id, attempts, error, now + delay],
            )
            .await?;
        Ok(attempts)
    }

    /// Events whose processing failed and is due again: (id, payload).
    pub async fn due_stripe_events(
        &self,
        now: DateTime<Utc>,
        limit: i64,
    ) -> DbResult<Vec<(String, String)>> {
        Ok(self
            .db()
            .query(
                "SELECT event_id, payload FROM stripe_events
                 WHERE processed_at IS NULL AND next_attempt_at <= $1
                 ORDER BY next_attempt_at LIMIT $2",
                &params![now, limit],
            )
            .await?
            .iter()
            .map(|r| (r.string(0), r.string(1)))
            .collect())
    }

    /// How many events are recorded, and how many processed (tests, metrics).
    pub async fn stripe_event_counts(&self) -> DbResult<(i64, i64)> {
        let row = self
            .db()
            .query_one(
                "SELECT COUNT(*), COUNT(processed_at) FROM stripe_events",
                &[],
            )
            .await?;
        Ok((row.i64(0), row.i64(1)))
    }
}

/// Writes an email to the owner of an invoice (the account of its contact), inside the
/// transaction that changed the invoice. `None` when no account owns it.
async fn email_owner<F>(
    tx: &mut dyn super::db::Conn,
    invoice_id: i64,
    email: F,
    now: DateTime<Utc>,
) -> DbResult<Option<i64>>
where
    F: FnOnce(&Invoice, &Account) -> NewDelivery + Send,
{
    let sql = format!(
        "SELECT {INVOICE_COLUMNS} FROM invoices i JOIN facilities f ON f.id = i.facility_id WHERE i.id = $1"
    );
    let invoice = invoice_from(&tx.query_one(&sql, &params![invoice_id]).await?);
    let cols = ACCOUNT_COLUMNS
        .split(", ")
        .map(|c| format!("a.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
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
