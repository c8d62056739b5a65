//! The error type of every SDK call: what failed, SQLite's code, and the SQL that failed.

use core::fmt;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Why an SDK call failed. Its `Display` is what the operator sees when the migration fails,
/// so it always names the SQL involved.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// SQLite (or the host's policy) refused or failed a statement.
    Sql {
        /// SQLite's extended result code; `code & 255` is the primary code.
        code: i32,
        /// SQLite's message.
        message: String,
        /// The statement that failed.
        sql: String,
    },
    /// `query_row` found no row.
    NoRows {
        /// The query that returned nothing.
        sql: String,
    },
    /// A column could not be read as the Rust type asked for.
    Column {
        /// The column's name (or index when out of range).
        column: String,
        /// What was wrong.
        message: String,
    },
    /// A message of the migration's own.
    Message(String),
}

impl Error {
    /// An error with a message of the migration's own, e.g. a data check that failed.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self::Message(message.to_string())
    }

    /// SQLite's extended result code, when SQLite produced the error.
    pub fn sqlite_code(&self) -> Option<i32> {
        match self {
            Self::Sql { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sql { code, message, sql } => {
                write!(f, "{message} (SQLite code {code}) in `{}`", shorten(sql))
            }
            Self::NoRows { sql } => write!(f, "query returned no rows: `{}`", shorten(sql)),
            Self::Column { column, message } => write!(f, "column {column}: {message}"),
            Self::Message(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Self::Message(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Self::Message(message.to_owned())
    }
}

/// Keeps error messages readable when a migration runs a long script.
fn shorten(sql: &str) -> String {
    const MAX: usize = 300;
    let sql = sql.trim();
    if sql.len() <= MAX {
        return sql.to_owned();
    }
    let mut end = MAX;
    while !sql.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &sql[..end])
}
