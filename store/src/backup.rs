//! Backups: consistent copies of the database file made in the kernel inside a read
//! transaction (correct while another process writes; SQLite's online backup API where the file
//! cannot be copied), named as the Node tool named them, pruned by count.
//!
//! A backup is written to a hidden `.partial` file, synced, then renamed into place, so a
//! backup file that exists is always complete.

use std::fs::{self, DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::tracking::Tracking;

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

/// `backups/` next to the database (`./data/backups/` for the default database).
pub fn default_dir(database: &Path) -> PathBuf {
    database
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

    let mut name = backup_file_name(database, chrono::Utc::now());
    while dir.join(&name).exists() {
        std::thread::sleep(Duration::from_millis(2));
        name = backup_file_name(database, chrono::Utc::now());
    }
    let path = dir.join(&name);
    let partial = dir.join(format!(".{name}.partial"));
    let written = write_copy(conn, database, &partial).and_then(|_| {
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
    DirBuilder::new().mode(0o700).create(dir)
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

/// Copies the database into `partial` (mode 0600) and syncs it to disk: in the kernel when the
/// database is a file this process can read (see [`copy_files`]), else with SQLite's online
/// backup API.
fn write_copy(
    conn: &Connection,
    database: &Path,
    partial: &Path,
) -> std::result::Result<Copied, String> {
    let _ = fs::remove_file(partial);
    let _ = fs::remove_file(sibling(partial, "-wal"));
    // Create the file ourselves so it is private from its first byte.
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(partial)
        .map_err(|e| format!("cannot create {}: {e}", partial.display()))?;
    if let Err(reason) = copy_files(conn, database, file, partial) {
        tracing::debug!("copying the file in the kernel failed ({reason}): using SQLite's backup");
        let _ = fs::remove_file(sibling(partial, "-wal"));
        fs::File::create(partial)
            .map_err(|e| format!("cannot empty {}: {e}", partial.display()))?;
        let mut target = open_copy(partial)?;
        copy_pages(conn, &mut target)?;
        return finish_copy(target, partial).map(|()| Copied::BySqlite);
    }
    finish_copy(open_copy(partial)?, partial).map(|()| Copied::InKernel)
}

/// How a backup was copied.
#[derive(Debug, PartialEq, Eq)]
enum Copied {
    /// The file (and its WAL) in the kernel.
    InKernel,
    /// Page by page, by SQLite's online backup API.
    BySqlite,
}

fn open_copy(partial: &Path) -> std::result::Result<Connection, String> {
    Connection::open_with_flags(
        partial,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open {}: {e}", partial.display()))
}

/// Makes the copy one self-contained file and syncs it.
fn finish_copy(target: Connection, partial: &Path) -> std::result::Result<(), String> {
    // A backup is one self-contained file: the copy of a WAL database is turned into
    // rollback-journal mode (its WAL, copied beside it, is checkpointed into it first), so no
    // -wal or -shm ever stays beside it (restore puts the database back in the mode it had).
    let mode: String = target
        .query_row("PRAGMA journal_mode = DELETE", [], |row| row.get(0))
        .map_err(|e| format!("cannot make the copy self-contained: {e}"))?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(format!("the copy stayed in {mode} mode"));
    }
    target
        .close()
        .map_err(|(_, e)| format!("cannot close the copy: {e}"))?;
    if sibling(partial, "-wal").exists() {
        return Err("the copy's WAL was not checkpointed".into());
    }
    fs::File::open(partial)
        .and_then(|f| f.sync_all())
        .map_err(|e| format!("cannot sync the copy: {e}"))
}

/// Bytes copied between progress reports.
const COPY_CHUNK: u64 = 64 << 20;

/// Copies the database file, and in WAL mode its WAL, into `partial` (and `partial-wal`) in
/// the kernel (`copy_file_range`), inside one read transaction. That transaction keeps the
/// copy consistent: in rollback-journal mode its shared lock keeps every writer from changing
/// the file; in WAL mode the file changes only by checkpoints of frames it can see, which stay
/// in the WAL (no writer may restart the WAL under a reader), so replaying the copied WAL over
/// the copied file, as SQLite does when the copy is opened, gives that snapshot or a later
/// commit, never a mix (a frame half-copied fails its checksum and ends the replay).
fn copy_files(
    conn: &Connection,
    database: &Path,
    mut file: fs::File,
    partial: &Path,
) -> std::result::Result<(), String> {
    let own_transaction = conn.is_autocommit();
    if own_transaction {
        conn.execute_batch("BEGIN; SELECT count(*) FROM sqlite_schema;")
            .map_err(|e| format!("cannot start a read transaction: {e}"))?;
    }
    let copied = (|| {
        let mode: String = conn
            .query_row("PRAGMA main.journal_mode", [], |row| row.get(0))
            .map_err(|e| format!("cannot read the journal mode: {e}"))?;
        let source = conn
            .path()
            .map(Path::new)
            .filter(|p| !p.as_os_str().is_empty());
        if source.is_none_or(|p| p != database) {
            return Err("the connection is not on the database file".into());
        }
        copy_file(database, &mut file, true)?;
        let wal = sibling(database, "-wal");
        if mode.eq_ignore_ascii_case("wal") && wal.exists() {
            let mut target = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(sibling(partial, "-wal"))
                .map_err(|e| format!("cannot create the copy's WAL: {e}"))?;
            copy_file(&wal, &mut target, false)?;
        }
        Ok(())
    })();
    if own_transaction {
        let _ = conn.execute_batch("COMMIT");
    }
    copied
}

/// Copies the file `source` into `target` in the kernel, in chunks (a progress bar for a large
/// database when `report`).
fn copy_file(
    source: &Path,
    target: &mut fs::File,
    report: bool,
) -> std::result::Result<(), String> {
    let mut source =
        fs::File::open(source).map_err(|e| format!("cannot open {}: {e}", source.display()))?;
    let size = source.metadata().map_err(|e| e.to_string())?.len();
    let mib = |bytes: u64| bytes.div_ceil(1 << 20) as usize;
    let progress = (report && size >= PROGRESS_FROM_BYTES)
        .then(|| crate::progress::HostProgress::new("taking a backup (MiB)".into(), mib(size)));
    let mut done = 0;
    loop {
        // std copies a file into a file with copy_file_range (sendfile, or read and write, where
        // the kernel cannot).
        let mut chunk = std::io::Read::take(&mut source, COPY_CHUNK);
        let copied = std::io::copy(&mut chunk, target).map_err(|e| format!("copy failed: {e}"))?;
        done += copied;
        if let Some(progress) = &progress {
            progress.set(mib(done) as u64);
        }
        if copied == 0 {
            return Ok(());
        }
    }
}

/// `path` with `suffix` added to its file name (`x.db` → `x.db-wal`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Pages copied per backup step: 16 MiB of 4 KiB pages between progress reports.
const STEP_PAGES: i32 = 4096;
/// Databases smaller than this are copied without a progress bar (it would only flicker).
const PROGRESS_FROM_BYTES: u64 = 64 << 20;

/// Copies every page of `conn`'s main database into `target`, inside one read transaction:
/// a consistent snapshot even while other processes write (in WAL mode they append to the WAL
/// past it; in rollback mode they wait), copied in steps so a large copy reports progress.
fn copy_pages(conn: &Connection, target: &mut Connection) -> std::result::Result<(), String> {
    // Open the read transaction here unless the caller already holds one; it ends with us.
    let own_transaction = conn.is_autocommit();
    if own_transaction {
        conn.execute_batch("BEGIN; SELECT count(*) FROM sqlite_schema;")
            .map_err(|e| format!("cannot start a read transaction: {e}"))?;
    }
    let copied = (|| {
        let backup = Backup::new(conn, target).map_err(|e| format!("cannot start: {e}"))?;
        let (page_count, page_size) =
            measure(conn).map_err(|e| format!("cannot measure the database: {e}"))?;
        let bytes = (page_count.max(0) as u64).saturating_mul(page_size.max(0) as u64);
        let mib = |pages: u64| (pages * page_size.max(0) as u64).div_ceil(1 << 20);
        let progress = (bytes >= PROGRESS_FROM_BYTES).then(|| {
            crate::progress::HostProgress::new(
                "taking a backup (MiB)".into(),
                mib(page_count as u64) as usize,
            )
        });
        let mut attempts = 0;
        loop {
            match backup
                .step(STEP_PAGES)
                .map_err(|e| format!("copy failed: {e}"))?
            {
                StepResult::Done => break,
                StepResult::More => {
                    if let Some(progress) = &progress {
                        let p = backup.progress();
                        progress.set(mib((p.pagecount - p.remaining).max(0) as u64));
                    }
                }
                StepResult::Busy | StepResult::Locked if attempts < 200 => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(25));
                }
                other => return Err(format!("copy did not finish: {other:?}")),
            }
        }
        if let Some(progress) = &progress {
            progress.set(mib(page_count as u64));
        }
        Ok(())
    })();
    if own_transaction {
        let _ = conn.execute_batch("COMMIT");
    }
    copied
}

/// The database's page count and page size, by PRAGMA statements (a table named
/// `pragma_page_count` would take the table-valued function's place).
fn measure(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    let count = conn.query_row("PRAGMA main.page_count", [], |row| row.get(0))?;
    let size = conn.query_row("PRAGMA main.page_size", [], |row| row.get(0))?;
    Ok((count, size))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// This database's backups in `dir`, newest first. A missing directory has none.
pub fn list(database: &Path, dir: &Path, tracking: &Tracking) -> Result<Vec<BackupInfo>> {
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

/// Files SQLite keeps beside a database.
const SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Deletes all but the newest `keep` backups of `database` in `dir`, never `current` (the
/// backup just taken) nor those named in `kept_also` (on top of `keep`). Only this database's
/// backups are candidates: regular files (not links)
/// of this user, named for this database, dated no later than now; a planted file dated in
/// the future or another user's file counts for nothing and is left alone. Other files are
/// never touched.
pub fn prune(
    database: &Path,
    dir: &Path,
    keep: usize,
    current: Option<&str>,
    kept_also: &[String],
) -> Result<()> {
    prune_older(database, dir, keep, current, kept_also, None)
}

/// [`prune`], also dropping backups named before `oldest` (the name a backup taken at the age
/// bound would have: names sort in time order).
fn prune_older(
    database: &Path,
    dir: &Path,
    keep: usize,
    current: Option<&str>,
    kept_also: &[String],
    oldest: Option<&str>,
) -> Result<()> {
    let latest = latest_name(database);
    let me = rustix::process::geteuid().as_raw();
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(|e| Error::Backup {
            path: dir.to_owned(),
            reason: format!("cannot list backups: {e}"),
        })?
        .flatten()
        .filter(|entry| own_file(&entry.path()).is_some())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| parse_backup_time(database, name).is_some() && *name <= latest)
        .collect();
    // The time stamp sorts lexicographically in time order.
    names.sort_unstable_by(|a, b| b.cmp(a));
    let mut kept = 0;
    for old in &names {
        if kept_also.contains(old) {
            continue;
        }
        let too_old = oldest.is_some_and(|oldest| old.as_str() < oldest);
        if Some(old.as_str()) == current || (kept < keep && !too_old) {
            kept += 1;
            continue;
        }
        let path = dir.join(old);
        match fs::remove_file(&path) {
            Ok(()) => tracing::info!("old backup removed: {}", path.display()),
            Err(e) => tracing::warn!("cannot remove old backup {}: {e}", path.display()),
        }
        // Sidecars an older hsm-host (or another program) left beside it go with it.
        for suffix in SIDECARS {
            remove_own_file(&dir.join(format!("{old}{suffix}")), me);
        }
    }
    // And sidecars whose backup is gone already.
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let orphan = SIDECARS.iter().any(|suffix| {
            name.strip_suffix(suffix).is_some_and(|base| {
                parse_backup_time(database, base).is_some()
                    && fs::symlink_metadata(dir.join(base)).is_err()
            })
        });
        if orphan {
            remove_own_file(&entry.path(), me);
        }
    }
    remove_stale_partials(database, dir, me);
    Ok(())
}

/// How long a backup's hidden `.partial` file (and its sidecars) must have gone unwritten to
/// be taken for a copy whose process was killed: a copy in progress writes it continuously.
const STALE_PARTIAL: Duration = Duration::from_secs(60 * 60);

/// Removes what copies of `database` killed mid-way left in `dir`: `.<backup name>.partial`
/// and its `-wal`/`-journal`/`-shm`, this user's regular files, untouched for an hour. Nothing
/// else is touched (other databases' partials, younger ones, other users' files).
fn remove_stale_partials(database: &Path, dir: &Path, me: u32) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let backup = name.strip_prefix('.').and_then(|rest| {
            ["", "-wal", "-journal", "-shm"]
                .iter()
                .find_map(|suffix| rest.strip_suffix(&format!(".partial{suffix}")))
        });
        let ours = backup.is_some_and(|backup| parse_backup_time(database, backup).is_some());
        let stale = fs::symlink_metadata(entry.path())
            .and_then(|meta| meta.modified())
            .is_ok_and(|at| at.elapsed().is_ok_and(|age| age >= STALE_PARTIAL));
        if ours && stale {
            tracing::info!(
                "removing what a killed backup left: {}",
                entry.path().display()
            );
            remove_own_file(&entry.path(), me);
        }
    }
}

/// The name a backup taken a minute from now would have: no backup of ours is named later (a
/// file dated in the future was planted, and counts for nothing).
fn latest_name(database: &Path) -> String {
    backup_file_name(database, chrono::Utc::now() + chrono::Duration::minutes(1))
}

/// The metadata of `path` if it is a regular file (not a link: the entry's own metadata) of
/// this user: the only files listed, read or pruned as backups.
fn own_file(path: &Path) -> Option<fs::Metadata> {
    let meta = fs::symlink_metadata(path).ok()?;
    (meta.is_file() && meta.uid() == rustix::process::geteuid().as_raw()).then_some(meta)
}

/// Removes `path` if it is a regular file of the user `me`.
fn remove_own_file(path: &Path, me: u32) {
    if fs::symlink_metadata(path).is_ok_and(|meta| meta.is_file() && meta.uid() == me) {
        let _ = fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy of a database another process keeps writing is one consistent state, in each
    /// journal mode and by each way of copying (the kernel's, and SQLite's backup API in steps,
    /// so it reports progress): a writer's commit never shows up half-way in it.
    #[test]
    fn a_copy_of_a_busy_database_is_one_snapshot() {
        for (journal, kernel) in [("WAL", true), ("DELETE", true), ("WAL", false)] {
            copy_of_a_busy_database_is_one_snapshot(journal, kernel);
        }
    }

    fn copy_of_a_busy_database_is_one_snapshot(journal: &str, kernel: bool) {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("busy.db");
        let conn = Connection::open(&db).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        // Several steps' worth of pages; `pair` holds rows that are only ever written two by two,
        // with opposite amounts, so every snapshot sums to zero and has an even count.
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = {journal};
             CREATE TABLE ballast (b BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000)
             INSERT INTO ballast SELECT randomblob(4000) FROM n;
             CREATE TABLE pair (amount INTEGER);"
        ))
        .unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (db, stop) = (db.clone(), stop.clone());
            std::thread::spawn(move || {
                let conn = Connection::open(&db).unwrap();
                conn.busy_timeout(Duration::from_secs(5)).unwrap();
                let mut commits = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    conn.execute_batch(
                        "BEGIN IMMEDIATE; INSERT INTO pair VALUES (7); INSERT INTO pair VALUES (-7);
                         INSERT INTO ballast VALUES (randomblob(4000)); COMMIT;",
                    )
                    .unwrap();
                    commits += 1;
                }
                commits
            })
        };
        let partial = dir.path().join("copy.db");
        std::thread::sleep(Duration::from_millis(20));
        // Another path than the connection's makes the kernel copy refuse, so SQLite's is used.
        let named = if kernel {
            db.clone()
        } else {
            dir.path().join("elsewhere.db")
        };
        let copied = write_copy(&conn, &named, &partial).unwrap();
        let expected = if kernel {
            Copied::InKernel
        } else {
            Copied::BySqlite
        };
        assert_eq!(copied, expected, "{journal}");
        assert!(!sibling(&partial, "-wal").exists(), "{journal}: one file");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let commits = writer.join().unwrap();
        assert!(commits > 0);
        let copy = Connection::open(&partial).unwrap();
        let (count, sum): (i64, i64) = copy
            .query_row(
                "SELECT count(*), coalesce(sum(amount), 0) FROM pair",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(
            (count % 2, sum),
            (0, 0),
            "{journal} {kernel}: {count} rows, sum {sum}"
        );
        let check: String = copy
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        assert!(conn.is_autocommit(), "the read transaction was left open");
    }

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

    /// What a backup killed mid-copy leaves (its hidden partial file and the copy's WAL or
    /// journal) goes at the next prune once it is an hour old; a copy in progress, another
    /// database's partial and other files stay.
    #[test]
    fn a_killed_backups_partial_files_are_removed_once_stale() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("monitor.db");
        let backups = dir.path().join("backups");
        fs::create_dir(&backups).unwrap();
        let stamp = "2024-01-01T12-00-00-000Z";
        let write = |name: &str, age: Duration| {
            let path = backups.join(name);
            fs::write(&path, b"partial copy").unwrap();
            let file = fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(std::time::SystemTime::now() - age)
                .unwrap();
            path
        };
        let two_hours = Duration::from_secs(2 * 60 * 60);
        let stale = [
            write(&format!(".monitor.db.backup-{stamp}.partial"), two_hours),
            write(
                &format!(".monitor.db.backup-{stamp}.partial-wal"),
                two_hours,
            ),
            write(
                &format!(".monitor.db.backup-{stamp}.partial-journal"),
                two_hours,
            ),
        ];
        let kept = [
            write(
                ".monitor.db.backup-2024-01-02T12-00-00-000Z.partial",
                Duration::ZERO,
            ),
            write(&format!(".other.db.backup-{stamp}.partial"), two_hours),
            write(".monitor.db.partial", two_hours),
            write("notes.partial", two_hours),
        ];
        prune(&db, &backups, 10, None, &[]).unwrap();
        for path in stale {
            assert!(!path.exists(), "{} stayed", path.display());
        }
        for path in kept {
            assert!(path.exists(), "{} was removed", path.display());
        }
    }
}
