//! The migration lock: one `up`/`down`/`restore` per database at a time, across processes.
//!
//! An advisory lock (`flock`) on `<database>.lock`, next to the database. The kernel releases
//! it when its holder exits, however it exits, so a lock left by a dead process never blocks.
//! The holder writes who it is into the file so that a waiter that gives up can name it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::time;

/// How often a waiting process retries.
const RETRY: Duration = Duration::from_millis(50);

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct MigrationLock {
    _file: File,
}

/// The lock file of a database.
pub fn lock_path(database: &Path) -> PathBuf {
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
        .open(&path)
        .map_err(io_error)?;
    let started = Instant::now();
    let mut announced = false;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {
                if started.elapsed() >= timeout {
                    return Err(Error::Locked {
                        path: path.clone(),
                        holder: read_holder(&mut file),
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
    write_holder(&mut file).map_err(io_error)?;
    Ok(MigrationLock { _file: file })
}

/// Takes the lock only if it is free right now (for `status`, which never waits).
pub fn try_acquire(database: &Path) -> Option<MigrationLock> {
    acquire(database, Duration::ZERO).ok()
}

fn write_holder(file: &mut File) -> std::io::Result<()> {
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let holder = format!(
        "pid {} on host {host}, since {}",
        std::process::id(),
        time::now_iso()
    );
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(holder.as_bytes())?;
    file.flush()
}

/// Who holds the lock, as the holder wrote it: at most a line's worth (another user could
/// have made the file gigabytes long).
fn read_holder(file: &mut File) -> String {
    let mut bytes = Vec::new();
    let read = file
        .rewind()
        .and_then(|()| Read::by_ref(file).take(MAX_HOLDER).read_to_end(&mut bytes));
    let holder = String::from_utf8_lossy(&bytes);
    match read {
        Ok(_) if !holder.trim().is_empty() => holder.trim().to_owned(),
        _ => "another process".to_owned(),
    }
}

/// The longest holder text read back.
const MAX_HOLDER: u64 = 512;

#[cfg(test)]
mod tests {
    use super::*;

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
}
