//! The use cases: what a customer, a staff member, the operator's systems or the command line
//! can do, as plain async functions, one file per capability. The portal (`http/*`), the
//! console (`http/console/*`), the API (`http/api/*`) and the CLI (`cli.rs`) call these and
//! only these: no handler names a `Store` method or sends an actor a message itself.
//!
//! What belongs here: the steps of one request (read these rows, check this rule, write that
//! change with its email in one transaction, publish it), in the words of the domain, with the
//! answer as a type the caller matches on (`ResendOutcome`, `KeyCheck`…) and unexpected
//! failures as [`AppError`](crate::error::AppError).
//!
//! What does not: HTTP (status codes, cookies, forms, pages and JSON stay in `src/http`), SQL
//! (the store owns it, one file per entity), and whatever needs a mailbox or a timer: the mail
//! worker and the relay, Stripe retries and reconciliation, session sweeps and the sign-in
//! link batcher stay in `src/actors`. When a use case needs one of those (the link batcher),
//! it is the actor's only caller. Every email is written in the transaction of the change it
//! tells of and then published by one function,
//! [`Services::write_then_enqueue`](crate::services::Services::write_then_enqueue).
//!
//! Layers: `http`, `cli` → `usecases` → `actors`, `store`, `queue`, `mail`, `domain`; nothing
//! below imports this module.

pub mod account;
pub mod admin;
pub mod api_keys;
pub mod billing;
pub mod bounces;
pub mod deliveries;
pub mod idempotency;
pub mod records;
pub mod sender;
pub mod sign_in;
pub mod support;
pub mod suppressions;
pub mod webhooks;
