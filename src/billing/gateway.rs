//! The calls BillingSync makes to Stripe, through async-stripe, each bounded by a timeout.
//! The base URL is configuration, so tests point it at a local fake Stripe server.
//!
//! Every request that creates something carries an idempotency key chosen by the caller:
//! the same logical operation (this invoice's Checkout number N, this account's customer)
//! always sends the same key, so a retry after a timeout gets what the first try created
//! instead of creating it twice.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use stripe::StripeRequest;

use crate::store::NewPaymentMethod;

/// Stripe failed, answered an error, or did not answer in time. The message is for the log.
#[derive(Debug, Clone, thiserror::Error)]
#[error("payment provider: {0}")]
pub struct ProviderError(pub String);

impl ProviderError {
    /// Stripe answered 409: another request with the same idempotency key is in flight (a
    /// concurrent press of the same button). Asking again shortly gets its answer.
    pub fn is_conflict(&self) -> bool {
        self.0.contains("status code: 409")
    }
}

/// A Checkout Session to send the customer to.
#[derive(Debug, Clone)]
pub struct StartedCheckout {
    pub session_id: String,
    pub url: String,
}

/// Where a Checkout Session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    Open,
    Complete,
    Expired,
}

/// Where the PaymentIntent of a payment-mode Checkout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntentStatus {
    Succeeded,
    /// On its way (a pre-authorized debit takes days).
    Processing,
    /// Failed: it needs a new payment method (or was canceled).
    Failed,
    /// Anything else (still in the customer's hands).
    Other,
}

/// A Checkout Session as it is now (pressing Pay again, reconciliation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutState {
    pub status: SessionStatus,
    /// `payment_status=paid`.
    pub paid: bool,
    /// Where to send the customer while it is open.
    pub url: Option<String>,
    /// When Stripe expires it (Unix seconds).
    pub expires_at: i64,
    pub amount_total: Option<i64>,
    /// Lower case, as Stripe spells it.
    pub currency: Option<String>,
    pub payment_intent: Option<String>,
    pub intent_status: Option<IntentStatus>,
}

pub struct Gateway {
    client: stripe::Client,
    timeout: Duration,
}

/// What a payment Checkout is for.
#[derive(Debug, Clone)]
pub struct PaymentCheckout<'a> {
    /// Names this Checkout of this invoice (see the module header).
    pub idempotency_key: &'a str,
    pub customer: &'a str,
    pub invoice_id: i64,
    pub account_id: i64,
    pub amount_minor: i64,
    pub currency: &'a str,
    pub description: &'a str,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
    /// The language Checkout opens in: the portal page's tag (`en`, `fr-CA`).
    pub locale: &'a str,
}

/// What a setup Checkout is for (adding a payment method).
#[derive(Debug, Clone)]
pub struct SetupCheckout<'a> {
    /// Names this setup Checkout of this account (see the module header).
    pub idempotency_key: &'a str,
    pub customer: &'a str,
    pub account_id: i64,
    /// Offer Canadian pre-authorized debit (in CAD) besides cards.
    pub acss_debit: bool,
    /// The currency the customer pays in (Stripe wants one in setup mode); CAD with debits.
    pub currency: &'a str,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
    /// The language Checkout opens in: the portal page's tag (`en`, `fr-CA`).
    pub locale: &'a str,
}

/// Checkout's `locale` for one of our language tags; `auto` (the browser's) for a language
/// Stripe does not have.
fn checkout_locale(tag: &str) -> stripe_shared::CheckoutSessionLocale {
    use stripe_shared::CheckoutSessionLocale;
    match tag.parse::<CheckoutSessionLocale>() {
        Ok(CheckoutSessionLocale::Unknown(_)) | Err(_) => CheckoutSessionLocale::Auto,
        Ok(locale) => locale,
    }
}

fn provider(e: stripe::StripeError) -> ProviderError {
    ProviderError(e.to_string())
}

/// Sends a request once with the given idempotency key.
fn idempotent(key: &str) -> Result<stripe::RequestStrategy, ProviderError> {
    stripe::IdempotencyKey::new(key)
        .map(stripe::RequestStrategy::Idempotent)
        .map_err(|e| ProviderError(format!("idempotency key: {e}")))
}

