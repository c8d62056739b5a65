//! The wasm side: one engine and linker for all migrations, loading and validating components,
//! and calling their `metadata`/`up`/`down` in a fresh, empty sandbox each time.

pub mod cache;
pub use hsm_store::digest::sha256_hex;
pub mod cache_trim;
mod clock;
mod component;
pub mod dialects;
mod engines;
mod functions;
mod host;
mod imports;
mod incremental;
mod inspect;
mod limits;
mod output;
pub use hsm_store::progress;
mod provided;
pub mod signed;
mod state;
pub mod watchdog;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use wasmtime::component::Component;

use crate::contract::MigrationPre;
use component::{Bytes, call};
pub use component::{
    ComponentInfo, Failure, Metadata, MigrationComponent, SqlOrigin, drop_elsewhere,
};
pub use engines::{Compiler, QUICK_COMPILE_FROM};
use engines::{Tier, Wasm};
pub use inspect::{Inspection, Signatures};
use limits::MemoryBudget;
pub use limits::{Limits, Watch, describe_duration};
pub use progress::{ProgressSink, set_progress_sink};
pub use provided::FILE_NAME as SQL_FUNCTIONS_FILE;
use state::GuestState;
pub use watchdog::{HardStopHook, set_hard_stop_hook};

use crate::error::{Error, Result};
use crate::text;

