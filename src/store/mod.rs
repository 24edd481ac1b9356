//! Storage: one [`Store`] of queries written against the [`Database`] interface, which
//! PostgreSQL ([`postgres::Postgres`]) and SQLite ([`sqlite::Sqlite`]) implement.
//!
//! The files are cut by entity, the table group whose SQL they hold, not by who calls them:
//!
//! - `storefronts`: storefronts (slug, custom host, sender, DKIM) and their facilities.
//! - `accounts`: customer accounts: the profile's Save, sign-up, the console's search,
//!   customer record and merge.
//! - `contacts`: the operator's contacts and their link to an account.
//! - `rentals`: rentals and their signed agreements.
//! - `invoices`: invoices, and paying one through Checkout (the noted session, its attempt
//!   counter, the receipt or failure email with the status change).
//! - `payments`: the Stripe side of an account (customer, setup-Checkout attempts), its
//!   payment methods, and Stripe's webhook events.
//! - `upsert`: what the operator's upserts by external reference share; `page`: the keyset
//!   pages the API reads them back in.
//! - `idempotency`: the integration API's `Idempotency-Key`s: the claim of a key and the
//!   answer kept for its repeats.
//! - `audience`: whose links and sessions, customers' or staff's: the tables of each.
//! - `tokens`: sign-in links of both audiences, their limits (`tokens/limits`), the
//!   PostgreSQL batch of customers' links (`tokens/batch`), unmatched sign-ins.
//! - `sessions`: sessions of both audiences.
//! - `email_changes`: pending address changes and their confirmation.
//! - `deliveries`: one row per email and how it is written and read; the workers' claims,
//!   outcomes and relay (`deliveries/claim`); the paged delivery log (`deliveries/log`).
//! - `events`, `webhooks`: events for the operator's systems, written with the change they
//!   tell of; the webhook endpoints, their deliveries, tries, relay and disabling.
//! - `staff`, `api_keys`, `audit`, `cooldowns`: staff users, integration keys, the audit
//!   log, send-once-per-cooldown slots.
//! - `demo`: the demo storefront, loaded with upserts of its own into every table (loading
//!   twice changes nothing but the dates).
//! - `rows`: the rows several entities read, an account and a staff user (their columns and
//!   how a row becomes one), and the single-row steps other entities' transactions take on
//!   them (lock an account or an active staff user, check or set an account's address).
//! - `db`, `migrate`, `postgres`, `postgres_tls`, `sqlite`: the database interface, the
//!   migrations and the two drivers.
//!
//! A query lives with the entity it returns or changes. A transaction that changes several
//! entities lives with the one it is about and calls the others' helpers, which take the
//! caller's connection (`insert_delivery`, `start_session`, `end_links`, `insert_audit`, …), so
//! each statement is written once. The files do not name each other in a circle (the
//! architecture test, `crates/archcheck`, checks it): what two entities both need of a row
//! sits below both, in `rows`.

pub mod db;
pub mod migrate;
pub mod postgres;
pub mod postgres_tls;
pub mod sqlite;

mod accounts;
mod api_keys;
mod audience;
mod audit;
mod contacts;
mod cooldowns;
mod deliveries;
mod demo;
mod email_changes;
mod events;
mod idempotency;
mod invoices;
mod page;
mod payments;
mod rentals;
mod rows;
mod sessions;
mod staff;
mod storefronts;
mod suppressions;
mod tokens;
mod upsert;
mod webhooks;

use std::sync::Arc;

pub use accounts::*;
pub use api_keys::*;
pub use audience::Audience;
pub use audit::*;
pub use contacts::*;
pub use cooldowns::*;
pub use db::{Database, DbError, DbResult, Dialect, Row, Value};
pub use deliveries::*;
pub use demo::DemoSummary;
pub use email_changes::*;
pub use events::*;
pub use idempotency::*;
pub use invoices::*;
pub use page::Page;
pub use payments::*;
pub use rentals::*;
pub use rows::*;
pub use sessions::*;
pub use storefronts::*;
pub use suppressions::*;
pub use tokens::*;
pub use upsert::*;
pub use webhooks::*;

use crate::config::DatabaseKind;

/// The application's storage. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<dyn Database>,
    /// See [`Store::batches`].
    batches: Arc<dyn Database>,
}

impl Store {
    pub fn new(db: Arc<dyn Database>) -> Self {
        Self {
            batches: db.clone(),
            db,
        }
    }

    /// Opens the database the configuration names (the pools connect lazily).
    pub fn open(kind: &DatabaseKind, pool_size: usize) -> DbResult<Self> {
        match kind {
            DatabaseKind::Postgres { url, ca_file } => {
                let target = crate::config::PgTarget::parse(url.expose(), ca_file.as_deref())
                    .map_err(DbError::Unavailable)?;
                Ok(Self {
                    db: Arc::new(postgres::Postgres::connect(
                        &target,
                        pool_size,
                        postgres::Plans::Custom,
                    )?),
                    batches: Arc::new(postgres::Postgres::connect(
                        &target,
                        pool_size,
                        postgres::Plans::Generic,
                    )?),
                })
            }
            DatabaseKind::Sqlite(path) => {
                Ok(Self::new(Arc::new(sqlite::Sqlite::open(path, pool_size)?)))
            }
        }
    }

    pub fn db(&self) -> &dyn Database {
        &*self.db
    }

    /// Where the batched statements of the sign-in path run: the issuing batch, the workers'
    /// claims and outcomes, the relay. They take arrays, and for such a statement PostgreSQL
    /// keeps making a custom plan on every execution (it cannot know the arrays' lengths in a
    /// generic one, so the generic plan never looks cheaper): planning was a third of
    /// PostgreSQL's CPU per sign-in link. On PostgreSQL this is therefore a second pool whose
    /// sessions use generic plans (`plan_cache_mode = force_generic_plan`), planned once per
    /// connection. Everything else (the console's pages above all, whose plans depend on the
    /// values: the Emails tab's first page is 1.9 ms with a custom plan and 22 ms with the
    /// generic one) stays on [`Store::db`]. The batches bound how many of these connections
    /// are in use at once (four per batcher, so at most 13 in a process running everything);
    /// the pool connects lazily, so a process opens only those it uses. On SQLite both are
    /// the same pool.
    pub fn batches(&self) -> &dyn Database {
        &*self.batches
    }

    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    pub async fn migrate(&self) -> DbResult<Vec<String>> {
        migrate::migrate(&*self.db).await
    }

    pub async fn ping(&self) -> DbResult<()> {
        self.db.ping().await
    }
}
