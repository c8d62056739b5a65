//! A loaded migration and what is known of one without its code: [`Metadata`],
//! [`ComponentInfo`] (enough for `status` and planning), [`MigrationComponent`] (compiled,
//! ready to run against any database) and the call into its `up` or `down`.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::{Engine, Store};

use super::limits::{self, EpochTicker, Limits, MemoryBudget};
use super::state::{FunctionFailure, GuestState};
use super::{cache, describe_duration, functions, output, provided, sha256_hex, state};
use crate::contract::{Migration, MigrationPre};
use crate::database::Database;
use crate::error::{Error, Result, human_bytes};
use crate::plan::Direction;
use crate::policy::SchemaTouch;
use crate::sql::{GuestSql, ServerSql, Session};
use crate::text;

/// What a migration says about itself (its `metadata()` export), as hsm-host keeps it: checked
/// (a version from 1 to 2^63-1, a name) and with its text escaped and capped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Metadata {
    /// Its version: migrations apply in ascending order and roll back in descending order.
    pub version: u64,
    /// A short snake_case name.
    pub name: String,
    /// What it does and, if it is irreversible, why.
    pub description: String,
    /// Whether `down` undoes `up`.
    pub reversible: bool,
}

impl From<crate::contract::Metadata> for Metadata {
    fn from(m: crate::contract::Metadata) -> Self {
        Self {
            version: m.version,
            name: m.name,
            description: m.description,
            reversible: m.reversible,
        }
    }
}

/// Why a guest call failed: the message (escaped and capped), and SQLite's result code when
/// the guest failed with an error SQLite gave it.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong, for the operator.
    pub message: String,
    /// SQLite's extended result code, when a statement failed.
    pub sqlite_code: Option<i32>,
}

/// The SQL files a component was packed from, as the runtime needs to know them (the sources
/// layer's `pack::SqlMigration` is one): tracking records their digests, not the component's.
pub trait SqlOrigin: std::fmt::Debug + Send + Sync + std::any::Any {
    /// What `migrations.checksum` records for the migration: its files' digests.
    fn identity(&self) -> String;
    /// Whether `recorded` is what an earlier release recorded for the same files.
    fn was_recorded_earlier_as(&self, recorded: &str) -> bool;
    /// The file `down` comes from, when it has one.
    fn down_source(&self) -> Option<&Path>;
}

/// What is known of a component without its code: enough for `status` and planning.
#[derive(Debug, Clone)]
pub struct ComponentInfo {
    /// The file.
    pub path: PathBuf,
    /// What `migrations.checksum` records for it: the sha256 of a component file's bytes,
    /// lowercase hex; a SQL migration's file digests ([`SqlOrigin::identity`]).
    pub checksum: String,
    /// What it says about itself.
    pub metadata: Metadata,
    /// The SQL migration it was packed from, if it was.
    pub sql: Option<Arc<dyn SqlOrigin>>,
}

impl ComponentInfo {
    /// Its version.
    pub fn version(&self) -> u64 {
        self.metadata.version
    }

    /// Whether `recorded` (a `migrations.checksum`) names this migration as it is: its
    /// checksum, or what an earlier release recorded for the same SQL files (the sha256 of the
    /// component it packed them into).
    pub fn is_recorded_as(&self, recorded: &str) -> bool {
        self.checksum == recorded
            || self
                .sql
                .as_ref()
                .is_some_and(|sql| sql.was_recorded_earlier_as(recorded))
    }
}

/// A loaded, validated migration, ready to run against any [`Database`].
pub struct MigrationComponent {
    pub(super) path: PathBuf,
    /// The file its `down` comes from, when that is another file (a SQL migration's down file).
    pub(super) down_path: Option<PathBuf>,
    /// sha256 of the component's bytes, lowercase hex.
    pub(super) checksum: String,
    /// The SQL migration it was packed from, if it was: its files' digests are what tracking
    /// records for it.
    pub(super) sql: Option<Arc<dyn SqlOrigin>>,
    /// The SQL functions its directory provides, registered at each step.
    pub(super) sql_functions: Option<Arc<provided::ProvidedFunctions>>,
    /// The bytes themselves, so the host can store the exact component it applied.
    pub(super) bytes: Bytes,
    /// Where its stored form is kept, if anywhere.
    pub(super) cache: Option<Arc<cache::ComponentCache>>,
    /// Its stored form, once made or read.
    pub(super) stored_form: OnceLock<Vec<u8>>,
    pub(super) metadata: Metadata,
    pub(super) engine: Engine,
    pub(super) ticker: Arc<EpochTicker>,
    pub(super) limits: Limits,
    /// Who signed it, when the runtime holds components to a trust file.
    pub(super) signed: Option<Arc<super::signed::Signed>>,
    pub(super) pre: MigrationPre<GuestState>,
}

