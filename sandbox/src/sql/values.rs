//! The contract's values to SQLite's and back.

use rusqlite::types::{Value as SqliteValue, ValueRef};

use super::bounds::*;
use crate::contract::{SqlError, Value};

/// How many sets of `width` a flat list of `len` holds; an error unless a whole number.
pub(super) fn whole_sets(
    call: &str,
    what: &str,
    width: u32,
    len: usize,
) -> Result<usize, SqlError> {
    let width = width as usize;
    if width == 0 || !len.is_multiple_of(width) {
        return Err(SqlError {
            code: SQLITE_MISUSE,
            message: format!("{call} got {len} {what}, not a whole number of sets of {width}"),
        });
    }
    Ok(width)
}

/// A guest value, borrowed for binding (SQLite copies what it keeps).
pub(super) fn value_ref(value: &Value) -> ValueRef<'_> {
    match value {
        Value::Null => ValueRef::Null,
        Value::Integer(i) => ValueRef::Integer(*i),
        Value::Real(r) => ValueRef::Real(*r),
        Value::Text(t) => ValueRef::Text(t.as_bytes()),
        Value::Blob(b) => ValueRef::Blob(b),
    }
}

pub(super) fn to_sqlite(value: Value) -> SqliteValue {
    match value {
        Value::Null => SqliteValue::Null,
        Value::Integer(i) => SqliteValue::Integer(i),
        Value::Real(r) => SqliteValue::Real(r),
        Value::Text(t) => SqliteValue::Text(t),
        Value::Blob(b) => SqliteValue::Blob(b),
    }
}

pub(super) fn from_sqlite(
    value: ValueRef<'_>,
    column: impl std::fmt::Display,
) -> Result<Value, SqlError> {
    Ok(match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(bytes) => Value::Text(checked_text(bytes, column)?.to_owned()),
        ValueRef::Blob(bytes) => Value::Blob(bytes.to_vec()),
    })
}

/// TEXT as a string; never lossy, so a data migration that reads and writes back cannot
/// corrupt text: invalid UTF-8 is an error naming the column.
pub(super) fn checked_text(bytes: &[u8], column: impl std::fmt::Display) -> Result<&str, SqlError> {
    std::str::from_utf8(bytes).map_err(|_| SqlError {
        code: SQLITE_MISMATCH,
        message: format!(
            "column `{column}` holds TEXT that is not valid UTF-8; \
             select CAST({column} AS BLOB) to read its bytes"
        ),
    })
}

/// SQLite's own code and message when SQLite failed; the proxy's reason otherwise.
pub(super) fn to_sql_error(error: rusqlite::Error) -> SqlError {
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
