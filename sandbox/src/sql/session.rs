//! One guest call's SQL session: SQLite's proxy ([`GuestSql`]) or a server backend's
//! ([`ServerSql`]). The `sql` host functions call this, so they are written once.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::server::ServerSql;
use super::*;

/// Where a guest call's SQL goes. One per call, so the size of the SQLite variant costs nothing
/// worth a box.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Session {
    /// The SQLite database, through the policy-armed proxy.
    Local(GuestSql),
    /// A database server's session, opened by the backend for this step.
    Server(ServerSession),
}

/// A server backend's session, with the bounds the sandbox keeps for every backend.
pub(crate) struct ServerSession {
    server: Box<dyn ServerSql>,
    live_cursors: AtomicUsize,
}

/// Why a server cannot run a guest's SQL function.
const NO_FUNCTIONS_ON_SERVER: &str = "SQL functions a migration registers run inside SQLite, \
    which calls back into hsm-host; a database server cannot, so register-function is not \
    available on this database: compute the values in the migration (query, then execute-many)";

impl Session {
    /// A server backend's session for one call.
    pub(crate) fn server(server: Box<dyn ServerSql>) -> Self {
        Session::Server(ServerSession {
            server,
            live_cursors: AtomicUsize::new(0),
        })
    }

    /// The SQLSTATE of the error the server gave the last call (SQLite has none).
    pub(crate) fn take_sqlstate(&self) -> Option<String> {
        match self {
            Session::Local(_) => None,
            Session::Server(server) => server.server.take_sqlstate(),
        }
    }

    /// SQLite's proxy, when the call runs on SQLite.
    pub(crate) fn local(&self) -> Option<&GuestSql> {
        match self {
            Session::Local(sql) => Some(sql),
            Session::Server(_) => None,
        }
    }

    pub(crate) fn execute(&self, sql: &str, params: Vec<Value>) -> Result<u64, SqlError> {
        match self {
            Session::Local(local) => local.execute(sql, params),
            Session::Server(server) => {
                check_sql_size(sql)?;
                check_params(params.iter().map(value_ref))?;
                server.server.execute(sql, &params)
            }
        }
    }

    pub(crate) fn execute_batch(&self, sql: &str) -> Result<(), SqlError> {
        match self {
            Session::Local(local) => local.execute_batch(sql),
            Session::Server(server) => {
                check_sql_size(sql)?;
                server.server.execute_batch(sql)
            }
        }
    }

    pub(crate) fn query(&self, sql: &str, params: Vec<Value>) -> Result<Page, SqlError> {
        match self {
            Session::Local(local) => local.query(sql, params),
            Session::Server(server) => {
                check_sql_size(sql)?;
                check_params(params.iter().map(value_ref))?;
                server.server.query(sql, &params)
            }
        }
    }

