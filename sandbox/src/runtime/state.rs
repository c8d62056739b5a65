//! What a guest's store holds, and the host side of the `sql` and `log` imports.

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::{GuestLimiter, MemoryBudget};
use super::progress::Progress;
use crate::contract::SqlError;
use crate::sql::{CursorHandle, FunctionCaller, PreparedStatement, SQLITE_MISUSE, Session};
use crate::text;

/// Starts the instance that computes a guest call's SQL functions, when the guest registers its
/// first one (`functions::FunctionFactory`). The store data names only these traits, so the
/// function instances, whose own stores hold a `GuestState`, sit above it.
pub(crate) trait StartFunctions: Send + Sync {
    /// Instantiates the component again for its `functions` export.
    fn start(&self) -> Result<Box<dyn CallFunctions>, FunctionFailure>;
}

/// Why a function instance stopped, or could not start: the migration's report names the limit
/// it hit rather than the SQL error its guest got from the function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FunctionFailure {
    /// It ran past the migration's deadline.
    OutOfTime(String),
    /// It ran out of the migration's memory budget.
    OutOfMemory(String),
    /// It trapped, or could not start for another reason.
    Trapped(String),
}

impl FunctionFailure {
    /// What happened, for the operator.
    pub(crate) fn message(&self) -> &str {
        match self {
            FunctionFailure::OutOfTime(message)
            | FunctionFailure::OutOfMemory(message)
            | FunctionFailure::Trapped(message) => message,
        }
    }
}

/// A running set of SQL functions: a guest's own (`functions::GuestFunctions`) or its
/// directory's (`provided::StepFunctions`).
pub(crate) trait CallFunctions: Send + Sync {
    /// The caller SQLite uses for the function `name`.
    fn caller(&self, name: &str) -> Result<FunctionCaller, String>;
    /// Why the instance stopped (a trap, the memory or time limit), if it did.
    fn failure(&self) -> Option<FunctionFailure>;
}

/// Most a guest may print to stdout and stderr together per call.
pub(crate) const OUTPUT_CAPACITY: usize = 1 << 20;

/// The store data of one guest call.
pub(crate) struct GuestState {
    wasi: WasiCtx,
    pub(super) table: ResourceTable,
    /// `None` while reading metadata: a guest may not run SQL then.
    pub(crate) sql: Option<Session>,
    /// The SQLSTATE of the error the guest's previous SQL call returned (`sql.last-sqlstate`).
    pub(super) last_sqlstate: Option<String>,
    pub(crate) limiter: GuestLimiter,
    deadline: Instant,
    /// Starts the function instance when the guest registers its first SQL function.
    pub(super) functions: Option<Arc<dyn StartFunctions>>,
    /// The running function instance, shared by every function this call registered.
    pub(crate) function_caller: Option<Box<dyn CallFunctions>>,
    /// The functions of the migrations directory, registered for this call.
    pub(crate) provided: Option<Box<dyn CallFunctions>>,
    /// Names the migration in log lines, e.g. `migration 3 (normalize_email_addresses)`.
    pub(super) label: String,
    pub(super) progress: Progress,
    /// What is left of the migration's log budget (shared with its function instance).
    pub(super) log_budget: Arc<text::Budget>,
    pub(super) log_silenced: bool,
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: MemoryOutputPipe,
}

impl GuestState {
    /// A sandbox with nothing in it: no files, no environment, no arguments, no network (TCP,
    /// UDP and name lookup all refused).
    /// Output is captured for the host's log instead of reaching the terminal.
    pub(crate) fn new(
        label: String,
        sql: Option<Session>,
        deadline: Instant,
        memory: Arc<MemoryBudget>,
        log_budget: Arc<text::Budget>,
    ) -> Self {
        let stdout = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        let stderr = MemoryOutputPipe::new(OUTPUT_CAPACITY);
        // No network: the sockets interfaces are linked (Python's runtime imports them) with
        // every capability off, and no address passes the (default, deny-all) check.
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            sql,
            last_sqlstate: None,
            limiter: GuestLimiter::new(memory),
            deadline,
            functions: None,
            function_caller: None,
            provided: None,
            progress: Progress::new(label.clone()),
            log_budget,
            log_silenced: false,
            label,
            stdout,
            stderr,
        }
    }

    /// Lets this call's guest register SQL functions.
    pub(crate) fn with_functions(mut self, factory: Arc<dyn StartFunctions>) -> Self {
        self.functions = Some(factory);
        self
    }

    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    pub(super) fn statement_sql(
        &self,
        statement: &Resource<PreparedStatement>,
    ) -> Result<String, SqlError> {
        self.table
            .get(statement)
            .map(|s| s.sql.clone())
            .map_err(|e| SqlError {
                code: SQLITE_MISUSE,
                message: format!("no such statement: {e}"),
            })
    }

    pub(super) fn cursor(&self, rows: &Resource<CursorHandle>) -> Result<&CursorHandle, SqlError> {
        self.table.get(rows).map_err(|e| SqlError {
            code: SQLITE_MISUSE,
            message: format!("no such cursor: {e}"),
        })
    }

    pub(super) fn sql(&self) -> Result<&Session, SqlError> {
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
