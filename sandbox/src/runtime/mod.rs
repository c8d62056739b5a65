//! The wasm side: one engine and linker for all migrations, loading and validating components,
//! and calling their `metadata`/`up`/`down` in a fresh, empty sandbox each time.

pub mod cache;
pub use hsm_store::digest::sha256_hex;
pub mod cache_trim;
mod clock;
mod functions;
mod host;
mod imports;
mod incremental;
mod inspect;
mod limits;
mod output;
pub use hsm_store::progress;
mod provided;
mod state;
pub mod watchdog;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store};

use crate::contract::{Migration, MigrationPre};
pub use inspect::Inspection;
use limits::{EpochTicker, MemoryBudget};
pub use limits::{Limits, Watch, describe_duration};
pub use progress::{ProgressSink, set_progress_sink};
pub use provided::FILE_NAME as SQL_FUNCTIONS_FILE;
use state::GuestState;
pub use watchdog::{HardStopHook, set_hard_stop_hook};

use crate::database::Database;
use crate::error::{Error, Result, human_bytes};
use crate::plan::Direction;
use crate::policy::SchemaTouch;
use crate::text;

/// Longest `metadata()` may run: it only returns constants.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Compiles and runs migration components. Create one and load every component with it.
pub struct Runtime {
    /// Started on first use: `status` answered from the cache never needs an engine.
    wasm: OnceLock<std::result::Result<Wasm, String>>,
    limits: Limits,
    cache: Option<Arc<cache::ComponentCache>>,
    /// The SQL functions of the migrations directory, given to every migration loaded.
    sql_functions: std::sync::Mutex<Option<Arc<provided::ProvidedFunctions>>>,
}

/// The engine and the host functions guests may import.
struct Wasm {
    engine: Engine,
    linker: Linker<GuestState>,
    /// Drives the time limit of every call; stops when the runtime and every component it
    /// loaded are gone.
    ticker: Arc<EpochTicker>,
    /// Cranelift's functions, reused by later compiles (on disk too, with a cache directory).
    functions: Arc<incremental::FunctionCache>,
}

impl Wasm {
    fn start(cache: Option<&cache::ComponentCache>) -> std::result::Result<Self, String> {
        let error = |e: wasmtime::Error| format!("{e:#}");
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        // Neither is needed to trap or report: address maps only add wasm offsets to
        // backtraces (which hsm-host does not show), unwind info serves native unwinders.
        // Without them a compile does ~12% less work.
        config.generate_address_map(false);
        config.native_unwind_info(false);
        // Each component is instantiated once or twice per run: a copy-on-write memory image
        // (a memfd made, written and mapped per component) costs more than copying its few
        // kilobytes of data segments into a fresh memory.
        config.memory_init_cow(false);
        // Functions shared between components (std, bindings, SDK) are compiled once.
        let functions = Arc::new(incremental::FunctionCache::default());
        config
            .enable_incremental_compilation(Arc::clone(&functions) as _)
            .map_err(error)?;
        let engine = Engine::new(&config).map_err(error)?;
        if let Some(cache) = cache {
            functions.keep_in(cache.functions_dir(&engine));
        }
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(error)?;
        clock::add_to_linker(&mut linker).map_err(error)?;
        Migration::add_to_linker::<GuestState, HasSelf<GuestState>>(&mut linker, |s| s)
            .map_err(error)?;
        host::v0_1::add_to_linker(&mut linker).map_err(error)?;
        Ok(Self {
            ticker: Arc::new(EpochTicker::start(engine.clone())),
            engine,
            linker,
            functions,
        })
    }
}

impl Runtime {
    /// A runtime with the default [`Limits`] (5 minutes and 256 MiB per call).
    ///
    /// # Errors
    /// None today: the engine starts on first use, and [`Error::Runtime`] reports there if
    /// wasmtime cannot be configured on this machine.
    pub fn new() -> Result<Self> {
        Self::with_limits(Limits::default())
    }

