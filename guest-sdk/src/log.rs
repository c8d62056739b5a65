//! Messages for the operator, written to the host's log with the migration's version.

use crate::bindings::hsm::migration::log::{self as host, Level};

/// Logs at debug level (shown with `hsm-host -v`).
pub fn debug(message: &str) {
    host::log(Level::Debug, message);
}

/// Logs at info level.
pub fn info(message: &str) {
    host::log(Level::Info, message);
}

/// Logs a warning.
pub fn warn(message: &str) {
    host::log(Level::Warn, message);
}

/// Logs an error. Returning an `Err` from `up`/`down` is what fails the migration; this only logs.
pub fn error(message: &str) {
    host::log(Level::Error, message);
}

/// Reports progress of a long data migration: `done` of `total` units (`total` 0 if unknown).
pub fn progress(done: u64, total: u64) {
    host::progress(done, total);
}
