//! PostgreSQL through deadpool-postgres and tokio-postgres.

use std::error::Error as StdError;
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use super::db::{Conn, Database, DbError, DbResult, Dialect, Row, Transaction, Value};

pub struct Postgres {
    pool: Pool,
}

impl Postgres {
    /// Builds the pool; connections are made on first use.
    pub fn connect(url: &str, pool_size: usize) -> DbResult<Self> {
        let mut pg_config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| DbError::Unavailable(format!("bad PostgreSQL URL: {e}")))?;
        // Every statement is prepared once per connection and planned once: the queries are
        // key lookups whose best plan does not depend on the values, and re-planning the
        // batched statements for each execution was a large share of the database's work.
        let options = match pg_config.get_options() {
            Some(o) => format!("{o} -c plan_cache_mode=force_generic_plan"),
            None => "-c plan_cache_mode=force_generic_plan".to_string(),
        };
        pg_config.options(options);
        let manager = Manager::from_config(
            pg_config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| DbError::Unavailable(e.to_string()))?;
        Ok(Self { pool })
    }

    async fn object(&self) -> DbResult<Object> {
        self.pool
            .get()
            .await
            .map_err(|e| DbError::Unavailable(e.to_string()))
    }
}

#[async_trait]
impl Database for Postgres {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn conn(&self) -> DbResult<Box<dyn Conn>> {
        Ok(Box::new(PgConn {
            client: Some(self.object().await?),
            in_tx: false,
        }))
    }

    async fn begin(&self) -> DbResult<Box<dyn Transaction>> {
        let mut conn = PgConn {
            client: Some(self.object().await?),
            in_tx: true,
        };
        conn.batch("BEGIN").await?;
        Ok(Box::new(conn))
    }

    async fn ping(&self) -> DbResult<()> {
        let mut conn = self.conn().await?;
        conn.batch("SELECT 1").await
    }
}

struct PgConn {
    client: Option<Object>,
    /// An open transaction: dropping without commit takes the connection out of the pool, so
    /// the server rolls the transaction back when the connection closes.
    in_tx: bool,
}

impl PgConn {
    fn client(&self) -> &Object {
        self.client.as_ref().expect("connection present until drop")
    }
}

fn map_err(e: tokio_postgres::Error) -> DbError {
    if let Some(db) = e.as_db_error() {
        if *db.code() == SqlState::UNIQUE_VIOLATION {
            return DbError::Unique(db.constraint().unwrap_or("unique").to_string());
        }
        return DbError::Query(format!("{}: {}", db.code().code(), db.message()));
    }
    if e.is_closed() || e.source().is_some_and(|s| s.is::<std::io::Error>()) {
        return DbError::Unavailable(e.to_string());
    }
    DbError::Query(e.to_string())
}

#[async_trait]
impl Conn for PgConn {
    async fn query(&mut self, sql: &str, params: &[Value]) -> DbResult<Vec<Row>> {
        let client = self.client();
        let stmt = client.prepare_cached(sql).await.map_err(map_err)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let rows = client.query(&stmt, &refs).await.map_err(map_err)?;
        Ok(rows.into_iter().map(Row::Pg).collect())
    }

    async fn execute(&mut self, sql: &str, params: &[Value]) -> DbResult<u64> {
        let client = self.client();
        let stmt = client.prepare_cached(sql).await.map_err(map_err)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        client.execute(&stmt, &refs).await.map_err(map_err)
    }

    async fn batch(&mut self, sql: &str) -> DbResult<()> {
        self.client().batch_execute(sql).await.map_err(map_err)
    }
}

#[async_trait]
impl Transaction for PgConn {
    async fn commit(mut self: Box<Self>) -> DbResult<()> {
        self.batch("COMMIT").await?;
        self.in_tx = false;
        Ok(())
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        if self.in_tx
            && let Some(obj) = self.client.take()
        {
            // Detach from the pool; closing the connection rolls the transaction back.
            drop(Object::take(obj));
        }
    }
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::I64(v) => match *ty {
                Type::INT2 => i16::try_from(*v)?.to_sql_checked(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql_checked(ty, out),
                _ => v.to_sql_checked(ty, out),
            },
            Value::Text(s) => s.to_sql_checked(ty, out),
            Value::Bytes(b) => b.to_sql_checked(ty, out),
            Value::Ts(t) => t.to_sql_checked(ty, out),
            Value::Date(d) => d.to_sql_checked(ty, out),
            Value::Bool(b) => b.to_sql_checked(ty, out),
            Value::I64s(v) => v.to_sql_checked(ty, out),
            Value::Texts(v) => v.to_sql_checked(ty, out),
            Value::Blobs(v) => v.to_sql_checked(ty, out),
            Value::Tss(v) => v.to_sql_checked(ty, out),
            Value::Bools(v) => v.to_sql_checked(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}
