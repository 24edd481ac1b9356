//! Bounces and complaints coming back: the VERP Return-Path that names the delivery an email
//! belongs to ([`verp_address`], [`VerpCheck`]), the reader of delivery status notifications
//! and complaint reports ([`parse_report`]), and the inbound SMTP listener that accepts them
//! for valid VERP addresses only and hands them to a [`BounceSink`] ([`BounceListener`]).
//!
//! Nothing here touches the store: the sink is where reports are recorded.

mod listener;
mod report;
mod verp;

pub use listener::{BounceListener, BounceSink, ListenerSettings};
pub use report::{
    MAX_DIAGNOSTIC_CHARS, MAX_MIME_DEPTH, MAX_MIME_PARTS, MAX_REPORT_BYTES, OriginalHeaders,
    ParsedReport, ReportError, ReportKind, parse_report,
};
pub use verp::{VerpCheck, verp_address};
