//! What one guest call may send or receive, and the result codes the proxy reports for
//! refusals of its own: checked before anything reaches SQLite.

use rusqlite::types::ValueRef;

use crate::contract::SqlError;
use crate::error::human_bytes;
use crate::policy;

/// SQLite's result codes the proxy reports for failures of its own.
pub const SQLITE_ERROR: i32 = 1;
/// A statement used the API wrongly (e.g. `execute` on a statement that returns rows).
pub const SQLITE_MISUSE: i32 = 21;
/// Wrong number of parameters.
pub const SQLITE_RANGE: i32 = 25;
/// Refused by the policy.
pub const SQLITE_AUTH: i32 = 23;
/// Over one of the proxy's size bounds.
pub const SQLITE_TOOBIG: i32 = 18;
/// Stopped at the deadline.
pub const SQLITE_INTERRUPT: i32 = 9;
/// Data type mismatch.
pub(super) const SQLITE_MISMATCH: i32 = 20;
/// The host's transaction is gone.
pub const SQLITE_ABORT: i32 = 4;

/// Longest SQL text one call may send: scripts are small; data goes in parameters.
pub const MAX_SQL_BYTES: usize = 4 << 20;
/// Most parameter bytes one call may send.
pub const MAX_PARAM_BYTES: usize = 64 << 20;
/// Most rows one `query` may return.
pub const MAX_QUERY_ROWS: usize = 1_000_000;
/// Most bytes (approximately) one `query` may return.
pub const MAX_QUERY_BYTES: usize = 64 << 20;
/// Most rows one cursor batch returns, whatever the guest asks for.
pub const MAX_BATCH_ROWS: usize = 100_000;
/// Longest TEXT or BLOB SQLite may build while a guest runs (`SQLITE_LIMIT_LENGTH`):
/// `zeroblob`, `randomblob`, `printf` and concatenation cannot make a value larger.
pub const MAX_VALUE_BYTES: i32 = 32 << 20;
/// Most prepared-statement resources a migration may hold at once, and the SQL they hold.
pub const MAX_LIVE_STATEMENTS: usize = 256;
/// The SQL text the live prepared statements of a migration may hold in all.
pub const MAX_LIVE_STATEMENT_BYTES: usize = 16 << 20;
/// Most cursors a migration may have open at once.
pub const MAX_LIVE_CURSORS: usize = 32;
/// What SQLite may allocate for one running migration beyond what it used before (page cache,
/// statements, sorting, values): its share of SQLite's process-wide heap limit.
pub const SQL_HEAP_BUDGET: usize = 64 << 20;

/// SQLite virtual machine steps between deadline checks.
pub(super) const PROGRESS_STEPS: i32 = 10_000;

pub(super) fn check_sql(sql: &str) -> Result<(), SqlError> {
    check_sql_size(sql)?;
    policy::check_statement_text(sql).map_err(|reason| SqlError {
        code: SQLITE_AUTH,
        message: format!("refused by hsm-host's policy: {reason}"),
    })
}

/// The size bound every backend shares.
pub(super) fn check_sql_size(sql: &str) -> Result<(), SqlError> {
    if sql.len() > MAX_SQL_BYTES {
        return Err(SqlError {
            code: SQLITE_TOOBIG,
            message: format!(
                "the SQL text is {}, over hsm-host's limit of {}: pass data as parameters",
                human_bytes(sql.len() as u64),
                human_bytes(MAX_SQL_BYTES as u64)
            ),
        });
    }
    Ok(())
}

pub(super) fn check_params<'a>(
    params: impl IntoIterator<Item = ValueRef<'a>>,
) -> Result<(), SqlError> {
    let bytes: usize = params
        .into_iter()
        .map(|p| match p {
            ValueRef::Text(b) | ValueRef::Blob(b) => b.len(),
            _ => 8,
        })
        .sum();
    if bytes > MAX_PARAM_BYTES {
        return Err(SqlError {
            code: SQLITE_TOOBIG,
            message: format!(
                "the parameters hold {}, over hsm-host's limit of {} per statement",
                human_bytes(bytes as u64),
                human_bytes(MAX_PARAM_BYTES as u64)
            ),
        });
    }
    Ok(())
}