impl MigrationComponent {
    /// Who signed it, as the trust file of `--require-signed` names them (`None` without one).
    pub fn signed(&self) -> Option<&super::signed::Signed> {
        self.signed.as_deref()
    }

    /// What the component says about itself.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Its version.
    pub fn version(&self) -> u64 {
        self.metadata.version
    }

    /// What `migrations.checksum` records for it: the sha256 of the component's bytes,
    /// lowercase hex; for a SQL migration, its files' digests
    /// ([`SqlOrigin::identity`]).
    pub fn checksum(&self) -> String {
        match &self.sql {
            Some(sql) => sql.identity(),
            None => self.checksum.clone(),
        }
    }

    /// sha256 of the component's bytes, lowercase hex: the key it is stored under.
    pub fn component_sha256(&self) -> &str {
        &self.checksum
    }

    /// Marks it as packed from `sql`, whose files identify it.
    #[must_use]
    pub fn packed_from(mut self, sql: Arc<dyn SqlOrigin>) -> Self {
        self.down_path = sql.down_source().map(Path::to_owned);
        self.sql = Some(sql);
        self
    }

    /// The component as a database keeps it (see [`crate::tracking::stored_form`]): from the
    /// compile cache, else made from its bytes (and kept there).
    ///
    /// # Errors
    /// As [`MigrationComponent::bytes`].
    pub fn stored_form(&self) -> Result<&[u8]> {
        if let Some(form) = self.stored_form.get() {
            return Ok(form);
        }
        let form = match self
            .cache
            .as_ref()
            .and_then(|c| c.stored_form(&self.checksum))
        {
            Some(form) => form,
            None => {
                let form = crate::tracking::stored_form(&self.bytes()?);
                if let Some(cache) = &self.cache {
                    cache.keep_stored_form(&self.checksum, &form);
                }
                form
            }
        };
        Ok(self.stored_form.get_or_init(|| form))
    }