    pub(crate) fn open_cursor(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<CursorHandle, SqlError> {
        match self {
            Session::Local(local) => local.open_cursor(sql, params),
            Session::Server(server) => {
                check_sql_size(sql)?;
                check_params(params.iter().map(value_ref))?;
                if server.live_cursors.load(Ordering::Relaxed) >= MAX_LIVE_CURSORS {
                    return Err(SqlError {
                        code: SQLITE_TOOBIG,
                        message: format!(
                            "too many open cursors: hsm-host keeps at most {MAX_LIVE_CURSORS} \
                             per migration; drop the ones you have read"
                        ),
                    });
                }
                let id = server.server.open_cursor(sql, &params)?;
                server.live_cursors.fetch_add(1, Ordering::Relaxed);
                Ok(CursorHandle { id })
            }
        }
    }

    pub(crate) fn cursor_columns(&self, handle: &CursorHandle) -> Vec<String> {
        match self {
            Session::Local(local) => local.cursor_columns(handle),
            Session::Server(server) => server.server.cursor_columns(handle.id),
        }
    }

    pub(crate) fn cursor_next(&self, handle: &CursorHandle, max: u32) -> Result<Page, SqlError> {
        match self {
            Session::Local(local) => local.cursor_next(handle, max),
            Session::Server(server) => server.server.cursor_next(handle.id, max),
        }
    }

    pub(crate) fn close_cursor(&self, handle: &CursorHandle) {
        match self {
            Session::Local(local) => local.close_cursor(handle),
            Session::Server(server) => {
                server.server.close_cursor(handle.id);
                let _ =
                    server
                        .live_cursors
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
            }
        }
    }

    pub(crate) fn prepare(&self, sql: &str) -> Result<PreparedStatement, SqlError> {
        match self {
            Session::Local(local) => local.prepare(sql),
            Session::Server(server) => {
                check_sql_size(sql)?;
                server.server.prepare(sql)?;
                Ok(PreparedStatement {
                    sql: sql.to_owned(),
                })
            }
        }
    }

    pub(crate) fn statement_query(&self, sql: &str, params: Vec<Value>) -> Result<Page, SqlError> {
        match self {
            Session::Local(local) => local.statement_query(sql, params),
            Session::Server(_) => self.query(sql, params),
        }
    }

    pub(crate) fn forget_statement(&self, statement: &PreparedStatement) {
        if let Session::Local(local) = self {
            local.forget_statement(statement);
        }
    }

    pub(crate) fn execute_many(&self, sql: &str, sets: ParamSets) -> Result<u64, SqlError> {
        match self {
            Session::Local(local) => local.execute_many(sql, sets),
            Session::Server(server) => {
                check_sql_size(sql)?;
                let sets = owned_sets(&sets)?;
                for set in &sets {
                    check_params(set.iter().map(value_ref))?;
                }
                server.server.execute_many(sql, &sets)
            }
        }
    }

    pub(crate) fn last_insert_rowid(&self) -> i64 {
        match self {
            Session::Local(local) => local.last_insert_rowid(),
            // PostgreSQL has no rowid: `INSERT … RETURNING id` says it.
            Session::Server(_) => 0,
        }
    }

    pub(crate) fn register_function(
        &self,
        name: &str,
        arity: i32,
        deterministic: bool,
        caller: FunctionCaller,
    ) -> Result<(), SqlError> {
        match self {
            Session::Local(local) => local.register_function(name, arity, deterministic, caller),
            Session::Server(_) => Err(no_functions_on_server()),
        }
    }

    /// Ends the call's SQL (see [`GuestSql::close`]).
    pub(crate) fn close(self) -> Closed {
        match self {
            Session::Local(local) => local.close(),
            Session::Server(server) => Closed {
                transaction_ended: server.server.close(),
                reset_failed: None,
                last_error: server.server.last_error(),
                touch: policy::SchemaTouch::default(),
            },
        }
    }
}

/// The error `register-function` gives on a database server.
pub(crate) fn no_functions_on_server() -> SqlError {
    SqlError {
        code: SQLITE_MISUSE,
        message: NO_FUNCTIONS_ON_SERVER.into(),
    }
}

/// `execute-many`'s parameter sets as values, checked as SQLite's proxy checks them.
fn owned_sets(sets: &ParamSets) -> Result<Vec<Vec<Value>>, SqlError> {
    let call = "execute-many";
    let width = whole_sets(call, "cells", sets.width, sets.cells.len())?;
    let values = sets
        .cells
        .iter()
        .enumerate()
        .map(|(index, cell)| {
            page::cell_ref(cell, &sets.bytes)
                .map(value_from_ref)
                .map_err(|reason| SqlError {
                    code: SQLITE_MISUSE,
                    message: format!(
                        "{call}: parameter {} of set {}: {reason}",
                        index % width + 1,
                        index / width + 1
                    ),
                })
        })
        .collect::<Result<Vec<Value>, _>>()?;
    Ok(values.chunks(width).map(<[Value]>::to_vec).collect())
}

/// A borrowed SQLite value as the contract's.
fn value_from_ref(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}
