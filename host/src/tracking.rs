//! The tracking tables `migrations` and `migration_history`, exactly as the Node tool made them,
//! so a database it managed is adopted as it is. Every statement here is parameterised.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::error::{Error, Result, SqliteContext};
use crate::plan::Direction;

/// The tables' definitions, column for column those of the original guide.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS main.migrations (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  description TEXT,
  applied_at TEXT NOT NULL,
  rolled_back_at TEXT,
  backup_path TEXT,
  status TEXT NOT NULL DEFAULT 'applied',
  error_message TEXT
);
CREATE TABLE IF NOT EXISTS main.migration_history (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  version INTEGER NOT NULL,
  direction TEXT NOT NULL,
  status TEXT NOT NULL,
  backup_path TEXT,
  error_message TEXT,
  started_at TEXT NOT NULL,
  completed_at TEXT
);
";

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

/// What hsm-host adds to the guide's tables, with ALTER TABLE ... ADD COLUMN only, and its own
/// table of the exact components it applied, keyed by their sha256.
const HOST_ADDITIONS: &str = "
CREATE TABLE IF NOT EXISTS main.hsm_components (
  checksum TEXT PRIMARY KEY,
  bytes BLOB NOT NULL,
  stored_at TEXT NOT NULL
);
";

/// The tables that belong to the host; guests may read them but never write them.
pub const HOST_TABLES: [&str; 3] = ["migrations", "migration_history", "hsm_components"];

/// `migration_history.error_message` of an attempt whose process died.
pub const INTERRUPTED: &str = "interrupted: the process ended during the migration";

/// `migrations.status` of an applied migration.
pub const APPLIED: &str = "applied";
/// `migrations.status` of a rolled-back migration.
pub const ROLLED_BACK: &str = "rolled_back";

/// One row of `migrations`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationRow {
    pub version: u64,
    pub name: String,
    pub description: Option<String>,
    pub applied_at: String,
    pub rolled_back_at: Option<String>,
    pub backup_path: Option<String>,
    pub status: String,
    pub error_message: Option<String>,
    /// sha256 of the component that applied it; `None` for rows of the Node tool.
    pub checksum: Option<String>,
}

/// One row of `migration_history`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryRow {
    pub id: i64,
    pub version: u64,
    pub direction: String,
    pub status: String,
    pub backup_path: Option<String>,
    pub error_message: Option<String>,
    pub started_at: String,
    pub completed_at: Option<String>,
}

/// Creates the tables where absent, and checks that tables found already have our columns.
pub fn ensure_tables(conn: &Connection) -> Result<()> {
    // Check before creating: a refused database must be left exactly as it was.
    check_columns(conn)?;
    conn.execute_batch(SCHEMA)
        .context("cannot create the tracking tables")?;
    if !column_names(conn, "migrations")?
        .iter()
        .any(|c| c == "checksum")
    {
        conn.execute_batch("ALTER TABLE main.migrations ADD COLUMN checksum TEXT")
            .context("cannot add the checksum column to migrations")?;
    }
    conn.execute_batch(HOST_ADDITIONS)
        .context("cannot create the hsm_components table")
}

/// Whether this database has the tracking tables at all.
pub fn exists(conn: &Connection) -> Result<bool> {
    let count: i64 = conn
        .query_row(
            "SELECT count(*) FROM main.sqlite_schema WHERE type = 'table' AND name IN ('migrations', 'migration_history')",
            [],
            |row| row.get(0),
        )
        .context("cannot look for the tracking tables")?;
    Ok(count == 2)
}

/// Refuses tables that share our names but not our columns: writing into them could destroy
/// someone else's data. A table that does not exist yet passes.
pub fn check_columns(conn: &Connection) -> Result<()> {
    for (table, wanted) in [
        ("migrations", &MIGRATIONS_COLUMNS),
        ("migration_history", &HISTORY_COLUMNS),
    ] {
        let have = column_names(conn, table)?;
        if have.is_empty() {
            continue;
        }
        if let Some(column) = wanted.iter().find(|c| !have.iter().any(|h| h == *c)) {
            return Err(Error::IncompatibleTracking { table, column });
        }
    }
    Ok(())
}

