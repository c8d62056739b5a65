//! [`Database`]: the SQLite file being migrated, shared between the host and the guest it runs.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};
use crate::tracking::{SharedTracking, Tracking};

/// How long a statement waits for another connection's lock before failing with SQLITE_BUSY.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// An open database. The connection is shared with the guest's store while a migration runs,
/// hence the mutex; the host never holds it across a guest call.
#[derive(Clone)]
pub struct Database {
    path: Option<PathBuf>,
    conn: Arc<Mutex<Connection>>,
    tracking: SharedTracking,
}

impl Database {
    /// Opens (creating it and its parent directories if needed) the database at `path`.
    ///
    /// # Errors
    /// [`Error::OpenDatabase`] when the directory cannot be made, or the file cannot be opened
    /// or is not a SQLite database.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // Writable by its owner only (whatever the umask): see `check_surroundings`.
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(|e| open_error(path, e))?;
        }
        Self::open_with(path, OpenFlags::default())
    }

    /// A private in-memory database: a scratch target for testing components in CI.
    pub fn open_in_memory() -> Result<Self> {
        let conn =
            Connection::open_in_memory().map_err(|e| open_error(Path::new(":memory:"), e))?;
        Ok(Self::from_connection(None, conn))
    }

    fn open_with(path: &Path, flags: OpenFlags) -> Result<Self> {
        check_surroundings(path).map_err(|reason| open_error(path, reason))?;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| open_error(path, e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| open_error(path, e))?;
        harden(&conn).map_err(|e| open_error(path, e))?;
        // SQLite opens lazily: read the schema now so a file that is not a database fails here,
        // with its name, rather than halfway through a command.
        conn.query_row("SELECT count(*) FROM main.sqlite_schema", [], |_| Ok(()))
            .map_err(|e| open_error(path, e))?;
        Ok(Self::from_connection(Some(path.to_owned()), conn))
    }

    fn from_connection(path: Option<PathBuf>, conn: Connection) -> Self {
        Self {
            path,
            conn: Arc::new(Mutex::new(conn)),
            tracking: Arc::new(Tracking::default()),
        }
    }

    /// Tracks migrations in `tracking`'s tables instead of the seed's `migrations` and
    /// `migration_history` (for an application that owns a table of that name).
    #[must_use]
    pub fn with_tracking(mut self, tracking: Tracking) -> Self {
        self.tracking = Arc::new(tracking);
        self
    }

    /// The tables that track this database's migrations.
    pub fn tracking(&self) -> &Tracking {
        &self.tracking
    }

    /// The tracking names, shared with the guest's side (its policy refuses writes to them).
    pub fn shared_tracking(&self) -> SharedTracking {
        Arc::clone(&self.tracking)
    }

    /// The file, or `None` for an in-memory database.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Locks the connection for the host's own statements.
    pub fn connection(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held cannot leave the connection half-updated in a way
        // the next statement would not see, so a poisoned lock is still usable.
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The connection, shared with the guest's SQL proxy while a migration runs.
    pub fn shared(&self) -> Arc<Mutex<Connection>> {
        Arc::clone(&self.conn)
    }
}

/// Guests run untrusted SQL on this connection: no writable_schema tricks (defensive mode), and
/// no SQL functions or virtual tables reached through schema objects they planted (untrusted
/// schema).
fn harden(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
    Ok(())
}

/// Files SQLite keeps beside a database, and rolls into it or reads as part of it.
const SIDECARS: [&str; 3] = ["-journal", "-wal", "-shm"];

/// Refuses a database whose neighbourhood another user could shape: SQLite rolls a hot
/// `-journal` (or a `-wal`) it finds beside a database into it, whoever wrote it, whenever it
/// starts a read, so anyone who may create files in the database's directory could rewrite the
/// tracking tables and plant triggers. The directory (of the file itself, when the path is a
/// link) must belong to this user, root or the database's owner, and be writable by its owner
/// alone (no group or other write, sticky or not); sidecars present must be regular files of
/// the database's owner, this user or root.
pub fn check_surroundings(path: &Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let me = rustix::process::geteuid().as_raw();
    let owner = std::fs::metadata(path).map_or(me, |meta| meta.uid());
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    for file in [path, real.as_path()] {
        let dir = match file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let Ok(dir_meta) = std::fs::metadata(dir) else {
            return Ok(()); // Opening fails with its own error.
        };
        if dir_meta.mode() & 0o022 != 0 {
            return Err(format!(
                "its directory {} is writable by other users (group or every user), who could \
                 plant a journal that SQLite would roll into the database; keep the database in \
                 a directory only its owner can write (chmod go-w)",
                dir.display()
            ));
        }
        if ![me, 0, owner].contains(&dir_meta.uid()) {
            return Err(format!(
                "its directory {} belongs to another user than the database's, who could plant \
                 a journal that SQLite would roll into the database",
                dir.display()
            ));
        }
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    for suffix in SIDECARS {
        let sidecar = dir.join(format!("{name}{suffix}"));
        let Ok(meta) = std::fs::symlink_metadata(&sidecar) else {
            continue;
        };
        if !meta.is_file() || ![owner, me, 0].contains(&meta.uid()) {
            return Err(format!(
                "{} is not a regular file of the database's owner: SQLite would read it as part \
                 of the database; remove it if you did not make it",
                sidecar.display()
            ));
        }
    }
    Ok(())
}

fn open_error(path: &Path, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::OpenDatabase {
        path: path.to_owned(),
        source: source.into(),
    }
}
