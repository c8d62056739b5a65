//! The compile cache: components compiled by this engine, stored as precompiled artifacts with
//! their metadata, so loading an unchanged component compiles nothing.
//!
//! Precompiled artifacts are machine code that wasmtime maps without validating, so an entry is
//! used only when everything checks out: the cache directory belongs to this user and nobody
//! else can write it; the entry's name is the component's sha256 plus this engine's
//! compatibility hash; its record, written by hsm-host after compiling, names the sha256 of the
//! artifact, which must match the bytes read, unless the artifact is the very file hsm-host
//! wrote, untouched since (same inode, size, modification and change times: see
//! `file_identity`; and unchanged for a second, see `SETTLE`). Anything else is recompiled
//! and overwritten, never trusted.
//!
//! The cache also remembers, per component file identity, its sha256 and metadata: `status`
//! describes known files without reading them, and loading one skips hashing it.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// Holds the cache in `dir` to `max_bytes` (see [`super::cache_trim`]), under the same checks
/// as a run's use of it; `None` when it is missing or not safe to use (nothing is touched).
pub fn trim(dir: &Path, max_bytes: u64) -> Option<super::cache_trim::Trimmed> {
    if !dir.is_dir() {
        return None;
    }
    ComponentCache::open(dir, max_bytes).map(|cache| cache.trim())
}

/// Everything about a file that changes when its bytes do: device and inode (a replaced or
/// renamed-over file gets a new one), size, and modification and change times (the kernel sets
/// the change time on every write, and no caller can set it back).
pub(crate) fn file_identity(meta: &fs::Metadata) -> String {
    format!(
        "{}:{}:{}:{}.{}:{}.{}",
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
    )
}

/// What the cache keeps next to an artifact.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    component_sha256: String,
    artifact_sha256: String,
    /// The artifact file's identity when hsm-host wrote it: while it is unchanged the bytes
    /// are the ones hashed then, and need not be hashed again.
    #[serde(default)]
    artifact_identity: Option<String>,
    #[serde(flatten)]
    metadata: Metadata,
}

/// A cache directory this engine reads and writes.
pub(crate) struct ComponentCache {
    dir: PathBuf,
    /// A digest of the engine's compatibility hash, computed on first use.
    engine_hash: OnceLock<String>,
    /// The most the whole directory may hold (see [`super::cache_trim`]).
    max_bytes: u64,
    /// Whether this process wrote anything: then the directory is trimmed when it is done.
    wrote: std::sync::atomic::AtomicBool,
}

impl Drop for ComponentCache {
    fn drop(&mut self) {
        if *self.wrote.get_mut() {
            self.trim();
        }
    }
}

impl ComponentCache {
    /// Opens (creating it mode 0700) the cache in `dir`. `None`, with a warning, when the
    /// directory cannot be made or is not safe to load machine code from.
    pub(crate) fn open(dir: &Path, max_bytes: u64) -> Option<Self> {
        if let Err(reason) = crate::files::check_existing_path(dir) {
            tracing::warn!("compile cache disabled: {reason}");
            return None;
        }
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
        // Every directory on the way is checked once, then only the checked path is used: no
        // other user can swap a part of it for one holding their machine code.
        let dir = match crate::files::trusted_dir(dir) {
            Ok(canonical) => canonical,
            Err(reason) => {
                tracing::warn!("compile cache disabled: {reason}");
                return None;
            }
        };
        Some(Self {
            dir,
            engine_hash: OnceLock::new(),
            max_bytes,
            wrote: Default::default(),
        })
    }

