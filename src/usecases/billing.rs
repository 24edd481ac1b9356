//! Billing a customer does on the portal, and Stripe's webhook: open a Checkout to pay an
//! invoice (at most one open per invoice, never paid twice: see
//! [`crate::actors::billing_sync`]), confirm Checkouts on the way back, add a payment method
//! (Checkout in setup mode), remove one, and take a webhook event (stored, then processed
//! once). The timers (retrying failed events, reconciling stuck Checkouts) stay with the
//! BillingSync actor; both share [`Payments`].
//!
//! Stripe work, once started, runs to its end in a task of its own: a customer closing the tab
//! mid-request does not leave a Checkout half noted or an event half processed.

use std::future::Future;
use std::sync::Arc;

use tracing::Instrument;

use crate::actors::billing_sync::{CONFLICT_PAUSE, Payments};
use crate::billing::gateway::{PaymentCheckout, SessionStatus, SetupCheckout};
use crate::billing::{BillingError, ProviderError, WebhookError};
use crate::domain::webhook::VerifiedPayload;
use crate::i18n::Lang;
use crate::links::{PortalLink, Returned};
use crate::store::{Account, EventState, InvoiceFilter, Storefront};

/// An open Checkout is handed out again on Pay only if Stripe keeps it open this much longer;
/// closer to its end it is expired and a new one opened.
const CHECKOUT_REUSE_MARGIN_SECONDS: i64 = 30 * 60;
/// How many invoices the return from Checkout asks Stripe about.
const CONFIRM_AT_MOST: usize = 5;

/// Whether customers can pay online (Stripe keys are configured).
pub fn payments_enabled(config: &crate::config::Config) -> bool {
    Payments::payments_enabled(config)
}

