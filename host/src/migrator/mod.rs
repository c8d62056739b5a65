//! [`Migrator`]: plans a run and executes it under the migration lock, after integrity checks
//! and a backup, one host-owned transaction per migration.

mod adoption;
mod rehearsal;
mod step;

pub use adoption::AdoptReport;
use adoption::refuse_unadopted;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use step::*;

use rusqlite::Connection;
use serde::Serialize;

use crate::assess::{Assessment, assess};
use crate::backup::{self, BackupConfig};
use crate::database::Database;
use crate::error::{Error, Result, SqliteContext};
use crate::integrity;
use crate::lock::{self, MigrationLock};
use crate::plan::{self, Available, Direction};
use crate::runtime::{ComponentInfo, Metadata, MigrationComponent, Runtime, describe_duration};
use crate::schema::{self, SchemaChange};
use crate::status::Status;
use crate::tracking::{self, RowStatus, Tracking};
use crate::{source, text, time, traps};

/// How a run protects the database. The default is the safe one: backups on, full
/// `integrity_check`, wait up to a minute for the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Safety {
    /// Where to keep backups; `None` disables them (`--no-backup`).
    pub backups: Option<BackupConfig>,
    /// `quick_check` instead of `integrity_check` (faster on large databases).
    pub quick_check: bool,
    /// How long to wait for another process's migration lock.
    pub lock_timeout: Duration,
}

impl Default for Safety {
    fn default() -> Self {
        Self {
            backups: Some(BackupConfig::default()),
            quick_check: false,
            lock_timeout: Duration::from_secs(60),
        }
    }
}

/// A set of migration components and the operations on a database that use them.
///
/// Components are described up front (from the compile cache when it knows them) and their
/// code is loaded only when a run needs it, so `up` with nothing pending loads nothing.
pub struct Migrator {
    migrations: Vec<ComponentInfo>,
    /// The code of `migrations[i]`, once loaded.
    loaded: Vec<OnceLock<MigrationComponent>>,
    runtime: Runtime,
    safety: Safety,
}

/// What one migration did.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// The migration's version.
    pub version: u64,
    /// Its name.
    pub name: String,
    /// Which way it ran.
    pub direction: Direction,
    /// Schema objects created, dropped and altered.
    pub schema: SchemaChange,
    /// Rows inserted, updated or deleted.
    pub rows_changed: u64,
    /// Rows that went with the tables the step dropped (counted on `down` only).
    pub rows_dropped: u64,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
}

/// What a run did: the version before and after, the backup taken, and each migration's report.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Which way the run went.
    pub direction: Direction,
    /// The version before the run.
    pub from: u64,
    /// The version after it.
    pub to: u64,
    /// Each migration run, in order.
    pub steps: Vec<StepReport>,
    /// The backup taken before the first step, if any.
    pub backup: Option<PathBuf>,
    /// Versions of earlier attempts found interrupted (their process died) and marked failed.
    pub interrupted: Vec<u64>,
}

/// What `gc` did.
#[derive(Debug, Clone, Serialize)]
pub struct GcReport {
    /// Stored components no applied migration used.
    pub components_dropped: usize,
    /// The database's size before, in bytes.
    pub bytes_before: u64,
    /// And after `VACUUM`.
    pub bytes_after: u64,
    /// The compile cache trimmed to its cap, when there is one (set by `Project::gc`).
    pub compile_cache: Option<crate::runtime::cache_trim::Trimmed>,
}

/// What a dry run found: the run it would make; nothing of it was kept.
#[derive(Debug, Clone, Serialize)]
pub struct DryRunReport {
    /// Which way it went.
    pub direction: Direction,
    /// The version before.
    pub from: u64,
    /// The version it would reach.
    pub to: u64,
    /// Each migration it would run, in order.
    pub steps: Vec<StepReport>,
}

