//! BillingSync: everything that talks to Stripe. Starts Checkout Sessions (payment and
//! setup), detaches payment methods, processes webhook events exactly once per event id, and
//! on timers retries events whose processing failed and reconciles invoices left in a
//! Checkout. Webhook events are stored before they are processed, so work that fails is
//! retried, not dropped.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;

use super::mailer::{Enqueue, Mailer};
use super::spawn_work;
use crate::billing::gateway::{PaymentCheckout, SetupCheckout};
use crate::billing::{Gateway, ProviderError};
use crate::domain::webhook::{SignatureError, VerifiedPayload};
use crate::error::AppError;
use crate::mail::receipt_subject;
use crate::services::Services;
use crate::store::{Account, DeliveryKind, EventState, Invoice, NewDelivery, Storefront};

/// How often failed webhook work is tried again (the due ones).
const RETRY_EVERY: Duration = Duration::from_secs(30);
/// How often invoices stuck in a Checkout are reconciled, and how long one may sit first.
const RECONCILE_EVERY: Duration = Duration::from_secs(300);
const STUCK_AFTER: chrono::Duration = chrono::Duration::minutes(10);

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("online payment is not configured")]
    NotConfigured,
    #[error("not found")]
    NotFound,
    #[error("this invoice is not waiting for payment")]
    NotPayable,
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    App(#[from] AppError),
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
    mailer: Addr<Mailer>,
}

