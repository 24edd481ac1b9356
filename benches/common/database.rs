//! The run's own PostgreSQL database (created at the start, dropped at the end) and the
//! clean-up of the run's RabbitMQ queues.

use std::time::Duration;

use anyhow::{Context as _, Result};
use latchkey::config::Config;
use latchkey::queue::rabbit::RabbitQueue;

use super::random_lower;

pub async fn admin_client(url: &str) -> Result<tokio_postgres::Client> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connect to PostgreSQL at {url} (is it running?)"))?;
    tokio::spawn(conn);
    Ok(client)
}

/// A PostgreSQL database made for this run.
pub struct BenchDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl BenchDatabase {
    /// A new database `{stem}_{pid}_{random}` on the server of `admin_url`.
    pub async fn create(admin_url: &str, stem: &str) -> Result<Self> {
        let name = format!("{stem}_{}_{}", std::process::id(), random_lower(8));
        let admin = admin_client(admin_url).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("create the database {name}"))?;
        let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
        Ok(Self {
            admin_url: admin_url.to_string(),
            url: format!("{base}/{name}"),
            name,
        })
    }

    pub async fn drop_database(&self) {
        let dropped = async {
            let admin = admin_client(&self.admin_url).await?;
            admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .await?;
            anyhow::Ok(())
        };
        if let Err(e) = dropped.await {
            eprintln!("warning: could not drop the database {}: {e:#}", self.name);
        }
    }
}

/// Deletes the run's RabbitMQ queues (`{prefix}.*`) and drops its database; says what it
/// could not do, and goes on.
/// Migrates the bench database and loads the demo storefront into it.
pub async fn migrate_with_demo(db_url: &str) -> Result<latchkey::store::DemoSummary> {
    let store = latchkey::store::Store::open(
        &latchkey::config::DatabaseKind::Postgres {
            url: db_url.into(),
            ca_file: None,
        },
        2,
    )
    .context("open the bench database")?;
    store
        .migrate()
        .await
        .context("migrate the bench database")?;
    store
        .load_demo(chrono::Utc::now())
        .await
        .context("load the demo storefront")
}

pub async fn tear_down(amqp_url: &str, prefix: &str, db: &BenchDatabase) {
    let queue = RabbitQueue::new(amqp_url, prefix, false, Duration::from_secs(5));
    if let Err(e) = queue.delete_all(&Config::defaults().retry_delays()).await {
        eprintln!("warning: could not delete the RabbitMQ queues {prefix}.*: {e}");
    }
    db.drop_database().await;
}
