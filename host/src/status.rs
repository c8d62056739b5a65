//! [`Status`]: where a database stands, for `hsm-host status` (human or `--json`).

use std::path::PathBuf;

use serde::Serialize;

use crate::backup::BackupInfo;
use crate::database::Database;
use crate::error::{Error, Result, SqliteContext};
use crate::runtime::ComponentInfo;
use crate::text;
use crate::tracking::{HistoryDirection, HistoryRow, HistoryStatus, MigrationRow};

/// How many history rows status shows.
pub const HISTORY_ROWS: u32 = 10;

/// A migration that has a component but is not applied.
#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    /// The migration's version.
    pub version: u64,
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Whether it has a down step.
    pub reversible: bool,
    /// The file it comes from.
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
    /// The space the database, its stored components and its backups take.
    pub storage: Storage,
    /// Whether the database is a server's (no file, no backups of hsm-host's own).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub server: bool,
    /// Component files not read yet: new to this machine's compile cache and not one the
    /// database applied (`status` never compiles; `up` reads them).
    pub unread_components: Vec<PathBuf>,
}

/// Disk space, in bytes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Storage {
    /// The database file (with its `-wal`, if any).
    pub database: u64,
    /// Of which the components kept for `down` (`hsm_components`).
    pub stored_components: u64,
    /// This database's backups.
    pub backups: u64,
    /// The compile cache, when it is known (`Project::status` measures it).
    pub compile_cache: Option<u64>,
}

impl Status {
    /// What needs the operator (`status --check` exits 1 for any of it): pending migrations,
    /// changed or missing component files, migrations whose last attempt failed or was
    /// interrupted. Empty when the database is up to date.
    pub fn needs_attention(&self) -> Vec<String> {
        let mut found = Vec::new();
        let mut say = |count: usize, what: &str| {
            if count > 0 {
                found.push(format!("{count} {what}"));
            }
        };
        say(self.pending.len(), "pending");
        say(self.unread_components.len(), "not read yet");
        say(self.changed_components.len(), "changed since applied");
        say(
            self.missing_components.len(),
            "applied with the file missing",
        );
        say(self.interrupted.len(), "interrupted");
        // A pending version whose newest attempt failed (once its file is gone, the failure
        // is history).
        let mut failed: Vec<u64> = Vec::new();
        let mut seen: Vec<u64> = Vec::new();
        for row in &self.history {
            if seen.contains(&row.version) {
                continue;
            }
            seen.push(row.version);
            let pending = self.pending.iter().any(|p| p.version == row.version);
            if row.status == HistoryStatus::Failed
                && pending
                && !self.interrupted.contains(&row.version)
            {
                failed.push(row.version);
            }
        }
        say(failed.len(), "failed");
        found
    }

    fn read(components: &[ComponentInfo], db: Option<&Database>) -> Result<Self> {
        let (rows, history) = match db {
            Some(db) => {
                let conn = db.connection();
                // One read transaction: the rows and the history come from the same snapshot
                // even while another process migrates (and the file is locked once, not per
                // statement). Inside a caller's open transaction, that one is the snapshot.
                let _snapshot = if conn.is_autocommit() {
                    Some(
                        rusqlite::Transaction::new_unchecked(
                            &conn,
                            rusqlite::TransactionBehavior::Deferred,
                        )
                        .context("cannot start a read transaction for the status")?,
                    )
                } else {
                    None
                };
                let tracking = db.tracking();
                tracking.check(&conn)?;
                if tracking.exists(&conn)? {
                    (
                        tracking.migrations(&conn)?,
                        tracking.recent_history(&conn, HISTORY_ROWS)?,
                    )
                } else {
                    (Vec::new(), Vec::new())
                }
            }
            None => (Vec::new(), Vec::new()),
        };
        let mut status = Self::from_rows(components, rows, history);
        status.database = db.and_then(|db| db.path().map(ToOwned::to_owned));
        status.exists = db.is_some();
        Ok(status)
    }

