//! [`Status`]: where a database stands, for `hsm-host status` (human or `--json`).

use std::path::PathBuf;

use serde::Serialize;

use crate::backup::BackupInfo;
use crate::database::Database;
use crate::error::Result;
use crate::runtime::MigrationComponent;
use crate::tracking::{self, HistoryRow, MigrationRow};

/// How many history rows status shows.
pub const HISTORY_ROWS: u32 = 10;

/// A migration that has a component but is not applied.
#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    pub version: u64,
    pub name: String,
    pub description: String,
    pub reversible: bool,
    pub file: PathBuf,
    /// Whether it was applied once and rolled back since.
    pub rolled_back: bool,
}

/// The state of one database.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The file, `None` for an in-memory database.
    pub database: Option<PathBuf>,
    /// Whether the database file exists yet.
    pub exists: bool,
    /// The highest applied version, 0 when none.
    pub current_version: u64,
    /// Applied migrations, by version.
    pub applied: Vec<MigrationRow>,
    /// Migrations waiting to be applied, by version.
    pub pending: Vec<Pending>,
    /// Applied versions whose component is not in the migrations directory.
    pub missing_components: Vec<u64>,
    /// Applied versions whose component file differs from the one applied.
    pub changed_components: Vec<u64>,
    /// Versions whose attempt was found interrupted (process died) and marked failed now.
    pub interrupted: Vec<u64>,
    /// This database's backups, newest first.
    pub backups: Vec<BackupInfo>,
    /// The newest history rows, newest first.
    pub history: Vec<HistoryRow>,
}

impl Status {
    pub(crate) fn read(components: &[MigrationComponent], db: Option<&Database>) -> Result<Self> {
        let (rows, history) = match db {
            Some(db) => {
                let conn = db.connection();
                tracking::check_columns(&conn)?;
                if tracking::exists(&conn)? {
                    (
                        tracking::migrations(&conn)?,
                        tracking::recent_history(&conn, HISTORY_ROWS)?,
                    )
                } else {
                    (Vec::new(), Vec::new())
                }
            }
            None => (Vec::new(), Vec::new()),
        };
        let applied: Vec<MigrationRow> = rows
            .iter()
            .filter(|row| row.status == tracking::APPLIED)
            .cloned()
            .collect();
        let pending = components
            .iter()
            .filter(|c| !applied.iter().any(|row| row.version == c.version()))
            .map(|c| Pending {
                version: c.version(),
                name: c.metadata().name.clone(),
                description: c.metadata().description.clone(),
                reversible: c.metadata().reversible,
                file: c.path().to_owned(),
                rolled_back: rows
                    .iter()
                    .any(|row| row.version == c.version() && row.status == tracking::ROLLED_BACK),
            })
            .collect();
        let missing_components = applied
            .iter()
            .map(|row| row.version)
            .filter(|v| !components.iter().any(|c| c.version() == *v))
            .collect();
        let changed_components = applied
            .iter()
            .filter(|row| {
                let file = components.iter().find(|c| c.version() == row.version);
                matches!((&row.checksum, file), (Some(recorded), Some(file)) if recorded != file.checksum())
            })
            .map(|row| row.version)
            .collect();
        Ok(Self {
            database: db.and_then(|db| db.path().map(ToOwned::to_owned)),
            exists: db.is_some(),
            current_version: applied.last().map_or(0, |row| row.version),
            applied,
            pending,
            missing_components,
            changed_components,
            interrupted: Vec::new(),
            backups: Vec::new(),
            history,
        })
    }
}