/// Longest `metadata()` may run: it only returns constants.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Compiles and runs migration components. Create one and load every component with it.
pub struct Runtime {
    /// Cranelift's and Winch's, each started on first use: `status` answered from the cache
    /// never needs an engine.
    engines: [OnceLock<std::result::Result<Wasm, String>>; 2],
    /// Which of them compiles a component.
    compiler: Compiler,
    limits: Limits,
    cache: Option<Arc<cache::ComponentCache>>,
    /// The SQL functions of the migrations directory, given to every migration loaded.
    sql_functions: std::sync::Mutex<Option<Arc<provided::ProvidedFunctions>>>,
    /// `--require-signed`: the trust file components are held to.
    signed_only: Option<Arc<signed::SignedOnly>>,
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
            engines: [OnceLock::new(), OnceLock::new()],
            compiler: Compiler::Auto,
            limits,
            cache: None,
            sql_functions: std::sync::Mutex::new(None),
            signed_only: None,
        })
    }

    /// Cranelift's engine and linker, started on first use.
    fn wasm(&self) -> Result<&Wasm> {
        self.engine(Tier::Optimized)
    }

    /// The engine and linker of `tier`, started on first use.
    fn engine(&self, tier: Tier) -> Result<&Wasm> {
        self.engines[tier.index()]
            .get_or_init(|| Wasm::start(tier, self.cache.as_deref()))
            .as_ref()
            .map_err(|e| Error::Runtime(format!("cannot start {}: {e}", tier.name())))
    }

    /// Compiles components with `compiler` (see [`Compiler`]).
    #[must_use]
    pub fn with_compiler(mut self, compiler: Compiler) -> Self {
        self.compiler = compiler;
        self
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

    /// Loads only components `trust` accepts (see [`signed::SignedOnly`]): the sources check
    /// each file before loading it.
    #[must_use]
    pub fn require_signed(mut self, trust: hsm_signing::Trust) -> Self {
        self.signed_only = Some(Arc::new(signed::SignedOnly::new(trust)));
        self
    }

    /// The trust file components are held to, if any.
    pub fn signed_only(&self) -> Option<&signed::SignedOnly> {
        self.signed_only.as_deref()
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
            && let Ok(meta) = std::fs::metadata(path)
            && let Some(component) =
                self.load_compiled(path, &known.checksum, meta.len(), || Bytes::InFile)?
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

    /// The metadata of the component in `path`, whose bytes hash to `sha256`, if the compile
    /// cache has loaded that component before (under any name): no code loaded.
    pub fn describe_by_content(&self, path: &Path, sha256: &str) -> Option<ComponentInfo> {
        self.cache.as_ref()?.describe_content(path, sha256)
    }

    /// Whether `info`'s file is one the compile cache knows, unchanged since, with its compiled
    /// code in the cache: it was loaded and checked before, and loads in a fraction of a
    /// millisecond.
    pub fn is_compiled(&self, info: &ComponentInfo) -> bool {
        let (Some(cache), Ok(meta)) = (&self.cache, std::fs::metadata(&info.path)) else {
            return false;
        };
        self.describe_cached(&info.path)
            .is_some_and(|known| known.checksum == info.checksum)
            && self
                .compiler
                .cached_tiers(meta.len())
                .iter()
                .filter_map(|&tier| self.engine(tier).ok())
                .any(|wasm| cache.has(&wasm.engine, &info.checksum))
    }

    /// Which compiler made the code the cache holds for the component of `checksum`, of
    /// `size` bytes, as this runtime would load it: `None` when it holds none.
    pub fn cached_compiler(&self, checksum: &str, size: u64) -> Option<Compiler> {
        let cache = self.cache.as_ref()?;
        self.compiler.cached_tiers(size).iter().find_map(|&tier| {
            let wasm = self.engine(tier).ok()?;
            cache.has(&wasm.engine, checksum).then_some(match tier {
                Tier::Optimized => Compiler::Cranelift,
                Tier::Quick => Compiler::Winch,
            })
        })
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
        let size = bytes.len() as u64;
        if let Some(component) = self.load_compiled(&origin, &checksum, size, held)? {
            return Ok(component);
        }
        let invalid = |reason: String| Error::InvalidComponent {
            path: origin.clone(),
            reason,
        };
        check_component_header(bytes).map_err(|reason| invalid(reason.to_owned()))?;
        let (wasm, component) = self
            .compile(&origin, bytes, self.compiler.compile_tier(size))
            .map_err(|e| invalid(format!("not a valid WebAssembly component: {e:#}")))?;
        let engine = &wasm.engine;
        let pre = wasm.prepare(&component).map_err(invalid)?;
        let metadata = self.read_metadata(wasm, &pre, &origin).map_err(invalid)?;
        let loaded = self.finish_load(wasm, origin, checksum, component, metadata, held())?;
        if let Some(cache) = &self.cache {
            let component = loaded.pre.instance_pre().component();
            cache.put(engine, &loaded.checksum, component, &loaded.metadata);
            cache.remember_content(&loaded.checksum, &loaded.metadata);
            if let Some(functions) = &wasm.functions {
                functions.save();
            }
            // Made now, when compiling costs far more, rather than at each apply.
            cache.keep_stored_form(&loaded.checksum, &crate::tracking::stored_form(bytes));
        }
        Ok(loaded)
    }

    /// Compiles `bytes` with `tier`'s engine; a component Winch cannot compile (a feature it
    /// does not support) is compiled with Cranelift instead.
    fn compile(
        &self,
        origin: &Path,
        bytes: &[u8],
        tier: Tier,
    ) -> std::result::Result<(&Wasm, Component), wasmtime::Error> {
        let started = Instant::now();
        tracing::debug!("{}: compiling with {}", origin.display(), tier.name());
        let compiled = self
            .engine(tier)
            .map_err(wasmtime::Error::msg)
            .and_then(|wasm| Ok((wasm, Component::new(&wasm.engine, bytes)?)));
        let (wasm, component) = match (compiled, tier) {
            (Err(e), Tier::Quick) => {
                tracing::debug!(
                    "{}: Winch could not compile it ({e:#}); compiling with Cranelift",
                    origin.display()
                );
                return self.compile(origin, bytes, Tier::Optimized);
            }
            (compiled, _) => compiled?,
        };
        let functions = match wasm.functions.as_ref().map(|f| f.counts()) {
            Some((reused, compiled)) => {
                format!(" (functions so far in this process: {reused} reused, {compiled} compiled)")
            }
            None => String::new(),
        };
        tracing::debug!(
            "{}: compiled with {} in {} ms{functions}",
            origin.display(),
            tier.name(),
            started.elapsed().as_millis()
        );
        Ok((wasm, component))
    }

    /// The component with this checksum from the compile cache, if it holds it (compiled by
    /// an engine `--compiler` accepts for its `size`): nothing is read but its entry (the
    /// artifact is mapped). Its bytes are `bytes()`.
    fn load_compiled(
        &self,
        origin: &Path,
        checksum: &str,
        size: u64,
        bytes: impl FnOnce() -> Bytes,
    ) -> Result<Option<MigrationComponent>> {
        let Some(cache) = &self.cache else {
            return Ok(None);
        };
        let found = self.compiler.cached_tiers(size).iter().find_map(|&tier| {
            let wasm = self.engine(tier).ok()?;
            cache.get(&wasm.engine, checksum).map(|found| (wasm, found))
        });
        let Some((wasm, (component, metadata))) = found else {
            return Ok(None);
        };
        tracing::debug!("{}: loaded from the compile cache", origin.display());
        cache.remember_content(checksum, &metadata);
        self.finish_load(
            wasm,
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
        wasm: &Wasm,
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
        let engine = &wasm.engine;
        let pre = wasm.prepare(&component).map_err(invalid)?;
        imports::check(&component, engine).map_err(|import| {
            invalid(format!(
                "migration {} imports {import}, which hsm-host does not provide: migrations \
                 may use SQL through the host and nothing else (no HTTP; sockets are linked \
                 with every capability refused)",
                metadata.version
            ))
        })?;
        // What the trust file said of these very bytes (`--require-signed`).
        let signed = self
            .signed_only
            .as_ref()
            .and_then(|policy| policy.verdict(&checksum));
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
            signed,
            pre,
        })
    }

    /// Calls `metadata()` in a sandbox without SQL, and validates what it says.
    fn read_metadata(
        &self,
        wasm: &Wasm,
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
        let (result, outcome) = call(&wasm.engine, pre, state, timeout, |m, s| {
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
    metadata.shown()
}

impl Metadata {
    /// The metadata as hsm-host shows and stores it: the name and description with control
    /// characters escaped, each capped (as every loaded component's is).
    #[must_use]
    pub fn shown(self) -> Metadata {
        Metadata {
            name: text::neutralize(&self.name, text::MAX_NAME),
            description: text::neutralize(&self.description, text::MAX_DESCRIPTION),
            ..self
        }
    }
}
