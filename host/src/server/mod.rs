//! Migrating a database server (`--database postgresql://…`): the same components, plans and
//! reports as on SQLite, with the backend (`hsm-postgres`) owning the sessions, the tracking
//! rows and the lock. There is no file to back up: each migration's transaction is what stands
//! in for the backup (a failure leaves nothing), and PostgreSQL enforces every constraint as
//! it goes, so there is no after-the-fact check to run either.

use std::path::PathBuf;
use std::time::Duration;

use hsm_postgres::{Server, Target};

mod adopt;
mod baseline;
mod rehearsal;
mod repair;
mod run;

use crate::error::{Error, Result};
use crate::migrator::{Migrator, RunReport};
use crate::pack::SqlOptions;
use crate::plan::Direction;
use crate::runtime::{Compiler, Limits, Runtime};
use crate::status::Status;

pub use hsm_postgres::doctor::Checkup;
pub use hsm_postgres::schema::{InitOptions, InitReport};
pub use hsm_postgres::{DumpPlan, Dumped, is_server_url};

/// How many times a step that could not get a lock in time runs again.
const LOCK_RETRIES: u32 = 4;

/// A database server and the migrations directory for it.
pub struct ServerProject {
    target: Target,
    migrations: PathBuf,
    sql: SqlOptions,
    schema: String,
    limits: Limits,
    cache_dir: Option<PathBuf>,
    cache_max: u64,
    compiler: Compiler,
    lock_wait: Duration,
    dump: Option<DumpPlan>,
    trust: Option<hsm_signing::Trust>,
}

/// A backend error in the library's terms.
fn server_error(error: hsm_postgres::Error) -> Error {
    Error::Server {
        usage: error.is_usage(),
        message: error.to_string(),
    }
}

/// Migration `component`'s failure during `direction`, with `cause` (and the SQLite code a
/// guest's error maps to).
fn step_failed(
    component: &crate::runtime::MigrationComponent,
    direction: Direction,
    cause: String,
    sqlite_code: Option<i32>,
) -> Error {
    Error::MigrationFailed {
        version: component.version(),
        name: component.metadata().name.clone(),
        direction,
        cause,
        completed: Vec::new(),
        sqlite_code,
        backup: None,
    }
}

/// What one step on a server did: no schema snapshots or row counts there (the server keeps
/// them), its time.
fn step_report(
    component: &crate::runtime::MigrationComponent,
    direction: Direction,
    took: std::time::Duration,
) -> crate::migrator::StepReport {
    crate::migrator::StepReport {
        version: component.version(),
        name: component.metadata().name.clone(),
        direction,
        schema: Default::default(),
        rows_changed: 0,
        rows_dropped: 0,
        duration_ms: took.as_millis() as u64,
    }
}

impl ServerProject {
    /// The server `url` names, and the migrations in `migrations`.
    ///
    /// # Errors
    /// [`Error::Server`] when the URL cannot be read.
    pub fn new(url: &str, migrations: impl Into<PathBuf>) -> Result<Self> {
        Ok(Self {
            target: Target::parse(url).map_err(server_error)?,
            migrations: migrations.into(),
            // PostgreSQL runs a migration that asks for it outside a transaction.
            sql: SqlOptions {
                no_transaction: true,
                ..SqlOptions::default()
            },
            schema: "hsm".into(),
            limits: Limits::default(),
            cache_dir: None,
            cache_max: 0,
            compiler: Compiler::default(),
            lock_wait: Duration::from_secs(10),
            dump: None,
            trust: None,
        })
    }

    /// Runs only components `trust` accepts (as [`crate::Project::with_trust`]).
    pub fn with_trust(mut self, trust: Option<hsm_signing::Trust>) -> Self {
        self.trust = trust;
        self
    }

    /// Reads the directory's SQL files with these options.
    pub fn with_sql(mut self, sql: SqlOptions) -> Self {
        self.sql = SqlOptions {
            no_transaction: true,
            ..sql
        };
        self
    }

    /// Keeps the tracking tables in `schema` (default `hsm`).
    pub fn with_schema(mut self, schema: &str) -> Self {
        self.schema = schema.to_owned();
        self
    }

