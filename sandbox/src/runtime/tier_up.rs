//! Tiering up: a component whose first load used Winch's code (quick to make, slower to run:
//! 1.4x on a million-row Python migration) is compiled again by Cranelift on a background
//! thread, and Cranelift's code goes into the cache, where [`Compiler::Auto`] prefers it from
//! then on. The run never waits for it: a process that ends first leaves Winch's code in the
//! cache, and the next load that uses it tries again. A long migration, where Winch's slower
//! code costs most, is also the one during which the background compile finishes.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use wasmtime::component::Component;

use super::component::Bytes;
use super::engines::Tier;
use super::{Compiler, Metadata, Runtime, sha256_hex};

/// The background compiles a runtime started.
#[derive(Default)]
pub(super) struct TierUps(Mutex<Vec<JoinHandle<()>>>);

impl Runtime {
    /// Starts compiling the component loaded from `origin` with Cranelift, into the cache.
    pub(super) fn tier_up_later(
        &self,
        origin: &Path,
        checksum: &str,
        metadata: &Metadata,
        bytes: &Bytes,
    ) {
        let (Some(cache), Ok(optimized)) = (self.cache.clone(), self.engine(Tier::Optimized))
        else {
            return;
        };
        let engine = optimized.engine.clone();
        let functions = optimized.functions.clone();
        let held = match bytes {
            Bytes::Held(bytes) => Some(Arc::clone(bytes)),
            Bytes::InFile => None,
        };
        let (origin, checksum, metadata) =
            (origin.to_owned(), checksum.to_owned(), metadata.clone());
        let started = std::thread::Builder::new()
            .name("hsm-tier-up".into())
            .spawn(move || {
                let Some(bytes) = held.or_else(|| read_checked(&origin, &checksum).map(Arc::from))
                else {
                    return;
                };
                let began = std::time::Instant::now();
                // On one thread of its own, at the lowest priority: the run in the foreground
                // (its loads on rayon's pool, its steps) is not slowed by it.
                let Ok(pool) = rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .thread_name(|_| "hsm-tier-up".into())
                    .start_handler(|_| lowest_priority())
                    .build()
                else {
                    return;
                };
                match pool.install(|| Component::new(&engine, &bytes)) {
                    Ok(component) => {
                        cache.put(&engine, &checksum, &component, &metadata);
                        if let Some(functions) = functions {
                            functions.save();
                        }
                        tracing::debug!(
                            "{}: Cranelift's code cached for the next runs ({} ms, in the \
                             background)",
                            origin.display(),
                            began.elapsed().as_millis()
                        );
                    }
                    Err(e) => tracing::debug!(
                        "{}: Cranelift could not compile it in the background: {e:#}",
                        origin.display()
                    ),
                }
            });
        match started {
            Ok(handle) => self
                .tier_ups
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(handle),
            Err(e) => tracing::debug!("cannot start a background compile: {e}"),
        }
    }

    /// Waits for the background compiles this runtime started (see the module's comment):
    /// for callers that load the same components again soon, and for tests.
    pub fn wait_for_tier_ups(&self) {
        let handles =
            std::mem::take(&mut *self.tier_ups.0.lock().unwrap_or_else(|p| p.into_inner()));
        for handle in handles {
            let _ = handle.join();
        }
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
}

/// Lowers this thread's scheduling priority (nice 19): Linux applies `setpriority` to a
/// thread id alone.
fn lowest_priority() {
    let thread = rustix::thread::gettid();
    if let Err(e) = rustix::process::setpriority_process(Some(thread), 19) {
        tracing::debug!("cannot lower the background compile's priority: {e}");
    }
}

/// The bytes of the file at `path` if they are still the component of `checksum`.
fn read_checked(path: &Path, checksum: &str) -> Option<Vec<u8>> {
    let bytes = crate::files::open_regular(path, true)
        .and_then(|(file, meta)| {
            crate::files::read_capped(file, &meta, crate::files::MAX_COMPONENT_FILE)
        })
        .ok()?;
    (sha256_hex(&bytes) == checksum).then_some(bytes)
}
