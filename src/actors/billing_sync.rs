//! BillingSync: the Stripe work that runs on timers. It retries webhook events whose
//! processing failed and reconciles invoices left in a Checkout (the webhook may never have
//! come). What a request asks of Stripe (open a Checkout, confirm one on return, add or remove
//! a payment method, take a webhook) is in [`crate::usecases::billing`]; both sides share
//! [`Payments`], which holds the gateway and what Stripe's answers do to invoices.
//!
//! Payments are never taken twice: every create carries an idempotency key naming the
//! logical operation (`…-invoice-{id}-checkout-{attempt}`), an invoice has at most one open
//! Checkout (pressing Pay again hands out the open one, or expires it first when it is past
//! use), and a Checkout completed with its payment still on its way (a pre-authorized
//! debit) marks the invoice Processing until Stripe says it succeeded (paid, receipt) or
//! failed (pending again, and an email to the customer). Webhook events are stored before
//! they are processed, so work that fails is retried, not dropped.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::spawn_work;
use crate::billing::gateway::{CheckoutState, IntentStatus, SessionStatus};
use crate::billing::{BillingError, Gateway, ProviderError};
use crate::domain::emails::{EmailData, InvoiceLine, PaymentFailed, Receipt};
use crate::error::AppError;
use crate::links::PortalLink;
use crate::mail::{payment_failed_subject, receipt_subject};
use crate::services::Services;
use crate::store::{Account, Invoice, NewDelivery, Storefront};

/// How often failed webhook work is tried again (the due ones).
const RETRY_EVERY: Duration = Duration::from_secs(30);
/// How often invoices stuck in a Checkout are reconciled, and how long one may sit first.
const RECONCILE_EVERY: Duration = Duration::from_secs(300);
const STUCK_AFTER: chrono::Duration = chrono::Duration::minutes(10);
/// How long to wait before asking again when Stripe says the same create is in flight.
pub(crate) const CONFLICT_PAUSE: Duration = Duration::from_millis(300);

pub struct BillingSync {
    work: Arc<Payments>,
}

/// The Stripe side of billing, shared by the use cases and the actor's timers: the gateway
/// (absent when no Stripe key is configured) and what Stripe's answers and events do to
/// invoices and payment methods.
pub struct Payments {
    pub(crate) svc: Arc<Services>,
    gateway: Option<Gateway>,
    /// Names this installation in idempotency keys (`lk-{scope}-…`).
    pub(crate) scope: String,
}

impl Payments {
    pub fn new(svc: Arc<Services>) -> Result<Self, ProviderError> {
        let cfg = &svc.config;
        let gateway = match &cfg.stripe_secret_key {
            Some(key) => Some(Gateway::new(
                key.expose(),
                cfg.stripe_api_base.as_ref().map(|u| u.expose()),
                Duration::from_secs(cfg.stripe_timeout_seconds),
            )?),
            None => None,
        };
        let scope = format!("lk-{}", svc.keys.idempotency_scope());
        Ok(Self {
            svc,
            gateway,
            scope,
        })
    }

    /// Whether customers can pay online (Stripe keys are configured).
    pub fn payments_enabled(config: &crate::config::Config) -> bool {
        config.stripe_secret_key.is_some()
    }
}

impl BillingSync {
    pub fn new(payments: Arc<Payments>) -> Self {
        Self { work: payments }
    }
}

impl Actor for BillingSync {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        if self.work.gateway.is_some() {
            ctx.run_interval(RETRY_EVERY, |_, ctx| ctx.notify(RetryEvents));
            ctx.run_interval(RECONCILE_EVERY, |_, ctx| ctx.notify(Reconcile));
        }
    }
}

/// Process again the stored events whose processing failed and is due.
#[derive(Message)]
#[rtype(result = "Result<usize, AppError>")]
pub struct RetryEvents;

/// Ask Stripe about invoices left in a Checkout.
#[derive(Message)]
#[rtype(result = "Result<usize, AppError>")]
pub struct Reconcile;

impl Handler<RetryEvents> for BillingSync {
    type Result = ResponseFuture<Result<usize, AppError>>;

    fn handle(&mut self, _: RetryEvents, _: &mut Context<Self>) -> Self::Result {
        let work = self.work.clone();
        spawn_work(async move { work.retry_events().await })
    }
}

impl Handler<Reconcile> for BillingSync {
    type Result = ResponseFuture<Result<usize, AppError>>;

    fn handle(&mut self, _: Reconcile, _: &mut Context<Self>) -> Self::Result {
        let work = self.work.clone();
        spawn_work(async move { work.reconcile().await })
    }
}