impl BillingSync {
    pub fn new(svc: Arc<Services>, mailer: Addr<Mailer>) -> Result<Self, ProviderError> {
        let cfg = &svc.config;
        let gateway = match &cfg.stripe_secret_key {
            Some(key) => Some(Gateway::new(
                key.expose(),
                cfg.stripe_api_base.as_deref(),
                Duration::from_secs(cfg.stripe_timeout_seconds),
            )?),
            None => None,
        };
        Ok(Self {
            work: Arc::new(BillingWork {
                svc,
                gateway,
                mailer,
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

fn spawn_billing<T: Send + 'static>(
    work: impl Future<Output = Result<T, BillingError>> + Send + 'static,
) -> actix::dev::ResponseFuture<Result<T, BillingError>> {
    Box::pin(async move { tokio::spawn(work).await? })
}

impl Handler<StartPayment> for BillingSync {
    type Result = ResponseFuture<Result<String, BillingError>>;

    fn handle(&mut self, msg: StartPayment, _: &mut Context<Self>) -> Self::Result {
        let work = self.work.clone();
        spawn_billing(async move { work.start_payment(msg).await })
    }
}

impl Handler<StartSetup> for BillingSync {
    type Result = ResponseFuture<Result<String, BillingError>>;

    fn handle(&mut self, msg: StartSetup, _: &mut Context<Self>) -> Self::Result {
        let work = self.work.clone();
        spawn_billing(async move { work.start_setup(msg).await })
    }
}

impl Handler<RemovePaymentMethod> for BillingSync {
    type Result = ResponseFuture<Result<(), BillingError>>;

    fn handle(&mut self, msg: RemovePaymentMethod, _: &mut Context<Self>) -> Self::Result {
        let work = self.work.clone();
        spawn_billing(async move { work.remove_payment_method(msg).await })
    }
}

impl Handler<RefreshPaymentMethods> for BillingSync {
    type Result = ResponseFuture<Result<(), BillingError>>;

    fn handle(&mut self, msg: RefreshPaymentMethods, _: &mut Context<Self>) -> Self::Result {
        let work = self.work.clone();
        spawn_billing(async move {
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
        Box::pin(async move {
            tokio::spawn(async move { work.handle_webhook(msg).await })
                .await
                .map_err(|e| WebhookError::App(e.into()))?
        })
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
        let created = self
            .gateway()?
            .create_customer(&account.email, &account.full_name, account.id)
            .await?;
        Ok(self
            .svc
            .store
            .set_stripe_customer(account.id, &created)
            .await?)
    }

    async fn start_payment(&self, msg: StartPayment) -> Result<String, BillingError> {
        // Whose invoice it is comes first: a foreign id is "not found" whatever else is true.
        let invoice = self
            .svc
            .store
            .account_invoice(msg.storefront.id, msg.account.id, msg.invoice_id)
            .await?
            .ok_or(BillingError::NotFound)?;
        let gateway = self.gateway()?;
        if invoice.status != "pending" {
            return Err(BillingError::NotPayable);
        }
        let customer = self.customer(&msg.account).await?;
        let base = self.svc.portal_url(&msg.storefront);
        let success = format!("{base}/billing?checkout=success");
        let cancel = format!("{base}/billing?checkout=cancelled");
        let description = format!("Invoice {}: {}", invoice.number, invoice.description);
        let started = gateway
            .create_payment_checkout(&PaymentCheckout {
                customer: &customer,
                invoice_id: invoice.id,
                account_id: msg.account.id,
                amount_minor: invoice.amount.minor(),
                currency: invoice.amount.currency(),
                description: &description,
                success_url: &success,
                cancel_url: &cancel,
            })
            .await?;
        self.svc
            .store
            .start_invoice_checkout(invoice.id, &started.session_id, self.svc.now())
            .await?;
        tracing::info!(invoice_id = invoice.id, session = %started.session_id, "checkout started");
        Ok(started.url)
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
        let started = gateway
            .create_setup_checkout(&SetupCheckout {
                customer: &customer,
                account_id: msg.account.id,
                acss_debit: msg.storefront.acss_debit,
                currency: &currency,
                success_url: &success,
                cancel_url: &cancel,
            })
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
        match event["type"].as_str().unwrap_or_default() {
            "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
                match object["mode"].as_str() {
                    Some("payment") if object["payment_status"] == "paid" => {
                        self.invoice_paid(
                            object["metadata"]["invoice_id"].as_str(),
                            object["amount_total"].as_i64(),
                            object["currency"].as_str(),
                            object["payment_intent"].as_str(),
                        )
                        .await
                    }
                    Some("setup") => self.refresh_for_customer(object["customer"].as_str()).await,
                    _ => Ok(()),
                }
            }
            "payment_intent.succeeded" => {
                self.invoice_paid(
                    object["metadata"]["invoice_id"].as_str(),
                    object["amount_received"]
                        .as_i64()
                        .or(object["amount"].as_i64()),
                    object["currency"].as_str(),
                    object["id"].as_str(),
                )
                .await
            }
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
    ) -> Result<(), BillingError> {
        let Some(invoice_id) = invoice_id.and_then(|i| i.parse::<i64>().ok()) else {
            return Ok(());
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
        if let Some(delivery_id) = store
            .mark_invoice_paid(invoice_id, payment_intent, receipt, self.svc.now())
            .await?
        {
            tracing::info!(invoice_id, delivery_id, "invoice paid; receipt queued");
            self.mailer.do_send(Enqueue { delivery_id });
        }
        Ok(())
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
            match gateway.checkout_state(&session).await {
                Ok(state) if state.complete && state.paid => {
                    let invoice = store.invoice(invoice_id).await?;
                    if let Some(invoice) = invoice {
                        let amount = Some(invoice.amount.minor());
                        let currency = invoice.amount.currency().to_string();
                        if self
                            .invoice_paid(
                                Some(&invoice_id.to_string()),
                                amount,
                                Some(&currency),
                                state.payment_intent.as_deref(),
                            )
                            .await
                            .is_ok()
                        {
                            settled += 1;
                        }
                    }
                }
                Ok(state) if state.expired => {
                    store
                        .clear_invoice_checkout(invoice_id, &session, self.svc.now())
                        .await?;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(invoice_id, error = %e, "reconciliation could not reach Stripe")
                }
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
