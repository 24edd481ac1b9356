//! Billing through Stripe: the gateway (async-stripe calls, with a timeout), the errors of
//! billing work, and what Stripe's webhook events mean to Latchkey. The use cases
//! (`crate::usecases::billing`) and the BillingSync actor (`crate::actors::billing_sync`) drive
//! them.

pub mod gateway;

pub use gateway::{CheckoutState, Gateway, ProviderError, StartedCheckout};

use crate::domain::webhook::SignatureError;
use crate::error::AppError;

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