    /// The component's bytes: those it was loaded from, read again from its file if they were
    /// not kept.
    ///
    /// # Errors
    /// [`Error::ReadMigrations`] if the file cannot be read; [`Error::InvalidComponent`] if its
    /// bytes are no longer the component's (the file changed since it was loaded).
    pub fn bytes(&self) -> Result<Cow<'_, [u8]>> {
        match &self.bytes {
            Bytes::Held(bytes) => Ok(Cow::Borrowed(bytes)),
            Bytes::InFile => {
                let bytes = crate::files::open_regular(&self.path, true)
                    .and_then(|(file, meta)| {
                        crate::files::read_capped(file, &meta, crate::files::MAX_COMPONENT_FILE)
                    })
                    .map_err(|reason| Error::ReadMigrations {
                        path: self.path.clone(),
                        source: std::io::Error::other(reason),
                    })?;
                if sha256_hex(&bytes) != self.checksum {
                    return Err(Error::InvalidComponent {
                        path: self.path.clone(),
                        reason: "the file changed while hsm-host was running; run the command \
                                 again"
                            .into(),
                    });
                }
                Ok(Cow::Owned(bytes))
            }
        }
    }

    /// Interrupts `db`'s connection from `deadline` on until the watch is dropped: the
    /// deadline of a migration step for the host's SQL as well as the guest's.
    pub fn interrupt_from(&self, db: &Database, deadline: Instant) -> limits::Watch {
        let handle = db.connection().get_interrupt_handle();
        self.ticker.interrupt_from(handle, deadline)
    }

    /// The limits each of its calls gets.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file its `down` runs from: a SQL migration's down file when it has one of its own,
    /// else [`MigrationComponent::path`].
    pub fn down_path(&self) -> &Path {
        self.down_path.as_deref().unwrap_or(&self.path)
    }

    /// Its path, checksum and metadata.
    pub fn info(&self) -> ComponentInfo {
        ComponentInfo {
            path: self.path.clone(),
            checksum: self.checksum(),
            metadata: self.metadata.clone(),
            sql: self.sql.clone(),
        }
    }

    /// Whether it is written for `dialect` (`sqlite`, `postgresql`): a component packed from
    /// SQL files runs on any database (its SQL says which); one built with the SDK's
    /// `migration!` says so in its `hsm:dialects` section; one that says nothing is SQLite's,
    /// as every component was before PostgreSQL.
    ///
    /// # Errors
    /// As [`MigrationComponent::bytes`].
    pub fn runs_on(&self, dialect: &str) -> Result<bool> {
        if self.sql.is_some() {
            return Ok(true);
        }
        let declared = super::dialects::declared(&self.bytes()?);
        Ok(match declared.is_empty() {
            true => dialect == "sqlite",
            false => declared.iter().any(|d| d == dialect),
        })
    }

    /// `migration 3 (normalize_email_addresses)`.
    pub fn label(&self) -> String {
        format!(
            "migration {} ({})",
            self.metadata.version, self.metadata.name
        )
    }

    /// Calls `up` or `down` in a fresh sandbox whose SQL runs on `db`, to end by `deadline`.
    /// The caller owns the transaction. Returns the guest's error message, or the trap and
    /// what the guest printed, or the limit it hit, or that it ended the transaction; always
    /// escaped and capped for the terminal, the log and the history row. On success, what its
    /// SQL could have changed in the schema.
    pub fn run(
        &self,
        direction: Direction,
        db: &Database,
        deadline: Instant,
    ) -> Result<SchemaTouch, Failure> {
        let session = Session::Local(GuestSql::open(db, self.label(), deadline));
        self.run_in(direction, session, deadline)
    }

    /// Calls `up` or `down` in a fresh sandbox whose SQL runs on `server`, a database server's
    /// session the backend opened for this step inside the host's transaction (see
    /// [`ServerSql`]). As [`MigrationComponent::run`]; a directory's `sql-functions.wasm` and
    /// the guest's own SQL functions are refused, since a server cannot call back.
    pub fn run_on_server(
        &self,
        direction: Direction,
        server: Box<dyn ServerSql>,
        deadline: Instant,
    ) -> Result<(), Failure> {
        if self.sql_functions.is_some() {
            return Err(Failure {
                message: format!(
                    "{}: its directory's {} provides SQL functions, which run only on SQLite                      (a database server cannot call back into hsm-host)",
                    self.label(),
                    provided::FILE_NAME
                ),
                sqlite_code: None,
            });
        }
        self.run_in(direction, Session::server(server), deadline)
            .map(drop)
    }

    fn run_in(
        &self,
        direction: Direction,
        session: Session,
        deadline: Instant,
    ) -> Result<SchemaTouch, Failure> {
        let mut sqlite_code = None;
        self.run_unescaped(direction, session, deadline, &mut sqlite_code)
            .map_err(|message| Failure {
                message: text::neutralize(&message, text::MAX_MESSAGE),
                sqlite_code,
            })
    }

    fn run_unescaped(
        &self,
        direction: Direction,
        session: Session,
        deadline: Instant,
        sqlite_code: &mut Option<i32>,
    ) -> Result<SchemaTouch, String> {
        let timeout = self.limits.timeout;
        let memory = MemoryBudget::new(self.limits.max_memory);
        let log_budget = Arc::new(text::Budget::new(text::LOG_BUDGET));
        let state = GuestState::new(
            self.label(),
            Some(session),
            deadline,
            Arc::clone(&memory),
            Arc::clone(&log_budget),
        );
        let factory = functions::FunctionFactory {
            engine: self.engine.clone(),
            pre: self.pre.instance_pre().clone(),
            deadline,
            label: self.label(),
            memory,
            log_budget,
            find_export: super::host::functions_export,
        };
        let mut state = state.with_functions(Arc::new(factory.clone()));
        if let (Some(provided), Some(sql)) = (
            &self.sql_functions,
            state.sql.as_ref().and_then(Session::local),
        ) {
            let step = provided.register(sql, factory)?;
            state.provided = Some(Box::new(step));
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        let (result, outcome) =
            call(
                &self.engine,
                &self.pre,
                state,
                remaining,
                |m, s| match direction {
                    Direction::Up => m.call_up(s),
                    Direction::Down => m.call_down(s),
                },
            );
        let out_of_time = || {
            format!(
                "it exceeded its time limit of {} (raise it with --timeout)",
                describe_duration(timeout)
            )
        };
        let closed = outcome.sql.unwrap_or_default();
        // The limits first: whatever the guest made of the error it got, they are the cause.
        if let Some(memory) = outcome.memory_exceeded {
            return Err(memory);
        }
        match outcome.function_failure {
            Some(FunctionFailure::OutOfTime(_)) => return Err(out_of_time()),
            Some(FunctionFailure::OutOfMemory(message)) => return Err(message),
            Some(FunctionFailure::Trapped(_)) | None => {}
        }
        let trapped_on_time = matches!(&result, Err(trap)
            if trap.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt));
        // Past the deadline, a failure (an interrupted statement, the rollback SQLite made
        // then, or the guest's reaction to either) is the deadline's doing.
        let failed = closed.transaction_ended.is_some() || !matches!(result, Ok(Ok(())));
        if trapped_on_time || (failed && Instant::now() >= deadline) {
            return Err(out_of_time());
        }
        if let Some(reason) = closed.transaction_ended {
            return Err(format!(
                "it ended hsm-host's transaction: {reason}; hsm-host stopped it there and \
                 refused every later statement (migrations must leave transaction control to \
                 hsm-host)"
            ));
        }
        if let Some(reason) = closed.reset_failed {
            return Err(reason);
        }
        match result {
            Ok(Ok(())) => Ok(closed.touch),
            Ok(Err(message)) => {
                // The guest failed with SQLite's error (passed on as it came): its code.
                *sqlite_code = closed
                    .last_error
                    .filter(|e| !e.message.is_empty() && message.contains(&e.message))
                    .map(|e| e.code);
                Err(self.hint_missing_function(message))
            }
            Err(_) if outcome.output_overflowed => Err(format!(
                "it printed more than {} to stdout or stderr, so hsm-host stopped it (migrations \
                 report through the log interface, briefly)",
                human_bytes(state::OUTPUT_CAPACITY as u64)
            )),
            Err(trap) => Err(output::describe_trap(&trap, &outcome.stderr)),
        }
    }
}

