//! `hsm:migration/sql@0.2`: each call hands over to the migration's `GuestSql` (the proxy, its
//! policy and limits live in `crate::sql`).

use wasmtime::component::Resource;

use super::super::state::GuestState;
use crate::contract::{SqlError, Value, sql};
use crate::sql::{CursorHandle, PreparedStatement, SQLITE_MISUSE, Session};

impl crate::contract::hsm::migration::types::Host for GuestState {}

impl sql::Host for GuestState {
    fn execute(&mut self, sql: String, params: Vec<Value>) -> Result<u64, SqlError> {
        let result = self.sql()?.execute(&sql, params);
        self.settle(result)
    }

    fn execute_batch(&mut self, sql: String) -> Result<(), SqlError> {
        let result = self.sql()?.execute_batch(&sql);
        self.settle(result)
    }

    fn query(&mut self, sql: String, params: Vec<Value>) -> Result<sql::Page, SqlError> {
        let result = self.sql()?.query(&sql, params);
        self.settle(result)
    }

    fn query_rows(
        &mut self,
        sql: String,
        params: Vec<Value>,
    ) -> Result<Resource<CursorHandle>, SqlError> {
        let result = self.sql()?.open_cursor(&sql, params);
        let handle = self.settle(result)?;
        self.keep(handle, "cursor")
    }

    fn execute_many(&mut self, sql: String, sets: sql::ParamSets) -> Result<u64, SqlError> {
        let result = self.sql()?.execute_many(&sql, sets);
        self.settle(result)
    }

    fn running_on(&mut self) -> sql::Dialect {
        match self.sql {
            Some(Session::Server(_)) => sql::Dialect::Postgresql,
            Some(Session::Local(_)) | None => sql::Dialect::Sqlite,
        }
    }

    fn last_sqlstate(&mut self) -> Option<String> {
        self.last_sqlstate.clone()
    }

    fn last_insert_rowid(&mut self) -> i64 {
        self.sql().map_or(0, Session::last_insert_rowid)
    }

    /// Starts the function instance on the first registration, then registers `name`.
    fn register_function(
        &mut self,
        name: String,
        arity: i32,
        deterministic: bool,
    ) -> Result<(), SqlError> {
        let misuse = |message: String| SqlError {
            code: SQLITE_MISUSE,
            message,
        };
        if self.function_caller.is_none() {
            let factory = self.functions.as_ref().ok_or_else(|| {
                misuse("SQL functions can only be registered from up or down".into())
            })?;
            self.function_caller = Some(
                factory
                    .start()
                    .map_err(|failure| misuse(failure.message().to_owned()))?,
            );
        }
        let caller = self
            .function_caller
            .as_ref()
            .expect("started above")
            .caller(&name)
            .map_err(misuse)?;
        self.sql()?
            .register_function(&name, arity, deterministic, caller)
    }
}

impl sql::HostRows for GuestState {
    fn columns(&mut self, rows: Resource<CursorHandle>) -> Vec<String> {
        match (self.sql(), self.table.get(&rows)) {
            (Ok(sql), Ok(handle)) => sql.cursor_columns(handle),
            _ => Vec::new(),
        }
    }

    fn next(&mut self, rows: Resource<CursorHandle>, max: u32) -> Result<sql::Page, SqlError> {
        let result = self.sql()?.cursor_next(self.cursor(&rows)?, max);
        self.settle(result)
    }

    fn drop(&mut self, rows: Resource<CursorHandle>) -> wasmtime::Result<()> {
        let handle = self.table.delete(rows)?;
        if let Ok(sql) = self.sql() {
            sql.close_cursor(&handle);
        }
        Ok(())
    }
}

impl sql::HostStatement for GuestState {
    fn prepare(&mut self, sql: String) -> Result<Resource<PreparedStatement>, SqlError> {
        let result = self.sql()?.prepare(&sql);
        let statement = self.settle(result)?;
        self.keep(statement, "statement")
    }

    fn execute(
        &mut self,
        statement: Resource<PreparedStatement>,
        params: Vec<Value>,
    ) -> Result<u64, SqlError> {
        let sql = self.statement_sql(&statement)?;
        let result = self.sql()?.execute(&sql, params);
        self.settle(result)
    }

    fn query(
        &mut self,
        statement: Resource<PreparedStatement>,
        params: Vec<Value>,
    ) -> Result<sql::Page, SqlError> {
        let sql = self.statement_sql(&statement)?;
        let result = self.sql()?.statement_query(&sql, params);
        self.settle(result)
    }

    fn drop(&mut self, statement: Resource<PreparedStatement>) -> wasmtime::Result<()> {
        let statement = self.table.delete(statement)?;
        if let Ok(sql) = self.sql() {
            sql.forget_statement(&statement);
        }
        Ok(())
    }
}

/// Keeping a resource in the call's table, and the SQLSTATE of a call's error.
impl GuestState {
    /// Remembers the SQLSTATE of `result`'s error for `last-sqlstate`: the server's, or none
    /// (a success, SQLite, or the host's own refusal).
    fn settle<T>(&mut self, result: Result<T, SqlError>) -> Result<T, SqlError> {
        let state = self.sql.as_ref().and_then(Session::take_sqlstate);
        self.last_sqlstate = state.filter(|_| result.is_err());
        result
    }

    fn keep<T: Send + 'static>(&mut self, value: T, what: &str) -> Result<Resource<T>, SqlError> {
        self.table.push(value).map_err(|e| SqlError {
            code: SQLITE_MISUSE,
            message: format!("cannot keep the {what}: {e}"),
        })
    }
}