    /// Notes that this process added to the directory (see `Drop`).
    fn written(&self) {
        self.wrote.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Holds the directory to its cap (see [`super::cache_trim`]).
    pub(crate) fn trim(&self) -> super::cache_trim::Trimmed {
        super::cache_trim::trim(&self.dir, self.max_bytes)
    }

    /// Where compiled functions are kept for engines configured like `engine` (see
    /// `incremental`).
    pub(crate) fn functions_dir(&self, engine: &Engine) -> PathBuf {
        self.dir.join("functions").join(self.engine_hash(engine))
    }

    fn engine_hash(&self, engine: &Engine) -> &str {
        self.engine_hash.get_or_init(|| {
            let mut hasher = ShaHasher(Sha256::new());
            engine.precompile_compatibility_hash().hash(&mut hasher);
            hex::encode(&hasher.0.finalize()[..8])
        })
    }

    fn paths(&self, engine: &Engine, component_sha256: &str) -> (PathBuf, PathBuf) {
        let engine_hash = self.engine_hash(engine);
        let stem = format!("{component_sha256}-{engine_hash}");
        (
            self.dir.join(format!("{stem}.cwasm")),
            self.dir.join(format!("{stem}.json")),
        )
    }

    /// Whether an entry for this component is recorded (everything is checked when it is
    /// loaded; a bad entry is compiled again then).
    pub(crate) fn has(&self, engine: &Engine, component_sha256: &str) -> bool {
        let (_, record_path) = self.paths(engine, component_sha256);
        record_path.is_file()
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
        // The usual case: the artifact is the file hsm-host wrote (same identity, settled), so
        // it is mapped, not read: a large component (an interpreter, tens of MB of code) then
        // loads in a few milliseconds. The cache replaces files by rename and prunes by unlink,
        // never truncates one in place, so a mapped artifact cannot shrink under us.
        let mapped_identity = || {
            fs::metadata(&artifact_path)
                .ok()
                .filter(settled)
                .map(|meta| file_identity(&meta))
        };
        if record.artifact_identity.is_some() && mapped_identity() == record.artifact_identity {
            // SAFETY: as below; the file is the one hsm-host wrote and hashed (same device,
            // inode, size, mtime and ctime), in a directory only this user can write, checked
            // again once mapped.
            let component = unsafe { Component::deserialize_file(engine, &artifact_path) }.ok()?;
            if mapped_identity() == record.artifact_identity {
                super::cache_trim::touch(&record_path);
                return Some((component, super::neutralize_metadata(record.metadata)));
            }
        }
        let (artifact, identity) = read_with_identity(&artifact_path).ok()?;
        let unchanged = identity.is_some() && record.artifact_identity == identity;
        if !unchanged && sha256_hex(&artifact) != record.artifact_sha256 {
            tracing::debug!(
                "cache entry {} is corrupt or foreign: recompiling",
                artifact_path.display()
            );
            return None;
        }
        Engine::detect_precompiled(&artifact)?;
        // SAFETY: the bytes are exactly the artifact this engine configuration serialized
        // (checked above against the record hsm-host wrote in a directory only this user can
        // write: the same file, untouched since, or the same sha256); wasmtime itself rejects
        // artifacts of another version or configuration.
        let component = unsafe { Component::deserialize(engine, &artifact) }.ok()?;
        super::cache_trim::touch(&record_path);
        Some((component, super::neutralize_metadata(record.metadata)))
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
        let (artifact_path, record_path) = self.paths(engine, component_sha256);
        if let Err(e) = write_atomically(&artifact_path, &artifact) {
            tracing::debug!("cannot write the compile cache: {e}");
            return;
        }
        let record = Record {
            component_sha256: component_sha256.to_owned(),
            artifact_sha256: sha256_hex(&artifact),
            artifact_identity: fs::metadata(&artifact_path)
                .ok()
                .map(|meta| file_identity(&meta)),
            metadata: metadata.clone(),
        };
        let record = serde_json::to_vec(&record).expect("a record serializes");
        // The record goes last: a reader finds either no record or one whose artifact is whole.
        if let Err(e) = write_atomically(&record_path, &record) {
            tracing::debug!("cannot write the compile cache: {e}");
        }
        self.written();
    }
}

/// What the cache remembers of a component file it loaded: enough to describe it again
/// without reading it.
#[derive(Debug, Serialize, Deserialize)]
struct FileRecord {
    checksum: String,
    #[serde(flatten)]
    metadata: Metadata,
}

impl ComponentCache {
    /// Where what is known of a component file is remembered, by its [`file_identity`].
    fn file_entry(&self, identity: &str) -> PathBuf {
        self.dir
            .join("files")
            .join(&sha256_hex(identity.as_bytes())[..32])
    }

    /// Remembers that the file `path`, with this [`file_identity`], is this component.
    pub(crate) fn remember_file(
        &self,
        path: &Path,
        identity: &str,
        checksum: &str,
        metadata: &Metadata,
    ) {
        let entry = self.file_entry(identity);
        let record = FileRecord {
            checksum: checksum.to_owned(),
            metadata: metadata.clone(),
        };
        let record = serde_json::to_vec(&record).expect("a record serializes");
        let written = write_private(&entry, &record);
        self.written();
        if let Err(e) = written {
            tracing::debug!("cannot remember {}: {e}", path.display());
        }
    }