fn checkout_state(session: stripe_shared::CheckoutSession) -> CheckoutState {
    use stripe_shared::{CheckoutSessionStatus, PaymentIntentStatus};
    let intent_status = match &session.payment_intent {
        Some(stripe_types::Expandable::Object(pi)) => Some(match pi.status {
            PaymentIntentStatus::Succeeded => IntentStatus::Succeeded,
            PaymentIntentStatus::Processing => IntentStatus::Processing,
            PaymentIntentStatus::RequiresPaymentMethod | PaymentIntentStatus::Canceled => {
                IntentStatus::Failed
            }
            _ => IntentStatus::Other,
        }),
        _ => None,
    };
    CheckoutState {
        status: match session.status {
            Some(CheckoutSessionStatus::Complete) => SessionStatus::Complete,
            Some(CheckoutSessionStatus::Expired) => SessionStatus::Expired,
            _ => SessionStatus::Open,
        },
        paid: matches!(
            session.payment_status,
            stripe_shared::CheckoutSessionPaymentStatus::Paid
        ),
        url: session.url,
        expires_at: session.expires_at,
        amount_total: session.amount_total,
        currency: session.currency.map(|c| c.to_string().to_ascii_lowercase()),
        payment_intent: session.payment_intent.as_ref().map(|p| p.id().to_string()),
        intent_status,
    }
}