impl Payments {
    pub(crate) fn gateway(&self) -> Result<&Gateway, BillingError> {
        self.gateway.as_ref().ok_or(BillingError::NotConfigured)
    }

    /// The account's Stripe customer, created on first need.
    pub(crate) async fn customer(&self, account: &Account) -> Result<String, BillingError> {
        if let Some(id) = &account.stripe_customer_id {
            return Ok(id.clone());
        }
        let key = format!("{}-account-{}-customer", self.scope, account.id);
        let gateway = self.gateway()?;
        let mut tries = 0;
        let created = loop {
            match gateway
                .create_customer(account.email.as_str(), &account.full_name, account.id, &key)
                .await
            {
                // A concurrent press is creating this same customer: its answer comes soon.
                Err(e) if e.is_conflict() && tries < 3 => {
                    tries += 1;
                    tokio::time::sleep(CONFLICT_PAUSE).await;
                }
                created => break created?,
            }
        };
        Ok(self
            .svc
            .store
            .set_stripe_customer(account.id, &created)
            .await?)
    }

    /// Makes the invoice what its Checkout says: paid, processing, or (expired, or its
    /// payment failed) waiting for a new Checkout. Returns whether the invoice changed.
    pub(crate) async fn apply_checkout_state(
        &self,
        invoice: &Invoice,
        session: &str,
        state: &CheckoutState,
    ) -> Result<bool, BillingError> {
        let store = &self.svc.store;
        let id = invoice.id.to_string();
        match state.status {
            SessionStatus::Open => Ok(false),
            SessionStatus::Complete
                if state.paid || state.intent_status == Some(IntentStatus::Succeeded) =>
            {
                self.invoice_paid(
                    Some(&id),
                    state.amount_total,
                    state.currency.as_deref(),
                    state.payment_intent.as_deref(),
                )
                .await
            }
            SessionStatus::Complete if state.intent_status == Some(IntentStatus::Failed) => {
                if invoice.status == "processing" {
                    self.invoice_payment_failed(Some(&id), state.payment_intent.as_deref())
                        .await
                } else {
                    Ok(store
                        .clear_invoice_checkout(invoice.id, session, self.svc.now())
                        .await?)
                }
            }
            SessionStatus::Complete => {
                self.invoice_processing(Some(&id), state.payment_intent.as_deref())
                    .await
            }
            SessionStatus::Expired => Ok(store
                .clear_invoice_checkout(invoice.id, session, self.svc.now())
                .await?),
        }
    }

    pub(crate) async fn refresh_payment_methods(
        &self,
        account_id: i64,
        customer: &str,
    ) -> Result<(), BillingError> {
        let methods = self.gateway()?.payment_methods(customer).await?;
        self.svc
            .store
            .replace_payment_methods(account_id, &methods, self.svc.now())
            .await?;
        Ok(())
    }

    /// Processes a stored event and records the outcome.
    pub(crate) async fn process_recorded(&self, id: &str, event: &serde_json::Value) {
        let store = &self.svc.store;
        match self.process(event).await {
            Ok(()) => {
                if let Err(e) = store.mark_stripe_event_processed(id, self.svc.now()).await {
                    tracing::warn!(event = %id, error = %e, "could not mark the event processed");
                }
            }
            Err(e) => match store
                .mark_stripe_event_failed(id, &e.to_string(), self.svc.now())
                .await
            {
                Ok(attempts) => {
                    tracing::warn!(event = %id, attempts, error = %e, "webhook work failed; it will be retried")
                }
                Err(db) => {
                    tracing::error!(event = %id, error = %db, "could not record a failed event")
                }
            },
        }
    }

