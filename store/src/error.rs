//! The library's error type: every variant names what failed and where.

use std::path::PathBuf;

use crate::plan::{Direction, PlanError};

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in hsm-host.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database file could not be opened or prepared.
    #[error("cannot open database {path}: {source}")]
    OpenDatabase {
        /// The database file.
        path: PathBuf,
        /// What SQLite or the file system said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The command needs a database that is not there (it is not created for it).
    #[error("database {} does not exist: {action}", path.display())]
    NoDatabase {
        /// The database file.
        path: PathBuf,
        /// Why it is needed, e.g. `there is nothing to back up`.
        action: &'static str,
    },

    /// A statement of the host's own failed.
    #[error("{context}: {source}")]
    Sqlite {
        /// What the host was doing, including the SQL where it helps.
        context: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },

    /// The tracking tables exist but do not have the columns hsm-host needs.
    #[error(
        "table `{table}` exists but has no column `{column}`: it was not made by hsm-host or the \
         Node migration tool, so hsm-host will not touch it. If the application owns this table, \
         keep hsm-host's tables under other names with a tracking prefix (--tracking-prefix hsm_)"
    )]
    IncompatibleTracking {
        /// The table (`migrations` or `migration_history`, with the tracking prefix).
        table: String,
        /// The missing column.
        column: &'static str,
    },

    /// The database is tracked by hsm-host under other table names than the ones asked for:
    /// creating a second set would run every migration again.
    #[error("{}", tracked_elsewhere(found, configured))]
    TrackedElsewhere {
        /// The prefix of the tables found (`""`: the default names).
        found: String,
        /// The prefix asked for.
        configured: String,
    },

    /// `hsm-host new` could not make the migration.
    #[error("cannot make the new migration: {0}")]
    Scaffold(String),

    /// A fleet's targets file cannot be used.
    #[error("{0}")]
    Fleet(String),

    /// A key or a trust file cannot be used (the operator's setup: exit code 2).
    #[error("{0}")]
    Signing(String),

    /// A component's signatures do not satisfy the trust file: unsigned, tampered, signed by
    /// no trusted key (or too few), or by a revoked one. Nothing ran.
    #[error("{subject} is refused: {reason}")]
    Untrusted {
        /// The component: its file, or the stored component of a version.
        subject: String,
        /// Why, for the operator.
        reason: String,
    },

    /// `hsm-host export` could not write a stored component back out.
    #[error("cannot export: {0}")]
    Export(String),

    /// A tracking prefix that cannot name a table safely.
    #[error("invalid tracking prefix `{prefix}`: {reason}")]
    InvalidTrackingPrefix {
        /// The prefix given (escaped).
        prefix: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The migrations directory could not be read.
    #[error("cannot read migrations from {path}: {source}")]
    ReadMigrations {
        /// The directory or file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// `up` was pointed at a directory that holds no migrations.
    #[error("{} holds no migrations (no .wasm components, no SQL migration files){}{}", path.display(), unread(seen), hint(found))]
    NoMigrations {
        /// The directory.
        path: PathBuf,
        /// Its `.sql` files that are not named as any layout names migrations.
        seen: Vec<String>,
        /// Directories below it that hold SQL or component files.
        found: Vec<PathBuf>,
    },

    /// A file is not a usable migration component.
    #[error("{path}: {reason}")]
    InvalidComponent {
        /// The file.
        path: PathBuf,
        /// What is wrong with it, and what to do.
        reason: String,
    },

    /// A set of plain SQL migrations cannot be read or packed.
    #[error("{path}: {reason}")]
    SqlSet {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },

    /// Another tool's history cannot be adopted as it is.
    #[error("cannot adopt this database: {0}")]
    Adopt(String),

    /// Two components declare the same version.
    #[error("{first} and {second} both declare version {version}: versions must be unique")]
    DuplicateVersion {
        /// The clashing version.
        version: u64,
        /// One of the files.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },

    /// Another process holds the migration lock and did not release it in time.
    #[error(
        "another hsm-host holds the migration lock {path} ({holder}); gave up after {} s \
         (wait longer with --lock-timeout)", waited.as_secs()
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// Who holds it: pid, host and since when.
        holder: String,
        /// How long this process waited.
        waited: std::time::Duration,
    },

    /// The lock file could not be used.
    #[error("cannot use the lock file {path}: {source}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A backup could not be written. Nothing was changed.
    #[error("cannot write a backup to {path}: {reason}; the database was not changed")]
    Backup {
        /// The backup file or directory.
        path: PathBuf,
        /// What failed.
        reason: String,
    },

    /// The backup filesystem lacks room for a backup. Nothing was written.
    #[error(
        "not enough free space for a backup in {dir}: {} needed, {} free; \
         remove old backups, choose another --backup-dir, or (at your own risk) --no-backup",
        human_bytes(*needed), human_bytes(*available)
    )]
    NoSpace {
        /// The backup directory.
        dir: PathBuf,
        /// Bytes needed.
        needed: u64,
        /// Bytes free.
        available: u64,
    },

    /// The database failed its integrity or foreign-key check before the run; nothing changed.
    #[error(
        "{} {problems}; nothing was changed. {}",
        path.as_ref().map_or("the database:".to_owned(), |p| format!("database {}:", p.display())),
        restore_hint(newest_backup.as_deref())
    )]
    Damaged {
        /// The database file.
        path: Option<PathBuf>,
        /// What the checks found.
        problems: String,
        /// The newest backup of this database, to restore.
        newest_backup: Option<PathBuf>,
    },

    /// The integrity check failed after the run.
    #[error(
        "integrity_check failed after the run: {problems}. {}",
        restore_hint(backup.as_deref())
    )]
    DamagedAfterRun {
        /// What the check found.
        problems: String,
        /// The backup taken before this run.
        backup: Option<PathBuf>,
        /// The versions the run applied (or rolled back), committed before the check.
        completed: Vec<u64>,
    },

    /// The file at an applied migration's version is another migration (another name): the
    /// directory's numbering changed, and accepting it would run its SQL as if it were new.
    #[error(
        "migration {version} was applied as `{applied}`, but the file at that version, {}, is \
         `{found}`: the directory's numbering changed (a file added or renamed before it?). Put \
         the files back as they were applied; `hsm-host repair` does not accept another \
         migration in an applied one's place",
        file.display()
    )]
    VersionReused {
        /// The version.
        version: u64,
        /// The name it was applied under.
        applied: String,
        /// The file at that version now.
        file: PathBuf,
        /// The name of the migration in that file.
        found: String,
    },

    /// An applied migration's component file is not the one that was applied.
    #[error(
        "migration {version} ({name}) was applied as sha256 {recorded}, but {} now has \
         sha256 {found}{}: put the original file back, or run `hsm-host repair` to accept the \
         file as it is now", file.display(), digests_note(found)
    )]
    ComponentChanged {
        /// The migration's version.
        version: u64,
        /// Its name.
        name: String,
        /// The component file found now.
        file: PathBuf,
        /// The sha256 recorded when it was applied (a SQL migration's: its files').
        recorded: String,
        /// The sha256 of the file now (a SQL migration's: its files').
        found: String,
    },

    /// A file given to `restore` cannot be restored; nothing was changed.
    #[error("will not restore {path}: {reason}; the database was not changed")]
    RestoreRefused {
        /// The file given.
        path: PathBuf,
        /// Why not.
        reason: String,
    },

    /// Replacing the database file failed.
    #[error("restore failed at {path}: {source}")]
    Restore {
        /// The file being written or removed.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// The wasm engine could not be set up.
    #[error("cannot start the wasm runtime: {0}")]
    Runtime(String),

    /// What was asked cannot be planned (unknown target, irreversible step, ...).
    #[error(transparent)]
    Plan(#[from] PlanError),

    /// A database server (the backend `hsm-host` chose for a URL) refused or failed; `usage`
    /// when the command line asked for what cannot be.
    #[error("{message}")]
    Server {
        /// What went wrong, for the operator.
        message: String,
        /// Whether it is the operator's request (exit code 2).
        usage: bool,
    },

    /// A migration returned an error or trapped; its transaction was rolled back. Steps of the
    /// same run before it stay done (each had its own transaction).
    #[error(
        "migration {version} ({name}) failed during {direction}: {cause}{}",
        completed_note(*direction, completed)
    )]
    MigrationFailed {
        /// The migration's version.
        version: u64,
        /// The migration's name.
        name: String,
        /// `up` or `down`.
        direction: Direction,
        /// The guest's message, or the trap and what the guest printed before it.
        cause: String,
        /// The versions this run applied (or rolled back) before the failure, in order: they
        /// stay so.
        completed: Vec<u64>,
        /// SQLite's result code, when the migration failed with an error SQLite gave it.
        sqlite_code: Option<i32>,
        /// The backup taken before this run, if one was: the way back to where it began.
        backup: Option<PathBuf>,
    },
}