    /// The checksum and metadata of `path` if this exact file was loaded before: one `stat`
    /// and one small read.
    pub(crate) fn describe(&self, path: &Path) -> Option<ComponentInfo> {
        let meta = fs::metadata(path).ok()?;
        if !settled(&meta) {
            return None;
        }
        self.describe_identity(path, &file_identity(&meta))
    }

    /// [`ComponentCache::describe`] for a file whose [`file_identity`] is known.
    pub(crate) fn describe_identity(&self, path: &Path, identity: &str) -> Option<ComponentInfo> {
        let record: FileRecord =
            serde_json::from_slice(&fs::read(self.file_entry(identity)).ok()?).ok()?;
        Some(ComponentInfo {
            path: path.to_owned(),
            checksum: record.checksum,
            metadata: super::neutralize_metadata(record.metadata),
            sql: None,
        })
    }
}

impl ComponentCache {
    /// The form in which a component is stored in a database (deflated), made once by
    /// [`ComponentCache::keep_stored_form`]; checked against the sha256 kept in front of it.
    pub(crate) fn stored_form(&self, component_sha256: &str) -> Option<Vec<u8>> {
        let kept = fs::read(self.dir.join("stored").join(component_sha256)).ok()?;
        let (digest, form) = kept.split_at_checked(32)?;
        (Sha256::digest(form).as_slice() == digest).then(|| form.to_vec())
    }

    /// Keeps a component's stored form. Failures only cost making it again.
    pub(crate) fn keep_stored_form(&self, component_sha256: &str, form: &[u8]) {
        let mut kept = Sha256::digest(form).to_vec();
        kept.extend_from_slice(form);
        let written = write_private(&self.dir.join("stored").join(component_sha256), &kept);
        self.written();
        if let Err(e) = written {
            tracing::debug!("cannot keep a stored form: {e}");
        }
    }
}

impl ComponentCache {
    /// Bytes stored under `key` (a sha256 of everything they are made from), by
    /// [`ComponentCache::remember_bytes`].
    pub(crate) fn remembered_bytes(&self, key: &str) -> Option<Vec<u8>> {
        fs::read(self.dir.join("packed").join(key)).ok()
    }

    /// Keeps bytes that are costly to make (a packed SQL migration) under `key`. Failures only
    /// cost making them again next time.
    pub(crate) fn remember_bytes(&self, key: &str, bytes: &[u8]) {
        let written = write_private(&self.dir.join("packed").join(key), bytes);
        self.written();
        if let Err(e) = written {
            tracing::debug!("cannot remember packed bytes: {e}");
        }
    }
}

/// How long after its last change a file's identity can be trusted. The kernel's file times
/// advance in coarse ticks, so a second write of the same size in the same tick would keep the
/// identity (git's "racily clean" problem): until then the file is hashed every time.
const SETTLE: Duration = Duration::from_secs(1);

/// The bytes of `path` and its identity, if it did not change while it was read and has not
/// changed for [`SETTLE`].
/// Only a regular file of at most [`crate::files::MAX_COMPONENT_FILE`] bytes is read.
pub(crate) fn read_with_identity(path: &Path) -> std::io::Result<(Vec<u8>, Option<String>)> {
    let (file, before) = crate::files::open_regular(path, true).map_err(std::io::Error::other)?;
    let after_file = file.try_clone()?;
    let bytes = crate::files::read_capped(file, &before, crate::files::MAX_COMPONENT_FILE)
        .map_err(std::io::Error::other)?;
    let after = file_identity(&after_file.metadata()?);
    let trusted = file_identity(&before) == after && settled(&before);
    Ok((bytes, trusted.then_some(after)))
}

fn settled(meta: &fs::Metadata) -> bool {
    let Ok(nanos) = u32::try_from(meta.ctime_nsec()) else {
        return false;
    };
    let changed = u64::try_from(meta.ctime())
        .map(|secs| UNIX_EPOCH + Duration::new(secs, nanos))
        .unwrap_or(UNIX_EPOCH);
    SystemTime::now()
        .duration_since(changed)
        .is_ok_and(|age| age >= SETTLE)
}

/// Whether a directory can hold code this process will run: it belongs to this user and
/// nobody else can write it.
pub(crate) fn private(meta: &fs::Metadata) -> bool {
    meta.uid() == rustix::process::geteuid().as_raw() && meta.mode() & 0o022 == 0
}

/// [`write_atomically`], creating `path`'s directory (mode 0700) first if it is missing.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    write_atomically(path, bytes)
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
