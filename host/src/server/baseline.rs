//! `baseline VERSION` on a server: a database whose schema is already there (made by hand, or
//! by a tool whose history hsm-host does not read) records the set's migrations up to VERSION
//! as applied without running them. `adopt` records what another tool's history says the same
//! way ([`record_without_running`]).

use std::collections::BTreeSet;

use hsm_postgres::{Recorded, Server};

use super::{ServerProject, server_error};
use crate::error::{Error, Result};
use crate::migrator::{AdoptReport, Migrator};

impl ServerProject {
    /// Records every migration up to `version` as applied without running it.
    ///
    /// # Errors
    /// [`Error::Adopt`] when no migration has that version; [`Error::Server`].
    pub fn baseline(&self, version: u64, dry_run: bool) -> Result<AdoptReport> {
        let migrator = self.migrator()?;
        if !migrator.migrations().iter().any(|c| c.version() == version) {
            return Err(Error::Adopt(format!(
                "no migration has version {version}; a baseline names the last migration the \
                 database already has"
            )));
        }
        let mut server = self.open()?;
        server.lock(self.lock_wait).map_err(server_error)?;
        let versions: Vec<u64> = migrator
            .migrations()
            .iter()
            .map(|c| c.version())
            .filter(|v| *v <= version)
            .collect();
        record_without_running(&mut server, &migrator, &versions, None, dry_run)
    }
}

/// Records `versions` as applied without running them (each with an `adopted` history row),
/// leaving those hsm-host already has a row for as they are: once it has run a version, its
/// own history is the truth.
pub(super) fn record_without_running(
    server: &mut Server,
    migrator: &Migrator,
    versions: &[u64],
    tool: Option<&'static str>,
    dry_run: bool,
) -> Result<AdoptReport> {
    let ours: BTreeSet<u64> = server
        .migrations()
        .map_err(server_error)?
        .iter()
        .map(|row| row.version)
        .collect();
    let (already, recorded): (Vec<u64>, Vec<u64>) = versions.iter().partition(|v| ours.contains(v));
    let report = AdoptReport {
        tool,
        recorded,
        already,
        dry_run,
    };
    if dry_run || report.recorded.is_empty() {
        return Ok(report);
    }
    let entries: Vec<(u64, Recorded<'_>)> = report
        .recorded
        .iter()
        .filter_map(|v| migrator.migrations().iter().find(|c| c.version() == *v))
        .map(|info| {
            (
                info.version(),
                Recorded {
                    name: &info.metadata.name,
                    description: &info.metadata.description,
                    checksum: &info.checksum,
                },
            )
        })
        .collect();
    server.record_adopted(&entries).map_err(server_error)?;
    Ok(report)
}
