//! SQL functions a migrations directory provides to its migrations: a component of the
//! `sql-functions` world in the directory as `sql-functions.wasm`. SQL files cannot carry
//! code, and real sets call functions their application registers (`normalize(text, form)`,
//! `BIN2B64(blob)`). Each migration step registers the names on its connection; the first
//! call starts an instance of the component (no SQL access, the step's deadline and memory
//! budget), shared by every function of that step.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use wasmtime::component::{Component, InstancePre};

use super::functions::{FunctionFactory, GuestFunctions};
use super::limits::MemoryBudget;
use super::state::GuestState;
use super::{METADATA_TIMEOUT, Metadata, Runtime, check_component_header, imports, sha256_hex};
use crate::error::{Error, Result};
use crate::sql::{FunctionCaller, GuestSql};
use crate::text;

/// The file name a directory's function component has.
pub const FILE_NAME: &str = "sql-functions.wasm";

/// Most functions one component may provide (each is registered at every step).
const MAX_FUNCTIONS: usize = 64;

/// A directory's function component, compiled, and the names it provides.
pub(crate) struct ProvidedFunctions {
    path: PathBuf,
    pre: InstancePre<GuestState>,
    names: Vec<String>,
}

impl Runtime {
    /// The function component of `dir` (`sql-functions.wasm`), if it has one: read like a
    /// migration component (a regular file, or a link to one inside `dir`), compiled (or taken
    /// from the compile cache), started once to read its names. Every migration this runtime
    /// loads from then on gets its functions.
    ///
    /// # Errors
    /// [`Error::ReadMigrations`] if the file cannot be read; [`Error::InvalidComponent`] if it
    /// is not a component of the `sql-functions` world or its names are not SQL names.
    pub fn provide_sql_functions(&self, dir: &Path) -> Result<bool> {
        let path = dir.join(FILE_NAME);
        if std::fs::symlink_metadata(&path).is_err() {
            return Ok(false);
        }
        let provided = self.load_sql_functions(&path)?;
        *self.sql_functions.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(provided));
        Ok(true)
    }

    /// The function component the runtime gives its migrations, if any.
    pub(crate) fn sql_functions(&self) -> Option<Arc<ProvidedFunctions>> {
        self.sql_functions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn load_sql_functions(&self, path: &Path) -> Result<ProvidedFunctions> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let bytes = crate::files::read_inside(path, dir, crate::files::MAX_COMPONENT_FILE)
            .map_err(|reason| Error::ReadMigrations {
                path: path.to_owned(),
                source: std::io::Error::other(reason),
            })?;
        // Code every migration calls: held to the trust file as they are (the bytes read here
        // are the ones compiled).
        if let Some(policy) = &self.signed_only {
            let detached = hsm_signing::read_detached(path).map_err(|reason| Error::Untrusted {
                subject: path.display().to_string(),
                reason,
            })?;
            policy.check_bytes(&path.display().to_string(), &bytes, detached)?;
        }
        let invalid = |reason: String| Error::InvalidComponent {
            path: path.to_owned(),
            reason,
        };
        let wasm = self.wasm()?;
        let engine = &wasm.engine;
        let sha256 = sha256_hex(&bytes);
        let cached = self
            .cache
            .as_ref()
            .and_then(|cache| cache.get(engine, &sha256))
            .map(|(component, _)| component);
        let component = match cached {
            Some(component) => component,
            None => {
                check_component_header(&bytes).map_err(|reason| invalid(reason.to_owned()))?;
                let component = Component::new(engine, &bytes)
                    .map_err(|e| invalid(format!("not a valid WebAssembly component: {e:#}")))?;
                if let Some(cache) = &self.cache {
                    cache.put(engine, &sha256, &component, &placeholder());
                }
                component
            }
        };
        imports::check(&component, engine).map_err(|import| {
            invalid(format!(
                "imports {import}, which hsm-host does not provide: SQL functions may log \
                 and compute, nothing else"
            ))
        })?;
        let pre = wasm.linker.instantiate_pre(&component).map_err(|e| {
            invalid(format!(
                "imports something hsm-host does not provide (build it for the \
                 hsm:migration/sql-functions world): {e:#}"
            ))
        })?;
        let timeout = METADATA_TIMEOUT.min(self.limits.timeout);
        let factory = FunctionFactory {
            engine: engine.clone(),
            pre: pre.clone(),
            deadline: Instant::now() + timeout,
            label: path.display().to_string(),
            memory: MemoryBudget::new(self.limits.max_memory),
            log_budget: Arc::new(text::Budget::new(text::LOG_BUDGET)),
            // The sql-functions world is contract 0.2's alone.
            find_export: super::functions::find_export,
        };
        let names = factory
            .start()
            .map_err(|failure| {
                invalid(format!(
                    "{} (a directory's {FILE_NAME} is built for the \
                     hsm:migration/sql-functions world)",
                    failure.message()
                ))
            })?
            .names();
        check_names(&names).map_err(invalid)?;
        tracing::debug!(
            "{}: provides SQL functions {}",
            path.display(),
            names.join(", ")
        );
        Ok(ProvidedFunctions {
            path: path.to_owned(),
            pre,
            names,
        })
    }
}

