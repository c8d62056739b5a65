//! The guest's SQL on a database server (PostgreSQL): a backend crate implements
//! [`ServerSql`] on a session it opened for one migration step; the sandbox checks the bounds
//! every backend shares (statement and parameter sizes, live cursors) and hands it each call.
//! The sandbox names no backend: `hsm-host` chooses one and passes it in.

use crate::contract::{SqlError, Value, sql::Page};

/// One migration step's SQL session on a database server, inside the transaction the host
/// opened on it. Every method runs in the guest's call: it must return by the step's deadline
/// (the backend cancels a statement that runs past it) and must refuse statements that would
/// end or escape the host's transaction.
pub trait ServerSql: Send + Sync {
    /// Runs one statement that returns no rows; the rows it changed.
    fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, SqlError>;
    /// Runs a script of statements without parameters, one at a time.
    fn execute_batch(&self, sql: &str) -> Result<(), SqlError>;
    /// Runs one statement that returns rows; all of them, within the query bounds.
    fn query(&self, sql: &str, params: &[Value]) -> Result<Page, SqlError>;
    /// Checks that `sql` is one statement the server accepts (a `statement` resource).
    fn prepare(&self, sql: &str) -> Result<(), SqlError>;
    /// Starts a query read a page at a time; its id.
    fn open_cursor(&self, sql: &str, params: &[Value]) -> Result<u32, SqlError>;
    /// The column names of cursor `id`.
    fn cursor_columns(&self, id: u32) -> Vec<String>;
    /// Up to `max` next rows of cursor `id`.
    fn cursor_next(&self, id: u32, max: u32) -> Result<Page, SqlError>;
    /// Closes cursor `id` (the guest dropped it).
    fn close_cursor(&self, id: u32);
    /// Runs one statement once per parameter set; the rows changed in all.
    fn execute_many(&self, sql: &str, sets: &[Vec<Value>]) -> Result<u64, SqlError>;
    /// Ends the guest's part of the step: why the host's transaction is gone, if it is.
    fn close(&self) -> Option<String>;
    /// The last error the server gave the guest.
    fn last_error(&self) -> Option<SqlError>;
    /// The SQLSTATE of the last error the server gave since this was last asked (the sandbox
    /// asks after every call, so it is the call's own).
    fn take_sqlstate(&self) -> Option<String> {
        None
    }
}
