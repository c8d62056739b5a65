//! hsm-host's PostgreSQL backend.
//!
//! `hsm-host --database postgresql://…` runs the same components (and SQL files) on a
//! PostgreSQL server with the same promise as on SQLite: a migration runs only the SQL it is
//! allowed, and the host alone owns the transaction, the tracking tables and the lock. The
//! boundary is who the session is: guest SQL runs on a session that logs in as a migrator role
//! with no rights on the tracking tables (see [`schema`]); the tracking rows are written by
//! functions that refuse without a per-step secret only the host knows.

pub mod checks;
mod connect;
pub mod doctor;
mod dump;
mod errors;
mod guest;
mod numeric;
mod outside;
mod rehearsal;
pub mod schema;
mod server;
pub mod split;
mod step;
mod values;

pub use connect::{Target, is_server_url};
pub use dump::{DumpPlan, Dumped, dump};
pub use errors::{LOCK_NOT_AVAILABLE, mapped_code};
pub use outside::{Outside, is_concurrent_index, outside_statement};
pub use rehearsal::Rehearsal;
pub use server::Server;
pub use step::{Recorded, Step};

/// What went wrong on the way to (or on) the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line asked for something that cannot be.
    #[error("{0}")]
    Usage(String),
    /// The server could not be reached, or refused the login.
    #[error("cannot connect to {target}: {reason}")]
    Connect {
        /// The URL, without its password.
        target: String,
        /// Why.
        reason: String,
    },
    /// The tracking schema is not there (or not readable by this role).
    #[error(
        "{target} has no usable hsm-host schema {schema:?} ({reason}): run `hsm-host pg init \
         --database <a superuser's URL>` once, then connect as the host role it names"
    )]
    NotInitialized {
        /// The URL, without its password.
        target: String,
        /// The schema looked for.
        schema: String,
        /// What the server said.
        reason: String,
    },
    /// Another process holds the migration lock.
    #[error(
        "another hsm-host is migrating {target} (it holds the advisory lock); wait for it to \
         finish and run the command again"
    )]
    Locked {
        /// The URL, without its password.
        target: String,
    },
    /// A statement of the host's own failed.
    #[error("cannot {what}: {reason}")]
    Query {
        /// What the host was doing.
        what: String,
        /// What the server said.
        reason: String,
    },
}

impl Error {
    pub(crate) fn query(what: &str, error: postgres::Error) -> Self {
        Error::Query {
            what: what.to_owned(),
            reason: errors::describe(&error),
        }
    }

    /// Whether the operator asked for something impossible (exit code 2).
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Usage(_) | Error::NotInitialized { .. })
    }
}