/// The columns of `table`, in order.
pub fn column_names(conn: &Connection, table: &str) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info(?1, 'main') ORDER BY cid")
        .context("cannot read table columns")?;
    stmt.query_map([table], |row| row.get(0))
        .and_then(|rows| rows.collect())
        .context(format!("cannot read the columns of {table}"))
}

/// Every row of `migrations`, by version.
pub fn migrations(conn: &Connection) -> Result<Vec<MigrationRow>> {
    // A database the Node tool made has no checksum column until hsm-host first writes to it.
    let has_checksum = column_names(conn, "migrations")?
        .iter()
        .any(|c| c == "checksum");
    let checksum = if has_checksum { "checksum" } else { "NULL" };
    let mut stmt = conn
        .prepare(&format!(
            "SELECT version, name, description, applied_at, rolled_back_at, backup_path, status,
                    error_message, {checksum}
             FROM main.migrations ORDER BY version"
        ))
        .context("cannot read the migrations table")?;
    stmt.query_map([], |row| {
        Ok(MigrationRow {
            version: row.get(0)?,
            name: row.get(1)?,
            description: row.get(2)?,
            applied_at: row.get(3)?,
            rolled_back_at: row.get(4)?,
            backup_path: row.get(5)?,
            status: row.get(6)?,
            error_message: row.get(7)?,
            checksum: row.get(8)?,
        })
    })
    .and_then(|rows| rows.collect())
    .context("cannot read the migrations table")
}

/// The newest `limit` history rows, newest first.
pub fn recent_history(conn: &Connection, limit: u32) -> Result<Vec<HistoryRow>> {
    let mut stmt = conn
        .prepare(
            "SELECT id, version, direction, status, backup_path, error_message, started_at,
                    completed_at
             FROM main.migration_history ORDER BY id DESC LIMIT ?1",
        )
        .context("cannot read the migration_history table")?;
    stmt.query_map([limit], |row| {
        Ok(HistoryRow {
            id: row.get(0)?,
            version: row.get(1)?,
            direction: row.get(2)?,
            status: row.get(3)?,
            backup_path: row.get(4)?,
            error_message: row.get(5)?,
            started_at: row.get(6)?,
            completed_at: row.get(7)?,
        })
    })
    .and_then(|rows| rows.collect())
    .context("cannot read the migration_history table")
}

/// Writes the `running` history row of an attempt (committed on its own, so that an attempt
/// that never finishes stays visible) and returns its id.
pub fn start_attempt(
    conn: &Connection,
    version: u64,
    direction: Direction,
    backup_path: Option<&str>,
    now: &str,
) -> Result<i64> {
    conn.execute(
        "INSERT INTO main.migration_history (version, direction, status, backup_path, started_at)
         VALUES (?1, ?2, 'running', ?3, ?4)",
        params![version, direction.as_str(), backup_path, now],
    )
    .context(format!("cannot record the start of migration {version}"))?;
    Ok(conn.last_insert_rowid())
}

/// Closes a history row as `success`, or `failed` with the error.
pub fn finish_attempt(conn: &Connection, id: i64, error: Option<&str>, now: &str) -> Result<()> {
    let status = if error.is_some() { "failed" } else { "success" };
    conn.execute(
        "UPDATE main.migration_history SET status = ?1, error_message = ?2, completed_at = ?3
         WHERE id = ?4",
        params![status, error, now, id],
    )
    .context("cannot record the end of a migration attempt")?;
    Ok(())
}

/// What the `migrations` row of a newly applied migration says.
pub struct Applied<'a> {
    pub version: u64,
    pub name: &'a str,
    pub description: &'a str,
    pub backup_path: Option<&'a str>,
    pub checksum: &'a str,
}