impl Error {
    /// The kind of error in snake_case, as `--json` reports it: `migration_failed`, `locked`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Error::OpenDatabase { .. } => "open_database",
            Error::NoDatabase { .. } => "no_database",
            Error::Sqlite { .. } => "sqlite",
            Error::IncompatibleTracking { .. } => "incompatible_tracking",
            Error::TrackedElsewhere { .. } => "tracked_elsewhere",
            Error::Scaffold(_) => "scaffold",
            Error::Fleet(_) => "fleet",
            Error::Signing(_) => "signing",
            Error::Untrusted { .. } => "untrusted_component",
            Error::Export(_) => "export",
            Error::InvalidTrackingPrefix { .. } => "invalid_tracking_prefix",
            Error::ReadMigrations { .. } => "read_migrations",
            Error::NoMigrations { .. } => "no_migrations",
            Error::InvalidComponent { .. } => "invalid_component",
            Error::SqlSet { .. } => "sql_set",
            Error::Adopt(_) => "adopt",
            Error::DuplicateVersion { .. } => "duplicate_version",
            Error::Locked { .. } => "locked",
            Error::Lock { .. } => "lock",
            Error::Backup { .. } => "backup",
            Error::NoSpace { .. } => "no_space",
            Error::Damaged { .. } => "damaged",
            Error::DamagedAfterRun { .. } => "damaged_after_run",
            Error::ComponentChanged { .. } => "component_changed",
            Error::VersionReused { .. } => "version_reused",
            Error::RestoreRefused { .. } => "restore_refused",
            Error::Restore { .. } => "restore",
            Error::Runtime(_) => "runtime",
            Error::Plan(_) => "plan",
            Error::MigrationFailed { .. } => "migration_failed",
            Error::Server { .. } => "server",
        }
    }

    /// Whether the error is the operator's request being wrong (exit code 2) rather than
    /// something failing (exit code 1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::NoDatabase { .. }
                | Error::NoMigrations { .. }
                | Error::Scaffold(_)
                | Error::Fleet(_)
                | Error::Signing(_)
        ) || matches!(self, Error::Plan(plan) if plan.is_usage())
            // A migrations directory that is not there: the wrong --migrations.
            || matches!(self, Error::ReadMigrations { source, .. }
                if source.kind() == std::io::ErrorKind::NotFound)
            || matches!(self, Error::Server { usage: true, .. })
    }

    /// A SQLite failure, with what the host was doing.
    pub fn sqlite(context: impl Into<String>, source: rusqlite::Error) -> Self {
        Error::Sqlite {
            context: context.into(),
            source,
        }
    }
}

