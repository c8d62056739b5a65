//! One size cap for everything the compile cache holds: compiled components and their records,
//! Cranelift's function bundles, stored forms, packed SQL migrations and what is known of
//! component files. Past the cap the least recently used go first; the newest entry always
//! stays, so the component just compiled is never the one dropped.
//!
//! "Used" is a file's modification time: a compiled component's record is touched when it is
//! loaded (see `touch`); the other files are written once and read rarely, so their writing
//! time stands for their use.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The cap when none is given: room for a few hundred compiled migrations, or a handful of
/// Python or JavaScript ones (tens of MiB each).
pub const DEFAULT_MAX_BYTES: u64 = 512 << 20;

/// How stale a record's time may be before a load touches it: one write per hour at most.
const TOUCH_AFTER: Duration = Duration::from_secs(3600);

/// What trimming found and removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Trimmed {
    /// Bytes in the cache before.
    pub bytes_before: u64,
    /// Bytes after.
    pub bytes_after: u64,
    /// Entries removed (a compiled component and its record are one entry).
    pub entries_removed: usize,
}

/// Files that go together, with their size and last use.
#[derive(Debug, Default)]
struct Entry {
    files: Vec<PathBuf>,
    bytes: u64,
    used: Option<SystemTime>,
}

/// Where the last trim wrote the bytes the cache's own files take.
const USAGE_FILE: &str = "usage";

/// The bytes the cache in `dir` takes: as its last trim counted them (every process that
/// writes to it trims it when it ends), else counted now.
pub fn usage(dir: &Path) -> u64 {
    let recorded = fs::read_to_string(dir.join(USAGE_FILE))
        .ok()
        .and_then(|text| text.trim().parse().ok());
    recorded.unwrap_or_else(|| {
        let mut entries: BTreeMap<PathBuf, Entry> = BTreeMap::new();
        collect(dir, &mut entries);
        entries.values().map(|entry| entry.bytes).sum()
    })
}

/// Removes the least recently used entries of the cache in `dir` until it holds at most
/// `max_bytes` (the newest stays whatever its size). Only the cache's own regular files are
/// counted or removed (see `collect`), no link is followed, and a file that cannot be removed is
/// left (it only costs room).
pub(crate) fn trim(dir: &Path, max_bytes: u64) -> Trimmed {
    let mut entries: BTreeMap<PathBuf, Entry> = BTreeMap::new();
    collect(dir, &mut entries);
    let mut entries: Vec<Entry> = entries.into_values().collect();
    entries.sort_by_key(|entry| entry.used);
    let bytes_before: u64 = entries.iter().map(|entry| entry.bytes).sum();
    let mut trimmed = Trimmed {
        bytes_before,
        bytes_after: bytes_before,
        entries_removed: 0,
    };
    let newest = entries.len().saturating_sub(1);
    for entry in &entries[..newest] {
        if trimmed.bytes_after <= max_bytes {
            break;
        }
        // The record goes first: an artifact without its record is never loaded.
        let mut files = entry.files.clone();
        files.sort_by_key(|path| path.extension().is_none_or(|ext| ext != "json"));
        if files.iter().all(|path| fs::remove_file(path).is_ok()) {
            trimmed.bytes_after -= entry.bytes;
            trimmed.entries_removed += 1;
        }
    }
    // What `status` shows as the cache's size, without walking the cache itself.
    let _ = super::cache::write_private(
        &dir.join(USAGE_FILE),
        trimmed.bytes_after.to_string().as_bytes(),
    );
    if trimmed.entries_removed > 0 {
        tracing::debug!(
            "compile cache {} trimmed from {} to {} bytes ({} entries removed)",
            dir.display(),
            trimmed.bytes_before,
            trimmed.bytes_after,
            trimmed.entries_removed
        );
    }
    trimmed
}