    /// A runtime whose calls get these limits.
    ///
    /// # Errors
    /// As [`Runtime::new`].
    pub fn with_limits(limits: Limits) -> Result<Self> {
        Ok(Self {
            wasm: OnceLock::new(),
            limits,
            cache: None,
            sql_functions: std::sync::Mutex::new(None),
        })
    }

    /// The engine and linker, started on first use.
    fn wasm(&self) -> Result<&Wasm> {
        self.wasm
            .get_or_init(|| Wasm::start(self.cache.as_deref()))
            .as_ref()
            .map_err(|e| Error::Runtime(e.clone()))
    }

    /// Keeps compiled components in `dir` and loads unchanged ones from there, compiling
    /// nothing. An unusable directory disables the cache with a warning.
    pub fn with_cache_dir(self, dir: &Path) -> Self {
        self.with_cache(dir, cache_trim::DEFAULT_MAX_BYTES)
    }

    /// [`Runtime::with_cache_dir`], the directory held to `max_bytes` (least recently used
    /// entries go first, see [`cache_trim`]).
    pub fn with_cache(mut self, dir: &Path, max_bytes: u64) -> Self {
        self.cache = cache::ComponentCache::open(dir, max_bytes).map(Arc::new);
        self
    }

    /// The limits every call gets.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Reads, compiles and validates the component in `path` and reads its metadata.
    ///
    /// # Errors
    /// [`Error::ReadMigrations`] if the file cannot be read; [`Error::InvalidComponent`] if it
    /// is not a component, does not target the `hsm:migration` world, or declares bad metadata.
    pub fn load_file(&self, path: &Path) -> Result<MigrationComponent> {
        // A file the cache knows, unchanged since, whose code it holds: its bytes are not
        // needed (they are read again, and checked, only to be stored).
        if let Some(known) = self.describe_cached(path)
            && let Some(component) = self.load_compiled(path, &known.checksum, || Bytes::InFile)?
        {
            return Ok(component);
        }
        let (bytes, identity) =
            cache::read_with_identity(path).map_err(|source| Error::ReadMigrations {
                path: path.to_owned(),
                source,
            })?;
        // A file the cache knows, unchanged since, need not be hashed again.
        let known = match (&self.cache, &identity) {
            (Some(cache), Some(identity)) => cache
                .describe_identity(path, identity)
                .map(|info| info.checksum),
            _ => None,
        };
        let remembered = known.is_some();
        let mut component = self.load_bytes(path.to_owned(), &bytes, known)?;
        if let (Some(cache), Some(identity), false) = (&self.cache, &identity, remembered) {
            cache.remember_file(
                path,
                identity,
                component.component_sha256(),
                component.metadata(),
            );
        }
        // A run loads every component before its first step: holding all their bytes until
        // each is stored would cost as much memory as the directory's size.
        component.bytes = Bytes::InFile;
        Ok(component)
    }

    /// The checksum and metadata of the component in `path` if the compile cache has seen this
    /// exact file before: no read of the component, no hash, no code loaded.
    pub fn describe_cached(&self, path: &Path) -> Option<ComponentInfo> {
        self.cache.as_ref()?.describe(path)
    }

    /// Whether `info`'s file is one the compile cache knows, unchanged since, with its compiled
    /// code in the cache: it was loaded and checked before, and loads in a fraction of a
    /// millisecond.
    pub fn is_compiled(&self, info: &ComponentInfo) -> bool {
        let (Some(cache), Ok(wasm)) = (&self.cache, self.wasm()) else {
            return false;
        };
        self.describe_cached(&info.path)
            .is_some_and(|known| known.checksum == info.checksum)
            && cache.has(&wasm.engine, &info.checksum)
    }

