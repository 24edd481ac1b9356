//! BillingSync: everything that talks to Stripe. Starts Checkout Sessions (payment and
//! setup), detaches payment methods, processes webhook events exactly once per event id, and
//! on timers retries events whose processing failed and reconciles invoices left in a
//! Checkout. Webhook events are stored before they are processed, so work that fails is
//! retried, not dropped.
//!
//! Payments are never taken twice: every create carries an idempotency key naming the
//! logical operation (`…-invoice-{id}-checkout-{attempt}`), an invoice has at most one open
//! Checkout (pressing Pay again hands out the open one, or expires it first when it is past
//! use), and a Checkout completed with its payment still on its way (a pre-authorized
//! debit) marks the invoice Processing until Stripe says it succeeded (paid, receipt) or
//! failed (pending again, and an email to the customer).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::spawn_work;
use crate::billing::gateway::{
    CheckoutState, IntentStatus, PaymentCheckout, SessionStatus, SetupCheckout,
};
use crate::billing::{Gateway, ProviderError};
use crate::domain::webhook::{SignatureError, VerifiedPayload};
use crate::error::AppError;
use crate::mail::{payment_failed_subject, receipt_subject};
use crate::services::Services;
use crate::store::{Account, DeliveryKind, EventState, Invoice, NewDelivery, Storefront};

/// How often failed webhook work is tried again (the due ones).
const RETRY_EVERY: Duration = Duration::from_secs(30);
/// How often invoices stuck in a Checkout are reconciled, and how long one may sit first.
const RECONCILE_EVERY: Duration = Duration::from_secs(300);
const STUCK_AFTER: chrono::Duration = chrono::Duration::minutes(10);
/// An open Checkout is handed out again on Pay only if Stripe keeps it open this much longer;
/// closer to its end it is expired and a new one opened.
const CHECKOUT_REUSE_MARGIN_SECONDS: i64 = 30 * 60;
/// How long to wait before asking again when Stripe says the same create is in flight.
const CONFLICT_PAUSE: Duration = Duration::from_millis(300);
/// How many invoices the return from Checkout asks Stripe about.
const CONFIRM_AT_MOST: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("online payment is not configured")]
    NotConfigured,
    #[error("not found")]
    NotFound,
    #[error("this invoice is not waiting for payment")]
    NotPayable,
    #[error("the payment of this invoice is being processed")]
    Processing,
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<tokio::task::JoinError> for WebhookError {
    fn from(e: tokio::task::JoinError) -> Self {
        WebhookError::App(e.into())
    }
}

impl From<crate::store::DbError> for BillingError {
    fn from(e: crate::store::DbError) -> Self {
        BillingError::App(e.into())
    }
}

impl From<actix::MailboxError> for BillingError {
    fn from(e: actix::MailboxError) -> Self {
        BillingError::App(e.into())
    }
}