impl MigrationComponent {
    /// SQLite's `no such function: f`, with where functions come from when SQLite has none.
    fn hint_missing_function(&self, message: String) -> String {
        if !message.contains("no such function: ") {
            return message;
        }
        let hint = match (&self.sql_functions, &self.sql) {
            (Some(provided), _) => format!(
                "the directory's {} provides only {}",
                provided::FILE_NAME,
                provided.names().join(", ")
            ),
            (None, Some(_)) => format!(
                "a SQL migration can call SQLite's own functions and those a {} component in \
                 its directory provides (see docs/sql-sets.md, \"SQL functions\")",
                provided::FILE_NAME
            ),
            (None, None) => format!(
                "register it first with register-function, or provide it with a {} component \
                 in the migrations directory",
                provided::FILE_NAME
            ),
        };
        format!("{message} ({hint})")
    }
}

/// Where a loaded component's bytes are.
pub(super) enum Bytes {
    /// In memory (a component made in memory, or read from the database).
    Held(Arc<[u8]>),
    /// In its file, checked against its checksum when read again.
    InFile,
}

/// What a call left behind besides its result.
pub(super) struct CallOutcome {
    /// The guest's stderr (a panic's message when the guest trapped).
    pub(super) stderr: String,
    /// Set when the guest hit the memory limit.
    pub(super) memory_exceeded: Option<String>,
    /// Whether the guest filled its stdout or stderr capture.
    pub(super) output_overflowed: bool,
    /// How the call's SQL ended (`None` when it had none).
    pub(super) sql: Option<crate::sql::Closed>,
    /// Why its function instance stopped, if it did.
    pub(super) function_failure: Option<FunctionFailure>,
}

/// Instantiates `pre` in a new store with the limits armed, runs `f`, ends its SQL session,
/// and logs what the guest printed.
pub(super) fn call<R>(
    engine: &Engine,
    pre: &MigrationPre<GuestState>,
    state: GuestState,
    timeout: Duration,
    f: impl FnOnce(&Migration, &mut Store<GuestState>) -> wasmtime::Result<R>,
) -> (std::result::Result<R, wasmtime::Error>, CallOutcome) {
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.limiter);
    store.set_epoch_deadline(limits::ticks(timeout));
    let result = pre
        .instantiate(&mut store)
        .and_then(|migration| f(&migration, &mut store));
    let state = store.data_mut();
    let function_failure = state
        .function_caller
        .as_ref()
        .and_then(|functions| functions.failure())
        .or_else(|| state.provided.as_ref().and_then(|p| p.failure()));
    // Its functions leave the connection before their instance goes.
    let sql = state.sql.take().map(Session::close);
    state.function_caller = None;
    state.provided = None;
    let stderr = output::log_guest_output(state);
    let full = |pipe: &wasmtime_wasi::p2::pipe::MemoryOutputPipe| {
        pipe.contents().len() >= state::OUTPUT_CAPACITY
    };
    let outcome = CallOutcome {
        output_overflowed: full(&state.stdout) || full(&state.stderr),
        stderr,
        memory_exceeded: state.limiter.exceeded.take(),
        sql,
        function_failure,
    };
    // The instance and its memory go on another thread (its SQL session is closed above).
    drop_elsewhere(store);
    (result, outcome)
}

/// Drops `value` on a thread kept for that: unmapping a finished guest's memory, or a
/// component's code, costs about what mapping it did, and need not hold up the next step.
pub fn drop_elsewhere(value: impl Send + 'static) {
    type Garbage = Box<dyn Send>;
    static REAPER: OnceLock<Option<std::sync::mpsc::Sender<Garbage>>> = OnceLock::new();
    let reaper = REAPER.get_or_init(|| {
        let (send, garbage) = std::sync::mpsc::channel::<Garbage>();
        std::thread::Builder::new()
            .name("hsm-host drop".into())
            .spawn(move || garbage.into_iter().for_each(drop))
            .ok()
            .map(|_| send)
    });
    if let Some(reaper) = reaper {
        // A send fails only if the thread is gone; the value then drops here.
        let _ = reaper.send(Box::new(value));
    }
}
