//! [`Migrator`]: plans a run and executes it, one host-owned transaction per migration.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use rusqlite::Connection;
use serde::Serialize;

use crate::database::Database;
use crate::error::{Error, Result, SqliteContext};
use crate::plan::{self, Available, Direction, Plan};
use crate::runtime::{MigrationComponent, Runtime};
use crate::schema::{self, SchemaChange};
use crate::status::Status;
use crate::{source, time, tracking};

/// A set of migration components and the operations on a database that use them.
pub struct Migrator {
    migrations: Vec<MigrationComponent>,
    // Components hold handles into the runtime's engine; keep it alive with them.
    _runtime: Runtime,
}

/// What one migration did.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub version: u64,
    pub name: String,
    pub direction: Direction,
    /// Schema objects created, dropped and altered.
    pub schema: SchemaChange,
    /// Rows inserted, updated or deleted.
    pub rows_changed: u64,
    pub duration_ms: u64,
}

/// What a run did: the version before and after, and each migration's report.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub direction: Direction,
    pub from: u64,
    pub to: u64,
    pub steps: Vec<StepReport>,
}

/// What a dry run found: the run it would make; nothing of it was kept.
#[derive(Debug, Clone, Serialize)]
pub struct DryRunReport {
    pub from: u64,
    pub to: u64,
    pub steps: Vec<StepReport>,
}

impl Migrator {
    /// Loads every `*.wasm` component of `dir` with a new [`Runtime`].
    ///
    /// # Errors
    /// See [`source::load_dir`]: unreadable directory, invalid component, duplicate version.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Self> {
        let runtime = Runtime::new()?;
        let migrations = source::load_dir(&runtime, dir.as_ref())?;
        Ok(Self {
            migrations,
            _runtime: runtime,
        })
    }

    /// A migrator over components already loaded with `runtime`.
    ///
    /// # Errors
    /// [`Error::DuplicateVersion`] when two components share a version.
    pub fn new(runtime: Runtime, migrations: Vec<MigrationComponent>) -> Result<Self> {
        Ok(Self {
            migrations: source::sort_unique(migrations)?,
            _runtime: runtime,
        })
    }

    /// The components, by ascending version.
    pub fn migrations(&self) -> &[MigrationComponent] {
        &self.migrations
    }

    fn component(&self, version: u64) -> &MigrationComponent {
        self.migrations
            .iter()
            .find(|m| m.version() == version)
            .expect("the plan only names versions whose component is loaded")
    }

    fn available(&self) -> Vec<Available> {
        self.migrations
            .iter()
            .map(|m| Available {
                version: m.version(),
                name: m.metadata().name.clone(),
                reversible: m.metadata().reversible,
            })
            .collect()
    }

    /// Applies pending migrations up to `target` (all when `None`), each in its own transaction.
    /// Stops at the first failure, leaving the failed migration's changes rolled back and the
    /// ones before it applied.
    ///
    /// # Errors
    /// [`Error::Plan`] before anything runs; [`Error::MigrationFailed`] when a guest fails or
    /// traps; [`Error::Sqlite`] when the host's own statements fail.
    pub fn up(&self, db: &Database, target: Option<u64>) -> Result<RunReport> {
        let plan = {
            let conn = db.connection();
            tracking::ensure_tables(&conn)?;
            plan::plan_up(&self.available(), &applied_versions(&conn)?, target)?
        };
        self.execute(db, plan)
    }

    /// Rolls back applied migrations: the newest one when `target` is `None`, otherwise every
    /// one above `target` (0 = all), newest first.
    ///
    /// # Errors
    /// As [`Migrator::up`]; an irreversible or missing migration in the range is refused
    /// before anything runs.
    pub fn down(&self, db: &Database, target: Option<u64>) -> Result<RunReport> {
        let plan = {
            let conn = db.connection();
            tracking::ensure_tables(&conn)?;
            plan::plan_down(&self.available(), &applied_versions(&conn)?, target)?
        };
        self.execute(db, plan)
    }

    fn execute(&self, db: &Database, plan: Plan) -> Result<RunReport> {
        let mut steps = Vec::with_capacity(plan.steps.len());
        for &version in &plan.steps {
            let component = self.component(version);
            tracing::info!("{} {}: starting", plan.direction, component.label());
            let step = self.run_tracked(db, component, plan.direction)?;
            tracing::info!(
                "{} {}: done in {} ms, {} rows changed",
                plan.direction,
                component.label(),
                step.duration_ms,
                step.rows_changed
            );
            steps.push(step);
        }
        Ok(RunReport {
            direction: plan.direction,
            from: plan.from,
            to: plan.to,
            steps,
        })
    }

    /// Runs one migration with its history row and in its own transaction.
    fn run_tracked(
        &self,
        db: &Database,
        component: &MigrationComponent,
        direction: Direction,
    ) -> Result<StepReport> {
        let attempt = {
            let conn = db.connection();
            tracking::start_attempt(
                &conn,
                component.version(),
                direction,
                None,
                &time::now_iso(),
            )?
        };
        let result = run_in_transaction(db, component, direction, |conn| {
            let now = time::now_iso();
            match direction {
                Direction::Up => {
                    let metadata = component.metadata();
                    let applied = tracking::Applied {
                        version: metadata.version,
                        name: &metadata.name,
                        description: &metadata.description,
                        backup_path: None,
                    };
                    tracking::record_applied(conn, &applied, &now)?;
                }
                Direction::Down => {
                    tracking::record_rolled_back(conn, component.version(), None, &now)?
                }
            }
            tracking::finish_attempt(conn, attempt, None, &now)
        });
        if let Err(error) = &result {
            let conn = db.connection();
            let message = error.to_string();
            if let Err(record_error) =
                tracking::finish_attempt(&conn, attempt, Some(&message), &time::now_iso())
            {
                tracing::error!("cannot record the failure in migration_history: {record_error}");
            }
        }
        result
    }

    /// Runs the pending migrations up to `target` in one transaction that is always rolled
    /// back, and reports what each would change. The database is left exactly as it was.
    ///
    /// # Errors
    /// As [`Migrator::up`]; a failing migration is reported as [`Error::MigrationFailed`].
    pub fn dry_run(&self, db: &Database, target: Option<u64>) -> Result<DryRunReport> {
        begin(&db.connection())?;
        let result = self.dry_run_inside(db, target);
        let conn = db.connection();
        if !conn.is_autocommit() {
            conn.execute_batch("ROLLBACK")
                .context("cannot roll back the dry run")?;
        }
        result
    }

    fn dry_run_inside(&self, db: &Database, target: Option<u64>) -> Result<DryRunReport> {
        let plan = {
            let conn = db.connection();
            tracking::ensure_tables(&conn)?;
            plan::plan_up(&self.available(), &applied_versions(&conn)?, target)?
        };
        let mut steps = Vec::with_capacity(plan.steps.len());
        for &version in &plan.steps {
            let component = self.component(version);
            let step = run_step(db, component, Direction::Up)?;
            // Later migrations may look at the tracking table; let them see this one applied.
            let metadata = component.metadata();
            let applied = tracking::Applied {
                version,
                name: &metadata.name,
                description: &metadata.description,
                backup_path: None,
            };
            tracking::record_applied(&db.connection(), &applied, &time::now_iso())?;
            steps.push(step);
        }
        Ok(DryRunReport {
            from: plan.from,
            to: plan.to,
            steps,
        })
    }

    /// The database's migration state as seen from these components. `db` is `None` when the
    /// database file does not exist yet (everything is pending). Reads only.
    ///
    /// # Errors
    /// [`Error::Sqlite`] when the tracking tables cannot be read,
    /// [`Error::IncompatibleTracking`] when they are not ours.
    pub fn status(&self, db: Option<&Database>) -> Result<Status> {
        Status::read(self.migrations(), db)
    }
}

