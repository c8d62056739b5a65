//! The compile cache: components compiled by this engine, stored as precompiled artifacts with
//! their metadata, so loading an unchanged component compiles nothing.
//!
//! Precompiled artifacts are machine code that wasmtime maps without validating, so an entry is
//! used only when everything checks out: the cache directory belongs to this user and nobody
//! else can write it; the entry's name is the component's sha256 plus this engine's
//! compatibility hash; its record, written by hsm-host after compiling, names the sha256 of the
//! artifact, which must match the bytes read. Anything else is recompiled and overwritten,
//! never trusted.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::{ComponentInfo, Metadata, sha256_hex};

/// The default cache directory: `$XDG_CACHE_HOME/hsm-host`, else `~/.cache/hsm-host`.
pub fn default_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .map(|base| base.join("hsm-host"))
}

/// What the cache keeps next to an artifact.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    component_sha256: String,
    artifact_sha256: String,
    version: u64,
    name: String,
    description: String,
    reversible: bool,
}

/// A cache directory this engine reads and writes.
pub(crate) struct ComponentCache {
    dir: PathBuf,
    /// A digest of the engine's compatibility hash, computed on first use.
    engine_hash: OnceLock<String>,
}

impl ComponentCache {
    /// Opens (creating it mode 0700) the cache in `dir`. `None`, with a warning, when the
    /// directory cannot be made or is not safe to load machine code from.
    pub(crate) fn open(dir: &Path) -> Option<Self> {
        if let Err(e) = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
        {
            tracing::warn!(
                "compile cache disabled: cannot create {}: {e}",
                dir.display()
            );
            return None;
        }
        match fs::metadata(dir) {
            Ok(meta)
                if meta.uid() == rustix::process::geteuid().as_raw()
                    && meta.mode() & 0o022 == 0 => {}
            Ok(_) => {
                tracing::warn!(
                    "compile cache disabled: {} must belong to this user and be writable by no one else",
                    dir.display()
                );
                return None;
            }
            Err(e) => {
                tracing::warn!("compile cache disabled: {}: {e}", dir.display());
                return None;
            }
        }
        Some(Self {
            dir: dir.to_owned(),
            engine_hash: OnceLock::new(),
        })
    }

    fn paths(&self, engine: &Engine, component_sha256: &str) -> (PathBuf, PathBuf) {
        let engine_hash = self.engine_hash.get_or_init(|| {
            let mut hasher = ShaHasher(Sha256::new());
            engine.precompile_compatibility_hash().hash(&mut hasher);
            hasher
                .0
                .finalize()
                .iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect()
        });
        let stem = format!("{component_sha256}-{engine_hash}");
        (
            self.dir.join(format!("{stem}.cwasm")),
            self.dir.join(format!("{stem}.json")),
        )
    }

    /// The cached compiled component and its metadata, if a valid entry exists.
    pub(crate) fn get(
        &self,
        engine: &Engine,
        component_sha256: &str,
    ) -> Option<(Component, Metadata)> {
        let (artifact_path, record_path) = self.paths(engine, component_sha256);
        let record: Record = serde_json::from_slice(&fs::read(&record_path).ok()?).ok()?;
        if record.component_sha256 != component_sha256 {
            return None;
        }
        let artifact = fs::read(&artifact_path).ok()?;
        if sha256_hex(&artifact) != record.artifact_sha256 {
            tracing::debug!(
                "cache entry {} is corrupt or foreign: recompiling",
                artifact_path.display()
            );
            return None;
        }
        Engine::detect_precompiled(&artifact)?;
        // SAFETY: the bytes are exactly the artifact this engine configuration serialized
        // (checked above against the record hsm-host wrote in a directory only this user can
        // write); wasmtime itself rejects artifacts of another version or configuration.
        let component = unsafe { Component::deserialize(engine, &artifact) }.ok()?;
        let metadata = Metadata {
            version: record.version,
            name: record.name,
            description: record.description,
            reversible: record.reversible,
        };
        Some((component, metadata))
    }

    /// Stores a freshly compiled component. Failures only cost a recompile next time.
    pub(crate) fn put(
        &self,
        engine: &Engine,
        component_sha256: &str,
        component: &Component,
        metadata: &Metadata,
    ) {
        let artifact = match component.serialize() {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::debug!("cannot serialize a compiled component: {e}");
                return;
            }
        };
        let record = Record {
            component_sha256: component_sha256.to_owned(),
            artifact_sha256: sha256_hex(&artifact),
            version: metadata.version,
            name: metadata.name.clone(),
            description: metadata.description.clone(),
            reversible: metadata.reversible,
        };
        let (artifact_path, record_path) = self.paths(engine, component_sha256);
        let record = serde_json::to_vec(&record).expect("a record serializes");
        // The record goes last: a reader finds either no record or one whose artifact is whole.
        if let Err(e) = write_atomically(&artifact_path, &artifact)
            .and_then(|()| write_atomically(&record_path, &record))
        {
            tracing::debug!("cannot write the compile cache: {e}");
        }
    }
}

/// What the cache remembers of a component file it loaded: enough to describe it again
/// without reading it.
#[derive(Debug, Serialize, Deserialize)]
struct FileRecord {
    checksum: String,
    version: u64,
    name: String,
    description: String,
    reversible: bool,
}

impl ComponentCache {
    /// Where what is known of the file `path` is remembered: keyed by everything that changes
    /// when the file does (device and inode, which also tell a renamed or linked file; size;
    /// modification and change times). One `stat`, no reads.
    fn file_entry(&self, path: &Path) -> Option<PathBuf> {
        let meta = fs::metadata(path).ok()?;
        let identity = format!(
            "{}:{}:{}:{}.{}:{}.{}",
            meta.dev(),
            meta.ino(),
            meta.size(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec(),
        );
        Some(
            self.dir
                .join("files")
                .join(&sha256_hex(identity.as_bytes())[..32]),
        )
    }

    /// Remembers that the file `path`, as it is now, is this component.
    pub(crate) fn remember_file(&self, path: &Path, checksum: &str, metadata: &Metadata) {
        let Some(entry) = self.file_entry(path) else {
            return;
        };
        let record = FileRecord {
            checksum: checksum.to_owned(),
            version: metadata.version,
            name: metadata.name.clone(),
            description: metadata.description.clone(),
            reversible: metadata.reversible,
        };
        let record = serde_json::to_vec(&record).expect("a record serializes");
        let written = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(self.dir.join("files"))
            .and_then(|()| write_atomically(&entry, &record));
        if let Err(e) = written {
            tracing::debug!("cannot remember {}: {e}", path.display());
        }
    }

    /// The checksum and metadata of `path` if this exact file was loaded before: one `stat`
    /// and one small read.
    pub(crate) fn describe(&self, path: &Path) -> Option<ComponentInfo> {
        let record: FileRecord =
            serde_json::from_slice(&fs::read(self.file_entry(path)?).ok()?).ok()?;
        Some(ComponentInfo {
            path: path.to_owned(),
            checksum: record.checksum,
            metadata: Metadata {
                version: record.version,
                name: record.name,
                description: record.description,
                reversible: record.reversible,
            },
        })
    }
}

/// Writes beside `path` and renames, so concurrent readers never see half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension(format!(
        "tmp-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(bytes)?;
    drop(file);
    fs::rename(&temporary, path).inspect_err(|_| {
        let _ = fs::remove_file(&temporary);
    })
}

/// Feeds `Hash` output into sha256, for a hash that is stable across processes.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        unreachable!("only the sha256 digest is used")
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
