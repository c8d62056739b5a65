//! The tracking tables `migrations` and `migration_history`, exactly as the Node tool made them,
//! so a database it managed is adopted as it is. Every statement here is parameterised.
//!
//! Their names can carry a prefix ([`Tracking::with_prefix`]) for applications that own a
//! table called `migrations`: the columns stay the seed's, only the names change.

use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;

use crate::error::{Error, Result, SqliteContext};

mod attempt;
mod components;
mod words;
mod writes;

pub use attempt::{Attempt, MAX_ATTEMPT_LINE};
pub use words::{HistoryDirection, HistoryStatus, RowStatus};

pub use writes::{Applied, TrackingWrites};

pub use components::{MAX_COMPONENT_BYTES, stored_form};

const MIGRATIONS_COLUMNS: [&str; 8] = [
    "version",
    "name",
    "description",
    "applied_at",
    "rolled_back_at",
    "backup_path",
    "status",
    "error_message",
];
const HISTORY_COLUMNS: [&str; 8] = [
    "id",
    "version",
    "direction",
    "status",
    "backup_path",
    "error_message",
    "started_at",
    "completed_at",
];

/// The seed's table names, without a prefix.
const MIGRATIONS: &str = "migrations";
const HISTORY: &str = "migration_history";
const COMPONENTS: &str = "hsm_components";

/// The longest prefix accepted: table names stay short enough to read in any tool.
const MAX_PREFIX: usize = 32;

/// Which tables track this database: the seed's `migrations`, `migration_history` (and
/// hsm-host's `hsm_components`), or the same names behind a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracking {
    prefix: String,
    migrations: String,
    history: String,
    components: String,
}

impl Default for Tracking {
    fn default() -> Self {
        Self::named("")
    }
}

impl Tracking {
    /// The tracking tables named `{prefix}migrations`, `{prefix}migration_history` and
    /// `{prefix}hsm_components`; `""` gives the seed's names.
    ///
    /// # Errors
    /// [`Error::InvalidTrackingPrefix`] unless the prefix is ASCII letters, digits and `_`,
    /// starting with a letter or `_`, at most 32 characters, and not `sqlite_` (SQLite's own).
    pub fn with_prefix(prefix: &str) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidTrackingPrefix {
            prefix: crate::text::neutralize(prefix, MAX_PREFIX * 2),
            reason: reason.to_owned(),
        };
        if prefix.len() > MAX_PREFIX {
            return Err(invalid("it is longer than 32 characters"));
        }
        if !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(invalid("only ASCII letters, digits and `_` may be used"));
        }
        if prefix.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(invalid("it must start with a letter or `_`"));
        }
        if prefix.to_ascii_lowercase().starts_with("sqlite_") {
            return Err(invalid("names starting with `sqlite_` are SQLite's own"));
        }
        Ok(Self::named(prefix))
    }

    fn named(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            migrations: format!("{prefix}{MIGRATIONS}"),
            history: format!("{prefix}{HISTORY}"),
            components: format!("{prefix}{COMPONENTS}"),
        }
    }

    /// The prefix (`""` for the seed's names).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The table of migrations (`migrations` by default).
    pub fn migrations_table(&self) -> &str {
        &self.migrations
    }

    /// The table of attempts (`migration_history` by default).
    pub fn history_table(&self) -> &str {
        &self.history
    }

    /// The table of applied components' bytes (`hsm_components` by default).
    pub fn components_table(&self) -> &str {
        &self.components
    }

    /// The tables that belong to the host; guests may read them but never write them.
    pub fn host_tables(&self) -> [&str; 3] {
        [&self.migrations, &self.history, &self.components]
    }

    /// Whether `table` is one of the host's (SQLite compares names without case).
    pub fn is_host_table(&self, table: &str) -> bool {
        self.host_tables()
            .iter()
            .any(|t| t.eq_ignore_ascii_case(table))
    }

    /// The tables' definitions, column for column those of the original guide.
    pub fn schema(&self) -> String {
        let (migrations, history) = (&self.migrations, &self.history);
        format!(
            "
CREATE TABLE IF NOT EXISTS main.\"{migrations}\" (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  description TEXT,
  applied_at TEXT NOT NULL,
  rolled_back_at TEXT,
  backup_path TEXT,
  status TEXT NOT NULL DEFAULT 'applied',
  error_message TEXT
);
CREATE TABLE IF NOT EXISTS main.\"{history}\" (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  version INTEGER NOT NULL,
  direction TEXT NOT NULL,
  status TEXT NOT NULL,
  backup_path TEXT,
  error_message TEXT,
  started_at TEXT NOT NULL,
  completed_at TEXT
);
"
        )
    }

    /// What hsm-host adds to the guide's tables, with ALTER TABLE ... ADD COLUMN only, and its
    /// own table of the exact components it applied, keyed by their sha256.
    fn host_additions(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS main.\"{}\" (
  checksum TEXT PRIMARY KEY,
  bytes BLOB NOT NULL,
  stored_at TEXT NOT NULL,
  recorded_as TEXT
);",
            self.components
        )
    }
}

