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

/// Removes the least recently used entries of the cache in `dir` until it holds at most
/// `max_bytes` (the newest stays whatever its size). Only regular files are counted or
/// removed, no link is followed, and a file that cannot be removed is left (it only costs room).
pub(crate) fn trim(dir: &Path, max_bytes: u64) -> Trimmed {
    let mut entries: BTreeMap<PathBuf, Entry> = BTreeMap::new();
    collect(dir, 0, &mut entries);
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

/// Every regular file under `dir` (the cache's own layout is at most three levels deep), keyed
/// so that a compiled component's `.cwasm` and `.json` share an entry.
fn collect(dir: &Path, depth: usize, entries: &mut BTreeMap<PathBuf, Entry>) {
    let Ok(listing) = fs::read_dir(dir) else {
        return;
    };
    for item in listing.flatten() {
        let path = item.path();
        // The entry itself: a link is neither followed nor counted.
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() && depth < 2 {
            collect(&path, depth + 1, entries);
            continue;
        }
        if !meta.is_file() {
            continue;
        }
        let key = match path.extension() {
            Some(ext) if ext == "cwasm" || ext == "json" => path.with_extension(""),
            _ => path.clone(),
        };
        let entry = entries.entry(key).or_default();
        entry.files.push(path);
        entry.bytes += meta.len();
        entry.used = entry.used.max(meta.modified().ok());
    }
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

    #[test]
    fn the_least_recently_used_go_first_and_a_component_goes_with_its_record() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // An old component whose record was touched recently (loaded an hour ago) ...
        file(&d.join("aaa-e.cwasm"), 4000, 50);
        file(&d.join("aaa-e.json"), 100, 1);
        // ... outlives a newer one nobody loaded since, and old bundles and stored forms.
        file(&d.join("bbb-e.cwasm"), 4000, 10);
        file(&d.join("bbb-e.json"), 100, 10);
        file(&d.join("functions/h/x.bundle"), 3000, 20);
        file(&d.join("stored/ccc"), 2000, 30);
        file(&d.join("packed/ddd"), 500, 0);
        let trimmed = trim(d, 5000);
        assert_eq!(trimmed.bytes_before, 13_700);
        assert_eq!(trimmed.entries_removed, 3, "{trimmed:?}");
        assert_eq!(trimmed.bytes_after, 4600);
        assert!(d.join("aaa-e.cwasm").exists() && d.join("aaa-e.json").exists());
        assert!(d.join("packed/ddd").exists());
        for gone in [
            "bbb-e.cwasm",
            "bbb-e.json",
            "functions/h/x.bundle",
            "stored/ccc",
        ] {
            assert!(!d.join(gone).exists(), "{gone} should be gone");
        }
        // Under the cap nothing goes.
        assert_eq!(trim(d, 5000).entries_removed, 0);
    }

    #[test]
    fn the_newest_entry_stays_even_past_the_cap_and_links_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let d = dir.path();
        file(&outside.path().join("precious"), 10_000, 100);
        std::os::unix::fs::symlink(outside.path(), d.join("stored")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("precious"), d.join("link.json")).unwrap();
        file(&d.join("old-e.cwasm"), 9000, 5);
        file(&d.join("new-e.cwasm"), 9000, 0);
        let trimmed = trim(d, 1000);
        assert_eq!(trimmed.entries_removed, 1);
        assert!(d.join("new-e.cwasm").exists());
        assert!(outside.path().join("precious").exists());
        assert!(d.join("link.json").symlink_metadata().is_ok());
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