/// What the compile cache records beside a function component (it has no metadata).
fn placeholder() -> Metadata {
    Metadata {
        version: 0,
        name: "sql_functions".into(),
        description: "a directory's SQL functions".into(),
        reversible: false,
    }
}

/// Names SQLite can call, each once, and not too many.
fn check_names(names: &[String]) -> std::result::Result<(), String> {
    if names.is_empty() {
        return Err(
            "its functions export lists no names (a directory's sql-functions.wasm \
                    is a component of the hsm:migration/sql-functions world that provides \
                    SQL functions)"
                .into(),
        );
    }
    if names.len() > MAX_FUNCTIONS {
        return Err(format!(
            "it lists {} functions; hsm-host takes at most {MAX_FUNCTIONS}",
            names.len()
        ));
    }
    for (i, name) in names.iter().enumerate() {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(format!(
                "`{}` is not a SQL function name (letters, digits and _, not starting with a \
                 digit, at most 64)",
                text::neutralize(name, 64)
            ));
        }
        if let Some(reason) = crate::sql::builtin_function(name) {
            return Err(reason);
        }
        if names[..i].iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return Err(format!(
                "it lists `{name}` twice (SQL function names ignore case)"
            ));
        }
    }
    Ok(())
}

impl ProvidedFunctions {
    /// The names it provides.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// Registers every function on `sql` for one step; the instance starts at the first call.
    pub(crate) fn register(
        &self,
        sql: &GuestSql,
        factory: FunctionFactory,
    ) -> std::result::Result<StepFunctions, String> {
        let step = StepFunctions {
            factory: Arc::new(FunctionFactory {
                pre: self.pre.clone(),
                label: format!("{} ({})", factory.label, FILE_NAME),
                find_export: super::functions::find_export,
                ..factory
            }),
            instance: Arc::new(OnceLock::new()),
        };
        for name in &self.names {
            sql.register_function(name, -1, false, step.caller(name))
                .map_err(|e| {
                    format!(
                        "cannot register `{name}` from {}: {}",
                        self.path.display(),
                        e.message
                    )
                })?;
        }
        Ok(step)
    }
}

/// One step's view of a directory's functions: the instance, once a function is called.
#[derive(Clone)]
pub(crate) struct StepFunctions {
    factory: Arc<FunctionFactory>,
    instance: Arc<OnceLock<std::result::Result<GuestFunctions, super::state::FunctionFailure>>>,
}

impl super::state::CallFunctions for StepFunctions {
    fn caller(&self, name: &str) -> std::result::Result<FunctionCaller, String> {
        Ok(StepFunctions::caller(self, name))
    }

    fn failure(&self) -> Option<super::state::FunctionFailure> {
        StepFunctions::failure(self)
    }
}

impl StepFunctions {
    fn caller(&self, name: &str) -> FunctionCaller {
        let step = self.clone();
        let name = name.to_owned();
        let caller: OnceLock<std::result::Result<FunctionCaller, String>> = OnceLock::new();
        Arc::new(move |args| {
            let caller = caller.get_or_init(|| {
                step.instance
                    .get_or_init(|| step.factory.start())
                    .as_ref()
                    .map_err(|failure| failure.message().to_owned())
                    .and_then(|functions| functions.caller(&name))
            });
            match caller {
                Ok(call) => call(args),
                Err(reason) => Err(reason.clone()),
            }
        })
    }

    /// Why the instance stopped (a trap, the memory or time limit), if it did.
    pub(crate) fn failure(&self) -> Option<super::state::FunctionFailure> {
        match self.instance.get()? {
            Ok(functions) => functions.failure(),
            Err(failure) => Some(failure.clone()),
        }
    }
}
