//! Databases another tool migrated: its history table read (never written), the versions it
//! applied matched against the migration set, so `hsm-host adopt` can record them as applied
//! without running them again. `baseline VERSION` covers a database with no history at all.

use std::collections::BTreeSet;
use std::path::Path;

use rusqlite::{Connection, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha384};

use crate::error::{Result, SqliteContext};

/// The tools whose history hsm-host reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    Diesel,
    Sqlx,
    GolangMigrate,
    Dbmate,
    Goose,
    Flyway,
    Refinery,
}

impl Tool {
    pub fn as_str(self) -> &'static str {
        match self {
            Tool::Diesel => "diesel",
            Tool::Sqlx => "sqlx",
            Tool::GolangMigrate => "golang-migrate",
            Tool::Dbmate => "dbmate",
            Tool::Goose => "goose",
            Tool::Flyway => "flyway",
            Tool::Refinery => "refinery",
        }
    }

    fn table(self) -> &'static str {
        match self {
            Tool::Diesel => "__diesel_schema_migrations",
            Tool::Sqlx => "_sqlx_migrations",
            Tool::GolangMigrate | Tool::Dbmate => "schema_migrations",
            Tool::Goose => "goose_db_version",
            Tool::Flyway => "flyway_schema_history",
            Tool::Refinery => "refinery_schema_history",
        }
    }
}

/// What another tool's history says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Foreign {
    pub tool: Tool,
    pub history: History,
}

/// The shapes of history the tools keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum History {
    /// Every applied version (with the checksum the tool keeps, if it is one hsm-host checks).
    Versions(Vec<(u64, Option<Vec<u8>>)>),
    /// golang-migrate keeps only the current version, and whether a run failed half-way.
    Current { version: u64, dirty: bool },
}

/// The other tool's history in `conn`, if one is there. A table of a known name without the
/// tool's columns is an application's own and is not read.
pub fn find(conn: &Connection) -> Result<Option<Foreign>> {
    for tool in [
        Tool::Diesel,
        Tool::Sqlx,
        Tool::GolangMigrate,
        Tool::Dbmate,
        Tool::Goose,
        Tool::Flyway,
        Tool::Refinery,
    ] {
        let columns = columns(conn, tool.table())?;
        let has = |names: &[&str]| names.iter().all(|n| columns.iter().any(|c| c == n));
        let history = match tool {
            Tool::Diesel if has(&["version", "run_on"]) => History::Versions(digits(strings(
                conn,
                "SELECT version FROM main.__diesel_schema_migrations",
            )?)),
            Tool::Sqlx if has(&["version", "success", "checksum"]) => {
                let mut stmt = conn
                    .prepare(
                        "SELECT version, checksum FROM main._sqlx_migrations WHERE success = 1",
                    )
                    .context("cannot read _sqlx_migrations")?;
                let rows = stmt
                    .query_map([], |row| Ok((row.get::<_, i64>(0)?, row.get(1)?)))
                    .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
                    .context("cannot read _sqlx_migrations")?;
                History::Versions(
                    rows.into_iter()
                        .filter_map(|(v, sum)| u64::try_from(v).ok().map(|v| (v, sum)))
                        .collect(),
                )
            }
            Tool::GolangMigrate if has(&["version", "dirty"]) => {
                let row: Option<(i64, bool)> = conn
                    .query_row(
                        "SELECT version, dirty FROM main.schema_migrations",
                        [],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )
                    .optional()
                    .context("cannot read schema_migrations")?;
                match row {
                    Some((version, dirty)) => History::Current {
                        version: u64::try_from(version).unwrap_or(0),
                        dirty,
                    },
                    None => History::Versions(Vec::new()),
                }
            }
            Tool::Dbmate if columns == ["version"] => History::Versions(digits(strings(
                conn,
                "SELECT version FROM main.schema_migrations",
            )?)),
            Tool::Goose if has(&["version_id", "is_applied"]) => {
                // One row per up or down: a version's newest row says where it stands.
                let applied = strings(
                    conn,
                    "SELECT version_id FROM main.goose_db_version AS g
                     WHERE version_id > 0 AND is_applied
                       AND id = (SELECT max(id) FROM main.goose_db_version
                                 WHERE version_id = g.version_id)",
                )?;
                History::Versions(digits(applied))
            }
            Tool::Flyway if has(&["version", "success", "type"]) => {
                History::Versions(digits(strings(
                    conn,
                    "SELECT version FROM main.flyway_schema_history
                     WHERE success AND version IS NOT NULL AND type = 'SQL'",
                )?))
            }
            Tool::Refinery if has(&["version", "checksum"]) => History::Versions(digits(strings(
                conn,
                "SELECT version FROM main.refinery_schema_history",
            )?)),
            _ => continue,
        };
        return Ok(Some(Foreign { tool, history }));
    }
    Ok(None)
}