impl Migrator {
    /// Loads every `*.wasm` component of `dir` with a new [`Runtime`], with default [`Safety`].
    ///
    /// # Errors
    /// See [`source::scan_dir`]: unreadable directory, invalid component, duplicate version.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Self> {
        Self::load_dir_with(Runtime::new()?, dir)
    }

    /// Finds every `*.wasm` component of `dir` with `runtime` (and its limits).
    ///
    /// # Errors
    /// See [`source::scan_dir`].
    pub fn load_dir_with(runtime: Runtime, dir: impl AsRef<Path>) -> Result<Self> {
        Self::load_dir_in(runtime, dir, None)
    }

    /// As [`Migrator::load_dir_with`], reading the directory's SQL migrations as `options`
    /// say (a layout, or `None` to recognise it from the file names; Flyway's placeholders).
    ///
    /// # Errors
    /// See [`source::scan_dir`].
    pub fn load_dir_in(
        runtime: Runtime,
        dir: impl AsRef<Path>,
        options: impl Into<crate::pack::SqlOptions>,
    ) -> Result<Self> {
        let (migrations, loaded) = source::scan_dir(&runtime, dir.as_ref(), options)?
            .into_iter()
            .map(|found| {
                let cell = OnceLock::new();
                if let Some(component) = found.component {
                    let _ = cell.set(component);
                }
                (found.info, cell)
            })
            .unzip();
        Ok(Self {
            migrations,
            loaded,
            runtime,
            safety: Safety::default(),
        })
    }

    /// A migrator over components already loaded with `runtime`, with default [`Safety`].
    ///
    /// # Errors
    /// [`Error::DuplicateVersion`] when two components share a version.
    pub fn new(runtime: Runtime, migrations: Vec<MigrationComponent>) -> Result<Self> {
        let (migrations, loaded) = source::sort_unique(migrations)?
            .into_iter()
            .map(|component| (component.info(), OnceLock::from(component)))
            .unzip();
        Ok(Self {
            migrations,
            loaded,
            runtime,
            safety: Safety::default(),
        })
    }

    /// This migrator's migrations and `other`'s together, by version (`test --with`: a new
    /// migration tested on top of the ones it builds on).
    ///
    /// # Errors
    /// [`Error::DuplicateVersion`] when both have a migration of one version.
    pub fn with_migrations_of(self, other: Migrator) -> Result<Self> {
        let mut all: Vec<(ComponentInfo, OnceLock<MigrationComponent>)> = self
            .migrations
            .into_iter()
            .zip(self.loaded)
            .chain(other.migrations.into_iter().zip(other.loaded))
            .collect();
        all.sort_by_key(|(info, _)| info.version());
        if let Some(pair) = all
            .windows(2)
            .find(|w| w[0].0.version() == w[1].0.version())
        {
            return Err(Error::DuplicateVersion {
                version: pair[0].0.version(),
                first: pair[0].0.path.clone(),
                second: pair[1].0.path.clone(),
            });
        }
        let (migrations, loaded) = all.into_iter().unzip();
        Ok(Self {
            migrations,
            loaded,
            runtime: self.runtime,
            safety: self.safety,
        })
    }

    /// Replaces the safety settings.
    pub fn with_safety(mut self, safety: Safety) -> Self {
        self.safety = safety;
        self
    }

    /// The safety settings in force.
    pub fn safety(&self) -> &Safety {
        &self.safety
    }

    /// The components, by ascending version.
    pub fn migrations(&self) -> &[ComponentInfo] {
        &self.migrations
    }

    fn file_component(&self, version: u64) -> Option<&ComponentInfo> {
        self.migrations.iter().find(|m| m.version() == version)
    }

    /// Loads the code of these versions, in parallel, ahead of running them.
    fn preload(&self, versions: &[u64]) -> Result<()> {
        source::parallel_map(versions, |v| self.component(*v).map(drop))
            .into_iter()
            .collect()
    }

    /// The code of the component with this version, loaded on first use.
    ///
    /// # Errors
    /// [`Error::Plan`] for a version no component has; as [`Runtime::load_file`];
    /// [`Error::InvalidComponent`] if the file changed since it was described.
    pub fn component(&self, version: u64) -> Result<&MigrationComponent> {
        let (info, loaded) = self.slot(version).ok_or_else(|| {
            let known: Vec<String> = self
                .migrations
                .iter()
                .map(|m| m.version().to_string())
                .collect();
            Error::Plan(plan::PlanError::UnknownTarget {
                target: version,
                available: known.join(", "),
            })
        })?;
        if let Some(component) = loaded.get() {
            return Ok(component);
        }
        let component = self.load_unchanged(info)?;
        Ok(loaded.get_or_init(|| component))
    }

    /// What is known of this version's file, and its code once loaded.
    fn slot(&self, version: u64) -> Option<(&ComponentInfo, &OnceLock<MigrationComponent>)> {
        let index = self
            .migrations
            .iter()
            .position(|m| m.version() == version)?;
        Some((&self.migrations[index], &self.loaded[index]))
    }

    /// Loads `info`'s file, which must still be the component it described.
    fn load_unchanged(&self, info: &ComponentInfo) -> Result<MigrationComponent> {
        let component = self.runtime.load_file(&info.path)?;
        if component.checksum() != info.checksum {
            return Err(Error::InvalidComponent {
                path: info.path.clone(),
                reason: "the file changed while hsm-host was running; run the command again".into(),
            });
        }
        Ok(component)
    }

    /// Applies pending migrations up to `target` (all when `None`), each in its own transaction.
    /// Under the lock: recovers interrupted attempts, refuses a damaged database or changed
    /// component files, backs up, runs, then checks integrity again. Stops at the first failure,
    /// with that migration rolled back and the ones before it applied.
    ///
    /// # Errors
    /// [`Error::Plan`], [`Error::Damaged`], [`Error::ComponentChanged`], [`Error::Locked`],
    /// [`Error::Backup`]/[`Error::NoSpace`] before anything runs; [`Error::MigrationFailed`]
    /// when a guest fails, traps or leaves foreign-key violations; [`Error::DamagedAfterRun`].
    pub fn up(&self, db: &Database, target: Option<u64>) -> Result<RunReport> {
        self.guarded_run(db, Direction::Up, target)
    }

    /// Rolls back applied migrations: the newest one when `target` is `None`, otherwise every
    /// one above `target` (0 = all), newest first. Each runs the exact component that applied
    /// it (stored in the database), even if its file changed or is gone.
    ///
    /// # Errors
    /// As [`Migrator::up`]; an irreversible or unavailable migration in the range is refused
    /// before anything runs.
    pub fn down(&self, db: &Database, target: Option<u64>) -> Result<RunReport> {
        self.guarded_run(db, Direction::Down, target)
    }

    fn guarded_run(
        &self,
        db: &Database,
        direction: Direction,
        target: Option<u64>,
    ) -> Result<RunReport> {
        let _lock = self.lock(db)?;
        let (plan, stored, interrupted) = {
            let conn = db.connection();
            if direction == Direction::Up {
                refuse_unadopted(db, &conn)?;
            }
            self.preflight(db, &conn)?;
            db.tracking().ensure_tables(&conn)?;
            let interrupted = crate::status::recover_interrupted(db.tracking(), &conn)?;
            let (plan, stored) = self.plan(db, &conn, direction, target)?;
            (plan, stored, interrupted)
        };
        let components = self.components_of(&plan, &stored)?;
        let backup = if plan.steps.is_empty() {
            None
        } else {
            self.take_backup(db, &db.connection())?
        };

        let mut steps = Vec::with_capacity(plan.steps.len());
        // Each step's schema afterwards is the next one's before: read it once.
        let mut schema = None;
        let foreign_keys = ForeignKeysOff::start(db)?;
        let run = self.each_component(components, |component| {
            // Details for the log file and -v; the terminal gets one report line per step.
            tracing::debug!("{direction} {}: starting", component.label());
            let step = run_tracked(db, component, direction, backup.as_deref(), &mut schema)
                .map_err(|error| {
                    with_completed(
                        error,
                        steps.iter().map(|s: &StepReport| s.version).collect(),
                    )
                })?;
            tracing::debug!(
                "{direction} {}: done in {} ms, {} rows changed",
                component.label(),
                step.duration_ms,
                step.rows_changed
            );
            steps.push(step);
            Ok(())
        });
        drop(foreign_keys);
        run?;
        if !steps.is_empty() {
            let problems = integrity::problems(&db.connection(), self.safety.quick_check);
            if !problems.is_empty() {
                return Err(Error::DamagedAfterRun {
                    problems: integrity::summarize(&problems),
                    backup,
                });
            }
        }
        Ok(RunReport {
            direction,
            from: plan.from,
            to: plan.to,
            steps,
            backup,
            interrupted,
        })
    }

    fn lock(&self, db: &Database) -> Result<Option<MigrationLock>> {
        db.path()
            .map(|path| lock::acquire(path, self.safety.lock_timeout))
            .transpose()
    }

    /// Refuses a database that fails the integrity or foreign-key check, naming the newest
    /// backup to restore.
    fn preflight(&self, db: &Database, conn: &Connection) -> Result<()> {
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

    fn newest_backup(&self, db: &Database) -> Option<PathBuf> {
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

    fn take_backup(&self, db: &Database, conn: &Connection) -> Result<Option<PathBuf>> {
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

    /// The run `direction` and `target` ask for, from the tracking rows and the files (down
    /// also from the components stored at apply time, for files that changed or are gone).
    fn plan(
        &self,
        db: &Database,
        conn: &Connection,
        direction: Direction,
        target: Option<u64>,
    ) -> Result<(plan::Plan, BTreeMap<u64, MigrationComponent>)> {
        let rows = db.tracking().migrations(conn)?;
        let assessment = assess(&rows, &self.migrations);
        let applied = assessment.applied_versions();
        match direction {
            Direction::Up => {
                refuse_changed(&assessment)?;
                let plan = plan::plan_up(&self.available(), &applied, target)?;
                Ok((plan, BTreeMap::new()))
            }
            Direction::Down => {
                let stored = self.stored_for_down(db.tracking(), conn, &assessment)?;
                let mut available = available(
                    self.migrations
                        .iter()
                        .filter(|m| !stored.contains_key(&m.version()))
                        .map(|m| &m.metadata),
                );
                available.extend(self::available(
                    stored.values().map(MigrationComponent::metadata),
                ));
                let plan = plan::plan_down(&available, &applied, target).map_err(|e| match e {
                    // Where the way back is: the backup taken before it, if it remains.
                    plan::PlanError::Irreversible { version, name, .. } => {
                        plan::PlanError::Irreversible {
                            backup: rows
                                .iter()
                                .find(|r| r.version == version && r.status == RowStatus::Applied)
                                .and_then(|r| r.backup_path.as_deref())
                                .map(PathBuf::from),
                            version,
                            name,
                        }
                    }
                    other => other,
                })?;
                Ok((plan, stored))
            }
        }
    }

    /// The code of every step, before anything changes: a bad file stops the run here. A
    /// component the compile cache holds compiled, from this very file unchanged, was checked
    /// when it was compiled: it is loaded when its step comes and dropped after it, so a run of
    /// a hundred migrations holds a few of them at a time, not all.
    fn components_of<'a>(
        &'a self,
        plan: &plan::Plan,
        stored: &'a BTreeMap<u64, MigrationComponent>,
    ) -> Result<Vec<Planned<'a>>> {
        let mut later = BTreeMap::new();
        let mut now = Vec::new();
        for &version in plan.steps.iter().filter(|v| !stored.contains_key(v)) {
            match self.slot(version) {
                Some((info, loaded))
                    if loaded.get().is_none() && self.runtime.is_compiled(info) =>
                {
                    later.insert(version, info);
                }
                _ => now.push(version),
            }
        }
        self.preload(&now)?;
        plan.steps
            .iter()
            .map(|version| match (stored.get(version), later.get(version)) {
                (Some(component), _) => Ok(Planned::Loaded(component)),
                (None, Some(info)) => Ok(Planned::Compiled(info)),
                (None, None) => self.component(*version).map(Planned::Loaded),
            })
            .collect()
    }

    /// Calls `f` with each planned component in order, loading those not loaded yet on a
    /// thread of their own one step ahead (their loading overlaps the step before), and
    /// dropping each once `f` is done with it (elsewhere: unmapping code takes time). Stops
    /// at the first error.
    fn each_component(
        &self,
        planned: Vec<Planned<'_>>,
        mut f: impl FnMut(&MigrationComponent) -> Result<()>,
    ) -> Result<()> {
        let to_load: Vec<&ComponentInfo> = planned
            .iter()
            .filter_map(|p| match p {
                Planned::Compiled(info) => Some(*info),
                Planned::Loaded(_) => None,
            })
            .collect();
        std::thread::scope(|scope| {
            let (send, loaded) = std::sync::mpsc::sync_channel(1);
            if !to_load.is_empty() {
                scope.spawn(move || {
                    for info in to_load {
                        // A stopped run drops the receiver: the send fails and this ends.
                        let component = self.load_unchanged(info).inspect(|component| {
                            // Read here rather than in the step (an error shows there again).
                            let _ = component.stored_form();
                        });
                        if send.send(component).is_err() {
                            break;
                        }
                    }
                });
            }
            for step in planned {
                match step {
                    Planned::Loaded(component) => f(component)?,
                    Planned::Compiled(_) => {
                        let component = loaded.recv().expect("the loader sends one per step")?;
                        f(&component)?;
                        crate::runtime::drop_elsewhere(component);
                    }
                }
            }
            Ok(())
        })
    }

    /// The components that applied migrations whose file changed or is gone, from the bytes
    /// stored at apply time. (Where the file is unchanged, it is the component.)
    fn stored_for_down(
        &self,
        tracking: &Tracking,
        conn: &Connection,
        assessment: &Assessment<'_>,
    ) -> Result<BTreeMap<u64, MigrationComponent>> {
        let mut stored = BTreeMap::new();
        for &(version, recorded) in &assessment.from_store {
            let Some(bytes) = tracking.stored_component(conn, recorded)? else {
                continue;
            };
            let origin = PathBuf::from(format!(
                "<component of migration {version} stored in the database, sha256 {}>",
                &recorded[..12.min(recorded.len())]
            ));
            tracing::info!(
                "migration {version}: its file changed or is gone; using the component that \
                 applied it"
            );
            stored.insert(version, self.runtime.load(origin, &bytes)?);
        }
        Ok(stored)
    }

    fn available(&self) -> Vec<Available> {
        available(self.migrations.iter().map(|m| &m.metadata))
    }

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
        crate::status::read_status(&self.migrations, db, backup_dir.as_deref())
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
        let mut repaired = Vec::new();
        for row in db
            .tracking()
            .migrations(&conn)?
            .iter()
            .filter(|r| r.status == RowStatus::Applied)
        {
            let Some(info) = self.file_component(row.version) else {
                continue;
            };
            if row.checksum.as_deref() == Some(info.checksum.as_str()) {
                continue;
            }
            let file = self.component(row.version)?;
            step::store_component(db.tracking(), &conn, file, &now)?;
            db.tracking()
                .set_checksum(&conn, row.version, &file.checksum())?;
            tracing::info!(
                "migration {}: now accepting {} (sha256 {})",
                row.version,
                file.path().display(),
                file.checksum()
            );
            repaired.push(row.version);
        }
        db.tracking().drop_unused_components(&conn)?;
        Ok(repaired)
    }
}