/// `BEGIN IMMEDIATE`: takes the write lock now, so a concurrent writer makes us wait (up to
/// the busy timeout) here rather than fail in the middle of a migration.
fn begin(conn: &Connection) -> Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .context("cannot begin a transaction")
}

/// Runs a migration inside a new transaction; `record` writes the tracking rows in that same
/// transaction before COMMIT. On any failure everything is rolled back.
fn run_in_transaction(
    db: &Database,
    component: &MigrationComponent,
    direction: Direction,
    record: impl FnOnce(&Connection) -> Result<()>,
) -> Result<StepReport> {
    begin(&db.connection())?;
    let result = run_step(db, component, direction).and_then(|step| {
        let conn = db.connection();
        record(&conn)?;
        conn.execute_batch("COMMIT")
            .context(format!("cannot commit {}", component.label()))?;
        Ok(step)
    });
    if result.is_err() {
        let conn = db.connection();
        if !conn.is_autocommit()
            && let Err(error) = conn.execute_batch("ROLLBACK")
        {
            tracing::error!("cannot roll back {}: {error}", component.label());
        }
    }
    result
}

/// Runs the guest inside the caller's transaction and measures what it changed.
fn run_step(
    db: &Database,
    component: &MigrationComponent,
    direction: Direction,
) -> Result<StepReport> {
    let (before, changes_before) = {
        let conn = db.connection();
        (schema::snapshot(&conn)?, conn.total_changes())
    };
    let started = Instant::now();
    let outcome = component.run(direction, db);
    let duration_ms = started.elapsed().as_millis() as u64;
    let failed = |cause: String| Error::MigrationFailed {
        version: component.version(),
        name: component.metadata().name.clone(),
        direction,
        cause,
    };
    outcome.map_err(failed)?;

    let conn = db.connection();
    if conn.is_autocommit() {
        return Err(failed(
            "it ended the host's transaction (COMMIT or ROLLBACK); migrations must leave \
             transaction control to hsm-host"
                .into(),
        ));
    }
    let rows_changed = conn.total_changes() - changes_before;
    let after = schema::snapshot(&conn)?;
    Ok(StepReport {
        version: component.version(),
        name: component.metadata().name.clone(),
        direction,
        schema: schema::diff(&before, &after),
        rows_changed,
        duration_ms,
    })
}

fn applied_versions(conn: &Connection) -> Result<BTreeSet<u64>> {
    Ok(tracking::migrations(conn)?
        .into_iter()
        .filter(|row| row.status == tracking::APPLIED)
        .map(|row| row.version)
        .collect())
}
