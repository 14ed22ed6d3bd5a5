//! One way to run parameterized SQL on either backend, so that every query is written once.
//! Statements use PostgreSQL's `$1` placeholders; SQLite reads them as `?1`.

use postgres::types::ToSql as PgToSql;
use rusqlite::types::{ToSql as LiteToSql, ToSqlOutput};

/// A driver error from either backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Postgres(#[from] postgres::Error),
    #[error("the query returned no row")]
    NoRow,
    /// A problem the schema code found (`schema::SchemaProblem`), carried through the same
    /// transaction as the queries; boxed, so that this file need not know the schema's types.
    #[error(transparent)]
    Schema(Box<dyn std::error::Error + Send + Sync>),
}

/// A bound parameter. Integers are i64 because every integer column is BIGINT.
#[derive(Clone, Copy, Debug)]
pub enum Param<'a> {
    Int(i64),
    OptInt(Option<i64>),
    Real(f64),
    OptReal(Option<f64>),
    Text(&'a str),
    OptText(Option<&'a str>),
}

impl Param<'_> {
    fn as_postgres(&self) -> &(dyn PgToSql + Sync) {
        match self {
            Param::Int(v) => v,
            Param::OptInt(v) => v,
            Param::Real(v) => v,
            Param::OptReal(v) => v,
            Param::Text(v) => v,
            Param::OptText(v) => v,
        }
    }
}

impl LiteToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match self {
            Param::Int(v) => LiteToSql::to_sql(v),
            Param::OptInt(v) => LiteToSql::to_sql(v),
            Param::Real(v) => LiteToSql::to_sql(v),
            Param::OptReal(v) => LiteToSql::to_sql(v),
            Param::Text(v) => LiteToSql::to_sql(v),
            Param::OptText(v) => LiteToSql::to_sql(v),
        }
    }
}

/// Typed column access common to both backends' rows.
pub trait Row {
    fn int(&self, column: usize) -> Result<i64, BackendError>;
    fn opt_int(&self, column: usize) -> Result<Option<i64>, BackendError>;
    fn real(&self, column: usize) -> Result<f64, BackendError>;
    fn opt_real(&self, column: usize) -> Result<Option<f64>, BackendError>;
    fn text(&self, column: usize) -> Result<String, BackendError>;
    fn opt_text(&self, column: usize) -> Result<Option<String>, BackendError>;
    fn boolean(&self, column: usize) -> Result<bool, BackendError>;
}

macro_rules! impl_row {
    ($row:ty) => {
        impl Row for $row {
            fn int(&self, column: usize) -> Result<i64, BackendError> {
                Ok(self.get_value(column)?)
            }
            fn opt_int(&self, column: usize) -> Result<Option<i64>, BackendError> {
                Ok(self.get_value(column)?)
            }
            fn real(&self, column: usize) -> Result<f64, BackendError> {
                Ok(self.get_value(column)?)
            }
            fn opt_real(&self, column: usize) -> Result<Option<f64>, BackendError> {
                Ok(self.get_value(column)?)
            }
            fn text(&self, column: usize) -> Result<String, BackendError> {
                Ok(self.get_value(column)?)
            }
            fn opt_text(&self, column: usize) -> Result<Option<String>, BackendError> {
                Ok(self.get_value(column)?)
            }
            fn boolean(&self, column: usize) -> Result<bool, BackendError> {
                Ok(self.get_value(column)?)
            }
        }
    };
}

/// The two drivers name their fallible getter differently.
trait GetValue {
    type Error;
    fn get_value<T: FromBoth>(&self, column: usize) -> Result<T, Self::Error>;
}

/// Types both drivers can read.
pub trait FromBoth: rusqlite::types::FromSql + for<'r> postgres::types::FromSql<'r> {}
impl<T: rusqlite::types::FromSql + for<'r> postgres::types::FromSql<'r>> FromBoth for T {}

impl GetValue for rusqlite::Row<'_> {
    type Error = rusqlite::Error;
    fn get_value<T: FromBoth>(&self, column: usize) -> Result<T, rusqlite::Error> {
        self.get(column)
    }
}

impl GetValue for postgres::Row {
    type Error = postgres::Error;
    fn get_value<T: FromBoth>(&self, column: usize) -> Result<T, postgres::Error> {
        self.try_get(column)
    }
}

impl_row!(rusqlite::Row<'_>);
impl_row!(postgres::Row);

/// An open transaction on either backend.
pub enum Transaction<'c, 't> {
    Sqlite(&'c rusqlite::Transaction<'t>),
    Postgres(&'c mut postgres::Transaction<'t>),
}

impl Transaction<'_, '_> {
    pub fn is_sqlite(&self) -> bool {
        matches!(self, Transaction::Sqlite(_))
    }

    pub fn execute(&mut self, sql: &str, params: &[Param]) -> Result<u64, BackendError> {
        Ok(match self {
            Transaction::Sqlite(tx) => {
                let params: Vec<&dyn LiteToSql> = params.iter().map(|p| p as _).collect();
                tx.execute(&sqlite_dialect(sql), params.as_slice())? as u64
            }
            Transaction::Postgres(tx) => {
                let params: Vec<_> = params.iter().map(Param::as_postgres).collect();
                tx.execute(sql, &params)?
            }
        })
    }

    /// Runs `sql` and maps every row with `map`.
    pub fn query<T>(
        &mut self,
        sql: &str,
        params: &[Param],
        mut map: impl FnMut(&dyn Row) -> Result<T, BackendError>,
    ) -> Result<Vec<T>, BackendError> {
        match self {
            Transaction::Sqlite(tx) => {
                let params: Vec<&dyn LiteToSql> = params.iter().map(|p| p as _).collect();
                let mut statement = tx.prepare(&sqlite_dialect(sql))?;
                let mut rows = statement.query(params.as_slice())?;
                let mut out = Vec::new();
                while let Some(row) = rows.next()? {
                    out.push(map(row)?);
                }
                Ok(out)
            }
            Transaction::Postgres(tx) => {
                let params: Vec<_> = params.iter().map(Param::as_postgres).collect();
                tx.query(sql, &params)?.iter().map(|row| map(row)).collect()
            }
        }
    }

    /// Runs a statement that returns exactly one row (an `INSERT … RETURNING id`, a count).
    pub fn query_one<T>(
        &mut self,
        sql: &str,
        params: &[Param],
        map: impl FnMut(&dyn Row) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        self.query(sql, params, map)?
            .into_iter()
            .next()
            .ok_or(BackendError::NoRow)
    }

    pub fn batch(&mut self, sql: &str) -> Result<(), BackendError> {
        match self {
            Transaction::Sqlite(tx) => tx.execute_batch(sql)?,
            Transaction::Postgres(tx) => tx.batch_execute(sql)?,
        }
        Ok(())
    }
}

/// `$1` → `?1`: SQLite's numbered placeholders. No statement here has a `$` elsewhere.
fn sqlite_dialect(sql: &str) -> String {
    sql.replace('$', "?")
}
