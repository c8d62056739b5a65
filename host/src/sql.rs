//! The SQL proxy: runs a guest's statements on the host's connection and turns values and
//! errors into the contract's types. Guest input never panics the host: every failure becomes
//! a [`SqlError`] the guest can read.

use rusqlite::types::{Value as SqliteValue, ValueRef};
use rusqlite::{Connection, params_from_iter};

use crate::runtime::bindings::{SqlError, Value, sql::QueryResult};

/// SQLite's primary result codes the proxy reports for failures of its own.
pub const SQLITE_ERROR: i32 = 1;
/// A statement used the API wrongly (e.g. `execute` on a statement that returns rows).
pub const SQLITE_MISUSE: i32 = 21;
/// Wrong number of parameters.
pub const SQLITE_RANGE: i32 = 25;

/// Runs one statement that returns no rows; returns the rows changed.
pub fn execute(conn: &Connection, sql: &str, params: Vec<Value>) -> Result<u64, SqlError> {
    let mut stmt = conn.prepare_cached(sql).map_err(to_sql_error)?;
    if stmt.column_count() > 0 {
        return Err(SqlError {
            code: SQLITE_MISUSE,
            message: "this statement returns rows: run it with query, not execute".into(),
        });
    }
    let changed = stmt
        .execute(params_from_iter(params.into_iter().map(to_sqlite)))
        .map_err(to_sql_error)?;
    Ok(changed as u64)
}

/// Runs a `;`-separated script without parameters.
pub fn execute_batch(conn: &Connection, sql: &str) -> Result<(), SqlError> {
    conn.execute_batch(sql).map_err(to_sql_error)
}

/// Runs one query and returns all its rows.
pub fn query(conn: &Connection, sql: &str, params: Vec<Value>) -> Result<QueryResult, SqlError> {
    let mut stmt = conn.prepare_cached(sql).map_err(to_sql_error)?;
    let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
    let width = columns.len();
    let mut rows = stmt
        .query(params_from_iter(params.into_iter().map(to_sqlite)))
        .map_err(to_sql_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(to_sql_error)? {
        let mut values = Vec::with_capacity(width);
        for (index, column) in columns.iter().enumerate() {
            let value = row.get_ref(index).map_err(to_sql_error)?;
            values.push(from_sqlite(value, column)?);
        }
        out.push(values);
    }
    Ok(QueryResult { columns, rows: out })
}

fn to_sqlite(value: Value) -> SqliteValue {
    match value {
        Value::Null => SqliteValue::Null,
        Value::Integer(i) => SqliteValue::Integer(i),
        Value::Real(r) => SqliteValue::Real(r),
        Value::Text(t) => SqliteValue::Text(t),
        Value::Blob(b) => SqliteValue::Blob(b),
    }
}

fn from_sqlite(value: ValueRef<'_>, column: &str) -> Result<Value, SqlError> {
    Ok(match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(r) => Value::Real(r),
        // Never lossy: a data migration that reads and writes back must not corrupt text.
        ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Value::Text(text.to_owned()),
            Err(_) => {
                return Err(SqlError {
                    code: SQLITE_MISMATCH,
                    message: format!(
                        "column `{column}` holds TEXT that is not valid UTF-8; \
                         select CAST({column} AS BLOB) to read its bytes"
                    ),
                });
            }
        },
        ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
    })
}

/// Data type mismatch.
const SQLITE_MISMATCH: i32 = 20;

/// SQLite's own code and message when SQLite failed; the proxy's reason otherwise.
pub(crate) fn to_sql_error(error: rusqlite::Error) -> SqlError {
    match error {
        rusqlite::Error::SqliteFailure(failure, message) => SqlError {
            code: failure.extended_code,
            message: message.unwrap_or_else(|| failure.to_string()),
        },
        // A syntax error: SQLite's message and where in the SQL it is (the guest has the SQL).
        rusqlite::Error::SqlInputError {
            error, msg, offset, ..
        } => SqlError {
            code: error.extended_code,
            message: format!("{msg} (at byte {offset})"),
        },
        rusqlite::Error::InvalidParameterCount(given, expected) => SqlError {
            code: SQLITE_RANGE,
            message: format!("the statement has {expected} parameters but {given} were given"),
        },
        rusqlite::Error::MultipleStatement => SqlError {
            code: SQLITE_MISUSE,
            message: "more than one statement: use execute-batch for scripts".into(),
        },
        other => SqlError {
            code: SQLITE_ERROR,
            message: other.to_string(),
        },
    }
}