    async fn process(&self, event: &serde_json::Value) -> Result<(), BillingError> {
        let object = &event["data"]["object"];
        let invoice_id = object["metadata"]["invoice_id"].as_str();
        match event["type"].as_str().unwrap_or_default() {
            "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
                match (object["mode"].as_str(), object["payment_status"].as_str()) {
                    (Some("payment"), Some("paid")) => self
                        .invoice_paid(
                            invoice_id,
                            object["amount_total"].as_i64(),
                            object["currency"].as_str(),
                            object["payment_intent"].as_str(),
                        )
                        .await
                        .map(drop),
                    // Completed, the money still on its way (a pre-authorized debit).
                    (Some("payment"), Some("unpaid")) => self
                        .invoice_processing(invoice_id, object["payment_intent"].as_str())
                        .await
                        .map(drop),
                    (Some("setup"), _) => {
                        self.refresh_for_customer(object["customer"].as_str()).await
                    }
                    _ => Ok(()),
                }
            }
            "checkout.session.async_payment_failed" if object["mode"] == "payment" => self
                .invoice_payment_failed(invoice_id, object["payment_intent"].as_str())
                .await
                .map(drop),
            "payment_intent.succeeded" => self
                .invoice_paid(
                    invoice_id,
                    object["amount_received"]
                        .as_i64()
                        .or(object["amount"].as_i64()),
                    object["currency"].as_str(),
                    object["id"].as_str(),
                )
                .await
                .map(drop),
            "payment_intent.processing" => self
                .invoice_processing(invoice_id, object["id"].as_str())
                .await
                .map(drop),
            "payment_intent.payment_failed" => self
                .invoice_payment_failed(invoice_id, object["id"].as_str())
                .await
                .map(drop),
            "payment_method.attached" | "payment_method.updated" | "setup_intent.succeeded" => {
                self.refresh_for_customer(object["customer"].as_str()).await
            }
            "payment_method.detached" => {
                let customer = object["customer"]
                    .as_str()
                    .or(event["data"]["previous_attributes"]["customer"].as_str());
                self.refresh_for_customer(customer).await
            }
            _ => Ok(()),
        }
    }

    /// A Checkout completed with its payment still on its way: the invoice shows Processing
    /// (no Pay button) until Stripe says the payment succeeded or failed.
    async fn invoice_processing(
        &self,
        invoice_id: Option<&str>,
        payment_intent: Option<&str>,
    ) -> Result<bool, BillingError> {
        let Some(invoice_id) = invoice_id.and_then(|i| i.parse::<i64>().ok()) else {
            return Ok(false);
        };
        let changed = self
            .svc
            .store
            .mark_invoice_processing(invoice_id, payment_intent, self.svc.now())
            .await?;
        if changed {
            tracing::info!(invoice_id, "payment processing");
        }
        Ok(changed)
    }

    /// A processing payment failed: the invoice waits for payment again and the customer gets
    /// an email saying so and how to pay (written with the change, in one transaction).
    async fn invoice_payment_failed(
        &self,
        invoice_id: Option<&str>,
        payment_intent: Option<&str>,
    ) -> Result<bool, BillingError> {
        let Some(invoice_id) = invoice_id.and_then(|i| i.parse::<i64>().ok()) else {
            return Ok(false);
        };
        let store = &self.svc.store;
        let Some(invoice) = store.invoice(invoice_id).await? else {
            return Ok(false);
        };
        let storefront = self
            .svc
            .storefronts
            .by_id(invoice.storefront_id)
            .await?
            .ok_or(BillingError::NotFound)?;
        let billing_url = self.svc.portal_link(&storefront, PortalLink::Billing);
        let relay_after = self.svc.config.relay_after();
        let notice = |invoice: &Invoice, account: &Account| {
            payment_failed_delivery(&storefront, invoice, account, &billing_url, relay_after)
        };
        let failed =
            store.mark_invoice_payment_failed(invoice_id, payment_intent, notice, self.svc.now());
        match self.svc.write_then_enqueue(failed).await? {
            Some(delivery) => {
                tracing::info!(
                    invoice_id,
                    delivery_id = delivery.id,
                    suppressed = delivery.suppressed,
                    "payment failed; customer told"
                );
                Ok(true)
            }
            None => Ok(false),
        }
    }

    pub(crate) async fn refresh_for_customer(
        &self,
        customer: Option<&str>,
    ) -> Result<(), BillingError> {
        let Some(customer) = customer else {
            return Ok(());
        };
        match self.svc.store.account_by_stripe_customer(customer).await? {
            Some(account) => self.refresh_payment_methods(account.id, customer).await,
            None => Ok(()),
        }
    }

    /// Marks an invoice paid (once) and sends its receipt. The amount and currency Stripe
    /// collected must be the invoice's.
    async fn invoice_paid(
        &self,
        invoice_id: Option<&str>,
        amount: Option<i64>,
        currency: Option<&str>,
        payment_intent: Option<&str>,
    ) -> Result<bool, BillingError> {
        let Some(invoice_id) = invoice_id.and_then(|i| i.parse::<i64>().ok()) else {
            return Ok(false);
        };
        let store = &self.svc.store;
        let invoice = store
            .invoice(invoice_id)
            .await?
            .ok_or(BillingError::NotFound)?;
        let currency_matches =
            currency.is_some_and(|c| c.eq_ignore_ascii_case(invoice.amount.currency()));
        if amount != Some(invoice.amount.minor()) || !currency_matches {
            tracing::error!(
                invoice_id,
                ?amount,
                ?currency,
                expected = %invoice.amount,
                "a payment does not match its invoice; not marking it paid"
            );
            return Err(BillingError::App(AppError::Internal(anyhow::anyhow!(
                "payment of {amount:?} {currency:?} does not match invoice {invoice_id} ({})",
                invoice.amount
            ))));
        }
        let storefront = self
            .svc
            .storefronts
            .by_id(invoice.storefront_id)
            .await?
            .ok_or(BillingError::NotFound)?;
        let relay_after = self.svc.config.relay_after();
        let today = self.svc.now().date_naive();
        let receipt = |invoice: &Invoice, account: &Account| {
            receipt_delivery(&storefront, invoice, account, today, relay_after)
        };
        let paid = store.mark_invoice_paid(invoice_id, payment_intent, receipt, self.svc.now());
        if let Some(delivery) = self.svc.write_then_enqueue(paid).await? {
            tracing::info!(
                invoice_id,
                delivery_id = delivery.id,
                suppressed = delivery.suppressed,
                "invoice paid; receipt queued"
            );
            return Ok(true);
        }
        Ok(false)
    }

    async fn retry_events(&self) -> Result<usize, AppError> {
        let due = self
            .svc
            .store
            .due_stripe_events(self.svc.now(), 100)
            .await?;
        let n = due.len();
        for (id, payload) in due {
            match serde_json::from_str::<serde_json::Value>(&payload) {
                Ok(event) => self.process_recorded(&id, &event).await,
                Err(e) => tracing::error!(event = %id, error = %e, "a stored event is not JSON"),
            }
        }
        Ok(n)
    }

    /// Asks Stripe about invoices left in a Checkout (the webhook may never have come) and
    /// about payments still processing; returns how many invoices changed.
    async fn reconcile(&self) -> Result<usize, AppError> {
        let Some(gateway) = &self.gateway else {
            return Ok(0);
        };
        let store = &self.svc.store;
        let stuck = store
            .invoices_in_checkout(self.svc.now() - STUCK_AFTER, 100)
            .await?;
        let mut settled = 0;
        for (invoice_id, session) in stuck {
            let Some(invoice) = store.invoice(invoice_id).await? else {
                continue;
            };
            let state = match gateway.checkout_state(&session).await {
                Ok(state) => state,
                Err(e) => {
                    tracing::warn!(invoice_id, error = %e, "reconciliation could not reach Stripe");
                    continue;
                }
            };
            match self.apply_checkout_state(&invoice, &session, &state).await {
                Ok(true) if state.status != SessionStatus::Expired => settled += 1,
                Ok(_) => {}
                Err(e) => tracing::warn!(invoice_id, error = %e, "reconciliation failed"),
            }
        }
        Ok(settled)
    }
}

