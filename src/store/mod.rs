//! Storage: one [`Store`] of queries written against the [`Database`] interface, which
//! PostgreSQL ([`postgres::Postgres`]) and SQLite ([`sqlite::Sqlite`]) implement.

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
mod invoices;
mod payments;
mod rentals;
mod sessions;
mod staff;
mod storefronts;
mod tokens;
mod upsert;

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
pub use invoices::*;
pub use payments::*;
pub use rentals::*;
pub use sessions::*;
pub use staff::*;
pub use storefronts::*;
pub use tokens::*;
pub use upsert::*;

use crate::config::DatabaseKind;

/// The application's storage. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<dyn Database>,
}

impl Store {
    pub fn new(db: Arc<dyn Database>) -> Self {
        Self { db }
    }

    /// Opens the database the configuration names (the pool connects lazily).
    pub fn open(kind: &DatabaseKind, pool_size: usize) -> DbResult<Self> {
        let db: Arc<dyn Database> = match kind {
            DatabaseKind::Postgres { url, ca_file } => {
                let target = postgres_tls::PgTarget::parse(url.expose(), ca_file.as_deref())
                    .map_err(DbError::Unavailable)?;
                Arc::new(postgres::Postgres::connect(&target, pool_size)?)
            }
            DatabaseKind::Sqlite(path) => Arc::new(sqlite::Sqlite::open(path, pool_size)?),
        };
        Ok(Self { db })
    }

    pub fn db(&self) -> &dyn Database {
        &*self.db
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
