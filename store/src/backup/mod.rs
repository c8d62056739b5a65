//! Backups: consistent copies of the database file made in the kernel inside a read
//! transaction (correct while another process writes; SQLite's online backup API where the file
//! cannot be copied), named as the Node tool named them, pruned by count.
//!
//! A backup is written to a hidden `.partial` file, synced, then renamed into place, so a
//! backup file that exists is always complete.

mod copy;
mod owner;
mod prune;

use std::fs::{self, DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::tracking::Tracking;

use copy::*;
pub use prune::prune;
use prune::*;

/// Backups kept per database unless the operator says otherwise.
pub const DEFAULT_KEEP: usize = 10;

/// Room left on top of the database's size before a backup is attempted.
const SPACE_MARGIN: u64 = 1 << 20;

/// Where and how many backups to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupConfig {
    /// The backup directory; `None` means `backups/` next to the database.
    pub dir: Option<PathBuf>,
    /// How many of this database's backups to keep (the newest).
    pub keep: usize,
    /// Also drop, of those, backups older than this (`--keep-backups-for 30d`); `None`: no
    /// age bound. The backup just taken and those that matter are kept whatever their age.
    pub keep_for: Option<Duration>,
}

impl Default for BackupConfig {
    fn default() -> Self {
        Self {
            dir: None,
            keep: DEFAULT_KEEP,
            keep_for: None,
        }
    }
}

impl BackupConfig {
    /// The directory backups of `database` go to.
    pub fn dir_for(&self, database: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| default_dir(database))
    }
}

/// `backups/` next to the database file (`./data/backups/` for the default database; beside
/// the file a link points at, not beside the link).
pub fn default_dir(database: &Path) -> PathBuf {
    crate::files::real_file(database)
        .parent()
        .map_or_else(|| PathBuf::from("backups"), |p| p.join("backups"))
}

/// One backup on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupInfo {
    /// The backup file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// When it was taken, read from its name (`2024-01-01T12:00:00.000Z`).
    pub taken_at: String,
    /// The schema version recorded inside it; `None` when it cannot be read.
    pub schema_version: Option<u64>,
}

/// `<db file name>.backup-2024-01-01T12-00-00-000Z`.
pub fn backup_file_name(database: &Path, at: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "{}.backup-{}",
        file_name(database),
        at.format("%Y-%m-%dT%H-%M-%S-%3fZ")
    )
}

/// The time in a backup's name, if `name` is a backup of `database` (and nothing else).
pub fn parse_backup_time(database: &Path, name: &str) -> Option<String> {
    let stamp = name.strip_prefix(&format!("{}.backup-", file_name(database)))?;
    let bytes = stamp.as_bytes();
    // YYYY-MM-DDTHH-MM-SS-mmmZ
    let shape = "dddd-dd-ddTdd-dd-dd-dddZ".as_bytes();
    let fits = bytes.len() == shape.len()
        && bytes.iter().zip(shape).all(|(b, s)| match s {
            b'd' => b.is_ascii_digit(),
            other => b == other,
        });
    fits.then(|| {
        format!(
            "{}T{}:{}:{}.{}Z",
            &stamp[..10],
            &stamp[11..13],
            &stamp[14..16],
            &stamp[17..19],
            &stamp[20..23]
        )
    })
}