/// An open database's tracking names, shared with the guest's policy.
pub type SharedTracking = Arc<Tracking>;

/// `migration_history.error_message` of an attempt whose process died.
pub const INTERRUPTED: &str = "interrupted: the process ended during the migration";

/// One row of `migrations`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationRow {
    /// `version`: the migration's version.
    pub version: u64,
    /// `name`.
    pub name: String,
    /// `description`.
    pub description: Option<String>,
    /// `applied_at`: when it was (last) applied.
    pub applied_at: String,
    /// `rolled_back_at`: when it was rolled back, if it is.
    pub rolled_back_at: Option<String>,
    /// `backup_path`: the backup taken before the run that applied or rolled it back.
    pub backup_path: Option<String>,
    /// `status`.
    pub status: RowStatus,
    /// `error_message`.
    pub error_message: Option<String>,
    /// sha256 of the component that applied it; `None` for rows of the Node tool.
    pub checksum: Option<String>,
}

/// One row of `migration_history`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryRow {
    /// `id`: the attempt's number.
    pub id: i64,
    /// `version`.
    pub version: u64,
    /// `direction`: `up` or `down`.
    pub direction: HistoryDirection,
    /// `status`: `running`, `success`, `failed` or `adopted`.
    pub status: HistoryStatus,
    /// `backup_path`: the backup taken before the run.
    pub backup_path: Option<String>,
    /// `error_message`: why it failed.
    pub error_message: Option<String>,
    /// `started_at`.
    pub started_at: String,
    /// `completed_at`.
    pub completed_at: Option<String>,
}

impl Tracking {
    /// Creates the tables where absent, after [`Tracking::check`].
    pub fn ensure_tables(&self, conn: &Connection) -> Result<()> {
        // Check before creating: a refused database must be left exactly as it was.
        self.check(conn)?;
        conn.execute_batch(&self.schema())
            .context("cannot create the tracking tables")?;
        if !column_names(conn, &self.migrations)?
            .iter()
            .any(|c| c == "checksum")
        {
            conn.execute_batch(&format!(
                "ALTER TABLE main.\"{}\" ADD COLUMN checksum TEXT",
                self.migrations
            ))
            .context(format!(
                "cannot add the checksum column to {}",
                self.migrations
            ))?;
        }
        conn.execute_batch(&self.host_additions())
            .context(format!("cannot create the {} table", self.components))?;
        // What migrations.checksum records for a stored component when that is not its sha256
        // (a SQL migration's file digests); who signed it (`--require-signed`), and its
        // detached signature. Tables of earlier releases lack them.
        let present = column_names(conn, &self.components)?;
        for (column, declared) in [
            ("recorded_as", "TEXT"),
            ("signers", "TEXT"),
            ("signature", "BLOB"),
        ] {
            if !present.iter().any(|c| c == column) {
                conn.execute_batch(&format!(
                    "ALTER TABLE main.\"{}\" ADD COLUMN {column} {declared}",
                    self.components
                ))
                .context(format!(
                    "cannot add the {column} column to {}",
                    self.components
                ))?;
            }
        }
        Ok(())
    }

    /// Whether this database has the tracking tables at all.
    pub fn exists(&self, conn: &Connection) -> Result<bool> {
        Ok(!column_names(conn, &self.migrations)?.is_empty()
            && !column_names(conn, &self.history)?.is_empty())
    }

