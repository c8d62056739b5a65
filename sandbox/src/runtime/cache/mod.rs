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

mod compiled;
mod known;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The default cache directory: the platform's user cache directory (on Linux
/// `$XDG_CACHE_HOME`, when it is an absolute path, else `~/.cache`), then `hsm-host`.
pub fn default_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|base| base.join("hsm-host"))
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

/// A cache directory this engine reads and writes.
pub(crate) struct ComponentCache {
    dir: PathBuf,
    /// Each engine's compatibility-hash digest, computed on first use.
    engine_hashes: std::sync::Mutex<Vec<(wasmtime::Engine, String)>>,
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
            engine_hashes: Default::default(),
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
