//! `adopt` on a server: the history another tool (diesel, sqlx, golang-migrate, dbmate, goose,
//! Flyway, refinery, Prisma, pop) keeps in the database's `public` schema, read on the host's
//! session and matched against the set as on SQLite; the versions it applied are recorded as
//! applied without running them.

use hsm_postgres::Server;

use super::{ServerProject, server_error};
use crate::adopt::HistorySource;
use crate::error::{Error, Result};
use crate::migrator::AdoptReport;

/// The host's session as a [`HistorySource`].
struct Public<'a>(&'a mut Server);

impl HistorySource for Public<'_> {
    fn columns(&mut self, table: &str) -> Result<Vec<String>> {
        self.0.public_columns(table).map_err(server_error)
    }

    fn table(&self, table: &str) -> String {
        format!("public.{}", hsm_postgres::schema::ident(table))
    }

    fn hex(&self, column: &str) -> String {
        format!("pg_catalog.encode({column}, 'hex')")
    }

    fn rows(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        self.0.texts(sql).map_err(server_error)
    }
}

/// What no tool's history looks like, with the way forward.
const NO_HISTORY: &str = "no history table of diesel, sqlx, golang-migrate, dbmate, goose, \
    Flyway, refinery, Prisma or pop was found in the public schema (for a database without any \
    history, use `baseline VERSION`)";

impl ServerProject {
    /// Records as applied, without running them, the migrations another tool applied, read
    /// from its history table (left untouched). Stops, recording nothing, on any mismatch.
    ///
    /// # Errors
    /// [`Error::Adopt`] with every mismatch, or when no tool's history is there;
    /// [`Error::Server`].
    pub fn adopt(&self, dry_run: bool) -> Result<AdoptReport> {
        let migrator = self.migrator()?;
        let mut server = self.open()?;
        server.lock(self.lock_wait).map_err(server_error)?;
        let foreign = crate::adopt::find_in(&mut Public(&mut server))?
            .ok_or_else(|| Error::Adopt(NO_HISTORY.into()))?;
        let tool = foreign.tool.as_str();
        let applied = crate::migrator::adoption::adopted_versions(migrator.migrations(), foreign)?;
        let versions: Vec<u64> = applied.into_iter().collect();
        super::baseline::record_without_running(
            &mut server,
            &migrator,
            &versions,
            Some(tool),
            dry_run,
        )
    }
}

/// Refuses `up` from nothing on a database another tool migrated: every migration would run
/// again over tables that are there.
pub(super) fn refuse_unadopted(server: &mut Server, ours: usize) -> Result<()> {
    if ours > 0 {
        return Ok(());
    }
    let Some(foreign) = crate::adopt::find_in(&mut Public(server))? else {
        return Ok(());
    };
    match crate::migrator::adoption::unadopted(&foreign) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}
