//! The migration lock: one `up`/`down`/`restore` per database at a time, across processes.
//!
//! An advisory lock (`flock`) on `<database>.lock`, next to the database. The kernel releases
//! it when its holder exits, however it exits, so a lock left by a dead process never blocks.
//! The holder writes who it is into the file's first line, so that a waiter that gives up can
//! name it, and the migration it is running into the second ([`Attempt`]): a holder that dies
//! mid-migration leaves that line for the next one to record.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::time;
use crate::tracking::{Attempt, MAX_ATTEMPT_LINE, Tracking, TrackingWrites};

/// How often a waiting process retries.
const RETRY: Duration = Duration::from_millis(50);

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct MigrationLock {
    file: File,
    path: PathBuf,
    holder: String,
    /// The attempt the file holds: the previous holder's unfinished one, then this holder's.
    attempt: Option<Attempt>,
}

impl MigrationLock {
    /// The attempt a previous holder left unfinished: its process died during that migration
    /// (cleared by [`MigrationLock::end_attempt`] once recorded).
    pub fn interrupted(&self) -> Option<&Attempt> {
        self.attempt.as_ref()
    }

    /// Writes the attempt about to start into the lock file, where it stays if this process
    /// dies before [`MigrationLock::end_attempt`]. Not synced: it must survive the process,
    /// not the machine (a power cut loses the page cache and the uncommitted migration alike).
    ///
    /// # Errors
    /// [`Error::Lock`] when the lock file cannot be written.
    pub fn begin_attempt(&mut self, attempt: &Attempt) -> Result<()> {
        self.attempt = Some(attempt.clone());
        self.write()
    }

    /// Clears the attempt: its outcome is recorded in the database.
    ///
    /// # Errors
    /// [`Error::Lock`] when the lock file cannot be written.
    pub fn end_attempt(&mut self) -> Result<()> {
        if self.attempt.take().is_some() {
            self.write()?;
        }
        Ok(())
    }

    fn write(&mut self) -> Result<()> {
        self.write_text().map_err(|source| Error::Lock {
            path: self.path.clone(),
            source,
        })
    }

    fn write_text(&mut self) -> std::io::Result<()> {
        let mut text = format!("{}\n", self.holder);
        if let Some(attempt) = &self.attempt {
            text.push_str(&attempt.to_line());
            text.push('\n');
        }
        // One write at offset 0, then the length: a reader takes the second line only, so an
        // old text's tail beyond the new (until the length is set) is never taken for it.
        use std::os::unix::fs::FileExt;
        self.file.write_all_at(text.as_bytes(), 0)?;
        self.file.set_len(text.len() as u64)
    }
}

/// The lock file of a database: beside the file itself, whatever link or relative path named
/// it (two names of one database share one lock).
pub fn lock_path(database: &Path) -> PathBuf {
    let database = crate::files::real_file(database);
    let mut name = database.file_name().unwrap_or_default().to_owned();
    name.push(".lock");
    database.with_file_name(name)
}

/// Takes the lock of `database`, waiting up to `timeout` for another holder to finish.
///
/// # Errors
/// [`Error::Locked`] naming the holder when the wait times out; [`Error::Lock`] when the lock
/// file cannot be opened.
pub fn acquire(database: &Path, timeout: Duration) -> Result<MigrationLock> {
    let path = lock_path(database);
    let io_error = |source| Error::Lock {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        // A link planted in its place would have the holder's name written wherever it
        // points (the lock file is truncated and rewritten).
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        // Only this user may open it: anyone who can open a file can flock it, and so hold
        // every run of this database off.
        .mode(0o600)
        .open(&path)
        .map_err(io_error)?;
    check_own_file(&file).map_err(io_error)?;
    let started = Instant::now();
    let mut announced = false;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                if started.elapsed() >= timeout {
                    return Err(Error::Locked {
                        holder: with_gone_note(read_holder(&mut file), &path),
                        path: path.clone(),
                        waited: timeout,
                    });
                }
                if !announced {
                    tracing::info!(
                        "waiting for the migration lock held by {} (up to {} s)",
                        read_holder(&mut file),
                        timeout.as_secs()
                    );
                    announced = true;
                }
                std::thread::sleep(RETRY);
            }
            Err(TryLockError::Error(source)) => return Err(io_error(source)),
        }
    }
    let attempt = read_attempt(&mut file);
    let mut lock = MigrationLock {
        file,
        path,
        holder: holder_line(),
        attempt,
    };
    lock.write()?;
    Ok(lock)
}

