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
        "table `{table}` exists but has no column `{column}`: this database's tracking tables \
         were not made by hsm-host or the Node migration tool, so hsm-host will not touch them"
    )]
    IncompatibleTracking {
        /// `migrations` or `migration_history`.
        table: &'static str,
        /// The missing column.
        column: &'static str,
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

    /// A file is not a usable migration component.
    #[error("{path}: {reason}")]
    InvalidComponent {
        /// The file.
        path: PathBuf,
        /// What is wrong with it, and what to do.
        reason: String,
    },

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

    /// The wasm engine could not be set up.
    #[error("cannot start the wasm runtime: {0}")]
    Runtime(String),

    /// What was asked cannot be planned (unknown target, irreversible step, ...).
    #[error(transparent)]
    Plan(#[from] PlanError),

    /// A migration returned an error or trapped; its transaction was rolled back.
    #[error("migration {version} ({name}) failed during {direction}: {cause}")]
    MigrationFailed {
        /// The migration's version.
        version: u64,
        /// The migration's name.
        name: String,
        /// `up` or `down`.
        direction: Direction,
        /// The guest's message, or the trap and what the guest printed before it.
        cause: String,
    },
}

impl Error {
    /// Whether the error is the operator's request being wrong (exit code 2) rather than
    /// something failing (exit code 1).
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Plan(plan) if plan.is_usage())
    }

    pub(crate) fn sqlite(context: impl Into<String>, source: rusqlite::Error) -> Self {
        Error::Sqlite {
            context: context.into(),
            source,
        }
    }
}

/// Adds the host's context to a rusqlite result.
pub(crate) trait SqliteContext<T> {
    fn context(self, context: impl Into<String>) -> Result<T>;
}

impl<T> SqliteContext<T> for rusqlite::Result<T> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|source| Error::sqlite(context, source))
    }
}