    /// Bytes made by `make` from inputs whose sha256 is `key`, from the compile cache when it
    /// has them (under the cache's trust rules: a directory only this user can write, whose
    /// artifacts this process already runs as machine code).
    ///
    /// # Errors
    /// Those of `make`.
    pub fn remembered_bytes(
        &self,
        key: &str,
        make: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        if let Some(bytes) = self
            .cache
            .as_ref()
            .and_then(|cache| cache.remembered_bytes(key))
        {
            return Ok(bytes);
        }
        let bytes = make()?;
        if let Some(cache) = &self.cache {
            cache.remember_bytes(key, &bytes);
        }
        Ok(bytes)
    }

    /// Like [`Runtime::load_file`], for bytes already in memory; `origin` names them in errors.
    pub fn load(&self, origin: PathBuf, bytes: &[u8]) -> Result<MigrationComponent> {
        self.load_bytes(origin, bytes, None)
    }

    /// [`Runtime::load`], with the bytes' sha256 when it is already known.
    fn load_bytes(
        &self,
        origin: PathBuf,
        bytes: &[u8],
        checksum: Option<String>,
    ) -> Result<MigrationComponent> {
        let checksum = checksum.unwrap_or_else(|| sha256_hex(bytes));
        let held = || Bytes::Held(bytes.into());
        if let Some(component) = self.load_compiled(&origin, &checksum, held)? {
            return Ok(component);
        }
        let invalid = |reason: String| Error::InvalidComponent {
            path: origin.clone(),
            reason,
        };
        let wasm = self.wasm()?;
        let engine = &wasm.engine;
        tracing::debug!("{}: compiling", origin.display());
        check_component_header(bytes).map_err(|reason| invalid(reason.to_owned()))?;
        let started = Instant::now();
        let component = Component::new(engine, bytes)
            .map_err(|e| invalid(format!("not a valid WebAssembly component: {e:#}")))?;
        let (reused, compiled) = wasm.functions.counts();
        tracing::debug!(
            "{}: compiled in {} ms (functions so far in this process: {reused} reused, \
             {compiled} compiled)",
            origin.display(),
            started.elapsed().as_millis()
        );
        let pre = self.prepare(&component).map_err(invalid)?;
        let metadata = self.read_metadata(&pre, &origin).map_err(invalid)?;
        let loaded = self.finish_load(origin, checksum, component, metadata, held())?;
        if let Some(cache) = &self.cache {
            let component = loaded.pre.instance_pre().component();
            cache.put(engine, &loaded.checksum, component, &loaded.metadata);
            wasm.functions.save();
            // Made now, when compiling costs far more, rather than at each apply.
            cache.keep_stored_form(&loaded.checksum, &crate::tracking::stored_form(bytes));
        }
        Ok(loaded)
    }

    /// The component with this checksum from the compile cache, if it holds it: nothing is
    /// read but its entry (the artifact is mapped). Its bytes are `bytes()`.
    fn load_compiled(
        &self,
        origin: &Path,
        checksum: &str,
        bytes: impl FnOnce() -> Bytes,
    ) -> Result<Option<MigrationComponent>> {
        let Some(cache) = &self.cache else {
            return Ok(None);
        };
        let engine = &self.wasm()?.engine;
        let Some((component, metadata)) = cache.get(engine, checksum) else {
            return Ok(None);
        };
        tracing::debug!("{}: loaded from the compile cache", origin.display());
        self.finish_load(
            origin.to_owned(),
            checksum.to_owned(),
            component,
            metadata,
            bytes(),
        )
        .map(Some)
    }

