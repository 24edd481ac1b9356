//! SQLite (the embedded default) through deadpool-sqlite and rusqlite.
//!
//! WAL mode lets readers run beside the one writer; transactions start with
//! `BEGIN IMMEDIATE` so writers queue on SQLite's lock (with a busy timeout) instead of
//! failing half-way.

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_sqlite::{Config, Hook, HookError, Object, Pool, Runtime};
use rusqlite::types::{ToSqlOutput, Value as LiteValue};

use super::db::{
    Conn, Database, DbError, DbResult, Dialect, Row, Transaction, Value, sqlite_placeholders,
    ts_to_micros,
};

pub struct Sqlite {
    pool: Pool,
}

impl Sqlite {
    pub fn open(path: &Path, pool_size: usize) -> DbResult<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| DbError::Unavailable(format!("{}: {e}", dir.display())))?;
        }
        let pool = Config::new(path)
            .builder(Runtime::Tokio1)
            .map_err(|e| DbError::Unavailable(e.to_string()))?
            .max_size(pool_size)
            .wait_timeout(Some(Duration::from_secs(10)))
            .post_create(Hook::async_fn(|obj, _| {
                Box::pin(async move {
                    obj.interact(|c| {
                        c.set_prepared_statement_cache_capacity(128);
                        c.busy_timeout(Duration::from_secs(10))?;
                        c.execute_batch(
                            "PRAGMA journal_mode = WAL;
                             PRAGMA synchronous = NORMAL;
                             PRAGMA foreign_keys = ON;",
                        )
                    })
                    .await
                    .map_err(|e| HookError::message(e.to_string()))?
                    .map_err(|e| HookError::message(e.to_string()))
                })
            }))
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
impl Database for Sqlite {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn conn(&self) -> DbResult<Box<dyn Conn>> {
        Ok(Box::new(LiteConn {
            obj: self.object().await?,
            in_tx: false,
        }))
    }

    async fn begin(&self) -> DbResult<Box<dyn Transaction>> {
        let mut conn = LiteConn {
            obj: self.object().await?,
            in_tx: false,
        };
        conn.batch("BEGIN IMMEDIATE").await?;
        conn.in_tx = true;
        Ok(Box::new(conn))
    }

    async fn ping(&self) -> DbResult<()> {
        self.conn().await?.batch("SELECT 1").await
    }
}

struct LiteConn {
    obj: Object,
    in_tx: bool,
}

fn map_err(e: rusqlite::Error) -> DbError {
    if let rusqlite::Error::SqliteFailure(f, msg) = &e {
        if f.code == rusqlite::ErrorCode::ConstraintViolation
            && matches!(f.extended_code, 2067 | 1555)
        {
            return DbError::Unique(msg.clone().unwrap_or_else(|| "unique".into()));
        }
        if matches!(
            f.code,
            rusqlite::ErrorCode::DatabaseBusy
                | rusqlite::ErrorCode::DatabaseLocked
                | rusqlite::ErrorCode::CannotOpen
        ) {
            return DbError::Unavailable(e.to_string());
        }
    }
    DbError::Query(e.to_string())
}

struct Param<'a>(&'a Value);

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Owned(LiteValue::Null),
            Value::I64(v) => ToSqlOutput::Owned(LiteValue::Integer(*v)),
            Value::Text(s) => ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Text(s.as_bytes())),
            Value::Bytes(b) => ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Blob(b)),
            Value::Ts(t) => ToSqlOutput::Owned(LiteValue::Integer(ts_to_micros(*t))),
            Value::Date(d) => ToSqlOutput::Owned(LiteValue::Text(d.format("%Y-%m-%d").to_string())),
            Value::Bool(b) => ToSqlOutput::Owned(LiteValue::Integer(*b as i64)),
            Value::I64s(_)
            | Value::Texts(_)
            | Value::Blobs(_)
            | Value::Tss(_)
            | Value::Bools(_) => {
                return Err(rusqlite::Error::ToSqlConversionFailure(
                    "SQLite has no array parameters; batch with a loop".into(),
                ));
            }
        })
    }
}

fn run_query(c: &rusqlite::Connection, sql: &str, params: &[Value]) -> rusqlite::Result<Vec<Row>> {
    let mut stmt = c.prepare_cached(sql)?;
    let cols = stmt.column_count();
    let bound: Vec<Param<'_>> = params.iter().map(Param).collect();
    let mut rows = stmt.query(rusqlite::params_from_iter(bound.iter()))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let mut vals = Vec::with_capacity(cols);
        for i in 0..cols {
            vals.push(r.get::<_, LiteValue>(i)?);
        }
        out.push(Row::Lite(vals));
    }
    Ok(out)
}

impl LiteConn {
    async fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> DbResult<R> {
        self.obj
            .interact(f)
            .await
            .map_err(|e| DbError::Unavailable(e.to_string()))?
            .map_err(map_err)
    }
}

#[async_trait]
impl Conn for LiteConn {
    async fn query(&mut self, sql: &str, params: &[Value]) -> DbResult<Vec<Row>> {
        let sql = sqlite_placeholders(sql);
        let params = params.to_vec();
        self.with(move |c| run_query(c, &sql, &params)).await
    }

    async fn execute(&mut self, sql: &str, params: &[Value]) -> DbResult<u64> {
        let sql = sqlite_placeholders(sql);
        let params = params.to_vec();
        self.with(move |c| {
            let mut stmt = c.prepare_cached(&sql)?;
            let bound: Vec<Param<'_>> = params.iter().map(Param).collect();
            stmt.execute(rusqlite::params_from_iter(bound.iter()))
                .map(|n| n as u64)
        })
        .await
    }

    async fn batch(&mut self, sql: &str) -> DbResult<()> {
        let sql = sql.to_string();
        self.with(move |c| c.execute_batch(&sql)).await
    }
}

#[async_trait]
impl Transaction for LiteConn {
    async fn commit(mut self: Box<Self>) -> DbResult<()> {
        self.batch("COMMIT").await?;
        self.in_tx = false;
        Ok(())
    }
}

impl Drop for LiteConn {
    fn drop(&mut self) {
        if self.in_tx {
            // Roll back before the connection goes back to the pool; a local call of
            // microseconds, so it is done in place.
            if let Ok(guard) = self.obj.lock() {
                let _ = guard.execute_batch("ROLLBACK");
            }
        }
    }
}
