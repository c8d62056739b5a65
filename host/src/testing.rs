//! A scratch database for plugin authors' own `cargo test`: load components (a directory or
//! files), seed rows, apply, assert on rows and schema, roll back, and check round trips.
//!
//! ```no_run
//! use hsm_host::testing::Scratch;
//!
//! # fn main() -> Result<(), hsm_host::Error> {
//! let scratch = Scratch::from_dir("migrations-wasm/target/wasm32-wasip2/release")?;
//! scratch.up_to(2)?;
//! scratch.seed("INSERT INTO users (name, email) VALUES ('Ada', 'ADA@EXAMPLE.ORG')")?;
//! scratch.up_to(3)?;
//! let email: String = scratch.query_one("SELECT email FROM users WHERE name = 'Ada'")?;
//! assert_eq!(email, "ada@example.org");
//! assert!(scratch.has_table("users"));
//! // Every reversible migration's down restores the schema, and up makes it again.
//! assert!(Scratch::from_dir("migrations-wasm/target/wasm32-wasip2/release")?
//!     .round_trips()?
//!     .passed());
//! # Ok(())
//! # }
//! ```

use std::path::Path;

use rusqlite::types::FromSql;

use crate::database::Database;
use crate::error::{Result, SqliteContext};
use crate::migrator::{Migrator, RunReport, Safety};
use crate::roundtrip::TestReport;
use crate::runtime::Runtime;

/// Migrations and an in-memory database they run against, with hsm-host's checks on and no
/// backups (there is no file to back up).
pub struct Scratch {
    migrator: Migrator,
    db: Database,
}

impl Scratch {
    /// The migrations of `dir` (components and SQL files) on an empty database.
    ///
    /// # Errors
    /// As [`Migrator::load_dir`].
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self> {
        Self::with(Migrator::load_dir(dir)?)
    }

    /// These component files on an empty database.
    ///
    /// # Errors
    /// A file that cannot be loaded; two files with one version.
    pub fn from_files(files: &[impl AsRef<Path>]) -> Result<Self> {
        let runtime = Runtime::new()?;
        let components = files
            .iter()
            .map(|file| runtime.load_file(file.as_ref()))
            .collect::<Result<Vec<_>>>()?;
        Self::with(Migrator::new(runtime, components)?)
    }

    fn with(migrator: Migrator) -> Result<Self> {
        let migrator = migrator.with_safety(Safety {
            backups: None,
            ..Safety::default()
        });
        Ok(Self {
            migrator,
            db: Database::open_in_memory()?,
        })
    }

    /// Runs `sql` on the database as the test's own setup (outside any migration's sandbox).
    ///
    /// # Errors
    /// [`crate::Error::Sqlite`] when SQLite refuses it.
    pub fn seed(&self, sql: &str) -> Result<()> {
        self.db
            .connection()
            .execute_batch(sql)
            .context("the test's seed SQL failed")
    }

    /// Applies every pending migration.
    ///
    /// # Errors
    /// As [`Migrator::up`].
    pub fn up(&self) -> Result<RunReport> {
        self.migrator.up(&self.db, None)
    }

    /// Applies the pending migrations up to `version`.
    ///
    /// # Errors
    /// As [`Migrator::up`].
    pub fn up_to(&self, version: u64) -> Result<RunReport> {
        self.migrator.up(&self.db, Some(version))
    }

    /// Rolls back every migration above `version`.
    ///
    /// # Errors
    /// As [`Migrator::down`].
    pub fn down_to(&self, version: u64) -> Result<RunReport> {
        self.migrator.down(&self.db, Some(version))
    }

    /// The first column of the first row of `sql`.
    ///
    /// # Errors
    /// [`crate::Error::Sqlite`]: no row, or a value of another type.
    pub fn query_one<T: FromSql>(&self, sql: &str) -> Result<T> {
        self.db
            .connection()
            .query_row(sql, [], |row| row.get(0))
            .context(format!("the test's query failed: {sql}"))
    }

    /// Whether a table or view of that name exists.
    pub fn has_table(&self, name: &str) -> bool {
        self.db
            .connection()
            .query_row(
                "SELECT count(*) FROM main.sqlite_schema WHERE type IN ('table', 'view') AND name = ?1",
                [name],
                |row| row.get::<_, i64>(0),
            )
            .is_ok_and(|n| n > 0)
    }

    /// The columns of `table`, in order (empty when there is no such table).
    pub fn columns(&self, table: &str) -> Vec<String> {
        crate::tracking::column_names(&self.db.connection(), table).unwrap_or_default()
    }

    /// The version now applied.
    ///
    /// # Errors
    /// [`crate::Error::Sqlite`] when the tracking tables cannot be read.
    pub fn version(&self) -> Result<u64> {
        Ok(self.migrator.status(Some(&self.db))?.current_version)
    }

    /// `hsm-host test` on this scratch database: each pending migration applied, rolled back
    /// and applied again, the schema compared each time.
    ///
    /// # Errors
    /// As [`Migrator::test_round_trips`].
    pub fn round_trips(&self) -> Result<TestReport> {
        self.migrator.test_round_trips(&self.db)
    }

    /// The database, for anything else.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The migrations.
    pub fn migrator(&self) -> &Migrator {
        &self.migrator
    }
}