/// Records the attempts a dead process left, in the database `conn`: the one `lock`'s file
/// holds (unless its row was committed), and rows an older release left `running`; then
/// clears the lock file's, its row written. Call it holding the lock (`lock` is `None` only
/// for a private database, which no other process can be running on).
///
/// # Errors
/// As [`TrackingWrites::recover_interrupted`]; [`Error::Lock`] when the lock file cannot be
/// written.
pub fn recover_interrupted(
    tracking: &Tracking,
    conn: &rusqlite::Connection,
    mut lock: Option<&mut MigrationLock>,
) -> Result<Vec<u64>> {
    let left = lock.as_deref().and_then(MigrationLock::interrupted);
    let interrupted = tracking.recover_interrupted(conn, left)?;
    if let Some(lock) = lock.as_mut() {
        lock.end_attempt()?;
    }
    Ok(interrupted)
}

/// The attempt the lock file of `database` holds, read without taking the lock (for `status`,
/// which takes it only when there is something to record).
pub fn left_attempt(database: &Path) -> Option<Attempt> {
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(lock_path(database))
        .ok()?;
    read_attempt(&mut file)
}

/// Takes the lock only if it is free right now (for `status`, which never waits).
pub fn try_acquire(database: &Path) -> Option<MigrationLock> {
    acquire(database, Duration::ZERO).ok()
}

