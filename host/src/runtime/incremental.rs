//! Cranelift's incremental compilation cache, kept in memory for the life of a runtime.
//!
//! Migrations built with the same SDK share most of their code (the standard library, the
//! bindings, the SDK itself), and Cranelift can reuse a function it compiled before when its
//! IR and the target are the same. Compiling a directory of components then costs roughly one
//! full compile plus what each migration adds. Entries live in this process only: nothing
//! compiled is read back from disk here (the compile cache stores whole components instead).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use wasmtime::CacheStore;

/// Most compiled code kept (a Rust guest's functions take a few MiB).
const MAX_BYTES: usize = 128 << 20;

#[derive(Debug, Default)]
pub(crate) struct FunctionCache {
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    by_key: HashMap<Vec<u8>, Vec<u8>>,
    bytes: usize,
}

impl CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.by_key.get(key).cloned().map(Cow::Owned)
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.bytes + key.len() + value.len() > MAX_BYTES {
            return false;
        }
        entries.bytes += key.len() + value.len();
        // Two threads may compile the same function at once: count it once.
        if let Some(previous) = entries.by_key.insert(key.to_vec(), value) {
            entries.bytes -= key.len() + previous.len();
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_what_was_stored_and_stops_at_the_cap() {
        let cache = FunctionCache::default();
        assert!(cache.get(b"f").is_none());
        assert!(cache.insert(b"f", vec![1, 2, 3]));
        assert_eq!(cache.get(b"f").as_deref(), Some(&[1u8, 2, 3][..]));
        // The same function stored twice is counted once.
        assert!(cache.insert(b"f", vec![1, 2, 3]));
        assert_eq!(cache.entries.lock().unwrap().bytes, 4);
        assert!(!cache.insert(b"big", vec![0; MAX_BYTES]));
        assert!(cache.get(b"big").is_none());
    }
}