fn file_name(database: &Path) -> String {
    database
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Takes a backup of the database open on `conn` (the file `database`) and prunes old ones.
///
/// # Errors
/// [`Error::NoSpace`] before anything is written when the backup filesystem lacks room;
/// [`Error::Backup`] when the directory or file cannot be written (nothing is left behind).
pub fn create(conn: &Connection, database: &Path, config: &BackupConfig) -> Result<PathBuf> {
    create_keeping(conn, database, config, &[])
}

/// [`create`], pruning none of `keep_also` (beyond `config.keep`): the backup taken before
/// each applied migration that cannot be rolled back, the only way back past it.
pub fn create_keeping(
    conn: &Connection,
    database: &Path,
    config: &BackupConfig,
    keep_also: &[PathBuf],
) -> Result<PathBuf> {
    // Named, placed and pruned as the file itself, whatever link or relative path named it.
    let database = &crate::files::real_file(database);
    let dir = config.dir_for(database);
    let fail = |reason: String| Error::Backup {
        path: dir.clone(),
        reason,
    };
    crate::files::check_existing_path(&dir)
        .map_err(|reason| fail(format!("refusing the backup directory: {reason}")))?;
    make_private_dir(&dir).map_err(|e| fail(format!("cannot create the directory: {e}")))?;
    // Checked once, then reached only through the checked path: no other user can swap it
    // for a link (the backup would go, and pruning would delete, wherever it led).
    let dir = crate::files::trusted_dir(&dir).map_err(|reason| Error::Backup {
        path: dir.clone(),
        reason: format!("refusing the backup directory: {reason}"),
    })?;
    check_space(conn, &dir)?;
    owner::claim(database, &dir)?;

    // A name no finished backup has, its partial file made ours: two backups of one
    // millisecond (two processes) each get their own.
    let (name, file) = loop {
        let name = backup_file_name(database, chrono::Utc::now());
        if !dir.join(&name).exists() {
            let partial = dir.join(format!(".{name}.partial"));
            let reserved = reserve(&partial).map_err(|e| Error::Backup {
                path: partial.clone(),
                reason: format!("cannot create it: {e}"),
            })?;
            // A backup of this name finished meanwhile: its partial is gone, so look again.
            if let Some(file) = reserved {
                if !dir.join(&name).exists() {
                    break (name, file);
                }
                let _ = fs::remove_file(&partial);
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let path = dir.join(&name);
    let partial = dir.join(format!(".{name}.partial"));
    let written = write_copy(conn, database, &partial, file).and_then(|_| {
        fs::rename(&partial, &path).map_err(|e| format!("cannot move it into place: {e}"))?;
        sync_dir(&dir).map_err(|e| format!("cannot sync the directory: {e}"))
    });
    if let Err(reason) = written {
        let _ = fs::remove_file(&partial);
        let _ = fs::remove_file(sibling(&partial, "-wal"));
        return Err(Error::Backup { path, reason });
    }
    tracing::info!("backup taken: {}", path.display());
    let kept_also: Vec<String> = keep_also
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
        .collect();
    let oldest = config
        .keep_for
        .and_then(|age| chrono::Duration::from_std(age).ok())
        .map(|age| backup_file_name(database, chrono::Utc::now() - age));
    prune_older(
        database,
        &dir,
        config.keep,
        Some(&name),
        &kept_also,
        oldest.as_deref(),
    )?;
    Ok(path)
}

fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    // Another process making it at the same moment is fine (checked by `trusted_dir` next).
    match DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        other => other,
    }
}

fn check_space(conn: &Connection, dir: &Path) -> Result<()> {
    let (page_count, page_size) =
        measure(conn).map_err(|e| Error::sqlite("cannot measure the database", e))?;
    let needed = (page_count.max(0) as u64).saturating_mul(page_size.max(0) as u64) + SPACE_MARGIN;
    let stat = rustix::fs::statvfs(dir).map_err(|e| Error::Backup {
        path: dir.to_owned(),
        reason: format!("cannot read the free space: {e}"),
    })?;
    let available = stat.f_bavail.saturating_mul(stat.f_frsize);
    if available < needed {
        return Err(Error::NoSpace {
            dir: dir.to_owned(),
            needed,
            available,
        });
    }
    Ok(())
}

/// This database's backups in `dir`, newest first. A missing directory has none.
pub fn list(database: &Path, dir: &Path, tracking: &Tracking) -> Result<Vec<BackupInfo>> {
    let database = &crate::files::real_file(database);
    if let Some(owner) = owner::other_owner(database, dir) {
        tracing::warn!(
            "{} holds the backups of {}, another database of this name: none of them is listed",
            dir.display(),
            crate::text::neutralize(&owner, 1024)
        );
        return Ok(Vec::new());
    }
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Backup {
                path: dir.to_owned(),
                reason: format!("cannot list backups: {e}"),
            });
        }
    };
    let latest = latest_name(database);
    let mut backups: Vec<BackupInfo> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let taken_at = parse_backup_time(database, &name)?;
            let path = entry.path();
            let size = own_file(&path)?.len();
            if name > latest {
                return None;
            }
            Some(BackupInfo {
                schema_version: schema_version(&path, tracking),
                path,
                size,
                taken_at,
            })
        })
        .collect();
    backups.sort_by(|a, b| b.taken_at.cmp(&a.taken_at));
    Ok(backups)
}

/// The highest applied version recorded in a database file, 0 without tracking tables. The
/// file is opened immutable: nothing is written, nothing is left beside it.
pub fn schema_version(path: &Path, tracking: &Tracking) -> Option<u64> {
    // A FIFO planted under a backup's name would block the open for ever.
    own_file(path)?;
    let conn = Connection::open_with_flags(
        immutable_uri(path)?,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )
    .ok()?;
    tracking.current_version(&conn).ok()
}

/// `file:/the/path?immutable=1`, the path percent-encoded where a URI needs it.
fn immutable_uri(path: &Path) -> Option<String> {
    let absolute = std::path::absolute(path).ok()?;
    let mut uri = String::from("file:");
    for byte in absolute.to_str()?.bytes() {
        match byte {
            b'?' | b'#' | b'%' | b' ' | 0..=0x1f | 0x7f.. => uri.push_str(&format!("%{byte:02X}")),
            _ => uri.push(byte as char),
        }
    }
    uri.push_str("?immutable=1");
    Some(uri)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_guide_and_parse_back() {
        let at = chrono::DateTime::parse_from_rfc3339("2024-01-01T12:00:00.123Z")
            .unwrap()
            .to_utc();
        let db = Path::new("./data/home-server-monitor.db");
        let name = backup_file_name(db, at);
        assert_eq!(
            name,
            "home-server-monitor.db.backup-2024-01-01T12-00-00-123Z"
        );
        assert_eq!(
            parse_backup_time(db, &name).as_deref(),
            Some("2024-01-01T12:00:00.123Z")
        );
    }

    #[test]
    fn only_this_databases_backups_match() {
        let db = Path::new("/x/monitor.db");
        for other in [
            "other.db.backup-2024-01-01T12-00-00-000Z",
            "monitor.db.backup-2024-01-01T12-00-00-000Z.txt",
            "monitor.db.backup-2024-01-01T12-00-00Z",
            "monitor.db.backup-latest",
            ".monitor.db.backup-2024-01-01T12-00-00-000Z.partial",
        ] {
            assert_eq!(parse_backup_time(db, other), None, "{other}");
        }
    }

    /// Backups taken at the same moment (two processes, one millisecond) each get their own
    /// name and partial file: neither deletes or overwrites the other's copy.
    #[test]
    fn backups_taken_at_once_each_get_their_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("app.db");
        Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        let config = BackupConfig {
            keep: 1000,
            ..BackupConfig::default()
        };
        let taken: Vec<PathBuf> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        let conn = Connection::open(&db).unwrap();
                        (0..10)
                            .map(|_| create(&conn, &db, &config).unwrap())
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        let distinct: std::collections::BTreeSet<_> = taken.iter().collect();
        assert_eq!(distinct.len(), 40);
        for path in &taken {
            let conn = Connection::open(path).unwrap();
            let x: i64 = conn.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
            assert_eq!(x, 1, "{}", path.display());
        }
    }
}
