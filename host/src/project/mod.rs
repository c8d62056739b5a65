//! [`Project`]: a database file and the migrations meant for it, with the settings every
//! command shares. The library's front: one method per `hsm-host` command that works on a
//! database, so a new command is one CLI variant, one method here and one report function.
//!
//! [`Migrator`] stays the engine underneath (and the API for code that already holds a
//! [`Database`], such as CI tests on a scratch database); a `Project` opens what each command
//! needs and nothing more: `status` reads metadata without compiling, `backup` and `restore`
//! never load a migration.

use std::path::{Path, PathBuf};

use crate::backup::{self, BackupInfo};
use crate::error::{Error, Result};
use crate::migrator::{AdoptReport, DryRunReport, Migrator, RunReport, Safety};
use crate::pack::Layout;
use crate::restore::{self, RestoreReport};
use crate::roundtrip::{self, TestReport};
use crate::runtime::{Compiler, Limits, Runtime, cache};
use crate::status::{self, Status};
use crate::tracking::Tracking;
use crate::{Database, source};

mod export;

/// A database and its migrations directory, with the settings of a run.
///
/// ```no_run
/// use hsm_host::Project;
///
/// # fn main() -> Result<(), hsm_host::Error> {
/// let project = Project::new("./data/app.db", "./migrations");
/// let status = project.status()?;
/// if !status.pending.is_empty() {
///     project.up(None)?; // backs up, locks, checks, applies
/// }
/// println!("backups: {}", project.backups()?.len());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Project {
    database: PathBuf,
    migrations: PathBuf,
    sql: crate::pack::SqlOptions,
    tracking: Tracking,
    limits: Limits,
    cache_dir: Option<PathBuf>,
    cache_max: u64,
    compiler: Compiler,
    safety: Safety,
    /// `--require-signed`: the trust file every component is held to.
    trust: Option<hsm_signing::Trust>,
}

impl Project {
    /// The same project on another database (a fleet's target).
    pub fn with_database(mut self, database: impl Into<PathBuf>) -> Self {
        self.database = database.into();
        self
    }

    /// The database at `database` and the migrations in `migrations`, with the defaults of
    /// `hsm-host`: default tracking names, [`Limits`] and [`Safety`], and the user's compile
    /// cache ([`cache::default_dir`]).
    pub fn new(database: impl Into<PathBuf>, migrations: impl Into<PathBuf>) -> Self {
        Self {
            database: database.into(),
            migrations: migrations.into(),
            sql: crate::pack::SqlOptions::default(),
            tracking: Tracking::default(),
            limits: Limits::default(),
            cache_dir: cache::default_dir(),
            cache_max: crate::runtime::cache_trim::DEFAULT_MAX_BYTES,
            compiler: Compiler::default(),
            safety: Safety::default(),
            trust: None,
        }
    }

    /// Runs only components `trust` accepts (`--require-signed`): an unsigned, untrusted,
    /// tampered or revoked one is refused before anything changes; a SQL migration too (it
    /// cannot carry a signature).
    pub fn with_trust(mut self, trust: Option<hsm_signing::Trust>) -> Self {
        self.trust = trust;
        self
    }

    /// Reads the directory's SQL migrations in `layout` (`None`: recognised from file names).
    pub fn with_layout(mut self, layout: Option<Layout>) -> Self {
        self.sql.layout = layout;
        self
    }

    /// Values of a Flyway set's placeholders (`--placeholder name=value`).
    pub fn with_placeholders(
        mut self,
        placeholders: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        self.sql.placeholders.extend(placeholders);
        self
    }

    /// Names the tracking tables (`--tracking-prefix`).
    pub fn with_tracking(mut self, tracking: Tracking) -> Self {
        self.tracking = tracking;
        self
    }

