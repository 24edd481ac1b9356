//! Payments on Stripe's side: an account's Stripe customer and the attempt counter of its
//! setup-mode Checkouts, its payment methods (kept as Stripe reports them), and Stripe's
//! webhook events (recorded once, retried with a growing delay).

use chrono::{DateTime, Utc};

use super::Store;
use super::db::{Conn, DbResult, Dialect, Row, Value};
use super::rows::{ACCOUNT_COLUMNS, Account, account_from};
use crate::params;

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

/// Moves an account's payment methods to another account (a merge), inside the caller's
/// transaction. Returns how many.
pub(super) async fn move_payment_methods(conn: &mut dyn Conn, from: i64, to: i64) -> DbResult<u64> {
    conn.execute(
        "UPDATE payment_methods SET account_id = $1 WHERE account_id = $2",
        &params![to, from],
    )
    .await
}

impl Store {
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
        let before = super::events::payment_method_ids(&mut *tx, account_id).await?;
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
        let after: Vec<_> = methods
            .iter()
            .map(|m| {
                (
                    m.stripe_id.clone(),
                    m.kind.as_str().to_string(),
                    m.last4.clone(),
                )
            })
            .collect();
        super::events::emit_payment_method_events(&mut *tx, account_id, &before, &after, now)
            .await?;
        tx.commit().await
    }

    pub async fn delete_payment_method(
        &self,
        account_id: i64,
        stripe_id: &str,
        now: DateTime<Utc>,
    ) -> DbResult<()> {
        let mut tx = self.db().begin().await?;
        let deleted = tx
            .execute(
                "DELETE FROM payment_methods WHERE account_id = $1 AND stripe_id = $2",
                &params![account_id, stripe_id],
            )
            .await?;
        if deleted > 0 {
            let before = [stripe_id.to_string()];
            super::events::emit_payment_method_events(&mut *tx, account_id, &before, &[], now)
                .await?;
        }
        tx.commit().await
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
