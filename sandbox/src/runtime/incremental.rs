//! Cranelift's incremental compilation cache: functions compiled before are reused.
//!
//! Migrations built with the same SDK share most of their code (the standard library, the
//! bindings, the SDK itself), and Cranelift can reuse a function it compiled before when its
//! IR and the target are the same (the key is a sha256 of both, and each entry carries
//! Cranelift's version, checked when it is used). Within a process a directory of components
//! costs about one full compile plus what each adds; with a compile cache directory the
//! functions are kept on disk too, so a new migration added to a project compiles only its own
//! code.
//!
//! On disk, under the compile cache's trust rules (a directory only this user can write, one
//! subdirectory per engine configuration): each compile that made new functions writes them
//! as one bundle, named and checked by the sha256 of its contents, written whole and renamed
//! into place. A bundle that does not check out is removed and its functions compiled again.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use sha2::{Digest, Sha256};
use wasmtime::CacheStore;

/// Most compiled code kept in memory (a Rust guest's functions take a few MiB).
const MAX_BYTES: usize = 128 << 20;

/// Most bundles kept on disk, in bytes: past it the directory starts over.
const MAX_DISK_BYTES: u64 = 256 << 20;

/// The first bytes of a bundle (the format's version is in it).
const MAGIC: &[u8; 16] = b"hsm-functions 1\n";

#[derive(Debug, Default)]
pub(crate) struct FunctionCache {
    entries: Mutex<Entries>,
    /// Where bundles are kept (unset: this process only); read on first use.
    dir: OnceLock<PathBuf>,
    loaded: OnceLock<()>,
    hits: AtomicUsize,
    misses: AtomicUsize,
}

#[derive(Debug, Default)]
struct Entries {
    by_key: HashMap<Vec<u8>, Vec<u8>>,
    bytes: usize,
    /// Keys compiled since the last bundle was written.
    unsaved: Vec<Vec<u8>>,
}

impl Entries {
    fn add(&mut self, key: &[u8], value: Vec<u8>) -> bool {
        if self.bytes + key.len() + value.len() > MAX_BYTES {
            return false;
        }
        self.bytes += key.len() + value.len();
        // Two threads may compile the same function at once: count it once.
        if let Some(previous) = self.by_key.insert(key.to_vec(), value) {
            self.bytes -= key.len() + previous.len();
        }
        true
    }
}

impl FunctionCache {
    /// Keeps the functions in `dir` (one directory per engine configuration) between
    /// processes as well. Set before the first compile; later calls change nothing.
    pub(crate) fn keep_in(&self, dir: PathBuf) {
        let _ = self.dir.set(dir);
    }

    #[cfg(test)]
    fn on_disk(dir: PathBuf) -> Self {
        let cache = Self::default();
        cache.keep_in(dir);
        cache
    }

    /// (functions reused, functions compiled) so far.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads the bundles on disk, once.
    fn load(&self) {
        let Some(dir) = self.dir.get() else { return };
        self.loaded.get_or_init(|| {
            let mut entries = self.entries();
            for (key, value) in read_bundles(dir) {
                entries.add(&key, value);
            }
        });
    }

    /// Writes the functions compiled since the last call as one bundle. Failures only cost
    /// compiling them again in another process.
    pub(crate) fn save(&self) {
        let Some(dir) = self.dir.get() else { return };
        let body = {
            let mut entries = self.entries();
            let keys = std::mem::take(&mut entries.unsaved);
            let mut body = Vec::new();
            for key in keys {
                let Some(value) = entries.by_key.get(&key) else {
                    continue;
                };
                for part in [&key[..], &value[..]] {
                    body.extend_from_slice(&(part.len() as u32).to_le_bytes());
                    body.extend_from_slice(part);
                }
            }
            body
        };
        if body.is_empty() {
            return;
        }
        let digest = Sha256::digest(&body);
        let name = hex::encode(&digest[..16]);
        let mut bundle = Vec::with_capacity(MAGIC.len() + digest.len() + body.len());
        bundle.extend_from_slice(MAGIC);
        bundle.extend_from_slice(&digest);
        bundle.extend_from_slice(&body);
        let written = super::cache::write_private(&dir.join(format!("{name}.bundle")), &bundle);
        if let Err(e) = written {
            tracing::debug!("cannot keep compiled functions in {}: {e}", dir.display());
        }
    }
}

impl CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        self.load();
        let found = self.entries().by_key.get(key).cloned();
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found.map(Cow::Owned)
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let mut entries = self.entries();
        let new = !entries.by_key.contains_key(key);
        let added = entries.add(key, value);
        if added && new && self.dir.get().is_some() {
            entries.unsaved.push(key.to_vec());
        }
        added
    }
}