    /// The time and memory limits of every guest call.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Where compiled components are kept (`None`: compile every time).
    pub fn with_cache_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.cache_dir = dir;
        self
    }

    /// The most the compile cache may hold, in bytes (least recently used entries go first).
    pub fn with_cache_max(mut self, bytes: u64) -> Self {
        self.cache_max = bytes;
        self
    }

    /// Which compiler makes components' machine code (`--compiler`).
    pub fn with_compiler(mut self, compiler: Compiler) -> Self {
        self.compiler = compiler;
        self
    }

    /// Backups, checks and the lock timeout of runs that write.
    pub fn with_safety(mut self, safety: Safety) -> Self {
        self.safety = safety;
        self
    }

    /// The database file.
    pub fn database(&self) -> &Path {
        &self.database
    }

    /// The migrations directory.
    pub fn migrations(&self) -> &Path {
        &self.migrations
    }

    /// The tracking tables' names.
    pub fn tracking(&self) -> &Tracking {
        &self.tracking
    }

    /// Where this database's backups go.
    pub fn backup_dir(&self) -> PathBuf {
        self.safety
            .backups
            .clone()
            .unwrap_or_default()
            .dir_for(&self.database)
    }

    /// A runtime with this project's limits and cache.
    ///
    /// # Errors
    /// As [`Runtime::with_limits`].
    pub fn runtime(&self) -> Result<Runtime> {
        let runtime = Runtime::with_limits(self.limits)?.with_compiler(self.compiler);
        let runtime = match &self.cache_dir {
            Some(dir) => runtime.with_cache(dir, self.cache_max),
            None => runtime,
        };
        Ok(match &self.trust {
            Some(trust) => runtime.require_signed(trust.clone()),
            None => runtime,
        })
    }

    /// Every migration of the directory, loaded and validated, with this project's safety.
    ///
    /// # Errors
    /// As [`Migrator::load_dir_in`].
    pub fn migrator(&self) -> Result<Migrator> {
        Ok(
            Migrator::load_dir_in(self.runtime()?, &self.migrations, self.sql.clone())?
                .with_safety(self.safety.clone()),
        )
    }

    /// [`Project::migrator`], refusing a directory with no migrations at all (`up` would only
    /// make an empty database: the directory is almost certainly the wrong one).
    pub(crate) fn migrator_with_migrations(&self) -> Result<Migrator> {
        let migrator = self.migrator()?;
        if migrator.migrations().is_empty() {
            return Err(Error::NoMigrations {
                path: self.migrations.clone(),
                seen: crate::pack::layout::unread_sql_files(&self.migrations),
                found: crate::source::directories_with_migrations(&self.migrations),
            });
        }
        Ok(migrator)
    }

    /// Inspects a component file, or a SQL migration file (up or down) as the component it is
    /// packed into: read with the rest of its directory, in this project's layout.
    ///
    /// # Errors
    /// As [`Runtime::inspect_file`]; [`Error::SqlSet`] when the SQL file is not a migration of
    /// its directory.
    pub fn inspect(&self, file: &Path) -> Result<crate::runtime::Inspection> {
        let runtime = self.runtime()?;
        if file.extension().is_none_or(|ext| ext != "sql") {
            return runtime.inspect_file(file);
        }
        let same = |a: &Path, b: &Path| match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        // A flat layout's file is in the set's directory; diesel's `up.sql` one below it.
        let dirs = file
            .parent()
            .into_iter()
            .chain(file.parent().and_then(Path::parent));
        for dir in dirs {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            let Ok(set) = crate::pack::read_dir(dir, self.sql.clone()) else {
                continue;
            };
            if let Some(migration) = set.iter().find(|m| {
                same(&m.source, file) || m.down_source.as_deref().is_some_and(|d| same(d, file))
            }) {
                let mut inspection = runtime.inspect_bytes(file, &migration.component()?)?;
                // What `up` would say of it under `--require-signed` (found by the review).
                if self.trust.is_some() {
                    inspection.accepted = false;
                    inspection.problem = Some(
                        "a SQL migration carries no signature, and --require-signed refuses \
                         it: pack and sign it ahead (`hsm-host pack SRC -o DIR --sign KEY`)"
                            .into(),
                    );
                }
                return Ok(inspection);
            }
        }
        Err(Error::SqlSet {
            path: file.to_owned(),
            reason: "is not a SQL migration of its directory (in the layout the file names \
                     give, or --layout)"
                .into(),
        })
    }

    /// Opens (creating it if needed) the database.
    ///
    /// # Errors
    /// [`Error::OpenDatabase`].
    pub fn open(&self) -> Result<Database> {
        Ok(Database::open(&self.database)?.with_tracking(self.tracking.clone()))
    }

    /// Opens the database if it exists; `None` when it does not (nothing is created).
    fn open_existing(&self) -> Result<Option<Database>> {
        match self.database.exists() {
            true => self.open().map(Some),
            false => Ok(None),
        }
    }

    /// Opens the database, which must exist for `action`.
    fn open_required(&self, action: &'static str) -> Result<Database> {
        self.open_existing()?.ok_or_else(|| Error::NoDatabase {
            path: self.database.clone(),
            action,
        })
    }

    /// Which migrations are applied, pending, changed or missing, and the backups. Never
    /// compiles: the compile cache describes files it has seen, the database names a file it
    /// applied (by its checksum), and a file neither knows is listed as not read yet. Never
    /// creates the database; it writes only to record attempts whose process died.
    ///
    /// # Errors
    /// As [`source::survey_dir`] and [`Migrator::status`].
    pub fn status(&self) -> Result<Status> {
        // Without its migrations directory, the database's own records are still worth showing
        // (each applied migration then reads as missing its file).
        let survey = if self.migrations.exists() {
            source::survey_dir(&self.runtime()?, &self.migrations, self.sql.clone())?
        } else {
            tracing::warn!(
                "the migrations directory {} does not exist: showing what the database records",
                self.migrations.display()
            );
            source::Survey {
                known: Vec::new(),
                unread: Vec::new(),
            }
        };
        // Trace, not debug: a status that logs nothing opens no log file.
        tracing::trace!(
            "status: {} migrations described, {} component files not read yet",
            survey.known.len(),
            survey.unread.len()
        );
        let db = self.open_existing()?;
        let mut status = status::read_status(
            &survey.known,
            &survey.unread,
            db.as_ref(),
            Some(&self.backup_dir()),
        )?;
        status.database.get_or_insert_with(|| self.database.clone());
        status.storage.compile_cache = self
            .cache_dir
            .as_deref()
            .map(crate::runtime::cache_trim::usage);
        Ok(status)
    }

    /// Rolls the newest applied migration back and applies it again: two runs, each with its
    /// backup and checks. Returns both reports.
    ///
    /// # Errors
    /// As [`Migrator::down`] and [`Migrator::up`]; a database with nothing applied is
    /// [`Error::Plan`].
    pub fn redo(&self) -> Result<(RunReport, RunReport)> {
        let migrator = self.migrator()?;
        let db = self.open_required("there is nothing to redo")?;
        let down = migrator.down(&db, None)?;
        let Some(step) = down.steps.first() else {
            return Err(Error::Plan(crate::plan::PlanError::NothingToRedo));
        };
        // The down half stays done whatever the up half does: a failure says so.
        let note = format!(
            " (its down ran and stays done: the database is at version {})",
            down.to
        );
        let up = migrator.up(&db, Some(step.version)).map_err(|error| {
            let error = crate::migrator::with_cause_note(error, &note);
            crate::migrator::with_completed(error, vec![step.version], None)
        })?;
        Ok((down, up))
    }

    /// Applies pending migrations up to `target` (all when `None`). See [`Migrator::up`].
    ///
    /// # Errors
    /// As [`Migrator::up`].
    pub fn up(&self, target: Option<u64>) -> Result<RunReport> {
        let migrator = self.migrator_with_migrations()?;
        migrator.up(&self.open()?, target)
    }

    /// Rolls back to `target` (one step when `None`). See [`Migrator::down`].
    ///
    /// # Errors
    /// As [`Migrator::down`].
    pub fn down(&self, target: Option<u64>) -> Result<RunReport> {
        let migrator = self.migrator()?;
        migrator.down(
            &self.open_required("there is nothing to roll back")?,
            target,
        )
    }

    /// Rehearses `up` in a transaction that is rolled back. A database that does not exist
    /// yet is rehearsed in memory, where it starts just as empty: no file is left behind.
    ///
    /// # Errors
    /// As [`Migrator::dry_run`].
    pub fn dry_run_up(&self, target: Option<u64>) -> Result<DryRunReport> {
        let migrator = self.migrator_with_migrations()?;
        let db = match self.open_existing()? {
            Some(db) => db,
            None => Database::open_in_memory()?.with_tracking(self.tracking.clone()),
        };
        migrator.dry_run(&db, target)
    }

    /// Rehearses `down` in a transaction that is rolled back.
    ///
    /// # Errors
    /// [`Error::NoDatabase`]; as [`Migrator::dry_run_down`].
    pub fn dry_run_down(&self, target: Option<u64>) -> Result<DryRunReport> {
        let migrator = self.migrator()?;
        migrator.dry_run_down(
            &self.open_required("there is nothing to roll back")?,
            target,
        )
    }

    /// Takes a backup now (into [`Project::backup_dir`], pruning past the configured count).
    ///
    /// # Errors
    /// [`Error::NoDatabase`]; as [`backup::create`].
    pub fn backup(&self) -> Result<PathBuf> {
        let db = self.open_required("there is nothing to back up")?;
        let config = self.safety.backups.clone().unwrap_or_default();
        let keep_also = self.backups_that_matter(&db);
        backup::create_keeping(&db.connection(), &self.database, &config, &keep_also)
    }

    /// The backups pruning must keep (see `Migrator::backups_that_matter`); when the
    /// migrations cannot be read, every applied migration's backup, to be safe.
    fn backups_that_matter(&self, db: &Database) -> Vec<PathBuf> {
        let conn = db.connection();
        let from_migrator = self
            .migrator()
            .and_then(|migrator| migrator.backups_that_matter(db, &conn));
        match from_migrator {
            Ok(paths) => paths,
            Err(_) => db
                .tracking()
                .migrations(&conn)
                .unwrap_or_default()
                .into_iter()
                .filter(|row| row.status == crate::tracking::RowStatus::Applied)
                .filter_map(|row| row.backup_path.map(PathBuf::from))
                .collect(),
        }
    }

    /// The backups of this database, newest first, with the version each holds.
    ///
    /// # Errors
    /// As [`backup::list`].
    pub fn backups(&self) -> Result<Vec<BackupInfo>> {
        backup::list(&self.database, &self.backup_dir(), &self.tracking)
    }

    /// Replaces the database with the backup (or any SQLite file) at `source`, backing the
    /// current one up first unless backups are off. Refuses a bad file before anything changes
    /// ([`restore::check_restorable`]).
    ///
    /// # Errors
    /// As [`restore::restore`].
    pub fn restore(&self, source: &Path) -> Result<RestoreReport> {
        // The backup taken first keeps those that matter to the database as it is now.
        let keep_also = match self.open_existing() {
            Ok(Some(db)) => self.backups_that_matter(&db),
            _ => Vec::new(),
        };
        restore::restore_keeping(
            &self.database,
            source,
            self.safety.backups.as_ref(),
            self.safety.lock_timeout,
            &self.tracking,
            &keep_also,
        )
    }

    /// Marks failed attempts resolved and accepts changed checksums. See [`Migrator::repair`].
    ///
    /// # Errors
    /// As [`Migrator::repair`].
    pub fn repair(&self) -> Result<Vec<u64>> {
        let migrator = self.migrator()?;
        migrator.repair(&self.open_required("there is nothing to repair")?)
    }

    /// Drops unused stored components and compacts the database. See [`Migrator::gc`].
    ///
    /// # Errors
    /// [`Error::NoDatabase`]; as [`Migrator::gc`].
    pub fn gc(&self) -> Result<crate::migrator::GcReport> {
        let db = self.open_required("there is nothing to compact")?;
        let mut report = Migrator::new(self.runtime()?, Vec::new())?
            .with_safety(self.safety.clone())
            .gc(&db)?;
        report.compile_cache = self
            .cache_dir
            .as_deref()
            .and_then(|dir| cache::trim(dir, self.cache_max));
        Ok(report)
    }

    /// Takes over another tool's history. See [`Migrator::adopt`].
    ///
    /// # Errors
    /// As [`Migrator::adopt`].
    pub fn adopt(&self, dry_run: bool) -> Result<AdoptReport> {
        let migrator = self.migrator()?;
        migrator.adopt(
            &self.open_required("there is no history to adopt")?,
            dry_run,
        )
    }

    /// Records the migrations up to `version` as applied. See [`Migrator::baseline`].
    ///
    /// # Errors
    /// As [`Migrator::baseline`].
    pub fn baseline(&self, version: u64, dry_run: bool) -> Result<AdoptReport> {
        let migrator = self.migrator()?;
        migrator.baseline(
            &self.open_required("a baseline records what an existing database already has")?,
            version,
            dry_run,
        )
    }

    /// Round-trips every migration on a scratch database: in memory, or a copy of `against`
    /// (never the file itself). See [`Migrator::test_round_trips`].
    ///
    /// # Errors
    /// As [`Migrator::test_round_trips`] and [`roundtrip::scratch_copy`].
    pub fn test(&self, against: Option<&Path>) -> Result<TestReport> {
        self.test_with(against, &[])
    }

    /// [`Project::test`] with the migrations of `with` too (each directory read like the
    /// migrations directory): a new migration tested on top of those it builds on.
    ///
    /// # Errors
    /// As [`Project::test`]; [`Error::DuplicateVersion`] when two share a version.
    pub fn test_with(&self, against: Option<&Path>, with: &[PathBuf]) -> Result<TestReport> {
        // A CI gate on an empty (or mistyped) directory must not pass.
        let mut migrator = self.migrator_with_migrations()?;
        for dir in with {
            let other = Migrator::load_dir_in(self.runtime()?, dir, self.sql.clone())?;
            migrator = migrator.with_migrations_of(other)?;
        }
        let scratch = match against {
            Some(path) => roundtrip::scratch_copy(path, self.tracking.clone())?,
            None => Database::open_in_memory()?.with_tracking(self.tracking.clone()),
        };
        migrator.test_round_trips(&scratch)
    }
}