    /// The state a database's tracking rows and `history` give against `components`.
    pub(crate) fn from_rows(
        components: &[ComponentInfo],
        rows: Vec<MigrationRow>,
        history: Vec<HistoryRow>,
    ) -> Self {
        let assessment = crate::assess::assess(&rows, components);
        let applied: Vec<MigrationRow> = assessment
            .applied
            .iter()
            .map(|row| shown_row((*row).clone()))
            .collect();
        let history = history.into_iter().map(shown_history).collect();
        let pending = assessment
            .pending
            .iter()
            .map(|(c, rolled_back)| Pending {
                version: c.metadata.version,
                name: c.metadata.name.clone(),
                description: c.metadata.description.clone(),
                reversible: c.metadata.reversible,
                file: c.path.clone(),
                rolled_back: *rolled_back,
            })
            .collect();
        let missing_components = assessment.missing.clone();
        let changed_components = assessment.changed.iter().map(|c| c.row.version).collect();
        Self {
            database: None,
            exists: true,
            current_version: applied.last().map_or(0, |row| row.version),
            applied,
            pending,
            missing_components,
            changed_components,
            interrupted: Vec::new(),
            backups: Vec::new(),
            history,
            storage: Storage::default(),
            server: false,
            unread_components: Vec::new(),
        }
    }
}

/// A tracking row as shown: its text may come from an older tool or an older hsm-host that
/// stored what a migration said as it was, so it is escaped and capped here too.
fn shown_row(row: MigrationRow) -> MigrationRow {
    MigrationRow {
        name: text::neutralize(&row.name, text::MAX_NAME),
        description: row
            .description
            .map(|d| text::neutralize(&d, text::MAX_DESCRIPTION)),
        error_message: row
            .error_message
            .map(|e| text::neutralize(&e, text::MAX_MESSAGE)),
        applied_at: text::neutralize(&row.applied_at, MAX_STAMP),
        rolled_back_at: row.rolled_back_at.map(|t| text::neutralize(&t, MAX_STAMP)),
        backup_path: row
            .backup_path
            .map(|p| text::neutralize(&p, text::MAX_DESCRIPTION)),
        checksum: row.checksum.map(|c| text::neutralize(&c, MAX_CHECKSUM)),
        status: match row.status {
            crate::tracking::RowStatus::Other(other) => {
                crate::tracking::RowStatus::Other(text::neutralize(&other, MAX_STAMP))
            }
            known => known,
        },
        ..row
    }
}

/// Longest time stamp, status word or checksum shown from a tracking row: every column of a
/// row someone else wrote is shown escaped and capped, not only the free-text ones.
const MAX_STAMP: usize = 80;

/// Longest checksum shown whole: a SQL migration with a down file of its own is recorded by
/// two sha256 digests (`<up>+<down>`, 129 characters).
const MAX_CHECKSUM: usize = 160;

fn shown_history(row: HistoryRow) -> HistoryRow {
    HistoryRow {
        error_message: row
            .error_message
            .map(|e| text::neutralize(&e, text::MAX_MESSAGE)),
        direction: match row.direction {
            HistoryDirection::Other(other) => {
                HistoryDirection::Other(text::neutralize(&other, MAX_STAMP))
            }
            known => known,
        },
        status: match row.status {
            HistoryStatus::Other(other) => {
                HistoryStatus::Other(text::neutralize(&other, MAX_STAMP))
            }
            known => known,
        },
        backup_path: row
            .backup_path
            .map(|p| text::neutralize(&p, text::MAX_DESCRIPTION)),
        started_at: text::neutralize(&row.started_at, MAX_STAMP),
        completed_at: row.completed_at.map(|t| text::neutralize(&t, MAX_STAMP)),
        ..row
    }
}

