//! `repair` on a server: accept the files as they are now for applied migrations whose file
//! changed (or that were recorded without a checksum), as on SQLite: their rows take the files'
//! checksums, under the lock, in one transaction on the host's session. A server stores no
//! components, so there is nothing else to write.

use super::{ServerProject, server_error};
use crate::error::Result;

impl ServerProject {
    /// The versions whose recorded checksum now names their file.
    ///
    /// # Errors
    /// [`crate::Error::Server`]; a changed file that is another migration (its name differs)
    /// is refused, as on SQLite.
    pub fn repair(&self) -> Result<Vec<u64>> {
        let migrator = self.migrator()?;
        let mut server = self.open()?;
        server.lock(self.lock_wait).map_err(server_error)?;
        let rows = server.migrations().map_err(server_error)?;
        let assessment = crate::assess::assess(&rows, migrator.migrations());
        crate::migrator::refuse_reused(&assessment)?;
        let mut versions: Vec<u64> = assessment
            .changed
            .iter()
            .map(|changed| changed.row.version)
            .chain(assessment.unrecorded.iter().map(|(row, _)| row.version))
            .collect();
        versions.sort_unstable();
        let mut accepted = Vec::with_capacity(versions.len());
        for &version in &versions {
            let file = migrator.component(version)?;
            tracing::info!(
                "migration {version}: now accepting {} (sha256 {})",
                file.path().display(),
                file.checksum()
            );
            accepted.push((version, file.checksum()));
        }
        server.set_checksums(&accepted).map_err(server_error)?;
        Ok(versions)
    }
}
