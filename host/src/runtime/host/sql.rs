//! `hsm:migration/sql`: each call hands over to the migration's `GuestSql` (the proxy, its
//! policy and limits live in `crate::sql`).

use wasmtime::component::Resource;

use super::super::state::GuestState;
use crate::contract::{SqlError, Value, sql};
use crate::sql::{CursorHandle, GuestSql, PreparedStatement, SQLITE_MISUSE};

impl crate::contract::hsm::migration::types::Host for GuestState {}

impl sql::Host for GuestState {
    fn execute(&mut self, sql: String, params: Vec<Value>) -> Result<u64, SqlError> {
        self.sql()?.execute(&sql, params)
    }

    fn execute_batch(&mut self, sql: String) -> Result<(), SqlError> {
        self.sql()?.execute_batch(&sql)
    }

    fn query(&mut self, sql: String, params: Vec<Value>) -> Result<sql::QueryResult, SqlError> {
        self.sql()?.query(&sql, params)
    }

    fn query_page(&mut self, sql: String, params: Vec<Value>) -> Result<sql::Page, SqlError> {
        self.sql()?.query_page(&sql, params)
    }

    fn last_insert_rowid(&mut self) -> i64 {
        self.sql().map_or(0, GuestSql::last_insert_rowid)
    }

    fn execute_many(&mut self, sql: String, rows: Vec<Vec<Value>>) -> Result<u64, SqlError> {
        self.sql()?.execute_many(&sql, rows)
    }

    fn execute_many_flat(
        &mut self,
        sql: String,
        width: u32,
        values: Vec<Value>,
    ) -> Result<u64, SqlError> {
        self.sql()?.execute_many_flat(&sql, width, values)
    }

    fn execute_many_page(
        &mut self,
        sql: String,
        width: u32,
        cells: Vec<sql::Cell>,
        bytes: Vec<u8>,
    ) -> Result<u64, SqlError> {
        self.sql()?.execute_many_page(&sql, width, cells, bytes)
    }

    fn query_rows(
        &mut self,
        sql: String,
        params: Vec<Value>,
    ) -> Result<Resource<CursorHandle>, SqlError> {
        let handle = self.sql()?.open_cursor(&sql, params)?;
        self.table.push(handle).map_err(|e| SqlError {
            code: SQLITE_MISUSE,
            message: format!("cannot keep the cursor: {e}"),
        })
    }

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
            self.function_caller = Some(factory.start().map_err(misuse)?);
        }
        let caller = self
            .function_caller
            .as_ref()
            .expect("started above")
            .caller(&name);
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

    fn next_batch(
        &mut self,
        rows: Resource<CursorHandle>,
        max: u32,
    ) -> Result<Vec<Vec<Value>>, SqlError> {
        self.sql()?.cursor_next(self.cursor(&rows)?, max)
    }

    fn next_batch_flat(
        &mut self,
        rows: Resource<CursorHandle>,
        max: u32,
    ) -> Result<Vec<Value>, SqlError> {
        self.sql()?.cursor_next_flat(self.cursor(&rows)?, max)
    }

    fn next_page(&mut self, rows: Resource<CursorHandle>, max: u32) -> Result<sql::Page, SqlError> {
        self.sql()?.cursor_next_page(self.cursor(&rows)?, max)
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
        let statement = self.sql()?.prepare(&sql)?;
        self.table.push(statement).map_err(|e| SqlError {
            code: SQLITE_MISUSE,
            message: format!("cannot keep the statement: {e}"),
        })
    }

    fn execute(
        &mut self,
        statement: Resource<PreparedStatement>,
        params: Vec<Value>,
    ) -> Result<u64, SqlError> {
        let sql = self.statement_sql(&statement)?;
        self.sql()?.execute(&sql, params)
    }

    fn query(
        &mut self,
        statement: Resource<PreparedStatement>,
        params: Vec<Value>,
    ) -> Result<sql::QueryResult, SqlError> {
        let sql = self.statement_sql(&statement)?;
        self.sql()?.query(&sql, params)
    }

    fn query_flat(
        &mut self,
        statement: Resource<PreparedStatement>,
        params: Vec<Value>,
    ) -> Result<sql::FlatRows, SqlError> {
        let sql = self.statement_sql(&statement)?;
        self.sql()?.query_flat(&sql, params)
    }

    fn query_page(
        &mut self,
        statement: Resource<PreparedStatement>,
        params: Vec<Value>,
    ) -> Result<sql::Page, SqlError> {
        let sql = self.statement_sql(&statement)?;
        self.sql()?.query_page(&sql, params)
    }

    fn drop(&mut self, statement: Resource<PreparedStatement>) -> wasmtime::Result<()> {
        let statement = self.table.delete(statement)?;
        if let Ok(sql) = self.sql() {
            sql.forget_statement(&statement);
        }
        Ok(())
    }
}
