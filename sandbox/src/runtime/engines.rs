//! The engines components are compiled with: Cranelift's optimised code, or Winch's
//! single-pass code for a large component's first load (`--compiler`).
//!
//! Measured on 2 cores (BENCHMARKS.md, "First load of an interpreter"): the 18 MiB Python
//! example compiles in ~6 s with Cranelift and ~1.5 s with Winch, the 12 MiB JavaScript one
//! in ~7.5 s and ~2.5 s, and their `up`s run in the same milliseconds either way (a migration's
//! guest code runs once; an interpreter's start-up dominates). Small components (the Rust
//! SDK's, 60–100 KiB) compile in tens of milliseconds with Cranelift, whose code runs SQL
//! functions once per row: they keep it.

use std::str::FromStr;
use std::sync::Arc;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Strategy};

use super::cache::ComponentCache;
use super::limits::EpochTicker;
use super::state::GuestState;
use super::{clock, host, incremental};
use crate::contract::{Migration, MigrationPre};

/// Components at least this large are compiled with Winch by [`Compiler::Auto`]: only
/// interpreters (Python, JavaScript) are; compiled-language migrations are a few hundred KiB.
pub const QUICK_COMPILE_FROM: u64 = 4 << 20;

/// Which compiler makes a component's machine code (kept in the compile cache either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compiler {
    /// Winch for components of [`QUICK_COMPILE_FROM`] bytes and more, Cranelift for the rest;
    /// code either compiler left in the cache is used.
    #[default]
    Auto,
    /// Cranelift for every component: the fastest code, the slowest first load.
    Cranelift,
    /// Winch for every component but a directory's SQL functions (called once per row).
    Winch,
}

impl Compiler {
    /// The names `--compiler` takes.
    pub const NAMES: [&'static str; 3] = ["auto", "cranelift", "winch"];

    /// The engine to compile a component of `size` bytes with.
    pub(crate) fn compile_tier(self, size: u64) -> Tier {
        match self {
            Self::Cranelift => Tier::Optimized,
            Self::Winch => Tier::Quick,
            Self::Auto if size >= QUICK_COMPILE_FROM => Tier::Quick,
            Self::Auto => Tier::Optimized,
        }
    }

    /// The engines whose cached code is used for a component of `size` bytes, best first.
    pub(crate) fn cached_tiers(self, size: u64) -> &'static [Tier] {
        match (self, self.compile_tier(size)) {
            (Self::Cranelift, _) => &[Tier::Optimized],
            (Self::Winch, _) => &[Tier::Quick],
            // Cranelift's code, if an earlier `--compiler cranelift` made it, is the better.
            (Self::Auto, Tier::Quick) => &[Tier::Optimized, Tier::Quick],
            (Self::Auto, Tier::Optimized) => &[Tier::Optimized],
        }
    }
}

impl FromStr for Compiler {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "cranelift" => Ok(Self::Cranelift),
            "winch" => Ok(Self::Winch),
            other => Err(format!(
                "unknown compiler {other:?}: expected one of {}",
                Self::NAMES.join(", ")
            )),
        }
    }
}

/// One of the two engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tier {
    /// Cranelift.
    Optimized,
    /// Winch.
    Quick,
}

impl Tier {
    pub(crate) fn index(self) -> usize {
        match self {
            Self::Optimized => 0,
            Self::Quick => 1,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Optimized => "Cranelift",
            Self::Quick => "Winch",
        }
    }
}

/// An engine and the host functions guests may import.
pub(crate) struct Wasm {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<GuestState>,
    /// Drives the time limit of every call; stops when the runtime and every component it
    /// loaded are gone.
    pub(crate) ticker: Arc<EpochTicker>,
    /// Cranelift's functions, reused by later compiles (on disk too, with a cache directory);
    /// Winch compiles whole modules only.
    pub(crate) functions: Option<Arc<incremental::FunctionCache>>,
}

impl Wasm {
    pub(crate) fn start(
        tier: Tier,
        cache: Option<&ComponentCache>,
    ) -> std::result::Result<Self, String> {
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
        let functions = match tier {
            Tier::Quick => {
                config.strategy(Strategy::Winch);
                None
            }
            Tier::Optimized => {
                // Functions shared between components (std, bindings, SDK) are compiled once.
                let functions = Arc::new(incremental::FunctionCache::default());
                config
                    .enable_incremental_compilation(Arc::clone(&functions) as _)
                    .map_err(error)?;
                Some(functions)
            }
        };
        let engine = Engine::new(&config).map_err(error)?;
        if let (Some(cache), Some(functions)) = (cache, &functions) {
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

    /// Links the component against the host and checks it exports our world.
    pub(crate) fn prepare(
        &self,
        component: &Component,
    ) -> std::result::Result<MigrationPre<GuestState>, String> {
        let instance_pre = self.linker.instantiate_pre(component).map_err(|e| {
            format!(
                "imports something hsm-host does not provide (is it built for the \
                 hsm:migration world?): {e:#}"
            )
        })?;
        MigrationPre::new(instance_pre)
            .map_err(|e| format!("does not export the hsm:migration/migration world: {e:#}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_compiles_only_large_components_with_winch() {
        assert_eq!(Compiler::Auto.compile_tier(100 << 10), Tier::Optimized);
        assert_eq!(Compiler::Auto.compile_tier(QUICK_COMPILE_FROM), Tier::Quick);
        assert_eq!(Compiler::Cranelift.compile_tier(18 << 20), Tier::Optimized);
        assert_eq!(Compiler::Winch.compile_tier(1), Tier::Quick);
        assert_eq!(
            Compiler::Auto.cached_tiers(18 << 20),
            &[Tier::Optimized, Tier::Quick]
        );
        assert_eq!(Compiler::Auto.cached_tiers(1), &[Tier::Optimized]);
    }

    #[test]
    fn compiler_names_parse_and_others_are_refused() {
        for name in Compiler::NAMES {
            assert!(name.parse::<Compiler>().is_ok());
        }
        let error = "llvm".parse::<Compiler>().unwrap_err();
        assert!(error.contains("auto, cranelift, winch"), "{error}");
    }
}
