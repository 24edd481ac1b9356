//! Latchkey: the self-service customer portal of a rental business, with magic-link sign-in
//! and the email pipeline behind it.
//!
//! `main.rs` parses the command line and calls [`cli::run`]; everything else lives here so
//! that tests build the very same application ([`app::App`]).

pub mod config;
pub mod domain;
pub mod store;
pub mod testkit;
