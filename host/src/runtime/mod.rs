//! The wasm side: one engine and linker for all migrations, loading and validating components,
//! and calling their `metadata`/`up`/`down` in a fresh, empty sandbox each time.

pub(crate) mod bindings;
mod output;
mod progress;
mod state;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store};

pub use bindings::Metadata;
use bindings::{Migration, MigrationPre};
use state::GuestState;

use crate::database::Database;
use crate::error::{Error, Result};
use crate::plan::Direction;

/// Compiles and runs migration components. Create one and load every component with it.
pub struct Runtime {
    engine: Engine,
    linker: Linker<GuestState>,
}

impl Runtime {
    /// Sets up the engine and the host functions guests may import.
    ///
    /// # Errors
    /// [`Error::Runtime`] if wasmtime cannot be configured on this machine.
    pub fn new() -> Result<Self> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config).map_err(runtime_error)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(runtime_error)?;
        Migration::add_to_linker::<GuestState, HasSelf<GuestState>>(&mut linker, |s| s)
            .map_err(runtime_error)?;
        Ok(Self { engine, linker })
    }

    /// Reads, compiles and validates the component in `path` and reads its metadata.
    ///
    /// # Errors
    /// [`Error::ReadMigrations`] if the file cannot be read; [`Error::InvalidComponent`] if it
    /// is not a component, does not target the `hsm:migration` world, or declares bad metadata.
    pub fn load_file(&self, path: &Path) -> Result<MigrationComponent> {
        let bytes = std::fs::read(path).map_err(|source| Error::ReadMigrations {
            path: path.to_owned(),
            source,
        })?;
        self.load(path.to_owned(), &bytes)
    }

    /// Like [`Runtime::load_file`], for bytes already in memory; `origin` names them in errors.
    pub fn load(&self, origin: PathBuf, bytes: &[u8]) -> Result<MigrationComponent> {
        let invalid = |reason: String| Error::InvalidComponent {
            path: origin.clone(),
            reason,
        };
        check_component_header(bytes).map_err(|reason| invalid(reason.to_owned()))?;
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| invalid(format!("not a valid WebAssembly component: {e:#}")))?;
        let instance_pre = self.linker.instantiate_pre(&component).map_err(|e| {
            invalid(format!(
                "imports something hsm-host does not provide (is it built for the \
                 hsm:migration world?): {e:#}"
            ))
        })?;
        let pre = MigrationPre::new(instance_pre).map_err(|e| {
            invalid(format!(
                "does not export the hsm:migration/migration world: {e:#}"
            ))
        })?;

        let label = origin.display().to_string();
        let (result, _) = call(&self.engine, &pre, GuestState::new(label, None), |m, s| {
            m.call_metadata(s)
        });
        let metadata = result.map_err(|e| invalid(format!("metadata() failed: {e}")))?;
        validate_metadata(&metadata).map_err(invalid)?;
        Ok(MigrationComponent {
            path: origin,
            checksum: sha256_hex(bytes),
            bytes: bytes.into(),
            metadata,
            engine: self.engine.clone(),
            pre,
        })
    }
}

/// A loaded, validated migration, ready to run against any [`Database`].
pub struct MigrationComponent {
    path: PathBuf,
    /// sha256 of the component's bytes, lowercase hex.
    checksum: String,
    /// The bytes themselves, kept so the host can store the exact component it applied.
    bytes: Arc<[u8]>,
    metadata: Metadata,
    engine: Engine,
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

    /// sha256 of the component's bytes, lowercase hex.
    pub fn checksum(&self) -> &str {
        &self.checksum
    }

    /// The component's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `migration 3 (normalize_email_addresses)`.
    pub fn label(&self) -> String {
        format!(
            "migration {} ({})",
            self.metadata.version, self.metadata.name
        )
    }

    /// Calls `up` or `down` in a fresh sandbox whose SQL runs on `db`. The caller owns the
    /// transaction. Returns the guest's error message, or the trap and what the guest printed.
    pub(crate) fn run(&self, direction: Direction, db: &Database) -> Result<(), String> {
        let state = GuestState::new(self.label(), Some(db.shared()));
        let (result, stderr) = call(&self.engine, &self.pre, state, |m, s| match direction {
            Direction::Up => m.call_up(s),
            Direction::Down => m.call_down(s),
        });
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(message),
            Err(trap) => Err(output::describe_trap(&trap, &stderr)),
        }
    }
}

/// Instantiates `pre` in a new store, runs `f`, logs what the guest printed and returns the
/// result with the guest's stderr (which holds a panic's message when the guest trapped).
fn call<R>(
    engine: &Engine,
    pre: &MigrationPre<GuestState>,
    state: GuestState,
    f: impl FnOnce(&Migration, &mut Store<GuestState>) -> wasmtime::Result<R>,
) -> (std::result::Result<R, wasmtime::Error>, String) {
    let mut store = Store::new(engine, state);
    let result = pre
        .instantiate(&mut store)
        .and_then(|migration| f(&migration, &mut store));
    let state = store.into_data();
    let stderr = output::log_guest_output(&state);
    (result, stderr)
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

/// sha256 as lowercase hex, the form stored in `migrations.checksum`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn runtime_error(error: wasmtime::Error) -> Error {
    Error::Runtime(format!("{error:#}"))
}