/// Every function of every bundle in `dir` that checks out; the others are removed. A
/// directory grown past [`MAX_DISK_BYTES`], or one others could write, is not read.
fn read_bundles(dir: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    // The entry itself (a link is not the directory it names).
    let Ok(meta) = fs::symlink_metadata(dir) else {
        return Vec::new();
    };
    if !meta.is_dir() || !super::cache::private(&meta) {
        tracing::warn!(
            "not reading compiled functions from {}: it must belong to this user and be \
             writable by no one else",
            dir.display()
        );
        return Vec::new();
    }
    let Ok(listing) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let bundles: Vec<(PathBuf, u64)> = listing
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let path = entry.path();
            let size = entry.metadata().ok()?.len();
            (path.extension()? == "bundle").then_some((path, size))
        })
        .collect();
    if bundles.iter().map(|(_, size)| size).sum::<u64>() > MAX_DISK_BYTES {
        tracing::debug!(
            "{}: too many compiled functions kept; starting over",
            dir.display()
        );
        for (path, _) in &bundles {
            let _ = fs::remove_file(path);
        }
        return Vec::new();
    }
    let mut functions = Vec::new();
    for (path, _) in bundles {
        match fs::read(&path).ok().and_then(|bytes| parse_bundle(&bytes)) {
            Some(found) => functions.extend(found),
            None => {
                tracing::debug!("{}: not a whole bundle; removed", path.display());
                let _ = fs::remove_file(&path);
            }
        }
    }
    functions
}

/// The (key, value) pairs of a bundle whose digest matches its contents.
fn parse_bundle(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let (digest, mut body) = rest.split_at_checked(32)?;
    if Sha256::digest(body).as_slice() != digest {
        return None;
    }
    let mut next = || -> Option<Vec<u8>> {
        let (len, rest) = body.split_at_checked(4)?;
        let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
        let (part, rest) = rest.split_at_checked(len)?;
        body = rest;
        Some(part.to_vec())
    };
    let mut pairs = Vec::new();
    while let Some(key) = next() {
        pairs.push((key, next()?));
    }
    body.is_empty().then_some(pairs)
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
        assert_eq!(cache.entries().bytes, 4);
        assert!(!cache.insert(b"big", vec![0; MAX_BYTES]));
        assert!(cache.get(b"big").is_none());
    }

    #[test]
    fn functions_saved_by_one_process_are_found_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let functions = dir.path().join("functions");
        let first = FunctionCache::on_disk(functions.clone());
        first.insert(b"f", vec![1, 2, 3]);
        first.insert(b"g", vec![]);
        first.save();
        first.insert(b"h", vec![4]);
        first.save();
        // Nothing new: no empty bundle.
        first.save();
        assert_eq!(fs::read_dir(&functions).unwrap().count(), 2);

        let next = FunctionCache::on_disk(functions);
        assert_eq!(next.get(b"f").as_deref(), Some(&[1u8, 2, 3][..]));
        assert_eq!(next.get(b"g").as_deref(), Some(&[][..]));
        assert_eq!(next.get(b"h").as_deref(), Some(&[4u8][..]));
        assert!(next.get(b"i").is_none());
        assert_eq!(next.counts(), (3, 1));
    }

    #[test]
    fn a_bundle_that_does_not_check_out_is_removed_unread() {
        let dir = tempfile::tempdir().unwrap();
        let functions = dir.path().join("functions");
        let first = FunctionCache::on_disk(functions.clone());
        first.insert(b"f", vec![1, 2, 3]);
        first.save();
        let bundle = fs::read_dir(&functions)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut bytes = fs::read(&bundle).unwrap();
        // Machine code changed after it was written: its digest no longer matches.
        *bytes.last_mut().unwrap() ^= 0xff;
        fs::write(&bundle, &bytes).unwrap();
        // A truncated one and a stray file with the right name.
        fs::write(functions.join("short.bundle"), &bytes[..bytes.len() - 2]).unwrap();
        fs::write(functions.join("other.bundle"), b"not a bundle").unwrap();

        let next = FunctionCache::on_disk(functions.clone());
        assert!(next.get(b"f").is_none());
        assert_eq!(fs::read_dir(&functions).unwrap().count(), 0);
    }

    #[test]
    fn a_directory_others_can_write_is_not_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let functions = dir.path().join("functions");
        let first = FunctionCache::on_disk(functions.clone());
        first.insert(b"f", vec![1]);
        first.save();
        fs::set_permissions(&functions, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(FunctionCache::on_disk(functions).get(b"f").is_none());
    }
}

#[cfg(test)]
mod across_processes {
    use std::path::PathBuf;

    use crate::runtime::Runtime;

    /// Two runtimes on one cache directory stand for two runs of hsm-host.
    #[test]
    fn a_new_migration_compiles_only_the_code_it_adds() {
        let load = |dir: &std::path::Path, component: &str| {
            let runtime = Runtime::new().unwrap().with_cache_dir(dir);
            let bytes = std::fs::read(component).unwrap();
            runtime.load(PathBuf::from(component), &bytes).unwrap();
            runtime.wasm().unwrap().functions.as_ref().unwrap().counts()
        };
        let (alone, project) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (_, compiled_alone) = load(alone.path(), hsm_test_artifacts::V002_ADD_EMAIL_COLUMN);
        load(project.path(), hsm_test_artifacts::V001_INITIAL_SCHEMA);
        let (reused, compiled) = load(project.path(), hsm_test_artifacts::V002_ADD_EMAIL_COLUMN);
        assert!(
            compiled * 2 < compiled_alone && reused > 2 * compiled,
            "after another migration of the project, this one compiled {compiled} functions \
             and reused {reused}; alone it compiled {compiled_alone}"
        );
    }
}