impl From<tokio::task::JoinError> for BillingError {
    fn from(e: tokio::task::JoinError) -> Self {
        BillingError::App(e.into())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("webhooks are not configured")]
    NotConfigured,
    #[error("bad signature: {0}")]
    Signature(#[from] SignatureError),
    #[error("malformed event: {0}")]
    Malformed(String),
    #[error(transparent)]
    App(#[from] AppError),
}

pub struct BillingSync {
    work: Arc<BillingWork>,
}

struct BillingWork {
    svc: Arc<Services>,
    gateway: Option<Gateway>,
    /// Names this installation in idempotency keys (`lk-{scope}-…`).
    scope: String,
}

impl BillingSync {
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
            work: Arc::new(BillingWork {
                svc,
                gateway,
                scope,
            }),
        })
    }

    /// Whether customers can pay online (Stripe keys are configured).
    pub fn payments_enabled(config: &crate::config::Config) -> bool {
        config.stripe_secret_key.is_some()
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

/// Open a Checkout to pay one invoice; the answer is the URL to send the customer to.
#[derive(Message)]
#[rtype(result = "Result<String, BillingError>")]
pub struct StartPayment {
    pub storefront: Arc<Storefront>,
    pub account: Account,
    pub invoice_id: i64,
}

/// Back from Checkout: ask Stripe about the account's invoices waiting in a Checkout, so the
/// page shows what is true now (paid, or processing) even before the webhook arrives. The
/// answer: the invoices Stripe says are still unpaid (their Checkout open, or expired).
#[derive(Message)]
#[rtype(result = "Result<Vec<i64>, BillingError>")]
pub struct ConfirmCheckouts {
    pub storefront: Arc<Storefront>,
    pub account: Account,
}

/// Open a Checkout in setup mode to add a card (or a pre-authorized debit).
#[derive(Message)]
#[rtype(result = "Result<String, BillingError>")]
pub struct StartSetup {
    pub storefront: Arc<Storefront>,
    pub account: Account,
}

/// Detach one of the account's payment methods.
#[derive(Message)]
#[rtype(result = "Result<(), BillingError>")]
pub struct RemovePaymentMethod {
    pub account: Account,
    pub id: i64,
}

/// Read the account's payment methods from Stripe into the database.
#[derive(Message)]
#[rtype(result = "Result<(), BillingError>")]
pub struct RefreshPaymentMethods {
    pub account: Account,
}

/// A webhook delivery whose signature the web layer checked (off the request threads).
#[derive(Message)]
#[rtype(result = "Result<(), WebhookError>")]
pub struct HandleWebhook {
    pub payload: VerifiedPayload,
}

/// Process again the stored events whose processing failed and is due.
#[derive(Message)]
#[rtype(result = "Result<usize, AppError>")]
pub struct RetryEvents;

/// Ask Stripe about invoices left in a Checkout.
#[derive(Message)]
#[rtype(result = "Result<usize, AppError>")]
pub struct Reconcile;

impl Handler<StartPayment> for BillingSync {
    type Result = ResponseFuture<Result<String, BillingError>>;

    fn handle(&mut self, msg: StartPayment, _: &mut Context<Self>) -> Self::Result {
        let work = self.work.clone();
        spawn_work(async move { work.start_payment(msg).await })
    }
}

impl Handler<ConfirmCheckouts> for BillingSync {
    type Result = ResponseFuture<Result<Vec<i64>, BillingError>>;

    fn handle(&mut self, msg: ConfirmCheckouts, _: &mut Context<Self>) -> Self::Result {
        let work = self.work.clone();
        spawn_work(async move { work.confirm_checkouts(msg).await })
    }
}

impl Handler<StartSetup> for BillingSync {
    type Result = ResponseFuture<Result<String, BillingError>>;

    fn handle(&mut self, msg: StartSetup, _: &mut Context<Self>) -> Self::Result {
        let work = self.work.clone();
        spawn_work(async move { work.start_setup(msg).await })
    }
}

impl Handler<RemovePaymentMethod> for BillingSync {
    type Result = ResponseFuture<Result<(), BillingError>>;

    fn handle(&mut self, msg: RemovePaymentMethod, _: &mut Context<Self>) -> Self::Result {
        let work = self.work.clone();
        spawn_work(async move { work.remove_payment_method(msg).await })
    }
}

impl Handler<RefreshPaymentMethods> for BillingSync {
    type Result = ResponseFuture<Result<(), BillingError>>;

    fn handle(&mut self, msg: RefreshPaymentMethods, _: &mut Context<Self>) -> Self::Result {
        let work = self.work.clone();
        spawn_work(async move {
            match &msg.account.stripe_customer_id {
                Some(customer) => work.refresh_payment_methods(msg.account.id, customer).await,
                None => Ok(()),
            }
        })
    }
}

impl Handler<HandleWebhook> for BillingSync {
    type Result = ResponseFuture<Result<(), WebhookError>>;

    fn handle(&mut self, msg: HandleWebhook, _: &mut Context<Self>) -> Self::Result {
        let work = self.work.clone();
        spawn_work(async move { work.handle_webhook(msg).await })
    }
}

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

impl BillingWork {
    fn gateway(&self) -> Result<&Gateway, BillingError> {
        self.gateway.as_ref().ok_or(BillingError::NotConfigured)
    }

    /// The account's Stripe customer, created on first need.
    async fn customer(&self, account: &Account) -> Result<String, BillingError> {
        if let Some(id) = &account.stripe_customer_id {
            return Ok(id.clone());
        }
        let key = format!("{}-account-{}-customer", self.scope, account.id);
        let gateway = self.gateway()?;
        let mut tries = 0;
        let created = loop {
            match gateway
                .create_customer(&account.email, &account.full_name, account.id, &key)
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

    async fn start_payment(&self, msg: StartPayment) -> Result<String, BillingError> {
        let store = &self.svc.store;
        // Each round either answers or moves the invoice on (a Checkout expired and
        // forgotten, a payment noted); a few are plenty.
        for _ in 0..4 {
            // Whose invoice it is comes first: a foreign id is "not found" whatever else is true.
            let invoice = store
                .account_invoice(msg.storefront.id, msg.account.id, msg.invoice_id)
                .await?
                .ok_or(BillingError::NotFound)?;
            let gateway = self.gateway()?;
            match invoice.status.as_str() {
                "pending" => {}
                "processing" => return Err(BillingError::Processing),
                _ => return Err(BillingError::NotPayable),
            }
            if let Some(session) = &invoice.checkout_session_id {
                // At most one open Checkout: hand out the open one while it is usable.
                let state = gateway.checkout_state(session).await?;
                let usable = state.status == SessionStatus::Open
                    && state.expires_at
                        > self.svc.now().timestamp() + CHECKOUT_REUSE_MARGIN_SECONDS
                    && state.amount_total == Some(invoice.amount.minor())
                    && state.currency.as_deref()
                        == Some(invoice.amount.currency().to_ascii_lowercase().as_str());
                match (&state.url, usable) {
                    (Some(url), true) => return Ok(url.clone()),
                    _ if state.status == SessionStatus::Open => {
                        // Past use: expire it before opening a new one, so it cannot be paid.
                        let after = gateway.expire_checkout(session).await?;
                        self.apply_checkout_state(&invoice, session, &after).await?;
                    }
                    _ => {
                        self.apply_checkout_state(&invoice, session, &state).await?;
                    }
                }
                continue;
            }
            let customer = self.customer(&msg.account).await?;
            let base = self.svc.portal_url(&msg.storefront);
            let success = format!("{base}/billing?checkout=success");
            let cancel = format!("{base}/billing?checkout=cancelled");
            let description = format!("Invoice {}: {}", invoice.number, invoice.description);
            let key = format!(
                "{}-invoice-{}-checkout-{}",
                self.scope, invoice.id, invoice.checkout_attempt
            );
            let started = match gateway
                .create_payment_checkout(&PaymentCheckout {
                    idempotency_key: &key,
                    customer: &customer,
                    invoice_id: invoice.id,
                    account_id: msg.account.id,
                    amount_minor: invoice.amount.minor(),
                    currency: invoice.amount.currency(),
                    description: &description,
                    success_url: &success,
                    cancel_url: &cancel,
                })
                .await
            {
                Ok(started) => started,
                // A concurrent press is creating this same Checkout (same key): ask again.
                Err(e) if e.is_conflict() => {
                    tokio::time::sleep(CONFLICT_PAUSE).await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if store
                .start_invoice_checkout(
                    invoice.id,
                    invoice.checkout_attempt,
                    &started.session_id,
                    self.svc.now(),
                )
                .await?
            {
                tracing::info!(invoice_id = invoice.id, session = %started.session_id, "checkout started");
                return Ok(started.url);
            }
            // The invoice moved on meanwhile (paid, or another Checkout noted): this one must
            // not stay payable.
            if let Err(e) = gateway.expire_checkout(&started.session_id).await {
                tracing::warn!(invoice_id = invoice.id, error = %e, "could not expire a Checkout that lost the race");
            }
        }
        Err(BillingError::Provider(ProviderError(
            "the invoice's Checkout kept changing".into(),
        )))
    }

    /// Makes the invoice what its Checkout says: paid, processing, or (expired, or its
    /// payment failed) waiting for a new Checkout. Returns whether the invoice changed.
    async fn apply_checkout_state(
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

    async fn confirm_checkouts(&self, msg: ConfirmCheckouts) -> Result<Vec<i64>, BillingError> {
        let gateway = self.gateway()?;
        let waiting = self
            .svc
            .store
            .account_invoices(
                msg.storefront.id,
                msg.account.id,
                crate::store::InvoiceFilter::Pending,
            )
            .await?;
        let mut unpaid = Vec::new();
        for invoice in waiting
            .iter()
            .filter(|i| i.status == "pending")
            .take(CONFIRM_AT_MOST)
        {
            let Some(session) = &invoice.checkout_session_id else {
                continue;
            };
            // Stripe out of reach: this one stays unknown (being confirmed).
            let state = match gateway.checkout_state(session).await {
                Ok(state) => state,
                Err(e) => {
                    tracing::warn!(invoice_id = invoice.id, error = %e, "could not confirm a checkout");
                    continue;
                }
            };
            // An open one stays as it is: the customer may still be paying in another tab.
            self.apply_checkout_state(invoice, session, &state).await?;
            if matches!(state.status, SessionStatus::Open | SessionStatus::Expired) {
                unpaid.push(invoice.id);
            }
        }
        Ok(unpaid)
    }

    async fn start_setup(&self, msg: StartSetup) -> Result<String, BillingError> {
        let gateway = self.gateway()?;
        let customer = self.customer(&msg.account).await?;
        let base = self.svc.portal_url(&msg.storefront);
        let success = format!("{base}/billing?setup=success");
        let cancel = format!("{base}/billing?setup=cancelled");
        // The currency the customer is billed in (their latest invoice's), USD when none.
        let currency = self
            .svc
            .store
            .account_invoices(
                msg.storefront.id,
                msg.account.id,
                crate::store::InvoiceFilter::All,
            )
            .await?
            .first()
            .map(|i| i.amount.currency().to_string())
            .unwrap_or_else(|| "USD".into());
        let attempt = self
            .svc
            .store
            .setup_checkout_attempt(msg.account.id)
            .await?;
        let key = format!("{}-account-{}-setup-{attempt}", self.scope, msg.account.id);
        let started = gateway
            .create_setup_checkout(&SetupCheckout {
                idempotency_key: &key,
                customer: &customer,
                account_id: msg.account.id,
                acss_debit: msg.storefront.acss_debit,
                currency: &currency,
                success_url: &success,
                cancel_url: &cancel,
            })
            .await?;
        self.svc
            .store
            .setup_checkout_opened(msg.account.id, attempt)
            .await?;
        Ok(started.url)
    }

    async fn remove_payment_method(&self, msg: RemovePaymentMethod) -> Result<(), BillingError> {
        let method = self
            .svc
            .store
            .account_payment_method(msg.account.id, msg.id)
            .await?
            .ok_or(BillingError::NotFound)?;
        let gateway = self.gateway()?;
        if let Err(e) = gateway.detach(&method.stripe_id).await {
            // Already detached at Stripe (from another device, by support): just forget it.
            if !e.0.contains("resource_missing") && !e.0.contains("status code: 404") {
                return Err(e.into());
            }
        }
        self.svc
            .store
            .delete_payment_method(msg.account.id, &method.stripe_id)
            .await?;
        Ok(())
    }

    async fn refresh_payment_methods(
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

    async fn handle_webhook(&self, msg: HandleWebhook) -> Result<(), WebhookError> {
        let payload = msg.payload.bytes();
        let event: serde_json::Value =
            serde_json::from_slice(payload).map_err(|e| WebhookError::Malformed(e.to_string()))?;
        let (id, kind) = match (event["id"].as_str(), event["type"].as_str()) {
            (Some(id), Some(kind))
                if id.starts_with("evt_") && event["data"]["object"].is_object() =>
            {
                (id.to_string(), kind.to_string())
            }
            _ => {
                return Err(WebhookError::Malformed(
                    "an event needs an evt_ id, a type and data.object".into(),
                ));
            }
        };
        let payload = String::from_utf8_lossy(payload).into_owned();
        let state = self
            .svc
            .store
            .record_stripe_event(&id, &kind, &payload, self.svc.now())
            .await
            .map_err(|e| WebhookError::App(e.into()))?;
        if state == EventState::Done {
            tracing::debug!(event = %id, "event already processed");
            return Ok(());
        }
        // Stored: from here on the event is ours. If its work fails it is retried on a timer.
        self.process_recorded(&id, &event).await;
        Ok(())
    }

    /// Processes a stored event and records the outcome.
    async fn process_recorded(&self, id: &str, event: &serde_json::Value) {
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
        let billing_url = format!("{}/billing", self.svc.portal_url(&storefront));
        let relay_after = self.svc.config.relay_after();
        let notice = |invoice: &Invoice, account: &Account| {
            payment_failed_delivery(&storefront, invoice, account, &billing_url, relay_after)
        };
        let failed =
            store.mark_invoice_payment_failed(invoice_id, payment_intent, notice, self.svc.now());
        match self.svc.write_then_enqueue(failed).await? {
            Some(delivery_id) => {
                tracing::info!(invoice_id, delivery_id, "payment failed; customer told");
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn refresh_for_customer(&self, customer: Option<&str>) -> Result<(), BillingError> {
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
        if let Some(delivery_id) = self.svc.write_then_enqueue(paid).await? {
            tracing::info!(invoice_id, delivery_id, "invoice paid; receipt queued");
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

/// The receipt email for a paid invoice.
pub(crate) fn receipt_delivery(
    storefront: &Storefront,
    invoice: &Invoice,
    account: &Account,
    paid_on: chrono::NaiveDate,
    relay_after: chrono::Duration,
) -> NewDelivery {
    NewDelivery {
        storefront_id: storefront.id,
        account_id: Some(account.id),
        kind: DeliveryKind::PaymentReceipt,
        recipient: account.email.clone(),
        subject: receipt_subject(&storefront.name, &invoice.number),
        payload: serde_json::json!({
            "first_name": account.first_name(),
            "number": invoice.number,
            "description": invoice.description,
            "facility": invoice.facility_name,
            "paid_on": crate::http::rentals::format_date(paid_on),
            "amount": invoice.amount.to_string(),
        }),
        sealed_token: None,
        link_expires_at: None,
        facility_ids: vec![invoice.facility_id],
        relay_after,
        suppressed_reason: None,
    }
}

/// The email saying a debit failed and how to pay the invoice now.
pub(crate) fn payment_failed_delivery(
    storefront: &Storefront,
    invoice: &Invoice,
    account: &Account,
    billing_url: &str,
    relay_after: chrono::Duration,
) -> NewDelivery {
    NewDelivery {
        storefront_id: storefront.id,
        account_id: Some(account.id),
        kind: DeliveryKind::PaymentFailed,
        recipient: account.email.clone(),
        subject: payment_failed_subject(&storefront.name, &invoice.number),
        payload: serde_json::json!({
            "first_name": account.first_name(),
            "number": invoice.number,
            "description": invoice.description,
            "facility": invoice.facility_name,
            "amount": invoice.amount.to_string(),
            "billing_url": billing_url,
        }),
        sealed_token: None,
        link_expires_at: None,
        facility_ids: vec![invoice.facility_id],
        relay_after,
        suppressed_reason: None,
    }
}