    /// Refuses a database hsm-host must not write to with these names: tables that share our
    /// names but not our columns (writing into them could destroy someone else's data), or,
    /// when ours do not exist yet, tracking tables under another prefix (the database is not
    /// new: creating a second set would apply every migration again).
    pub fn check(&self, conn: &Connection) -> Result<()> {
        let mut foreign = None;
        let mut ours = 0;
        for (table, wanted) in [
            (&self.migrations, &MIGRATIONS_COLUMNS),
            (&self.history, &HISTORY_COLUMNS),
        ] {
            let have = column_names(conn, table)?;
            if have.is_empty() {
                continue;
            }
            match wanted.iter().find(|c| !have.iter().any(|h| h == *c)) {
                Some(column) => foreign = foreign.or(Some((table.clone(), *column))),
                None => ours += 1,
            }
        }
        if ours == 2 {
            return Ok(());
        }
        let elsewhere: Vec<String> = other_prefixes(conn)?
            .into_iter()
            .filter(|p| !p.eq_ignore_ascii_case(&self.prefix))
            .collect();
        if let Some(found) = elsewhere.first() {
            return Err(Error::TrackedElsewhere {
                // A name read from the file: shown escaped.
                found: crate::text::neutralize(found, MAX_PREFIX * 2),
                configured: self.prefix.clone(),
            });
        }
        match foreign {
            Some((table, column)) => Err(Error::IncompatibleTracking { table, column }),
            None => Ok(()),
        }
    }

    /// Every row of `migrations`, by version.
    pub fn migrations(&self, conn: &Connection) -> Result<Vec<MigrationRow>> {
        // A database the Node tool made has no checksum column until hsm-host first writes to it.
        let has_checksum = column_names(conn, &self.migrations)?
            .iter()
            .any(|c| c == "checksum");
        let checksum = if has_checksum {
            "substr(checksum, 1, 16384)"
        } else {
            "NULL"
        };
        let read_error = format!("cannot read the {} table", self.migrations);
        // Text is read to at most 16 KiB a column: whoever wrote the row (an older tool, anyone
        // with the file) could have made it gigabytes long.
        let mut stmt = conn
            .prepare(&format!(
                "SELECT version, substr(name, 1, 16384), substr(description, 1, 16384),
                        substr(applied_at, 1, 16384), substr(rolled_back_at, 1, 16384),
                        substr(backup_path, 1, 16384), substr(status, 1, 16384),
                        substr(error_message, 1, 16384), {checksum}
                 FROM main.\"{}\" ORDER BY version",
                self.migrations
            ))
            .context(read_error.clone())?;
        stmt.query_map([], |row| {
            Ok(MigrationRow {
                version: row.get(0)?,
                name: row.get(1)?,
                description: row.get(2)?,
                applied_at: row.get(3)?,
                rolled_back_at: row.get(4)?,
                backup_path: row.get(5)?,
                status: RowStatus::from_column(row.get(6)?),
                error_message: row.get(7)?,
                checksum: row.get(8)?,
            })
        })
        .and_then(|rows| rows.collect())
        .context(read_error)
    }

    /// The newest `limit` history rows, newest first.
    pub fn recent_history(&self, conn: &Connection, limit: u32) -> Result<Vec<HistoryRow>> {
        let read_error = format!("cannot read the {} table", self.history);
        let mut stmt = conn
            .prepare(&format!(
                "SELECT id, version, substr(direction, 1, 16384), substr(status, 1, 16384),
                        substr(backup_path, 1, 16384), substr(error_message, 1, 16384),
                        substr(started_at, 1, 16384), substr(completed_at, 1, 16384)
                 FROM main.\"{}\" ORDER BY id DESC LIMIT ?1",
                self.history
            ))
            .context(read_error.clone())?;
        stmt.query_map([limit], |row| {
            Ok(HistoryRow {
                id: row.get(0)?,
                version: row.get(1)?,
                direction: HistoryDirection::from_column(row.get(2)?),
                status: HistoryStatus::from_column(row.get(3)?),
                backup_path: row.get(4)?,
                error_message: row.get(5)?,
                started_at: row.get(6)?,
                completed_at: row.get(7)?,
            })
        })
        .and_then(|rows| rows.collect())
        .context(read_error)
    }

    /// The highest applied version, 0 when none is (or there are no tracking tables).
    pub fn current_version(&self, conn: &Connection) -> Result<u64> {
        if column_names(conn, &self.migrations)?.is_empty() {
            return Ok(0);
        }
        conn.query_row(
            &format!(
                "SELECT max(version) FROM main.\"{}\" WHERE status = 'applied'",
                self.migrations
            ),
            [],
            |row| row.get::<_, Option<u64>>(0),
        )
        .optional()
        .map(|v| v.flatten().unwrap_or(0))
        .context("cannot read the current version")
    }

