//! The one interface both databases implement: parameterised statements, rows with typed
//! getters, and transactions. The store's queries are written once against it; where the two
//! dialects differ, the query says so (`Dialect`).
//!
//! Statements use PostgreSQL's `$1` placeholders; the SQLite driver rewrites them to `?1`.
//! Values bind to the column's real type on each side: a timestamp is `timestamptz` in
//! PostgreSQL and integer microseconds since the epoch in SQLite.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// The case-insensitive `LIKE` of the dialect: `ILIKE` on PostgreSQL (Unicode case folding);
    /// SQLite's `LIKE` ignores case already (ASCII letters only).
    pub fn ilike(self) -> &'static str {
        match self {
            Dialect::Postgres => "ILIKE",
            Dialect::Sqlite => "LIKE",
        }
    }
}

/// The pattern that matches any text containing `text`, for `… LIKE $n ESCAPE '\'`: `%`, `_`
/// and `\` typed by a person match themselves, not any text.
pub fn contains_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for ch in text.chars() {
        if matches!(ch, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(ch);
    }
    out.push('%');
    out
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database could not be reached (pool timeout, connection refused or lost).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A unique constraint refused the write; carries the constraint or index name.
    #[error("unique constraint violated: {0}")]
    Unique(String),
    #[error("database error: {0}")]
    Query(String),
}

pub type DbResult<T> = Result<T, DbError>;

/// A statement parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    I64(i64),
    Text(String),
    Bytes(Vec<u8>),
    Ts(DateTime<Utc>),
    Date(NaiveDate),
    Bool(bool),
    /// Arrays, for batched statements on PostgreSQL (`unnest($1::bigint[], …)`).
    I64s(Vec<Option<i64>>),
    Texts(Vec<Option<String>>),
    Blobs(Vec<Option<Vec<u8>>>),
    Tss(Vec<Option<DateTime<Utc>>>),
    Bools(Vec<bool>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::I64(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::I64(v as i64)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::I64(v as i64)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Bytes(v.to_vec())
    }
}
impl From<&[u8; 32]> for Value {
    fn from(v: &[u8; 32]) -> Self {
        Value::Bytes(v.to_vec())
    }
}
impl From<DateTime<Utc>> for Value {
    fn from(v: DateTime<Utc>) -> Self {
        Value::Ts(v)
    }
}
impl From<NaiveDate> for Value {
    fn from(v: NaiveDate) -> Self {
        Value::Date(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map(Into::into).unwrap_or(Value::Null)
    }
}

/// Builds a parameter list: `params![id, email, now]`.
#[macro_export]
macro_rules! params {
    () => { Vec::<$crate::store::db::Value>::new() };
    ($($v:expr),+ $(,)?) => {
        ::std::vec::Vec::<$crate::store::db::Value>::from([$($crate::store::db::Value::from($v)),+])
    };
}

/// SQLite stores timestamps as integer microseconds since the epoch.
pub fn ts_to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn micros_to_ts(m: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(m).single().unwrap_or_default()
}

/// One result row, read by column index with typed getters. A type mismatch is a bug in the
/// query, so the getters panic with the column index, like `tokio_postgres::Row::get`.
pub enum Row {
    Pg(tokio_postgres::Row),
    Lite(Vec<rusqlite::types::Value>),
}

impl Row {
    fn lite(&self, i: usize) -> &rusqlite::types::Value {
        match self {
            Row::Lite(v) => &v[i],
            Row::Pg(_) => unreachable!(),
        }
    }

    pub fn opt_i64(&self, i: usize) -> Option<i64> {
        match self {
            Row::Pg(r) => {
                let ty = r.columns()[i].type_();
                if *ty == tokio_postgres::types::Type::INT4 {
                    r.get::<_, Option<i32>>(i).map(i64::from)
                } else if *ty == tokio_postgres::types::Type::INT2 {
                    r.get::<_, Option<i16>>(i).map(i64::from)
                } else {
                    r.get::<_, Option<i64>>(i)
                }
            }
            Row::Lite(_) => match self.lite(i) {
                rusqlite::types::Value::Null => None,
                rusqlite::types::Value::Integer(v) => Some(*v),
                other => panic!("column {i}: expected an integer, found {other:?}"),
            },
        }
    }