impl Gateway {
    pub fn new(
        secret_key: &str,
        api_base: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, ProviderError> {
        let mut builder = stripe::ClientBuilder::new(secret_key);
        if let Some(base) = api_base {
            builder = builder.url(base.trim_end_matches('/'));
        }
        Ok(Self {
            client: builder.build().map_err(provider)?,
            timeout,
        })
    }

    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, stripe::StripeError>>,
    ) -> Result<T, ProviderError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(provider),
            Err(_) => Err(ProviderError(format!(
                "no answer within {:?}",
                self.timeout
            ))),
        }
    }

    pub async fn create_customer(
        &self,
        email: &str,
        name: &str,
        account_id: i64,
        idempotency_key: &str,
    ) -> Result<String, ProviderError> {
        let customer = self
            .bounded(
                stripe_core::customer::CreateCustomer::new()
                    .email(email)
                    .name(name)
                    .metadata(HashMap::from([(
                        "account_id".to_string(),
                        account_id.to_string(),
                    )]))
                    .customize()
                    .request_strategy(idempotent(idempotency_key)?)
                    .send(&self.client),
            )
            .await?;
        Ok(customer.id.to_string())
    }

    pub async fn create_payment_checkout(
        &self,
        p: &PaymentCheckout<'_>,
    ) -> Result<StartedCheckout, ProviderError> {
        use stripe_checkout::checkout_session::*;
        let currency = stripe_types::Currency::from_str(&p.currency.to_ascii_lowercase())
            .map_err(|_| ProviderError(format!("unknown currency {}", p.currency)))?;
        let mut price = CreateCheckoutSessionLineItemsPriceData::new(currency);
        price.unit_amount = Some(p.amount_minor);
        price.product_data = Some(ProductData::new(p.description));
        let mut item = CreateCheckoutSessionLineItems::new();
        item.price_data = Some(price);
        item.quantity = Some(1);
        let metadata = HashMap::from([
            ("invoice_id".to_string(), p.invoice_id.to_string()),
            ("account_id".to_string(), p.account_id.to_string()),
        ]);
        let mut intent = CreateCheckoutSessionPaymentIntentData::new();
        intent.metadata = Some(HashMap::from([(
            "invoice_id".to_string(),
            p.invoice_id.to_string(),
        )]));
        let session = self
            .bounded(
                CreateCheckoutSession::new()
                    .mode(stripe_shared::CheckoutSessionMode::Payment)
                    .customer(p.customer)
                    .client_reference_id(p.invoice_id.to_string())
                    .line_items(vec![item])
                    .metadata(metadata)
                    .payment_intent_data(intent)
                    .success_url(p.success_url)
                    .cancel_url(p.cancel_url)
                    .locale(checkout_locale(p.locale))
                    .customize()
                    .request_strategy(idempotent(p.idempotency_key)?)
                    .send(&self.client),
            )
            .await?;
        let url = session
            .url
            .ok_or_else(|| ProviderError("the Checkout Session has no URL".into()))?;
        Ok(StartedCheckout {
            session_id: session.id.to_string(),
            url,
        })
    }

    pub async fn create_setup_checkout(
        &self,
        s: &SetupCheckout<'_>,
    ) -> Result<StartedCheckout, ProviderError> {
        use stripe_checkout::checkout_session::*;
        let mut types = vec![CreateCheckoutSessionAllowedPaymentMethodTypes::Card];
        let mut request = CreateCheckoutSession::new()
            .mode(stripe_shared::CheckoutSessionMode::Setup)
            .customer(s.customer)
            .metadata(HashMap::from([(
                "account_id".to_string(),
                s.account_id.to_string(),
            )]))
            .success_url(s.success_url)
            .cancel_url(s.cancel_url)
            .locale(checkout_locale(s.locale));
        let currency = if s.acss_debit { "cad" } else { s.currency };
        request = request.currency(
            stripe_types::Currency::from_str(&currency.to_ascii_lowercase())
                .map_err(|_| ProviderError(format!("unknown currency {currency}")))?,
        );
        if s.acss_debit {
            types.push(CreateCheckoutSessionAllowedPaymentMethodTypes::AcssDebit);
            let mut mandate =
                CreateCheckoutSessionPaymentMethodOptionsAcssDebitMandateOptions::new();
            mandate.payment_schedule = Some(
                CreateCheckoutSessionPaymentMethodOptionsAcssDebitMandateOptionsPaymentSchedule::Sporadic,
            );
            mandate.transaction_type = Some(
                CreateCheckoutSessionPaymentMethodOptionsAcssDebitMandateOptionsTransactionType::Personal,
            );
            let mut acss = CreateCheckoutSessionPaymentMethodOptionsAcssDebit::new();
            acss.currency = Some(CreateCheckoutSessionPaymentMethodOptionsAcssDebitCurrency::Cad);
            acss.mandate_options = Some(mandate);
            let mut options = CreateCheckoutSessionPaymentMethodOptions::new();
            options.acss_debit = Some(acss);
            request = request.payment_method_options(options);
        }
        let session = self
            .bounded(
                request
                    .allowed_payment_method_types(types)
                    .customize()
                    .request_strategy(idempotent(s.idempotency_key)?)
                    .send(&self.client),
            )
            .await?;
        let url = session
            .url
            .ok_or_else(|| ProviderError("the Checkout Session has no URL".into()))?;
        Ok(StartedCheckout {
            session_id: session.id.to_string(),
            url,
        })
    }

    /// A Checkout Session as it is now, with its PaymentIntent's status.
    pub async fn checkout_state(&self, session_id: &str) -> Result<CheckoutState, ProviderError> {
        let session = self
            .bounded(
                stripe_checkout::checkout_session::RetrieveCheckoutSession::new(session_id)
                    .expand(vec!["payment_intent".to_string()])
                    .send(&self.client),
            )
            .await?;
        Ok(checkout_state(session))
    }

    /// Expires an open Checkout Session, so it can no longer be paid. One that is no longer
    /// open (completed or expired meanwhile) is answered as it is now.
    pub async fn expire_checkout(&self, session_id: &str) -> Result<CheckoutState, ProviderError> {
        let expired = self
            .bounded(
                stripe_checkout::checkout_session::ExpireCheckoutSession::new(session_id)
                    .send(&self.client),
            )
            .await;
        match expired {
            Ok(session) => Ok(checkout_state(session)),
            Err(e) => match self.checkout_state(session_id).await {
                Ok(state) if state.status != SessionStatus::Open => Ok(state),
                _ => Err(e),
            },
        }
    }

    /// The customer's cards and pre-authorized debits, as Stripe has them.
    pub async fn payment_methods(
        &self,
        customer: &str,
    ) -> Result<Vec<NewPaymentMethod>, ProviderError> {
        let list = self
            .bounded(
                stripe_core::customer::ListPaymentMethodsCustomer::new(customer)
                    .limit(100)
                    .send(&self.client),
            )
            .await?;
        Ok(list
            .data
            .into_iter()
            .filter_map(|pm| {
                if let Some(card) = pm.card {
                    Some(NewPaymentMethod {
                        stripe_id: pm.id.to_string(),
                        kind: "card".into(),
                        brand: card.display_brand.unwrap_or(card.brand),
                        last4: card.last4,
                        exp_month: Some(card.exp_month),
                        exp_year: Some(card.exp_year),
                    })
                } else {
                    pm.acss_debit.map(|acss| NewPaymentMethod {
                        stripe_id: pm.id.to_string(),
                        kind: "acss_debit".into(),
                        brand: acss.bank_name.unwrap_or_else(|| "Bank account".into()),
                        last4: acss.last4.unwrap_or_default(),
                        exp_month: None,
                        exp_year: None,
                    })
                }
            })
            .collect())
    }

    pub async fn detach(&self, payment_method: &str) -> Result<(), ProviderError> {
        self.bounded(
            stripe_payment::payment_method::DetachPaymentMethod::new(payment_method)
                .send(&self.client),
        )
        .await?;
        Ok(())
    }
}
