//! The copy itself: the database file (and its WAL) copied by the kernel inside one read
//! transaction, or SQLite's online backup API where the file cannot be read, then synced.

use super::*;

/// Creates `partial`, private from its first byte; `None` when the name is taken (another
/// backup of the same millisecond holds it).
pub(super) fn reserve(partial: &Path) -> std::io::Result<Option<fs::File>> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(partial)
    {
        Ok(file) => Ok(Some(file)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(e),
    }
}

/// Copies the database into `partial` (made by [`reserve`], open as `file`) and syncs it to
/// disk: in the kernel when the database is a file this process can read (see
/// [`copy_files`]), else with SQLite's online backup API.
pub(super) fn write_copy(
    conn: &Connection,
    database: &Path,
    partial: &Path,
    file: fs::File,
) -> std::result::Result<Copied, String> {
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
pub(super) enum Copied {
    /// The file (and its WAL) in the kernel.
    InKernel,
    /// Page by page, by SQLite's online backup API.
    BySqlite,
}

pub(super) fn open_copy(partial: &Path) -> std::result::Result<Connection, String> {
    Connection::open_with_flags(
        partial,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open {}: {e}", partial.display()))
}

/// Makes the copy one self-contained file and syncs it.
pub(super) fn finish_copy(target: Connection, partial: &Path) -> std::result::Result<(), String> {
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
pub(super) const COPY_CHUNK: u64 = 64 << 20;

/// Copies the database file, and in WAL mode its WAL, into `partial` (and `partial-wal`) in
/// the kernel (`copy_file_range`), inside one read transaction. That transaction keeps the
/// copy consistent: in rollback-journal mode its shared lock keeps every writer from changing
/// the file; in WAL mode the file changes only by checkpoints of frames it can see, which stay
/// in the WAL (no writer may restart the WAL under a reader), so replaying the copied WAL over
/// the copied file, as SQLite does when the copy is opened, gives that snapshot or a later
/// commit, never a mix (a frame half-copied fails its checksum and ends the replay).
pub(super) fn copy_files(
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
        let real = crate::files::real_file;
        if source.is_none_or(|p| real(p) != real(database)) {
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
pub(super) fn copy_file(
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
pub(super) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Pages copied per backup step: 16 MiB of 4 KiB pages between progress reports.
pub(super) const STEP_PAGES: i32 = 4096;
/// Databases smaller than this are copied without a progress bar (it would only flicker).
pub(super) const PROGRESS_FROM_BYTES: u64 = 64 << 20;

/// Copies every page of `conn`'s main database into `target`, inside one read transaction:
/// a consistent snapshot even while other processes write (in WAL mode they append to the WAL
/// past it; in rollback mode they wait), copied in steps so a large copy reports progress.
pub(super) fn copy_pages(
    conn: &Connection,
    target: &mut Connection,
) -> std::result::Result<(), String> {
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
pub(super) fn measure(conn: &Connection) -> rusqlite::Result<(i64, i64)> {
    let count = conn.query_row("PRAGMA main.page_count", [], |row| row.get(0))?;
    let size = conn.query_row("PRAGMA main.page_size", [], |row| row.get(0))?;
    Ok((count, size))
}

pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs::File::open(dir)?.sync_all()
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
        let file = reserve(&partial).unwrap().unwrap();
        let copied = write_copy(&conn, &named, &partial, file).unwrap();
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
}