/// The state of `db` (`None`: the file does not exist yet) against `components`, with this
/// database's backups in `backup_dir`. When no other process holds the migration lock,
/// attempts a dead process left (in the lock file, or `running`) are recorded as interrupted.
///
/// # Errors
/// [`crate::Error::Sqlite`] when the tracking tables cannot be read,
/// [`crate::Error::IncompatibleTracking`] when they are not ours.
pub(crate) fn read_status(
    known: &[ComponentInfo],
    unread: &[crate::source::Unread],
    db: Option<&Database>,
    backup_dir: Option<&std::path::Path>,
) -> Result<Status> {
    let mut interrupted = Vec::new();
    if let Some(db) = db {
        // The lock is probed only when an attempt looks unfinished (the lock file holds one,
        // or a row says `running`): a plain status reads.
        let running = {
            let conn = db.connection();
            db.tracking().exists(&conn)?
                && (db.path().and_then(crate::lock::left_attempt).is_some()
                    || db.tracking().has_running(&conn)?)
        };
        if running {
            let mut free = db.path().and_then(crate::lock::try_acquire);
            if free.is_some() || db.path().is_none() {
                interrupted = crate::lock::recover_interrupted(
                    db.tracking(),
                    &db.connection(),
                    free.as_mut(),
                )?;
            }
        }
    }
    let backups = match (
        db.and_then(|db| Some((db.path()?, db.tracking()))),
        backup_dir,
    ) {
        (Some((path, tracking)), Some(dir)) => crate::backup::list(path, dir, tracking)?,
        _ => Vec::new(),
    };
    let (components, unread) = name_unread(known, unread, db)?;
    let mut status = Status::read(&components, db)?;
    status.unread_components = unread;
    status.storage = Storage {
        database: db
            .and_then(Database::path)
            .map(|path| {
                let size = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
                let mut wal = path.as_os_str().to_owned();
                wal.push("-wal");
                size(path) + size(std::path::Path::new(&wal))
            })
            .unwrap_or(0),
        stored_components: match db {
            Some(db) => db.tracking().stored_components_size(&db.connection())?,
            None => 0,
        },
        backups: backups.iter().map(|b| b.size).sum(),
        compile_cache: None,
    };
    status.backups = backups;
    status.interrupted = interrupted;
    Ok(status)
}

/// The survey's components, with each unread file an applied migration's checksum names
/// described from its row; the files still unknown.
fn name_unread<'a>(
    known: &'a [ComponentInfo],
    files: &[crate::source::Unread],
    db: Option<&Database>,
) -> Result<(std::borrow::Cow<'a, [ComponentInfo]>, Vec<PathBuf>)> {
    if files.is_empty() {
        return Ok((std::borrow::Cow::Borrowed(known), Vec::new()));
    }
    let mut components = known.to_vec();
    let rows = match db {
        Some(db) if db.tracking().exists(&db.connection())? => {
            db.tracking().migrations(&db.connection())?
        }
        _ => Vec::new(),
    };
    let mut unread = Vec::new();
    for file in files {
        let row = rows.iter().find(|row| {
            row.status == crate::tracking::RowStatus::Applied
                && row.checksum.as_deref() == Some(file.sha256.as_str())
        });
        match row {
            Some(row) => components.push(ComponentInfo {
                path: file.path.clone(),
                checksum: file.sha256.clone(),
                metadata: crate::runtime::Metadata {
                    version: row.version,
                    name: row.name.clone(),
                    description: row.description.clone().unwrap_or_default(),
                    // Not shown for an applied migration; `down` loads the component.
                    reversible: true,
                },
                sql: None,
            }),
            None => unread.push(file.path.clone()),
        }
    }
    components.sort_by_key(ComponentInfo::version);
    // Two files an applied row describes (a copy of an applied component beside it, or one
    // beside a file the cache knows): `up` refuses them, so status does too.
    if let Some(pair) = components
        .windows(2)
        .find(|pair| pair[0].version() == pair[1].version())
    {
        return Err(Error::DuplicateVersion {
            version: pair[0].version(),
            first: pair[0].path.clone(),
            second: pair[1].path.clone(),
        });
    }
    Ok((std::borrow::Cow::Owned(components), unread))
}