fn columns(conn: &Connection, table: &str) -> Result<Vec<String>> {
    conn.prepare("SELECT name FROM pragma_table_info(?1, 'main') ORDER BY cid")
        .and_then(|mut stmt| stmt.query_map([table], |row| row.get(0))?.collect())
        .context(format!("cannot read the columns of {table}"))
}

/// A column of text or numbers, as text.
fn strings(conn: &Connection, sql: &str) -> Result<Vec<String>> {
    conn.prepare(sql)
        .and_then(|mut stmt| {
            stmt.query_map([], |row| {
                Ok(match row.get_ref(0)? {
                    rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                    other => {
                        String::from_utf8_lossy(other.as_bytes().unwrap_or_default()).into_owned()
                    }
                })
            })?
            .collect()
        })
        .context("cannot read the other tool's history")
}

/// Versions as hsm-host numbers them: the digits of the tool's version (`2024-03-13-170000` is
/// 20240313170000), as the SQL set's file names are read.
fn digits(versions: Vec<String>) -> Vec<(u64, Option<Vec<u8>>)> {
    versions
        .into_iter()
        .filter_map(|v| {
            let digits: String = v.chars().filter(char::is_ascii_digit).collect();
            digits.parse().ok().map(|n| (n, None))
        })
        .collect()
}

/// The versions of `set` the other tool applied; `Err` names every mismatch: a version it
/// applied that the set lacks, a checksum that differs, a half-failed golang-migrate run.
/// `source_of(version)` gives the SQL file a version came from, for sqlx's checksums.
pub fn applied_versions(
    foreign: &Foreign,
    set: &BTreeSet<u64>,
    source_of: impl Fn(u64) -> Option<std::path::PathBuf>,
) -> std::result::Result<BTreeSet<u64>, Vec<String>> {
    let tool = foreign.tool.as_str();
    let mut problems = Vec::new();
    let applied: BTreeSet<u64> = match &foreign.history {
        History::Current {
            dirty: true,
            version,
        } => {
            return Err(vec![format!(
                "golang-migrate marks version {version} dirty: a run failed half-way; fix the \
                 database and clear the flag with golang-migrate first"
            )]);
        }
        History::Current { version, .. } => {
            if *version > 0 && !set.contains(version) {
                problems.push(format!(
                    "{tool} applied version {version}, which is not in the migration set"
                ));
            }
            set.range(..=*version).copied().collect()
        }
        History::Versions(versions) => {
            for (version, checksum) in versions {
                if !set.contains(version) {
                    problems.push(format!(
                        "{tool} applied version {version}, which is not in the migration set"
                    ));
                    continue;
                }
                if let (Some(recorded), Some(file)) = (checksum, source_of(*version))
                    && let Some(problem) = sqlx_checksum_differs(recorded, &file)
                {
                    problems.push(format!("version {version}: {problem}"));
                }
            }
            versions.iter().map(|(v, _)| *v).collect()
        }
    };
    if problems.is_empty() {
        Ok(applied)
    } else {
        Err(problems)
    }
}

/// sqlx keeps the SHA-384 of each file it ran.
fn sqlx_checksum_differs(recorded: &[u8], file: &Path) -> Option<String> {
    let bytes = std::fs::read(file).ok()?;
    let found = Sha384::digest(&bytes);
    (found.as_slice() != recorded).then(|| {
        format!(
            "{} is not the file sqlx applied (its SHA-384 differs from the one in _sqlx_migrations)",
            file.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tools_history_is_read() {
        let conn = Connection::open_in_memory().unwrap();
        assert_eq!(find(&conn).unwrap(), None);
        conn.execute_batch(
            "CREATE TABLE goose_db_version (id INTEGER PRIMARY KEY, version_id INTEGER,
                                            is_applied INTEGER, tstamp TEXT);
             INSERT INTO goose_db_version (version_id, is_applied) VALUES
               (0, 1), (1, 1), (2, 1), (3, 1), (3, 0);",
        )
        .unwrap();
        let found = find(&conn).unwrap().unwrap();
        assert_eq!(found.tool, Tool::Goose);
        assert_eq!(found.history, History::Versions(vec![(1, None), (2, None)]));

        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER, dirty INTEGER);
             INSERT INTO schema_migrations VALUES (3, 1);",
        )
        .unwrap();
        let found = find(&conn).unwrap().unwrap();
        let set = BTreeSet::from([1, 2, 3, 4]);
        let refused = applied_versions(&found, &set, |_| None).unwrap_err();
        assert!(refused[0].contains("dirty"), "{refused:?}");
        conn.execute_batch("UPDATE schema_migrations SET dirty = 0")
            .unwrap();
        let found = find(&conn).unwrap().unwrap();
        assert_eq!(
            applied_versions(&found, &set, |_| None).unwrap(),
            BTreeSet::from([1, 2, 3])
        );
    }

    #[test]
    fn an_application_table_with_a_tools_name_is_not_history() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE schema_migrations (id INTEGER, note TEXT)")
            .unwrap();
        assert_eq!(find(&conn).unwrap(), None);
    }
}
