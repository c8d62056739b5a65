//! What a component may import: our world, and the WASI interfaces language runtimes carry
//! (Rust's standard library, Python's, JavaScript's). Anything else (HTTP, ...) is refused when
//! the component is loaded.

use wasmtime::Engine;
use wasmtime::component::Component;

/// Import name prefixes that are provided (with an empty WASI context: no files, no
/// environment, no arguments, output captured; sockets with TCP, UDP and name lookup refused,
/// since Python's runtime imports them whether or not a migration uses the network).
const ALLOWED: [&str; 7] = [
    "hsm:migration/",
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
    "wasi:sockets/",
];

/// `Err(name)` of the first import that is not provided.
pub(super) fn check(component: &Component, engine: &Engine) -> Result<(), String> {
    match component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name)
        .find(|name| !is_provided(name))
    {
        Some(name) => Err(name.to_owned()),
        None => Ok(()),
    }
}

/// Whether hsm-host links an import of this name.
fn is_provided(name: &str) -> bool {
    ALLOWED.iter().any(|prefix| name.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::is_provided;

    #[test]
    fn http_and_unknown_packages_are_not_provided() {
        for name in [
            "hsm:migration/sql@0.2.0",
            "hsm:migration/sql@0.1.3",
            "wasi:sockets/tcp@0.2.9",
            "wasi:filesystem/preopens@0.2.12",
        ] {
            assert!(is_provided(name), "{name}");
        }
        for name in [
            "wasi:http/outgoing-handler@0.2.0",
            "wasi:http/types@0.2.0",
            "wasi:keyvalue/store@0.2.0",
            "evil:net/raw@1.0.0",
            "hsm:migrations/sql@0.2.0",
        ] {
            assert!(!is_provided(name), "{name}");
        }
    }
}