/// Adds the host's context to a rusqlite result.
pub trait SqliteContext<T> {
    /// The error with `context` (what the host was doing).
    fn context(self, context: impl Into<String>) -> Result<T>;
}

impl<T> SqliteContext<T> for rusqlite::Result<T> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|source| Error::sqlite(context, source))
    }
}

/// `1.5 MiB`-style sizes for messages.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn restore_hint(backup: Option<&std::path::Path>) -> String {
    match backup {
        Some(path) => format!("Restore a backup: hsm-host restore {}", path.display()),
        None => "No backup of this database was found to restore.".to_owned(),
    }
}

fn tracked_elsewhere(found: &str, configured: &str) -> String {
    let names = |prefix: &str| format!("`{prefix}migrations` and `{prefix}migration_history`");
    let how = if found.is_empty() {
        "run without --tracking-prefix (and HSM_TRACKING_PREFIX unset)".to_owned()
    } else {
        format!("run with --tracking-prefix {found}")
    };
    format!(
        "this database is tracked by hsm-host in {}, not in {}: {how}; creating new tracking \
         tables would run every migration again",
        names(found),
        names(configured)
    )
}

fn completed_note(direction: Direction, completed: &[u64]) -> String {
    let Some(last) = completed.last() else {
        return String::new();
    };
    // A long run (hundreds of migrations) is said by its count, its first and its last.
    let versions: Vec<String> = match completed.len() {
        0..=8 => completed.iter().map(u64::to_string).collect(),
        n => vec![format!("{n} migrations, {} to {last}", completed[0])],
    };
    let done = match direction {
        Direction::Up => "applied",
        Direction::Down => "rolled back",
    };
    format!(
        " (this run {done} {} before it, which stay{}; the last was {last})",
        versions.join(", "),
        if completed.len() == 1 { "s" } else { "" }
    )
}

/// `; its .sql files … are not named as migrations` when it has some.
fn unread(seen: &[String]) -> String {
    if seen.is_empty() {
        return String::new();
    }
    let shown: Vec<&str> = seen.iter().take(5).map(String::as_str).collect();
    format!(
        "; its {} .sql file(s) ({}{}) are not named as any layout names migrations: a \
         migration's name starts with its version (`0001_init.sql`), or describe the \
         directory's own naming with --layout (e.g. '{{name}}_v{{version}}.sql')",
        seen.len(),
        shown.join(", "),
        if seen.len() > shown.len() {
            ", …"
        } else {
            ""
        }
    )
}

/// `; migrations are in: a, b (pass one with --migrations)` when directories below hold some.
fn hint(found: &[PathBuf]) -> String {
    if found.is_empty() {
        return "; make the first one with `hsm-host new NAME` (a Rust crate; --sql, --python or \
                --js for the others)"
            .to_owned();
    }
    let list: Vec<String> = found.iter().map(|p| p.display().to_string()).collect();
    format!(
        "; these directories below it hold some: {} (pass one with --migrations)",
        list.join(", ")
    )
}

/// Says how a SQL migration with a down file of its own is recorded: two digests.
fn digests_note(found: &str) -> &'static str {
    match found.contains('+') {
        true => " (its up file's, then its down file's)",
        false => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_run_is_said_by_its_count_and_ends() {
        // Found on crates.io's and lemmy's sets: one line listed ~250 versions.
        let many: Vec<u64> = (1..=246).collect();
        assert_eq!(
            completed_note(Direction::Up, &many),
            " (this run applied 246 migrations, 1 to 246 before it, which stay; the last was 246)"
        );
        assert_eq!(
            completed_note(Direction::Down, &[3, 2]),
            " (this run rolled back 3, 2 before it, which stay; the last was 2)"
        );
        assert_eq!(completed_note(Direction::Up, &[]), "");
    }
}