    pub fn i64(&self, i: usize) -> i64 {
        self.opt_i64(i)
            .unwrap_or_else(|| panic!("column {i}: unexpected NULL"))
    }

    pub fn opt_string(&self, i: usize) -> Option<String> {
        match self {
            Row::Pg(r) => r.get::<_, Option<String>>(i),
            Row::Lite(_) => match self.lite(i) {
                rusqlite::types::Value::Null => None,
                rusqlite::types::Value::Text(s) => Some(s.clone()),
                other => panic!("column {i}: expected text, found {other:?}"),
            },
        }
    }

    pub fn string(&self, i: usize) -> String {
        self.opt_string(i)
            .unwrap_or_else(|| panic!("column {i}: unexpected NULL"))
    }

    /// An address column: written from a parsed [`EmailAddress`], so read back as one.
    pub fn email(&self, i: usize) -> crate::domain::EmailAddress {
        crate::domain::EmailAddress::from_stored(self.string(i))
    }

    pub fn opt_ts(&self, i: usize) -> Option<DateTime<Utc>> {
        match self {
            Row::Pg(r) => r.get::<_, Option<DateTime<Utc>>>(i),
            Row::Lite(_) => self.opt_i64(i).map(micros_to_ts),
        }
    }

    pub fn ts(&self, i: usize) -> DateTime<Utc> {
        self.opt_ts(i)
            .unwrap_or_else(|| panic!("column {i}: unexpected NULL"))
    }

    pub fn opt_date(&self, i: usize) -> Option<NaiveDate> {
        match self {
            Row::Pg(r) => r.get::<_, Option<NaiveDate>>(i),
            Row::Lite(_) => self.opt_string(i).map(|s| {
                NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                    .unwrap_or_else(|_| panic!("column {i}: not a date: {s}"))
            }),
        }
    }

    pub fn date(&self, i: usize) -> NaiveDate {
        self.opt_date(i)
            .unwrap_or_else(|| panic!("column {i}: unexpected NULL"))
    }

    pub fn opt_bytes(&self, i: usize) -> Option<Vec<u8>> {
        match self {
            Row::Pg(r) => r.get::<_, Option<Vec<u8>>>(i),
            Row::Lite(_) => match self.lite(i) {
                rusqlite::types::Value::Null => None,
                rusqlite::types::Value::Blob(b) => Some(b.clone()),
                other => panic!("column {i}: expected bytes, found {other:?}"),
            },
        }
    }

    pub fn bytes(&self, i: usize) -> Vec<u8> {
        self.opt_bytes(i)
            .unwrap_or_else(|| panic!("column {i}: unexpected NULL"))
    }

