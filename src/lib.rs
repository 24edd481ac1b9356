//! Latchkey: the self-service customer portal of a rental business, with magic-link sign-in
//! and the email pipeline behind it.
//!
//! `main.rs` parses the command line and calls [`cli::run`]; everything else lives here so
//! that tests build the very same application ([`app::App`]).

#![recursion_limit = "256"]

pub mod actors;
pub mod app;
pub mod billing;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod display;
pub mod domain;
pub mod error;
pub mod http;
pub mod i18n;
pub mod links;
pub mod mail;
pub mod metrics;
pub mod queue;
pub mod services;
pub mod store;
pub mod telemetry;
pub mod usecases;
pub mod webhooks;
