//! Work on an open database besides running migrations: `status`, `gc` and `repair`.

use rusqlite::Connection;

use super::*;

impl Migrator {
    /// The database's migration state as seen from these components; `db` is `None` when the
    /// database file does not exist yet (everything is pending). When no other process holds
    /// the migration lock, attempts left `running` by a dead process are marked interrupted.
    ///
    /// # Errors
    /// [`Error::Sqlite`] when the tracking tables cannot be read,
    /// [`Error::IncompatibleTracking`] when they are not ours.
    pub fn status(&self, db: Option<&Database>) -> Result<Status> {
        let backup_dir = db
            .and_then(Database::path)
            .map(|path| self.backup_dir(path));
        crate::status::read_status(&self.migrations, &[], db, backup_dir.as_deref())
    }

    /// Drops stored components no applied migration uses and compacts the database file
    /// (`VACUUM`), under the migration lock (`hsm-host gc`). Returns the rows dropped and the
    /// file's size before and after.
    ///
    /// # Errors
    /// [`Error::Locked`], [`Error::Sqlite`].
    pub fn gc(&self, db: &Database) -> Result<GcReport> {
        let _lock = self.lock(db)?;
        let conn = db.connection();
        let size = |conn: &Connection| -> Result<u64> {
            let pages: i64 = conn
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .context("cannot read the page count")?;
            let page: i64 = conn
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .context("cannot read the page size")?;
            Ok((pages * page) as u64)
        };
        let before = size(&conn)?;
        let dropped = match db.tracking().exists(&conn)? {
            true => db.tracking().drop_unused_components(&conn)?,
            false => 0,
        };
        conn.execute_batch("VACUUM")
            .context("cannot compact the database (VACUUM)")?;
        Ok(GcReport {
            components_dropped: dropped,
            bytes_before: before,
            bytes_after: size(&conn)?,
            compile_cache: None,
        })
    }

    /// Accepts the component files as they are now for applied migrations whose file changed
    /// (`hsm-host repair`): records their checksums and stores their bytes. Returns the versions
    /// updated.
    ///
    /// # Errors
    /// [`Error::Locked`], [`Error::Sqlite`].
    pub fn repair(&self, db: &Database) -> Result<Vec<u64>> {
        let _lock = self.lock(db)?;
        let conn = db.connection();
        db.tracking().ensure_tables(&conn)?;
        let now = time::now_iso();
        let rows = db.tracking().migrations(&conn)?;
        let assessment = assess(&rows, &self.migrations);
        // Another migration at an applied version is not a changed file to accept.
        super::refuse_reused(&assessment)?;
        let mut to_record: Vec<u64> = assessment
            .changed
            .iter()
            .map(|changed| changed.row.version)
            .chain(assessment.unrecorded.iter().map(|(row, _)| row.version))
            .collect();
        to_record.sort_unstable();
        let mut repaired = Vec::new();
        for version in to_record {
            let file = self.component(version)?;
            step::store_component(db.tracking(), &conn, file, &now)?;
            db.tracking()
                .set_checksum(&conn, version, &file.checksum())?;
            tracing::info!(
                "migration {version}: now accepting {} (sha256 {})",
                file.path().display(),
                file.checksum()
            );
            repaired.push(version);
        }
        db.tracking().drop_unused_components(&conn)?;
        Ok(repaired)
    }
}
