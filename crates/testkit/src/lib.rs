//! Test and benchmark tools.
//!
//! - [`SmtpSink`]: a real ESMTP server that receives and stores the emails the
//!   application sends, with switchable fault modes ([`SmtpMode`]).
//! - [`TcpProxy`]: a TCP forwarder that can cut every connection at once, to
//!   simulate a broker or a database becoming unreachable and coming back.
//! - [`FakeStripe`]: a local fake of the Stripe API (customers, Checkout Sessions, payment
//!   methods) with fault injection, Stripe-side flow driving and webhook event signing.

pub mod proxy;
pub mod smtp;
pub mod stripe;

pub use proxy::TcpProxy;
pub use smtp::{ReceivedEmail, SmtpMode, SmtpSink, SmtpSinkBuilder, Timeout};
pub use stripe::{FakeStripe, Fault, PaymentMethodKind, RecordedRequest};