    /// The checksum the `migrations` row of `version` records, if it has a row and one.
    pub fn recorded_checksum(&self, conn: &Connection, version: u64) -> Result<Option<String>> {
        conn.prepare_cached(&format!(
            "SELECT checksum FROM main.\"{}\" WHERE version = ?1",
            self.migrations
        ))
        .and_then(|mut select| {
            select
                .query_row([version], |row| row.get::<_, Option<String>>(0))
                .optional()
        })
        .map(Option::flatten)
        .context(format!("cannot read the record of migration {version}"))
    }

    /// Whether a history row says an attempt is still `running` (live, or its process died).
    pub fn has_running(&self, conn: &Connection) -> Result<bool> {
        conn.query_row(
            &format!(
                "SELECT EXISTS (SELECT 1 FROM main.\"{}\" WHERE status = 'running')",
                self.history
            ),
            [],
            |row| row.get(0),
        )
        .context("cannot look for interrupted migrations")
    }
}

/// The columns of `table` in `main`, in order; empty when there is no such table.
/// (A PRAGMA statement, not `pragma_table_info(…)`: a table of that name would take the
/// function's place.)
pub fn column_names(conn: &Connection, table: &str) -> Result<Vec<String>> {
    let sql = format!(
        "PRAGMA main.table_info({})",
        crate::text::quote_identifier(table)
    );
    let mut stmt = conn.prepare(&sql).context("cannot read table columns")?;
    stmt.query_map([], |row| row.get(1))
        .and_then(|rows| rows.collect())
        .context(format!("cannot read the columns of {table}"))
}

/// The prefixes of every complete set of hsm-host tracking tables in `conn`: a
/// `{p}migration_history` and a `{p}migrations` that both have the seed's columns.
pub fn other_prefixes(conn: &Connection) -> Result<Vec<String>> {
    let candidates: Vec<String> = conn
        .prepare(
            "SELECT substr(name, 1, length(name) - 17) FROM main.sqlite_schema
             WHERE type = 'table' AND name LIKE '%migration\\_history' ESCAPE '\\'
             ORDER BY name",
        )
        .and_then(|mut stmt| stmt.query_map([], |row| row.get(0))?.collect())
        .context("cannot look for tracking tables")?;
    let mut found = Vec::new();
    for prefix in candidates {
        let has = |table: String, wanted: &[&str]| -> Result<bool> {
            let have = column_names(conn, &table)?;
            Ok(!have.is_empty() && wanted.iter().all(|c| have.iter().any(|h| h == c)))
        };
        if has(format!("{prefix}{HISTORY}"), &HISTORY_COLUMNS)?
            && has(format!("{prefix}{MIGRATIONS}"), &MIGRATIONS_COLUMNS)?
        {
            found.push(prefix);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_identifiers() {
        assert_eq!(Tracking::default().migrations_table(), "migrations");
        let app = Tracking::with_prefix("hsm_").unwrap();
        assert_eq!(
            app.host_tables(),
            [
                "hsm_migrations",
                "hsm_migration_history",
                "hsm_hsm_components"
            ]
        );
        for bad in [
            "1x_",
            "a-b",
            "a\"b",
            "x y",
            "sqlite_x",
            "SQLITE_",
            &"a".repeat(33),
        ] {
            assert!(
                matches!(
                    Tracking::with_prefix(bad),
                    Err(Error::InvalidTrackingPrefix { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_set_under_another_prefix_is_found_and_refused() {
        let conn = Connection::open_in_memory().unwrap();
        let app = Tracking::with_prefix("app_").unwrap();
        app.ensure_tables(&conn).unwrap();
        // The application's own `migrations` table is not a tracking set.
        conn.execute_batch("CREATE TABLE migrations (id INTEGER PRIMARY KEY, title TEXT)")
            .unwrap();
        assert_eq!(other_prefixes(&conn).unwrap(), ["app_"]);
        app.check(&conn).unwrap();
        let err = Tracking::default().ensure_tables(&conn).unwrap_err();
        assert!(
            matches!(&err, Error::TrackedElsewhere { found, .. } if found == "app_"),
            "{err}"
        );
        assert!(err.to_string().contains("--tracking-prefix app_"), "{err}");
    }

    #[test]
    fn names_are_never_read_as_sql() {
        // Even a prefix that passed validation is quoted in every statement.
        let conn = Connection::open_in_memory().unwrap();
        let t = Tracking::with_prefix("_select_").unwrap();
        t.ensure_tables(&conn).unwrap();
        assert!(t.exists(&conn).unwrap());
        assert_eq!(t.current_version(&conn).unwrap(), 0);
    }
}