/// Refuses a lock file that is not this user's own regular file with one name: another
/// user's file, a FIFO or device, or a hard link to some other file (whose contents taking
/// the lock would overwrite). One of ours that others may open (made by an older release, or
/// under a loose umask) is made private.
fn check_own_file(file: &File) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = file.metadata()?;
    let refuse = |why: String| Err(std::io::Error::other(why));
    if !meta.file_type().is_file() {
        return refuse(
            "it is not a regular file; remove it (hsm-host creates its own lock file)".to_owned(),
        );
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return refuse(format!(
            "it belongs to uid {}, not to the user running hsm-host (uid {me}): run hsm-host \
             as that user, or remove the file if nothing is running",
            meta.uid()
        ));
    }
    if meta.nlink() != 1 {
        return refuse(format!(
            "it has {} names (a hard link to another file?); remove it (hsm-host creates its \
             own lock file)",
            meta.nlink()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// `holder`, with a note when it names a process of this host that has ended: the lock is
/// then held by some other process that has the file open (it was readable by others before
/// this release made it private).
fn with_gone_note(holder: String, path: &Path) -> String {
    let named = holder
        .strip_prefix("pid ")
        .and_then(|rest| rest.split_once(" on host "))
        .and_then(|(pid, rest)| {
            let pid = i32::try_from(pid.parse::<u32>().ok()?).ok()?;
            Some((pid, rest.split(',').next()?))
        });
    let Some((pid, host)) = named else {
        return holder;
    };
    let gone = host == this_host()
        && rustix::process::Pid::from_raw(pid).is_some_and(|pid| {
            rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH)
        });
    match gone {
        true => format!(
            "{holder} (that process has ended: another process has the lock file open; \
             `fuser -v {}` names it)",
            path.display()
        ),
        false => holder,
    }
}

fn this_host() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

fn holder_line() -> String {
    let host = this_host();
    format!(
        "pid {} on host {host}, since {}",
        std::process::id(),
        time::now_iso()
    )
}

/// The attempt on the file's second line, if it holds one exactly as a holder writes it.
fn read_attempt(file: &mut File) -> Option<Attempt> {
    let mut bytes = Vec::new();
    file.rewind().ok()?;
    let limit = (MAX_HOLDER as usize + MAX_ATTEMPT_LINE + 2) as u64;
    Read::by_ref(file)
        .take(limit)
        .read_to_end(&mut bytes)
        .ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let mut lines = text.split('\n');
    lines.next()?;
    Attempt::from_line(lines.next()?)
}

/// Who holds the lock, as the holder wrote it: at most a line's worth (another user could
/// have made the file gigabytes long).
fn read_holder(file: &mut File) -> String {
    let mut bytes = Vec::new();
    let read = file
        .rewind()
        .and_then(|()| Read::by_ref(file).take(MAX_HOLDER).read_to_end(&mut bytes));
    let holder = String::from_utf8_lossy(&bytes);
    let holder = holder.lines().next().unwrap_or_default().trim();
    match read {
        Ok(_) if !holder.is_empty() => holder.to_owned(),
        _ => "another process".to_owned(),
    }
}

/// The longest holder text read back.
const MAX_HOLDER: u64 = 512;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Direction;

    #[test]
    fn an_attempt_outlives_its_holder_until_ended() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let attempt = Attempt {
            version: 3,
            direction: Direction::Up,
            started_at: "2026-12-07T06:00:00.000Z".into(),
            backup_path: None,
        };
        let mut first = acquire(&db, Duration::ZERO).unwrap();
        assert_eq!(first.interrupted(), None);
        first.begin_attempt(&attempt).unwrap();
        assert_eq!(left_attempt(&db).as_ref(), Some(&attempt));
        // A waiter names the holder by its first line, not the attempt.
        let message = acquire(&db, Duration::ZERO).unwrap_err().to_string();
        assert!(!message.contains("started_at"), "{message}");
        drop(first); // the process dies mid-migration

        let mut second = acquire(&db, Duration::ZERO).unwrap();
        assert_eq!(second.interrupted(), Some(&attempt));
        assert_eq!(
            left_attempt(&db).as_ref(),
            Some(&attempt),
            "kept until recorded"
        );
        second.end_attempt().unwrap();
        assert_eq!(left_attempt(&db), None);
        drop(second);
        assert_eq!(acquire(&db, Duration::ZERO).unwrap().interrupted(), None);
    }

    #[test]
    fn second_holder_times_out_naming_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let first = acquire(&db, Duration::ZERO).unwrap();
        let error = acquire(&db, Duration::from_millis(120)).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        assert!(try_acquire(&db).is_none());
        drop(first);
        assert!(
            try_acquire(&db).is_some(),
            "dropping the guard releases the lock"
        );
    }

    #[test]
    fn the_lock_file_is_private_and_only_this_users_own_regular_file_is_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        drop(acquire(&db, Duration::ZERO).unwrap());
        assert_eq!(mode(&lock_path(&db)), 0o600);
        // One an older release left readable by all is made private.
        std::fs::set_permissions(lock_path(&db), std::fs::Permissions::from_mode(0o666)).unwrap();
        drop(acquire(&db, Duration::ZERO).unwrap());
        assert_eq!(mode(&lock_path(&db)), 0o600);

        // A hard link to another file: nothing is written to it.
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep me").unwrap();
        std::fs::remove_file(lock_path(&db)).unwrap();
        std::fs::hard_link(&victim, lock_path(&db)).unwrap();
        let error = acquire(&db, Duration::ZERO).unwrap_err().to_string();
        assert!(error.contains("has 2 names"), "{error}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");

        // A FIFO: refused at once, not waited on.
        std::fs::remove_file(lock_path(&db)).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            lock_path(&db),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let error = acquire(&db, Duration::ZERO).unwrap_err().to_string();
        assert!(error.contains("not a regular file"), "{error}");
    }

    #[test]
    fn a_holder_that_has_ended_is_named_as_ended() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.db.lock");
        // A pid no process has (above the kernel's pid_max).
        let holder = format!("pid 2147483000 on host {}, since then", this_host());
        let noted = with_gone_note(holder.clone(), &path);
        assert!(noted.contains("that process has ended"), "{noted}");
        assert!(noted.contains("fuser -v"), "{noted}");
        let alive = format!(
            "pid {} on host {}, since then",
            std::process::id(),
            this_host()
        );
        assert_eq!(with_gone_note(alive.clone(), &path), alive);
        let elsewhere = "pid 2147483000 on host another-machine, since then".to_owned();
        assert_eq!(with_gone_note(elsewhere.clone(), &path), elsewhere);
    }

    /// A link to the database and the database itself are one database: one lock file, beside
    /// the file (a `current/app.db` link to `shared/app.db` must not let two runs in at once).
    #[test]
    fn a_link_to_the_database_shares_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        let current = dir.path().join("current");
        std::fs::create_dir_all(&shared).unwrap();
        std::fs::create_dir_all(&current).unwrap();
        let real = shared.join("app.db");
        std::fs::write(&real, b"").unwrap();
        let link = current.join("app.db");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        assert_eq!(lock_path(&link), lock_path(&real));
        let held = acquire(&real, Duration::ZERO).unwrap();
        assert!(matches!(
            acquire(&link, Duration::ZERO),
            Err(Error::Locked { .. })
        ));
        drop(held);
        assert!(!current.join("app.db.lock").exists());
    }
}
