//! What a component may import: our world, and the WASI interfaces Rust's standard library
//! needs. Anything else (sockets, HTTP, ...) is refused when the component is loaded.

use wasmtime::Engine;
use wasmtime::component::Component;

/// Import name prefixes that are provided (with an empty WASI context: no files, no
/// environment, no arguments, output captured).
const ALLOWED: [&str; 6] = [
    "hsm:migration/",
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
];

/// `Err(name)` of the first import that is not provided.
pub(super) fn check(component: &Component, engine: &Engine) -> Result<(), String> {
    match component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name)
        .find(|name| !ALLOWED.iter().any(|prefix| name.starts_with(prefix)))
    {
        Some(name) => Err(name.to_owned()),
        None => Ok(()),
    }
}