/// The cache's own files in `root`, keyed so that a compiled component's `.cwasm` and `.json`
/// share an entry. Only names hsm-host gives its files are taken (hex digests, in its layout):
/// whatever else a directory chosen as the cache holds (a database, backups, the migrations, if
/// `--cache-dir` names the wrong place) is neither counted nor removed.
fn collect(root: &Path, entries: &mut BTreeMap<PathBuf, Entry>) {
    let mut add = |path: PathBuf, meta: fs::Metadata| {
        let key = match path.extension() {
            Some(ext) if ext == "cwasm" || ext == "json" => path.with_extension(""),
            _ => path.clone(),
        };
        let entry = entries.entry(key).or_default();
        entry.files.push(path);
        entry.bytes += meta.len();
        entry.used = entry.used.max(meta.modified().ok());
    };
    each_file(root, is_compiled_component, &mut add);
    for (folder, digits) in [
        ("files", 32),
        ("described", 64),
        ("stored", 64),
        ("packed", 64),
    ] {
        each_file(
            &root.join(folder),
            |name| is_digest(name, digits, ""),
            &mut add,
        );
    }
    let functions = root.join("functions");
    for engine in real_dir(&functions).into_iter().flatten().flatten() {
        let name = engine.file_name();
        if name.to_str().is_some_and(|name| is_hex(name, 16)) {
            each_file(
                &engine.path(),
                |name| is_digest(name, 32, "bundle"),
                &mut add,
            );
        }
    }
}

/// Calls `add` for each regular file of `dir` whose name `wanted` accepts; `dir` must be a real
/// directory (a link is neither followed nor counted, nor is anything in one).
fn each_file(
    dir: &Path,
    wanted: impl Fn(&str) -> bool,
    add: &mut impl FnMut(PathBuf, fs::Metadata),
) {
    for item in real_dir(dir).into_iter().flatten().flatten() {
        let name = item.file_name();
        if !name.to_str().is_some_and(&wanted) {
            continue;
        }
        let path = item.path();
        if let Ok(meta) = fs::symlink_metadata(&path)
            && meta.is_file()
        {
            add(path, meta);
        }
    }
}

fn real_dir(dir: &Path) -> Option<fs::ReadDir> {
    let meta = fs::symlink_metadata(dir).ok()?;
    meta.is_dir().then(|| fs::read_dir(dir).ok()).flatten()
}

/// `<component sha256>-<engine hash>.cwasm` or `.json`, or one being written.
fn is_compiled_component(name: &str) -> bool {
    let (stem, rest) = name.split_once('.').unwrap_or((name, ""));
    let Some((component, engine)) = stem.split_once('-') else {
        return false;
    };
    is_hex(component, 64)
        && is_hex(engine, 16)
        && (rest == "cwasm" || rest == "json" || rest.starts_with("tmp-"))
}

/// `<digits hex digits>` with the extension `extension` (none when empty), or one being
/// written (`.tmp-…`).
fn is_digest(name: &str, digits: usize, extension: &str) -> bool {
    let (stem, rest) = name.split_once('.').unwrap_or((name, ""));
    is_hex(stem, digits) && (rest == extension || rest.starts_with("tmp-"))
}