    /// Each migration's limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The compile cache, and its cap.
    pub fn with_cache(mut self, dir: Option<PathBuf>, max_bytes: u64) -> Self {
        self.cache_dir = dir;
        self.cache_max = max_bytes;
        self
    }

    /// Which compiler loads components.
    pub fn with_compiler(mut self, compiler: Compiler) -> Self {
        self.compiler = compiler;
        self
    }

    /// How long `up` and `down` wait for another process's lock.
    pub fn with_lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// Dumps the database with `pg_dump` before an `up` or `down` that runs a step
    /// (`--backup pg_dump`).
    pub fn with_dump(mut self, plan: Option<DumpPlan>) -> Self {
        self.dump = plan;
        self
    }

    /// Dumps the database now (`hsm-host backup`), into `plan`'s directory.
    pub fn backup(&self, plan: &DumpPlan) -> Result<Dumped> {
        let server = self.open()?;
        hsm_postgres::dump(&server, plan).map_err(server_error)
    }

    /// The URL, without its password.
    pub fn target(&self) -> String {
        self.target.to_string()
    }

    fn runtime(&self) -> Result<Runtime> {
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

    /// The set, loaded and validated (a fleet loads it once and runs it with
    /// [`ServerProject::run_with`]).
    ///
    /// # Errors
    /// As [`Migrator::load_dir_in`].
    pub fn migrator(&self) -> Result<Migrator> {
        Migrator::load_dir_in(self.runtime()?, &self.migrations, self.sql.clone())
    }

    fn open(&self) -> Result<Server> {
        Server::open(&self.target, &self.schema).map_err(server_error)
    }

    /// Makes the roles, the tracking schema and its functions (`hsm-host pg init`), connected
    /// with a superuser's URL.
    ///
    /// # Errors
    /// [`Error::Server`].
    pub fn init(&self, app_role: Option<String>, host_role: Option<String>) -> Result<InitReport> {
        let mut client = self.target.connect().map_err(server_error)?;
        hsm_postgres::schema::init(
            &mut client,
            &InitOptions {
                schema: self.schema.clone(),
                app_role,
                host_role,
            },
        )
        .map_err(server_error)
    }

    /// Checks the migrator role is a boundary (`hsm-host pg doctor`).
    ///
    /// # Errors
    /// [`Error::Server`].
    pub fn doctor(&self) -> Result<Checkup> {
        hsm_postgres::doctor::check(&mut self.open()?).map_err(server_error)
    }

    /// Which migrations are applied, pending, changed or missing; attempts a dead process
    /// left `running` are recorded as interrupted when no other process holds the lock.
    ///
    /// # Errors
    /// As [`crate::source::survey_dir`]; [`Error::Server`].
    pub fn status(&self) -> Result<Status> {
        let survey =
            crate::source::survey_dir(&self.runtime()?, &self.migrations, self.sql.clone())?;
        let mut server = self.open()?;
        let interrupted = match server.lock(Duration::ZERO) {
            Ok(()) => server.recover_interrupted().map_err(server_error)?,
            Err(_) => Vec::new(),
        };
        let rows = server.migrations().map_err(server_error)?;
        let history = server
            .history(i64::from(crate::status::HISTORY_ROWS))
            .map_err(server_error)?;
        let mut status = Status::from_rows(&survey.known, rows, history);
        status.database = Some(PathBuf::from(self.target()));
        status.server = true;
        status.unread_components = survey.unread.into_iter().map(|u| u.path).collect();
        status.interrupted = interrupted;
        Ok(status)
    }

    /// Applies pending migrations up to `target` (all when `None`), each in its own
    /// transaction on its own session.
    ///
    /// # Errors
    /// [`Error::Plan`], [`Error::ComponentChanged`] before anything runs; [`Error::Server`];
    /// [`Error::MigrationFailed`].
    pub fn up(&self, target: Option<u64>) -> Result<RunReport> {
        self.run_with(&self.migrator()?, Direction::Up, target)
    }

    /// Rolls back to `target` (the newest one when `None`).
    ///
    /// # Errors
    /// As [`ServerProject::up`].
    pub fn down(&self, target: Option<u64>) -> Result<RunReport> {
        self.run_with(&self.migrator()?, Direction::Down, target)
    }
}