/// The invoice as an email names it.
fn invoice_line(invoice: &Invoice) -> InvoiceLine {
    InvoiceLine {
        number: invoice.number.clone(),
        description: invoice.description.clone(),
        facility: invoice.facility_name.clone(),
        amount: invoice.amount.into(),
    }
}

/// The receipt email for a paid invoice.
pub(crate) fn receipt_delivery(
    storefront: &Storefront,
    invoice: &Invoice,
    account: &Account,
    paid_on: chrono::NaiveDate,
    relay_after: chrono::Duration,
) -> NewDelivery {
    NewDelivery::new(
        storefront.id,
        Some(account.id),
        account.email.clone(),
        receipt_subject(&storefront.name, &invoice.number),
        EmailData::PaymentReceipt(Receipt {
            first_name: account.first_name(),
            invoice: invoice_line(invoice),
            paid_on: paid_on.into(),
        }),
        relay_after,
    )
    .also_shown_at(vec![invoice.facility_id])
}

/// The email saying a debit failed and how to pay the invoice now.
pub(crate) fn payment_failed_delivery(
    storefront: &Storefront,
    invoice: &Invoice,
    account: &Account,
    billing_url: &str,
    relay_after: chrono::Duration,
) -> NewDelivery {
    NewDelivery::new(
        storefront.id,
        Some(account.id),
        account.email.clone(),
        payment_failed_subject(&storefront.name, &invoice.number),
        EmailData::PaymentFailed(PaymentFailed {
            first_name: account.first_name(),
            invoice: invoice_line(invoice),
            billing_url: billing_url.to_string(),
        }),
        relay_after,
    )
    .also_shown_at(vec![invoice.facility_id])
}
