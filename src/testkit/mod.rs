//! Test and benchmark tools.
//!
//! - [`SmtpSink`]: a real ESMTP server that receives and stores the emails the
//!   application sends, with switchable fault modes ([`SmtpMode`]).
//! - [`TcpProxy`]: a TCP forwarder that can cut every connection at once, to
//!   simulate a broker or a database becoming unreachable and coming back.

pub mod proxy;
pub mod smtp;

pub use proxy::TcpProxy;
pub use smtp::{ReceivedEmail, SmtpMode, SmtpSink, SmtpSinkBuilder, Timeout};