    /// Links a compiled component and checks what it imports.
    fn finish_load(
        &self,
        origin: PathBuf,
        checksum: String,
        component: Component,
        metadata: Metadata,
        bytes: Bytes,
    ) -> Result<MigrationComponent> {
        let invalid = |reason: String| Error::InvalidComponent {
            path: origin.clone(),
            reason,
        };
        let wasm = self.wasm()?;
        let engine = &wasm.engine;
        let pre = self.prepare(&component).map_err(invalid)?;
        imports::check(&component, engine).map_err(|import| {
            invalid(format!(
                "migration {} imports {import}, which hsm-host does not provide: migrations \
                 may use SQL through the host and nothing else (no HTTP; sockets are linked \
                 with every capability refused)",
                metadata.version
            ))
        })?;
        Ok(MigrationComponent {
            path: origin,
            down_path: None,
            checksum,
            sql: None,
            sql_functions: self.sql_functions(),
            bytes,
            cache: self.cache.clone(),
            stored_form: OnceLock::new(),
            metadata,
            engine: engine.clone(),
            ticker: Arc::clone(&wasm.ticker),
            limits: self.limits,
            pre,
        })
    }

    /// Links the component against the host and checks it exports our world.
    fn prepare(
        &self,
        component: &Component,
    ) -> std::result::Result<MigrationPre<GuestState>, String> {
        let wasm = self.wasm().map_err(|e| e.to_string())?;
        let instance_pre = wasm.linker.instantiate_pre(component).map_err(|e| {
            format!(
                "imports something hsm-host does not provide (is it built for the \
                 hsm:migration world?): {e:#}"
            )
        })?;
        MigrationPre::new(instance_pre)
            .map_err(|e| format!("does not export the hsm:migration/migration world: {e:#}"))
    }

    /// Calls `metadata()` in a sandbox without SQL, and validates what it says.
    fn read_metadata(
        &self,
        pre: &MigrationPre<GuestState>,
        origin: &Path,
    ) -> std::result::Result<Metadata, String> {
        let timeout = METADATA_TIMEOUT.min(self.limits.timeout);
        let state = GuestState::new(
            origin.display().to_string(),
            None,
            Instant::now() + timeout,
            MemoryBudget::new(self.limits.max_memory),
            Arc::new(text::Budget::new(text::LOG_BUDGET)),
        );
        let engine = &self.wasm().map_err(|e| e.to_string())?.engine;
        let (result, outcome) = call(engine, pre, state, timeout, |m, s| {
            m.call_metadata(s).map(Metadata::from)
        });
        let metadata = result.map_err(|e| {
            if e.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
                format!(
                    "metadata() did not return within its time limit of {} (it must only \
                     return constants; the limit is the smaller of 10 s and --timeout)",
                    describe_duration(timeout)
                )
            } else if let Some(memory) = &outcome.memory_exceeded {
                format!("metadata() failed: {memory}")
            } else {
                format!(
                    "metadata() failed: {}",
                    text::neutralize(&format!("{e:#}"), text::MAX_MESSAGE)
                )
            }
        })?;
        validate_metadata(&metadata)?;
        Ok(neutralize_metadata(metadata))
    }
}

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
    path: PathBuf,
    /// The file its `down` comes from, when that is another file (a SQL migration's down file).
    down_path: Option<PathBuf>,
    /// sha256 of the component's bytes, lowercase hex.
    checksum: String,
    /// The SQL migration it was packed from, if it was: its files' digests are what tracking
    /// records for it.
    sql: Option<Arc<dyn SqlOrigin>>,
    /// The SQL functions its directory provides, registered at each step.
    sql_functions: Option<Arc<provided::ProvidedFunctions>>,
    /// The bytes themselves, so the host can store the exact component it applied.
    bytes: Bytes,
    /// Where its stored form is kept, if anywhere.
    cache: Option<Arc<cache::ComponentCache>>,
    /// Its stored form, once made or read.
    stored_form: OnceLock<Vec<u8>>,
    metadata: Metadata,
    engine: Engine,
    ticker: Arc<EpochTicker>,
    limits: Limits,
    pre: MigrationPre<GuestState>,
}

