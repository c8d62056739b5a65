//! [`Migrator`]: plans a run and executes it under the migration lock, after integrity checks
//! and a backup, one host-owned transaction per migration.

pub(crate) mod adoption;
mod group;
mod guard;
mod loading;
mod rehearsal;
mod step;
mod upkeep;

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
use crate::tracking::{RowStatus, Tracking};
use crate::{source, text, time, traps};
use hsm_store::tracking::{Attempt, TrackingWrites};

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
    /// Every migration of a run in one transaction (`--single-transaction`): the run reaches
    /// its target or changes nothing. Otherwise each migration commits on its own.
    pub single_transaction: bool,
}

impl Default for Safety {
    fn default() -> Self {
        Self {
            backups: Some(BackupConfig::default()),
            quick_check: false,
            lock_timeout: Duration::from_secs(60),
            single_transaction: false,
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
        let mut lock = self.lock(db)?;
        let (plan, stored, interrupted) = {
            let conn = db.connection();
            if direction == Direction::Up {
                refuse_unadopted(db, &conn)?;
            }
            self.preflight(db, &conn)?;
            db.tracking().ensure_tables(&conn)?;
            let interrupted = lock::recover_interrupted(db.tracking(), &conn, lock.as_mut())?;
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
        let mut group = match self.safety.single_transaction && !plan.steps.is_empty() {
            true => Some(group::Group::begin(db)?),
            false => None,
        };
        let run = self.each_component(components, |component| {
            // Details for the log file and -v; the terminal gets one report line per step.
            tracing::debug!("{direction} {}: starting", component.label());
            let backup = backup.as_deref();
            let step = match &mut group {
                Some(group) => group.run(db, &mut lock, component, direction, backup, &mut schema),
                None => run_tracked(db, &mut lock, component, direction, backup, &mut schema),
            }
            .map_err(|error| {
                with_completed(
                    error,
                    steps.iter().map(|s: &StepReport| s.version).collect(),
                    backup,
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
        let run = match group {
            Some(group) => group.finish(db, &mut lock, run, steps.len()),
            None => run,
        };
        drop(foreign_keys);
        run?;
        if !steps.is_empty() {
            let problems = integrity::problems(&db.connection(), self.safety.quick_check);
            if !problems.is_empty() {
                return Err(Error::DamagedAfterRun {
                    problems: integrity::summarize(&problems),
                    backup,
                    completed: steps.iter().map(|s| s.version).collect(),
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
                // What a down to `target` may roll back: the newest applied, or all above it.
                let newest = applied.last().copied();
                let rolled_back = |version: u64| match target {
                    None => Some(version) == newest,
                    Some(target) => version > target,
                };
                let stored = self.stored_for_down(db.tracking(), conn, &assessment, rolled_back)?;
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

    fn available(&self) -> Vec<Available> {
        available(self.migrations.iter().map(|m| &m.metadata))
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

/// A step's failure, its cause followed by `note`.
pub(crate) fn with_cause_note(mut error: Error, note: &str) -> Error {
    if let Error::MigrationFailed { cause, .. } = &mut error {
        cause.push_str(note);
    }
    error
}

/// A step's failure, with the steps of the same run done before it and the backup taken
/// before the run (when `taken` names one; `None` keeps what the error has).
pub(crate) fn with_completed(
    mut error: Error,
    done: Vec<u64>,
    taken: Option<&std::path::Path>,
) -> Error {
    if let Error::MigrationFailed {
        completed, backup, ..
    } = &mut error
    {
        *completed = done;
        if let Some(taken) = taken {
            *backup = Some(taken.to_owned());
        }
    }
    error
}

/// `up` must not build on a migration whose component is not the one that was applied.
/// Refuses a changed file that is another migration altogether (another name at an applied
/// version), which neither `up` nor `repair` may take for the one applied.
pub(crate) fn refuse_reused(assessment: &Assessment<'_>) -> Result<()> {
    match assessment
        .changed
        .iter()
        .find(|changed| changed.row.name != changed.file.metadata.name)
    {
        Some(changed) => Err(Error::VersionReused {
            version: changed.row.version,
            applied: crate::text::neutralize(&changed.row.name, crate::text::MAX_NAME),
            file: changed.file.path.clone(),
            found: changed.file.metadata.name.clone(),
        }),
        None => Ok(()),
    }
}

fn refuse_changed(assessment: &Assessment<'_>) -> Result<()> {
    refuse_reused(assessment)?;
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
