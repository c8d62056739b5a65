//! Restoring a backup: refuse anything that is not a sound SQLite database, back up the
//! current database first (so a restore can be undone), then replace the file atomically.

use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::backup::{self, BackupConfig};
use crate::error::{Error, Result};
use crate::tracking::Tracking;
use crate::{integrity, lock};

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The database file replaced.
    pub database: PathBuf,
    /// The backup it was replaced with.
    pub restored_from: PathBuf,
    /// The backup of the database as it was before the restore, if one was taken.
    pub previous: Option<PathBuf>,
    /// The schema version now in force.
    pub schema_version: u64,
}

/// Checks that `source` is a SQLite database that passes `integrity_check`.
///
/// # Errors
/// [`Error::RestoreRefused`] saying why.
pub fn check_restorable(source: &Path) -> Result<()> {
    let refuse = |reason: String| Error::RestoreRefused {
        path: source.to_owned(),
        reason,
    };
    let mut header = Vec::with_capacity(16);
    fs::File::open(source)
        .and_then(|f| f.take(16).read_to_end(&mut header))
        .map_err(|e| refuse(format!("cannot read it: {e}")))?;
    if header != b"SQLite format 3\0" {
        return Err(refuse("it is not a SQLite database".into()));
    }
    let conn = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| refuse(format!("cannot open it: {e}")))?;
    let problems = integrity::problems(&conn, false);
    if !problems.is_empty() {
        return Err(refuse(format!(
            "it fails integrity_check: {}",
            integrity::summarize(&problems)
        )));
    }
    Ok(())
}

/// Replaces `database` with the backup `source`.
///
/// Takes the migration lock; backs up the current database first unless `backups` is `None`;
/// writes the copy beside the database, syncs it and renames it into place; removes the old
/// file's `-wal`, `-shm` and `-journal` so they cannot be applied to the restored file.
///
/// # Errors
/// [`Error::RestoreRefused`] before anything changes; [`Error::Locked`]; [`Error::Backup`];
/// [`Error::Restore`] when the copy or rename fails (the database is then unchanged).
pub fn restore(
    database: &Path,
    source: &Path,
    backups: Option<&BackupConfig>,
    lock_timeout: Duration,
    tracking: &Tracking,
) -> Result<RestoreReport> {
    restore_keeping(database, source, backups, lock_timeout, tracking, &[])
}

/// [`restore`], whose first backup prunes none of `keep_also` (see
/// [`backup::create_keeping`]).
pub fn restore_keeping(
    database: &Path,
    source: &Path,
    backups: Option<&BackupConfig>,
    lock_timeout: Duration,
    tracking: &Tracking,
    keep_also: &[std::path::PathBuf],
) -> Result<RestoreReport> {
    // The file itself is replaced, not a link that names it.
    let database = &crate::files::real_file(database);
    check_restorable(source)?;
    if database.exists() && same_file(database, source) {
        return Err(Error::RestoreRefused {
            path: source.to_owned(),
            reason: "it is the database itself".into(),
        });
    }
    if let Some(parent) = database.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| restore_error(database, e))?;
    }
    // The copy is written beside the database and renamed over it: nobody else may be able to
    // swap files in that directory meanwhile.
    crate::database::check_surroundings(database).map_err(|reason| Error::RestoreRefused {
        path: database.to_owned(),
        reason,
    })?;
    let mut lock = lock::acquire(database, lock_timeout)?;

    let previous = match (backups, database.exists()) {
        (Some(config), true) => {
            let conn = Connection::open(database).map_err(|e| Error::OpenDatabase {
                path: database.to_owned(),
                source: e.into(),
            })?;
            // The database being replaced keeps the record of an attempt that died in it.
            if lock.interrupted().is_some() && tracking.exists(&conn)? {
                lock::recover_interrupted(tracking, &conn, Some(&mut lock))?;
            }
            let path = backup::create_keeping(&conn, database, config, keep_also)?;
            drop(conn);
            Some(path)
        }
        _ => None,
    };

    // A backup is in rollback-journal mode; the restored database gets the mode it had.
    let was_wal = database.exists() && journal_mode(database).as_deref() == Some("wal");
    // The restored file keeps the permissions the database had (backups are private).
    let permissions = fs::metadata(database).ok().map(|m| m.permissions());
    let partial = sibling(database, ".restore-partial");
    let copied = copy_with_progress(source, &partial, permissions)
        .and_then(|()| fs::rename(&partial, database));
    if let Err(e) = copied {
        let _ = fs::remove_file(&partial);
        return Err(restore_error(database, e));
    }
    for suffix in ["-wal", "-shm", "-journal"] {
        let stale = sibling_suffix(database, suffix);
        match fs::remove_file(&stale) {
            Ok(()) => tracing::info!("removed the old {}", stale.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(restore_error(&stale, e)),
        }
    }
    if let Some(dir) = database.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| restore_error(dir, e))?;
    }
    // An attempt that died in the database replaced is not the restored one's.
    lock.end_attempt()?;
    if was_wal {
        let conn = Connection::open(database).map_err(|e| Error::OpenDatabase {
            path: database.to_owned(),
            source: e.into(),
        })?;
        conn.query_row("PRAGMA journal_mode = WAL", [], |row| {
            row.get::<_, String>(0)
        })
        .map_err(|e| Error::sqlite("cannot put the restored database back in WAL mode", e))?;
    }
    Ok(RestoreReport {
        database: database.to_owned(),
        restored_from: source.to_owned(),
        previous,
        schema_version: backup::schema_version(database, tracking).unwrap_or(0),
    })
}