    pub fn bool(&self, i: usize) -> bool {
        match self {
            Row::Pg(r) => r.get::<_, bool>(i),
            Row::Lite(_) => self.i64(i) != 0,
        }
    }
}

/// A connection taken from the pool. Statements run one at a time, each committed on its own
/// unless the connection is a [`Transaction`].
#[async_trait]
pub trait Conn: Send {
    async fn query(&mut self, sql: &str, params: &[Value]) -> DbResult<Vec<Row>>;
    async fn execute(&mut self, sql: &str, params: &[Value]) -> DbResult<u64>;
    /// Runs several statements without parameters (migrations).
    async fn batch(&mut self, sql: &str) -> DbResult<()>;
    /// Runs statements in order and returns each one's rows. PostgreSQL sends them together
    /// (one round trip); a statement sees what the ones before it did.
    async fn query_many(&mut self, statements: &[(&str, &[Value])]) -> DbResult<Vec<Vec<Row>>> {
        let mut out = Vec::with_capacity(statements.len());
        for (sql, params) in statements {
            out.push(self.query(sql, params).await?);
        }
        Ok(out)
    }
}

/// A transaction: dropped without `commit`, it rolls back.
#[async_trait]
pub trait Transaction: Conn {
    async fn commit(self: Box<Self>) -> DbResult<()>;
    /// Runs a last statement and commits (PostgreSQL: in one round trip).
    async fn query_and_commit(
        mut self: Box<Self>,
        sql: &str,
        params: &[Value],
    ) -> DbResult<Vec<Row>> {
        let rows = self.query(sql, params).await?;
        self.commit().await?;
        Ok(rows)
    }
}

/// A database: PostgreSQL or SQLite.
#[async_trait]
pub trait Database: Send + Sync + 'static {
    fn dialect(&self) -> Dialect;
    async fn conn(&self) -> DbResult<Box<dyn Conn>>;
    async fn begin(&self) -> DbResult<Box<dyn Transaction>>;
    /// A cheap round trip, for `/readyz`.
    async fn ping(&self) -> DbResult<()>;
}

impl dyn Conn + '_ {
    pub async fn query_opt(&mut self, sql: &str, params: &[Value]) -> DbResult<Option<Row>> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    pub async fn query_one(&mut self, sql: &str, params: &[Value]) -> DbResult<Row> {
        self.query_opt(sql, params)
            .await?
            .ok_or_else(|| DbError::Query("expected a row, found none".into()))
    }
}

impl dyn Transaction + '_ {
    pub async fn query_opt(&mut self, sql: &str, params: &[Value]) -> DbResult<Option<Row>> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    pub async fn query_one(&mut self, sql: &str, params: &[Value]) -> DbResult<Row> {
        self.query_opt(sql, params)
            .await?
            .ok_or_else(|| DbError::Query("expected a row, found none".into()))
    }
}

impl dyn Database {
    /// Runs one statement on a pooled connection and returns its rows.
    pub async fn query(&self, sql: &str, params: &[Value]) -> DbResult<Vec<Row>> {
        self.conn().await?.query(sql, params).await
    }

    pub async fn query_opt(&self, sql: &str, params: &[Value]) -> DbResult<Option<Row>> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    pub async fn query_one(&self, sql: &str, params: &[Value]) -> DbResult<Row> {
        self.conn().await?.query_one(sql, params).await
    }

    pub async fn execute(&self, sql: &str, params: &[Value]) -> DbResult<u64> {
        self.conn().await?.execute(sql, params).await
    }
}

/// A column list with each column qualified by a table alias: `a.id, a.email` for `id, email`.
#[cfg(test)]
mod pattern_tests {
    #[test]
    fn wildcards_typed_by_a_person_match_themselves() {
        assert_eq!(super::contains_pattern("sam"), "%sam%");
        assert_eq!(super::contains_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}

pub fn qualified(columns: &str, alias: &str) -> String {
    columns
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rewrites `$1` placeholders to SQLite's `?1`, leaving string literals alone.
pub fn sqlite_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut in_string = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            in_string = !in_string;
            out.push(c);
        } else if c == '$' && !in_string && chars.peek().is_some_and(|n| n.is_ascii_digit()) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_outside_strings() {
        assert_eq!(
            sqlite_placeholders("SELECT $1, '$2', $10 FROM t WHERE a = $2"),
            "SELECT ?1, '$2', ?10 FROM t WHERE a = ?2"
        );
    }

    #[test]
    fn columns_are_qualified_by_the_alias() {
        assert_eq!(qualified("id, email", "a"), "a.id, a.email");
    }

    #[test]
    fn timestamps_round_trip_through_micros() {
        let t = Utc.timestamp_micros(1_763_800_000_123_456).unwrap();
        assert_eq!(micros_to_ts(ts_to_micros(t)), t);
    }
}