/// Marks a migration applied; re-applying a rolled-back one resets its row.
pub fn record_applied(conn: &Connection, applied: &Applied<'_>, now: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO main.migrations (version, name, description, applied_at, rolled_back_at,
                                 backup_path, status, error_message, checksum)
         VALUES (?1, ?2, ?3, ?4, NULL, ?5, 'applied', NULL, ?6)
         ON CONFLICT (version) DO UPDATE SET
           name = excluded.name, description = excluded.description,
           applied_at = excluded.applied_at, rolled_back_at = NULL,
           backup_path = excluded.backup_path, status = 'applied', error_message = NULL,
           checksum = excluded.checksum",
        params![
            applied.version,
            applied.name,
            applied.description,
            now,
            applied.backup_path,
            applied.checksum
        ],
    )
    .context(format!(
        "cannot record migration {} as applied",
        applied.version
    ))?;
    Ok(())
}

/// Marks a migration rolled back.
pub fn record_rolled_back(
    conn: &Connection,
    version: u64,
    backup_path: Option<&str>,
    now: &str,
) -> Result<()> {
    conn.execute(
        "UPDATE main.migrations SET status = 'rolled_back', rolled_back_at = ?1,
                backup_path = coalesce(?2, backup_path)
         WHERE version = ?3",
        params![now, backup_path, version],
    )
    .context(format!("cannot record migration {version} as rolled back"))?;
    Ok(())
}

/// The highest applied version, 0 when none is.
pub fn current_version(conn: &Connection) -> Result<u64> {
    conn.query_row(
        "SELECT max(version) FROM main.migrations WHERE status = 'applied'",
        [],
        |row| row.get::<_, Option<u64>>(0),
    )
    .optional()
    .map(|v| v.flatten().unwrap_or(0))
    .context("cannot read the current version")
}

/// Whether a history row says an attempt is still `running` (live, or its process died).
pub fn has_running(conn: &Connection) -> Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM main.migration_history WHERE status = 'running')",
        [],
        |row| row.get(0),
    )
    .context("cannot look for interrupted migrations")
}

/// Marks every `running` history row `failed` as interrupted and returns their versions. Only
/// call it while holding the migration lock: then no live process can be running them.
pub fn mark_interrupted(conn: &Connection, now: &str) -> Result<Vec<u64>> {
    let versions: Vec<u64> = conn
        .prepare("SELECT version FROM main.migration_history WHERE status = 'running' ORDER BY id")
        .and_then(|mut stmt| stmt.query_map([], |row| row.get(0))?.collect())
        .context("cannot look for interrupted migrations")?;
    if !versions.is_empty() {
        conn.execute(
            "UPDATE main.migration_history SET status = 'failed', error_message = ?1, completed_at = ?2
             WHERE status = 'running'",
            params![INTERRUPTED, now],
        )
        .context("cannot mark interrupted migrations")?;
    }
    Ok(versions)
}

/// Keeps the exact bytes of an applied component, so `down` can run it even after its file
/// changed or disappeared.
pub fn store_component(conn: &Connection, checksum: &str, bytes: &[u8], now: &str) -> Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO main.hsm_components (checksum, bytes, stored_at) VALUES (?1, ?2, ?3)",
        params![checksum, bytes, now],
    )
    .context("cannot store the applied component")?;
    Ok(())
}

/// The stored bytes of a component, by checksum.
pub fn stored_component(conn: &Connection, checksum: &str) -> Result<Option<Vec<u8>>> {
    conn.query_row(
        "SELECT bytes FROM main.hsm_components WHERE checksum = ?1",
        [checksum],
        |row| row.get(0),
    )
    .optional()
    .context("cannot read a stored component")
}

/// Accepts a component file as it is now for an applied migration (`hsm-host repair`).
pub fn set_checksum(conn: &Connection, version: u64, checksum: &str) -> Result<()> {
    conn.execute(
        "UPDATE main.migrations SET checksum = ?1 WHERE version = ?2",
        params![checksum, version],
    )
    .context(format!("cannot update the checksum of migration {version}"))?;
    Ok(())
}

/// `migration_history.status` of a migration recorded as applied without running it (another
/// tool applied it, or a baseline said so).
pub const ADOPTED: &str = "adopted";

/// The history row of a migration recorded without running.
pub fn record_adopted(conn: &Connection, version: u64, now: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO main.migration_history (version, direction, status, started_at, completed_at)
         VALUES (?1, 'up', ?2, ?3, ?3)",
        params![version, ADOPTED, now],
    )
    .context(format!("cannot record migration {version} as adopted"))?;
    Ok(())
}