/// The journal mode the file at `path` is in (`wal`, `delete`, ...), read without changing it.
/// Files smaller than this are copied without a progress bar (it would only flicker).
const PROGRESS_FROM_BYTES: u64 = 64 << 20;

/// Copies `source` into `target`, a new file: a stale partial file is removed first (the link
/// itself if it is one), and the target is created afresh, never followed through a symbolic
/// link someone planted there (which would write wherever it points). Progress is reported in
/// MiB for a large file.
fn copy_with_progress(
    source: &Path,
    target: &Path,
    permissions: Option<fs::Permissions>,
) -> std::io::Result<()> {
    let len = fs::metadata(source)?.len();
    let progress = (len >= PROGRESS_FROM_BYTES).then(|| {
        crate::progress::HostProgress::new("restoring (MiB)".into(), len.div_ceil(1 << 20) as usize)
    });
    match fs::remove_file(target) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut from = fs::File::open(source)?;
    let mut to = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(target)?;
    let mut buffer = vec![0; 4 << 20];
    let mut copied: u64 = 0;
    loop {
        let read = from.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        std::io::Write::write_all(&mut to, &buffer[..read])?;
        copied += read as u64;
        if let Some(progress) = &progress {
            progress.set(copied >> 20);
        }
    }
    if let Some(progress) = &progress {
        progress.set(len.div_ceil(1 << 20));
    }
    // Through the open file, never the path again (which could be swapped meanwhile).
    if let Some(permissions) = permissions {
        to.set_permissions(permissions)?;
    }
    to.sync_all()
}

fn journal_mode(path: &Path) -> Option<String> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    conn.query_row("PRAGMA journal_mode", [], |row| row.get::<_, String>(0))
        .ok()
        .map(|m| m.to_ascii_lowercase())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// `.<name><suffix>` next to `database`: hidden, same filesystem, so the rename is atomic.
fn sibling(database: &Path, suffix: &str) -> PathBuf {
    let name = database.file_name().unwrap_or_default().to_string_lossy();
    database.with_file_name(format!(".{name}{suffix}"))
}

/// `<name><suffix>` next to `database` (SQLite's own `-wal`, `-shm`, `-journal`).
fn sibling_suffix(database: &Path, suffix: &str) -> PathBuf {
    let name = database.file_name().unwrap_or_default().to_string_lossy();
    database.with_file_name(format!("{name}{suffix}"))
}

fn restore_error(path: &Path, source: std::io::Error) -> Error {
    Error::Restore {
        path: path.to_owned(),
        source,
    }
}
