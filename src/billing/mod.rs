//! Billing through Stripe: the gateway (async-stripe calls, with a timeout) and what Stripe's
//! webhook events mean to Latchkey. The BillingSync actor (`crate::actors::billing_sync`)
//! drives both.

pub mod gateway;

pub use gateway::{CheckoutState, Gateway, ProviderError, StartedCheckout};