impl MigrationComponent {
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
        let mut sqlite_code = None;
        self.run_unescaped(direction, db, deadline, &mut sqlite_code)
            .map_err(|message| Failure {
                message: text::neutralize(&message, text::MAX_MESSAGE),
                sqlite_code,
            })
    }

    fn run_unescaped(
        &self,
        direction: Direction,
        db: &Database,
        deadline: Instant,
        sqlite_code: &mut Option<i32>,
    ) -> Result<SchemaTouch, String> {
        let timeout = self.limits.timeout;
        let memory = MemoryBudget::new(self.limits.max_memory);
        let log_budget = Arc::new(text::Budget::new(text::LOG_BUDGET));
        let mut state = GuestState::new(
            self.label(),
            Some(db),
            deadline,
            Arc::clone(&memory),
            Arc::clone(&log_budget),
        )
        .with_functions(functions::FunctionFactory {
            engine: self.engine.clone(),
            pre: self.pre.instance_pre().clone(),
            deadline,
            label: self.label(),
            memory,
            log_budget,
        });
        if let (Some(provided), Some(sql), Some(factory)) =
            (&self.sql_functions, &state.sql, &state.functions)
        {
            state.provided = Some(provided.register(sql, factory.clone())?);
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
        if let Some(failure) = outcome.function_failure {
            if failure.contains(functions::OUT_OF_TIME) {
                return Err(out_of_time());
            }
            if failure.contains("exceeded its memory limit") {
                return Err(failure);
            }
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
enum Bytes {
    /// In memory (a component made in memory, or read from the database).
    Held(Arc<[u8]>),
    /// In its file, checked against its checksum when read again.
    InFile,
}

/// What a call left behind besides its result.
struct CallOutcome {
    /// The guest's stderr (a panic's message when the guest trapped).
    stderr: String,
    /// Set when the guest hit the memory limit.
    memory_exceeded: Option<String>,
    /// Whether the guest filled its stdout or stderr capture.
    output_overflowed: bool,
    /// How the call's SQL ended (`None` when it had none).
    sql: Option<crate::sql::Closed>,
    /// Why its function instance stopped, if it did.
    function_failure: Option<String>,
}

/// Instantiates `pre` in a new store with the limits armed, runs `f`, ends its SQL session,
/// and logs what the guest printed.
fn call<R>(
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
        .and_then(functions::GuestFunctions::failure)
        .or_else(|| state.provided.as_ref().and_then(|p| p.failure()));
    // Its functions leave the connection before their instance goes.
    let sql = state.sql.take().map(crate::sql::GuestSql::close);
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

/// Tells a core module or a random file from a component before wasmtime tries to compile it,
/// so the error says what the file is and what to do about it.
fn check_component_header(bytes: &[u8]) -> std::result::Result<(), &'static str> {
    const MAGIC: &[u8] = b"\0asm";
    const CORE_VERSION: [u8; 4] = [1, 0, 0, 0];
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err("not a WebAssembly file (no `\\0asm` header)");
    }
    if bytes[4..8] == CORE_VERSION {
        return Err(
            "is a core WebAssembly module, not a component: build it with \
             `cargo build --target wasm32-wasip2` (or wrap it with `wasm-tools component new`)",
        );
    }
    Ok(())
}

fn validate_metadata(metadata: &Metadata) -> std::result::Result<(), String> {
    if metadata.version == 0 || i64::try_from(metadata.version).is_err() {
        return Err(format!(
            "declares version {}; versions must be between 1 and {}",
            metadata.version,
            i64::MAX
        ));
    }
    if metadata.name.trim().is_empty() {
        return Err(format!(
            "migration {} declares an empty name",
            metadata.version
        ));
    }
    Ok(())
}

/// A component's name and description as hsm-host shows and stores them: control characters
/// escaped, each capped (see [`text`]).
pub(crate) fn neutralize_metadata(metadata: Metadata) -> Metadata {
    Metadata {
        name: text::neutralize(&metadata.name, text::MAX_NAME),
        description: text::neutralize(&metadata.description, text::MAX_DESCRIPTION),
        ..metadata
    }
}