fn is_hex(text: &str, digits: usize) -> bool {
    text.len() == digits && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Marks `path` (a compiled component's record) used now, if it was last marked over an hour
/// ago. Failing only makes it look older to [`trim`].
pub(crate) fn touch(path: &Path) {
    let stale = fs::metadata(path)
        .and_then(|meta| meta.modified())
        .is_ok_and(|modified| {
            SystemTime::now()
                .duration_since(modified)
                .is_ok_and(|age| age >= TOUCH_AFTER)
        });
    if stale && let Ok(file) = fs::OpenOptions::new().write(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &Path, bytes: usize, age_hours: u64) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, vec![0u8; bytes]).unwrap();
        let when = SystemTime::now() - Duration::from_secs(age_hours * 3600);
        fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    /// The names hsm-host gives its files: `n` repeated as a digest of `digits` hex digits.
    fn digest(n: char, digits: usize) -> String {
        n.to_string().repeat(digits)
    }

    fn component(n: char) -> String {
        format!("{}-{}", digest(n, 64), digest('e', 16))
    }

    #[test]
    fn the_least_recently_used_go_first_and_a_component_goes_with_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (a, b) = (component('a'), component('b'));
        // An old component whose record was touched recently (loaded an hour ago) ...
        file(&d.join(format!("{a}.cwasm")), 4000, 50);
        file(&d.join(format!("{a}.json")), 100, 1);
        // ... outlives a newer one nobody loaded since, and old bundles and stored forms.
        file(&d.join(format!("{b}.cwasm")), 4000, 10);
        file(&d.join(format!("{b}.json")), 100, 10);
        let bundle = format!("functions/{}/{}.bundle", digest('f', 16), digest('1', 32));
        file(&d.join(&bundle), 3000, 20);
        let stored = format!("stored/{}", digest('c', 64));
        file(&d.join(&stored), 2000, 30);
        let packed = format!("packed/{}", digest('d', 64));
        file(&d.join(&packed), 500, 0);
        let trimmed = trim(d, 5000);
        assert_eq!(trimmed.bytes_before, 13_700);
        assert_eq!(trimmed.entries_removed, 3, "{trimmed:?}");
        assert_eq!(trimmed.bytes_after, 4600);
        assert!(d.join(format!("{a}.cwasm")).exists() && d.join(format!("{a}.json")).exists());
        assert!(d.join(&packed).exists());
        for gone in [format!("{b}.cwasm"), format!("{b}.json"), bundle, stored] {
            assert!(!d.join(&gone).exists(), "{gone} should be gone");
        }
        // Under the cap nothing goes.
        assert_eq!(trim(d, 5000).entries_removed, 0);
    }

    #[test]
    fn the_newest_entry_stays_even_past_the_cap_and_links_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let d = dir.path();
        let precious = outside.path().join(digest('9', 64));
        file(&precious, 10_000, 100);
        std::os::unix::fs::symlink(outside.path(), d.join("stored")).unwrap();
        let link = d.join(format!("{}.json", component('7')));
        std::os::unix::fs::symlink(&precious, &link).unwrap();
        let (old, new) = (component('0'), component('1'));
        file(&d.join(format!("{old}.cwasm")), 9000, 5);
        file(&d.join(format!("{new}.cwasm")), 9000, 0);
        let trimmed = trim(d, 1000);
        assert_eq!(trimmed.entries_removed, 1);
        assert!(d.join(format!("{new}.cwasm")).exists());
        assert!(precious.exists());
        assert!(link.symlink_metadata().is_ok());
    }

    /// A directory named as the cache by mistake (`--cache-dir .`, `$HOME`) keeps everything
    /// that is not the cache's own, however old and however small the cap.
    #[test]
    fn files_the_cache_did_not_name_are_never_counted_or_removed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let foreign = [
            "data/app.db",
            "data/backups/app.db.backup-2026-01-01T00-00-00-000Z",
            "migrations/001_a.up.sql",
            "notes.json",
            "stored/README",
            "packed/app.db",
            "files/todo.txt",
            "deadbeef-cafe.cwasm",
        ];
        for name in foreign {
            file(&d.join(name), 5000, 1000);
        }
        let ours = format!("{}.cwasm", component('a'));
        file(&d.join(&ours), 100, 0);
        let trimmed = trim(d, 1 << 20);
        assert_eq!(
            trimmed.bytes_before, 100,
            "only the cache's own file counts"
        );
        let trimmed = trim(d, 0);
        assert_eq!(
            trimmed.entries_removed, 0,
            "the newest stays; nothing else is ours"
        );
        for name in foreign {
            assert!(d.join(name).exists(), "{name} was removed");
        }
    }

    #[test]
    fn a_load_touches_a_stale_record_once_an_hour() {
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("r.json");
        file(&record, 10, 5);
        touch(&record);
        let age = |p: &Path| {
            SystemTime::now()
                .duration_since(fs::metadata(p).unwrap().modified().unwrap())
                .unwrap()
        };
        assert!(age(&record) < Duration::from_secs(60));
        file(&record, 10, 0);
        let before = fs::metadata(&record).unwrap().modified().unwrap();
        touch(&record);
        assert_eq!(fs::metadata(&record).unwrap().modified().unwrap(), before);
    }
}
