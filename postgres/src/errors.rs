//! PostgreSQL's errors in the contract's terms: the SQLSTATE stays in the message, and a code
//! a guest written for SQLite already understands is chosen for the common classes.

use hsm_sandbox::contract::SqlError;
use postgres::error::SqlState;

/// SQLite's codes for the classes a guest may react to.
mod code {
    pub(super) const ERROR: i32 = 1;
    pub(super) const BUSY: i32 = 5;
    pub(super) const LOCKED: i32 = 6;
    pub(super) const INTERRUPT: i32 = 9;
    pub(super) const TOOBIG: i32 = 18;
    pub(super) const CONSTRAINT: i32 = 19;
    pub(super) const MISMATCH: i32 = 20;
    pub(super) const AUTH: i32 = 23;
    pub(super) const CONSTRAINT_CHECK: i32 = 275;
    pub(super) const CONSTRAINT_FOREIGNKEY: i32 = 787;
    pub(super) const CONSTRAINT_NOTNULL: i32 = 1299;
    pub(super) const CONSTRAINT_UNIQUE: i32 = 2067;
}

/// The code hsm-host reports for a lock the step could not get in time: the run retries it.
pub const LOCK_NOT_AVAILABLE: i32 = code::BUSY;

/// SQLite's code for a SQLSTATE.
pub fn mapped_code(state: &SqlState) -> i32 {
    let text = state.code();
    match text {
        "23505" => code::CONSTRAINT_UNIQUE,
        "23503" => code::CONSTRAINT_FOREIGNKEY,
        "23502" => code::CONSTRAINT_NOTNULL,
        "23514" => code::CONSTRAINT_CHECK,
        "42501" => code::AUTH,
        "57014" => code::INTERRUPT,
        "55P03" => code::BUSY,
        "40P01" => code::LOCKED,
        _ if text.starts_with("23") => code::CONSTRAINT,
        _ if text.starts_with("54") => code::TOOBIG,
        _ if text.starts_with("22") => code::MISMATCH,
        _ => code::ERROR,
    }
}

/// A client error as the guest sees it: the server's message, its detail and hint, and the
/// SQLSTATE in brackets.
pub fn to_sql_error(error: &postgres::Error) -> SqlError {
    match error.as_db_error() {
        Some(db) => {
            let mut message = db.message().to_owned();
            if let Some(detail) = db.detail() {
                message.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = db.hint() {
                message.push_str(&format!("; hint: {hint}"));
            }
            message.push_str(&format!(" [SQLSTATE {}]", db.code().code()));
            SqlError {
                code: mapped_code(db.code()),
                message,
            }
        }
        None => SqlError {
            code: code::MISMATCH,
            message: describe(error),
        },
    }
}

/// A client error's whole chain, in one line.
pub fn describe(error: &postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(&format!(": {cause}"));
        }
        source = cause_of(source);
    }
    text
}

fn cause_of<'a>(
    error: Option<&'a (dyn std::error::Error + 'static)>,
) -> Option<&'a (dyn std::error::Error + 'static)> {
    error.and_then(std::error::Error::source)
}