/// Runs Stripe work as a task of its own, in the caller's span, and waits for it.
async fn to_the_end<T, E>(work: impl Future<Output = Result<T, E>> + Send + 'static) -> Result<T, E>
where
    T: Send + 'static,
    E: From<tokio::task::JoinError> + Send + 'static,
{
    tokio::spawn(work.in_current_span()).await?
}

/// Opens a Checkout to pay one of the account's invoices; the answer is the URL to send the
/// customer to.
pub async fn start_payment(
    payments: &Arc<Payments>,
    storefront: &Arc<Storefront>,
    account: Account,
    invoice_id: i64,
    lang: Lang,
) -> Result<String, BillingError> {
    let (work, storefront) = (payments.clone(), storefront.clone());
    to_the_end(
        async move { start_payment_now(&work, &storefront, &account, invoice_id, &lang).await },
    )
    .await
}

/// Back from Checkout: asks Stripe about the account's invoices waiting in a Checkout, so the
/// page shows what is true now (paid, or processing) even before the webhook arrives. The
/// answer: the invoices Stripe says are still unpaid (their Checkout open, or expired).
pub async fn confirm_checkouts(
    payments: &Arc<Payments>,
    storefront: &Arc<Storefront>,
    account: Account,
) -> Result<Vec<i64>, BillingError> {
    let (work, storefront) = (payments.clone(), storefront.clone());
    to_the_end(async move { confirm_checkouts_now(&work, &storefront, &account).await }).await
}

/// Opens a Checkout in setup mode to add a card (or a pre-authorized debit).
pub async fn start_setup(
    payments: &Arc<Payments>,
    storefront: &Arc<Storefront>,
    account: Account,
    lang: Lang,
) -> Result<String, BillingError> {
    let (work, storefront) = (payments.clone(), storefront.clone());
    to_the_end(async move { start_setup_now(&work, &storefront, &account, &lang).await }).await
}

/// Detaches one of the account's payment methods.
pub async fn remove_payment_method(
    payments: &Arc<Payments>,
    account: Account,
    id: i64,
) -> Result<(), BillingError> {
    let work = payments.clone();
    to_the_end(async move { remove_payment_method_now(&work, &account, id).await }).await
}

/// Reads the account's payment methods from Stripe into the database.
pub async fn refresh_payment_methods(
    payments: &Arc<Payments>,
    account: Account,
) -> Result<(), BillingError> {
    let work = payments.clone();
    to_the_end(async move {
        match &account.stripe_customer_id {
            Some(customer) => work.refresh_payment_methods(account.id, customer).await,
            None => Ok(()),
        }
    })
    .await
}

/// A webhook delivery whose signature the web layer checked: stored, then processed (once per
/// event id; work that fails is retried by the actor's timer).
pub async fn handle_webhook(
    payments: &Arc<Payments>,
    payload: VerifiedPayload,
) -> Result<(), WebhookError> {
    let work = payments.clone();
    to_the_end(async move { handle_webhook_now(&work, payload).await }).await
}

async fn start_payment_now(
    work: &Payments,
    storefront: &Storefront,
    account: &Account,
    invoice_id: i64,
    lang: &Lang,
) -> Result<String, BillingError> {
    let store = &work.svc.store;
    // Each round either answers or moves the invoice on (a Checkout expired and
    // forgotten, a payment noted); a few are plenty.
    for _ in 0..4 {
        // Whose invoice it is comes first: a foreign id is "not found" whatever else is true.
        let invoice = store
            .account_invoice(storefront.id, account.id, invoice_id)
            .await?
            .ok_or(BillingError::NotFound)?;
        let gateway = work.gateway()?;
        match invoice.status.as_str() {
            "pending" => {}
            "processing" => return Err(BillingError::Processing),
            _ => return Err(BillingError::NotPayable),
        }
        if let Some(session) = &invoice.checkout_session_id {
            // At most one open Checkout: hand out the open one while it is usable.
            let state = gateway.checkout_state(session).await?;
            let usable = state.status == SessionStatus::Open
                && state.expires_at > work.svc.now().timestamp() + CHECKOUT_REUSE_MARGIN_SECONDS
                && state.amount_total == Some(invoice.amount.minor())
                && state.currency.as_deref()
                    == Some(invoice.amount.currency().to_ascii_lowercase().as_str());
            match (&state.url, usable) {
                (Some(url), true) => return Ok(url.clone()),
                _ if state.status == SessionStatus::Open => {
                    // Past use: expire it before opening a new one, so it cannot be paid.
                    let after = gateway.expire_checkout(session).await?;
                    work.apply_checkout_state(&invoice, session, &after).await?;
                }
                _ => {
                    work.apply_checkout_state(&invoice, session, &state).await?;
                }
            }
            continue;
        }
        let customer = work.customer(account).await?;
        let link = |r| {
            work.svc
                .portal_link(storefront, PortalLink::CheckoutReturn(r))
        };
        let (success, cancel) = (link(Returned::Success), link(Returned::Cancelled));
        let description = lang.arg2(
            "checkout-description",
            "number",
            invoice.number.as_str(),
            "description",
            invoice.description.as_str(),
        );
        let key = format!(
            "{}-invoice-{}-checkout-{}",
            work.scope, invoice.id, invoice.checkout_attempt
        );
        let started = match gateway
            .create_payment_checkout(&PaymentCheckout {
                idempotency_key: &key,
                customer: &customer,
                invoice_id: invoice.id,
                account_id: account.id,
                amount_minor: invoice.amount.minor(),
                currency: invoice.amount.currency(),
                description: &description,
                success_url: &success,
                cancel_url: &cancel,
                locale: lang.tag(),
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
                work.svc.now(),
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

async fn confirm_checkouts_now(
    work: &Payments,
    storefront: &Storefront,
    account: &Account,
) -> Result<Vec<i64>, BillingError> {
    let gateway = work.gateway()?;
    let waiting = work
        .svc
        .store
        .account_invoices(storefront.id, account.id, InvoiceFilter::Pending)
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
        work.apply_checkout_state(invoice, session, &state).await?;
        if matches!(state.status, SessionStatus::Open | SessionStatus::Expired) {
            unpaid.push(invoice.id);
        }
    }
    Ok(unpaid)
}

async fn start_setup_now(
    work: &Payments,
    storefront: &Storefront,
    account: &Account,
    lang: &Lang,
) -> Result<String, BillingError> {
    let gateway = work.gateway()?;
    let customer = work.customer(account).await?;
    let link = |r| work.svc.portal_link(storefront, PortalLink::SetupReturn(r));
    let (success, cancel) = (link(Returned::Success), link(Returned::Cancelled));
    // The currency the customer is billed in (their latest invoice's), USD when none.
    let currency = work
        .svc
        .store
        .account_invoices(storefront.id, account.id, InvoiceFilter::All)
        .await?
        .first()
        .map(|i| i.amount.currency().to_string())
        .unwrap_or_else(|| "USD".into());
    let attempt = work.svc.store.setup_checkout_attempt(account.id).await?;
    let key = format!("{}-account-{}-setup-{attempt}", work.scope, account.id);
    let started = gateway
        .create_setup_checkout(&SetupCheckout {
            idempotency_key: &key,
            customer: &customer,
            account_id: account.id,
            acss_debit: storefront.acss_debit,
            currency: &currency,
            success_url: &success,
            cancel_url: &cancel,
            locale: lang.tag(),
        })
        .await?;
    work.svc
        .store
        .setup_checkout_opened(account.id, attempt)
        .await?;
    Ok(started.url)
}

async fn remove_payment_method_now(
    work: &Payments,
    account: &Account,
    id: i64,
) -> Result<(), BillingError> {
    let method = work
        .svc
        .store
        .account_payment_method(account.id, id)
        .await?
        .ok_or(BillingError::NotFound)?;
    let gateway = work.gateway()?;
    if let Err(e) = gateway.detach(&method.stripe_id).await {
        // Already detached at Stripe (from another device, by support): just forget it.
        if !e.0.contains("resource_missing") && !e.0.contains("status code: 404") {
            return Err(e.into());
        }
    }
    work.svc
        .store
        .delete_payment_method(account.id, &method.stripe_id, work.svc.now())
        .await?;
    work.svc.events_written();
    Ok(())
}

async fn handle_webhook_now(work: &Payments, payload: VerifiedPayload) -> Result<(), WebhookError> {
    let payload = payload.bytes();
    let event: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| WebhookError::Malformed(e.to_string()))?;
    let (id, kind) = match (event["id"].as_str(), event["type"].as_str()) {
        (Some(id), Some(kind)) if id.starts_with("evt_") && event["data"]["object"].is_object() => {
            (id.to_string(), kind.to_string())
        }
        _ => {
            return Err(WebhookError::Malformed(
                "an event needs an evt_ id, a type and data.object".into(),
            ));
        }
    };
    let payload = String::from_utf8_lossy(payload).into_owned();
    let state = work
        .svc
        .store
        .record_stripe_event(&id, &kind, &payload, work.svc.now())
        .await
        .map_err(|e| WebhookError::App(e.into()))?;
    if state == EventState::Done {
        tracing::debug!(event = %id, "event already processed");
        return Ok(());
    }
    // Stored: from here on the event is ours. If its work fails it is retried on a timer.
    work.process_recorded(&id, &event).await;
    Ok(())
}
