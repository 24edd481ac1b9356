//! PostgreSQL through deadpool-postgres and tokio-postgres.

use std::error::Error as StdError;
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use deadpool_postgres::{
    Hook, HookError, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

use super::db::{Conn, Database, DbError, DbResult, Dialect, Row, Transaction, Value};
use super::postgres_tls::client_config;
use crate::config::PgTarget;

pub struct Postgres {
    pool: Pool,
}

/// How a pool's sessions plan prepared statements (see [`crate::store::Store::batches`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plans {
    /// PostgreSQL's default (`plan_cache_mode = auto`).
    Custom,
    /// `plan_cache_mode = force_generic_plan`: planned once per connection.
    Generic,
}

impl Postgres {
    /// Builds the pool; connections are made on first use, over TLS when the target's
    /// `sslmode` asks for it.
    pub fn connect(target: &PgTarget, pool_size: usize, plans: Plans) -> DbResult<Self> {
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let pg_config = target.config.clone();
        let manager = match client_config(target).map_err(DbError::Unavailable)? {
            None => Manager::from_config(pg_config, tokio_postgres::NoTls, manager_config),
            Some(tls) => Manager::from_config(
                pg_config,
                tokio_postgres_rustls::MakeRustlsConnect::new(tls),
                manager_config,
            ),
        };
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)));
        let pool = match plans {
            Plans::Custom => pool,
            // Each connection is set up when made (a startup option would be refused by
            // connection poolers such as PgBouncer).
            Plans::Generic => pool.post_create(Hook::async_fn(|client, _| {
                Box::pin(async move {
                    client
                        .batch_execute("SET plan_cache_mode = force_generic_plan")
                        .await
                        .map_err(HookError::Backend)
                })
            })),
        };
        let pool = pool
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
            begin_pending: false,
        }))
    }

    /// BEGIN is not sent on its own: it goes out with the transaction's first statements.
    async fn begin(&self) -> DbResult<Box<dyn Transaction>> {
        Ok(Box::new(PgConn {
            client: Some(self.object().await?),
            in_tx: true,
            begin_pending: true,
        }))
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
    /// BEGIN still to be sent, ahead of the next statement.
    begin_pending: bool,
}

impl PgConn {
    fn client(&self) -> &Object {
        self.client.as_ref().expect("connection present until drop")
    }

    /// Sends the pending BEGIN, the statements and (if asked) COMMIT back to back, without
    /// waiting for each answer: tokio-postgres pipelines requests that are in flight together,
    /// so the whole sequence costs one round trip.
    async fn pipeline(
        &mut self,
        statements: &[(&str, &[Value])],
        commit: bool,
    ) -> DbResult<Vec<Vec<Row>>> {
        let client = self.client.as_ref().expect("connection present until drop");
        let mut prepared = Vec::with_capacity(statements.len());
        for (sql, _) in statements {
            prepared.push(client.prepare_cached(sql).await.map_err(map_err)?);
        }
        let refs: Vec<Vec<&(dyn ToSql + Sync)>> = statements
            .iter()
            .map(|(_, params)| params.iter().map(|p| p as _).collect())
            .collect();
        let begin = self.begin_pending;
        let (began, results, committed) = futures::join!(
            async {
                if begin {
                    client.batch_execute("BEGIN").await
                } else {
                    Ok(())
                }
            },
            futures::future::join_all(
                prepared
                    .iter()
                    .zip(&refs)
                    .map(|(stmt, params)| client.query(stmt, params))
            ),
            async {
                if commit {
                    client.batch_execute("COMMIT").await
                } else {
                    Ok(())
                }
            }
        );
        self.begin_pending = false;
        if commit {
            self.in_tx = false;
        }
        began.map_err(map_err)?;
        let mut out = Vec::with_capacity(results.len());
        for rows in results {
            out.push(rows.map_err(map_err)?.into_iter().map(Row::Pg).collect());
        }
        committed.map_err(map_err)?;
        Ok(out)
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
        Ok(self
            .pipeline(&[(sql, params)], false)
            .await?
            .pop()
            .unwrap_or_default())
    }

    async fn query_many(&mut self, statements: &[(&str, &[Value])]) -> DbResult<Vec<Vec<Row>>> {
        self.pipeline(statements, false).await
    }

    async fn execute(&mut self, sql: &str, params: &[Value]) -> DbResult<u64> {
        if self.begin_pending {
            self.pipeline(&[], false).await?;
        }
        let client = self.client();
        let stmt = client.prepare_cached(sql).await.map_err(map_err)?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
        client.execute(&stmt, &refs).await.map_err(map_err)
    }

    async fn batch(&mut self, sql: &str) -> DbResult<()> {
        if self.begin_pending {
            self.pipeline(&[], false).await?;
        }
        self.client().batch_execute(sql).await.map_err(map_err)
    }
}

#[async_trait]
impl Transaction for PgConn {
    async fn commit(mut self: Box<Self>) -> DbResult<()> {
        if self.begin_pending {
            // Nothing was sent: there is nothing to commit.
            self.begin_pending = false;
            self.in_tx = false;
            return Ok(());
        }
        self.pipeline(&[], true).await?;
        Ok(())
    }

    async fn query_and_commit(
        mut self: Box<Self>,
        sql: &str,
        params: &[Value],
    ) -> DbResult<Vec<Row>> {
        Ok(self
            .pipeline(&[(sql, params)], true)
            .await?
            .pop()
            .unwrap_or_default())
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
