//! The host side of each interface the contract imports, one file per interface (as
//! wasmtime-wasi lays out its p2 hosts); the store data they work on is `super::state`.
//! `v0_1` links components built for contract 0.1 onto the same implementations.

mod log;
mod sql;
pub(super) mod v0_1;

use wasmtime::Store;
use wasmtime::component::Instance;

use super::functions::{self, FunctionsExport};
use super::state::GuestState;

/// A migration's `functions` export: contract 0.2's, else 0.1's through its adapter.
pub(super) fn functions_export(
    instance: &Instance,
    store: &mut Store<GuestState>,
) -> Result<Option<Box<dyn FunctionsExport>>, String> {
    match functions::find_export(instance, store)? {
        Some(export) => Ok(Some(export)),
        None => v0_1::functions_export(instance, store),
    }
}
