//! What a guest's store holds, and the host side of the `sql` and `log` imports.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::{SqlError, Value, log, sql};
use super::functions::FunctionFactory;
use super::limits::{GuestLimiter, MemoryBudget};
use super::progress::Progress;
use crate::database::Database;
use crate::error::human_bytes;
use crate::sql::{CursorHandle, GuestSql, PreparedStatement, SQLITE_MISUSE};
use crate::text;

/// Most a guest may print to stdout and stderr together per call.
pub(crate) const OUTPUT_CAPACITY: usize = 1 << 20;

/// The store data of one guest call.
pub(crate) struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// `None` while reading metadata: a guest may not run SQL then.
    pub(crate) sql: Option<GuestSql>,
    pub(crate) limiter: GuestLimiter,
    deadline: Instant,
    /// Starts the function instance when the guest registers its first SQL function.
    functions: Option<FunctionFactory>,
    /// The running function instance, shared by every function this call registered.
    pub(crate) function_caller: Option<super::functions::GuestFunctions>,
    /// Names the migration in log lines, e.g. `migration 3 (normalize_email_addresses)`.
    label: String,
    progress: Progress,
    /// What is left of the migration's log budget (shared with its function instance).
    log_budget: Arc<text::Budget>,
    log_silenced: bool,
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: MemoryOutputPipe,
}

impl GuestState {
    /// A sandbox with nothing in it: no files, no environment, no arguments, no network.
    /// Output is captured for the host's log instead of reaching the terminal.
    pub(crate) fn new(
        label: String,
        db: Option<&Database>,
        deadline: Instant,
        memory: Arc<MemoryBudget>,
        log_budget: Arc<text::Budget>,
    ) -> Self {
        let stdout = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            sql: db.map(|db| GuestSql::open(db, label.clone(), deadline)),
            limiter: GuestLimiter::new(memory),
            deadline,
            functions: None,
            function_caller: None,
            progress: Progress::new(label.clone()),
            log_budget,
            log_silenced: false,
            label,
            stdout,
            stderr,
        }
    }

    /// Lets this call's guest register SQL functions.
    pub(crate) fn with_functions(mut self, factory: FunctionFactory) -> Self {
        self.functions = Some(factory);
        self
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    fn statement_sql(&self, statement: &Resource<PreparedStatement>) -> Result<String, SqlError> {
        self.table
            .get(statement)
            .map(|s| s.sql.clone())
            .map_err(|e| SqlError {
                code: SQLITE_MISUSE,
                message: format!("no such statement: {e}"),
            })
    }

    fn cursor(&self, rows: &Resource<CursorHandle>) -> Result<&CursorHandle, SqlError> {
        self.table.get(rows).map_err(|e| SqlError {
            code: SQLITE_MISUSE,
            message: format!("no such cursor: {e}"),
        })
    }

    fn sql(&self) -> Result<&GuestSql, SqlError> {
        self.sql.as_ref().ok_or_else(|| SqlError {
            code: SQLITE_MISUSE,
            message: "SQL is not available here: metadata() must not run SQL".into(),
        })
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl super::bindings::hsm::migration::types::Host for GuestState {}

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

impl log::Host for GuestState {
    fn log(&mut self, level: log::Level, message: String) {
        // Each message is capped and escaped; past the migration's budget, one line says so.
        let granted = self.log_budget.take(message.len().min(text::MAX_MESSAGE));
        if granted == 0 {
            if !self.log_silenced {
                self.log_silenced = true;
                tracing::warn!(
                    target: "guest",
                    "{}: logged more than {} of messages; the rest are dropped",
                    self.label,
                    human_bytes(text::LOG_BUDGET as u64)
                );
            }
            return;
        }
        let message = text::neutralize(&message, granted);
        let label = &self.label;
        match level {
            log::Level::Trace => tracing::trace!(target: "guest", "{label}: {message}"),
            log::Level::Debug => tracing::debug!(target: "guest", "{label}: {message}"),
            log::Level::Info => tracing::info!(target: "guest", "{label}: {message}"),
            log::Level::Warn => tracing::warn!(target: "guest", "{label}: {message}"),
            log::Level::Error => tracing::error!(target: "guest", "{label}: {message}"),
        }
    }

    fn progress(&mut self, done: u64, total: u64) {
        self.progress.report(done, total);
    }
}