fn available<'a>(metadata: impl Iterator<Item = &'a Metadata>) -> Vec<Available> {
    metadata
        .map(|m| Available {
            version: m.version,
            name: m.name.clone(),
            reversible: m.reversible,
        })
        .collect()
}

/// The schema after the last step, and SQLite's count of schema changes then.
type KnownSchema = (schema::Snapshot, i64);

/// A step's component: loaded, or compiled in the cache and loaded when its step comes.
enum Planned<'a> {
    Loaded(&'a MigrationComponent),
    Compiled(&'a ComponentInfo),
}

/// A step's failure, with the steps of the same run done before it.
fn with_completed(error: Error, completed: Vec<u64>) -> Error {
    match error {
        Error::MigrationFailed {
            version,
            name,
            direction,
            cause,
            sqlite_code,
            ..
        } => Error::MigrationFailed {
            version,
            name,
            direction,
            cause,
            completed,
            sqlite_code,
        },
        other => other,
    }
}

/// `up` must not build on a migration whose component is not the one that was applied.
fn refuse_changed(assessment: &Assessment<'_>) -> Result<()> {
    match assessment.changed.first() {
        Some(changed) => Err(Error::ComponentChanged {
            version: changed.row.version,
            name: changed.row.name.clone(),
            file: changed.file.path.clone(),
            recorded: changed.recorded.to_owned(),
            found: changed.file.checksum.clone(),
        }),
        None => Ok(()),
    }
}
