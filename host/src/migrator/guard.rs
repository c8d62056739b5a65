//! What guards a run that writes: the migration lock, the checks before it, and the backup
//! (with the ones retention must keep).

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::*;

impl Migrator {
    pub(super) fn lock(&self, db: &Database) -> Result<Option<MigrationLock>> {
        db.path()
            .map(|path| lock::acquire(path, self.safety.lock_timeout))
            .transpose()
    }

    /// Refuses a database that fails the integrity or foreign-key check, naming the newest
    /// backup to restore.
    pub(super) fn preflight(&self, db: &Database, conn: &Connection) -> Result<()> {
        let problems = integrity::problems(conn, self.safety.quick_check);
        let violations = if problems.is_empty() {
            integrity::foreign_key_violations(conn)?
        } else {
            Vec::new()
        };
        if problems.is_empty() && violations.is_empty() {
            return Ok(());
        }
        let problems = if problems.is_empty() {
            format!(
                "foreign_key_check found {} violation(s): {}",
                violations.len(),
                integrity::summarize(&violations)
            )
        } else {
            format!(
                "integrity_check failed: {}",
                integrity::summarize(&problems)
            )
        };
        Err(Error::Damaged {
            path: db.path().map(ToOwned::to_owned),
            problems,
            newest_backup: self.newest_backup(db),
        })
    }

    pub(super) fn newest_backup(&self, db: &Database) -> Option<PathBuf> {
        let path = db.path()?;
        let dir = self.backup_dir(path);
        backup::list(path, &dir, db.tracking())
            .ok()?
            .into_iter()
            .next()
            .map(|b| b.path)
    }

    /// The backup taken before each applied migration that cannot be rolled back (its row's
    /// `backup_path`): restoring it is the only way back past that migration, so it is kept
    /// beyond `--keep-backups`. A migration whose file is gone counts as irreversible.
    pub(crate) fn backups_that_matter(
        &self,
        db: &Database,
        conn: &Connection,
    ) -> Result<Vec<PathBuf>> {
        if !db.tracking().exists(conn)? {
            return Ok(Vec::new());
        }
        Ok(db
            .tracking()
            .migrations(conn)?
            .into_iter()
            .filter(|row| row.status == RowStatus::Applied)
            .filter(|row| {
                self.file_component(row.version)
                    .is_none_or(|file| !file.metadata.reversible)
            })
            .filter_map(|row| row.backup_path.map(PathBuf::from))
            .collect())
    }

    /// Where this database's backups are (also with `--no-backup`, to list old ones).
    pub fn backup_dir(&self, database: &Path) -> PathBuf {
        self.safety
            .backups
            .clone()
            .unwrap_or_default()
            .dir_for(database)
    }

    pub(super) fn take_backup(&self, db: &Database, conn: &Connection) -> Result<Option<PathBuf>> {
        let Some(path) = db.path() else {
            return Ok(None);
        };
        match &self.safety.backups {
            Some(config) => {
                let keep_also = self.backups_that_matter(db, conn)?;
                backup::create_keeping(conn, path, config, &keep_also).map(Some)
            }
            None => {
                tracing::warn!(
                    "NO BACKUP: --no-backup was given, so nothing can undo this run but the \
                     migrations' own down steps"
                );
                Ok(None)
            }
        }
    }
}
