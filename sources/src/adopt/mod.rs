//! Databases another tool migrated: its history table read (never written), the versions it
//! applied matched against the migration set, so `hsm-host adopt` can record them as applied
//! without running them again. `baseline VERSION` covers a database with no history at all.

use rusqlite::Connection;

use crate::error::{Result, SqliteContext};

mod applied;
pub use applied::{applied_versions, flyway_checksum, refinery_checksum};

pub use crate::tool::Tool;

/// What another tool's history says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Foreign {
    /// The tool whose table it is.
    pub tool: Tool,
    /// What the table says was applied.
    pub history: History,
}

impl Foreign {
    /// The history with each of the tool's versions as hsm-host numbers it in the set (`number`
    /// gives it: a set that starts at version 0 is numbered from 1).
    #[must_use]
    pub fn renumbered(self, number: impl Fn(u64) -> u64) -> Self {
        let history = match self.history {
            History::Versions {
                applied,
                unnumbered,
                unfinished,
            } => History::Versions {
                applied: applied
                    .into_iter()
                    .map(|(version, recorded)| (number(version), recorded))
                    .collect(),
                unnumbered,
                unfinished,
            },
            History::Current { version, dirty } => History::Current {
                version: number(version),
                dirty,
            },
        };
        Self { history, ..self }
    }
}

/// A checksum another tool recorded for a migration, compared with the file here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// sqlx: the SHA-384 of the file.
    Sqlx(Vec<u8>),
    /// Flyway: the CRC-32 of the file's lines (without their line breaks), as a signed number.
    Flyway(i64),
    /// refinery: SipHash-1-3 (zero keys) of the migration's name, version and SQL, in decimal.
    Refinery(String),
    /// Prisma and Drizzle: the SHA-256 of the file, in hex.
    Sha256(String),
}

/// The shapes of history the tools keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum History {
    /// Every applied version, with the checksum the tool keeps if it keeps one; `unnumbered`:
    /// versions it applied that hsm-host cannot number (each one stops adoption).
    Versions {
        /// Versions applied, each with the checksum the tool recorded (if any).
        applied: Vec<(u64, Option<Recorded>)>,
        /// Versions hsm-host cannot number, as the tool wrote them.
        unnumbered: Vec<String>,
        /// Migrations the tool started and never finished nor rolled back (Prisma's failed
        /// ones): they may have run in part, so adoption stops.
        unfinished: Vec<String>,
    },
    /// golang-migrate keeps only the current version, and whether a run failed half-way.
    Current {
        /// The version it is at.
        version: u64,
        /// Whether a run failed half-way there.
        dirty: bool,
    },
}

/// What adoption reads of a database: the tools' tables' columns, and query results as text.
/// SQLite's connection is one; a database server's backend brings its own.
pub trait HistorySource {
    /// The column names of the tool's table `table` where the tools keep it (SQLite's
    /// `main`, PostgreSQL's `public`); none when there is no such table.
    fn columns(&mut self, table: &str) -> Result<Vec<String>>;
    /// `table`, qualified, as the queries below name it.
    fn table(&self, table: &str) -> String;
    /// `column` (a blob) as lowercase hex, in this database's SQL.
    fn hex(&self, column: &str) -> String;
    /// Each row's cells as text: numbers in decimal, booleans as 1 or 0, NULL as `None`.
    fn rows(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>>;
}

/// SQLite's connection as a [`HistorySource`].
struct Sqlite<'a>(&'a Connection);

impl HistorySource for Sqlite<'_> {
    fn columns(&mut self, table: &str) -> Result<Vec<String>> {
        crate::tracking::column_names(self.0, table)
    }

    fn table(&self, table: &str) -> String {
        format!("main.{table}")
    }

    fn hex(&self, column: &str) -> String {
        format!("lower(hex({column}))")
    }

    fn rows(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let text = |value: rusqlite::types::ValueRef<'_>| match value {
            rusqlite::types::ValueRef::Null => None,
            rusqlite::types::ValueRef::Integer(i) => Some(i.to_string()),
            rusqlite::types::ValueRef::Real(r) => Some(r.to_string()),
            other => {
                Some(String::from_utf8_lossy(other.as_bytes().unwrap_or_default()).into_owned())
            }
        };
        self.0
            .prepare(sql)
            .and_then(|mut stmt| {
                let width = stmt.column_count();
                stmt.query_map([], |row| {
                    (0..width)
                        .map(|i| row.get_ref(i).map(text))
                        .collect::<rusqlite::Result<Vec<_>>>()
                })?
                .collect()
            })
            .context("cannot read the other tool's history")
    }
}

/// The other tool's history in `conn`, if one is there. A table of a known name without the
/// tool's columns is an application's own and is not read.
pub fn find(conn: &Connection) -> Result<Option<Foreign>> {
    find_in(&mut Sqlite(conn))
}

/// The other tool's history in `source`, if one is there (see [`find`]).
pub fn find_in(source: &mut dyn HistorySource) -> Result<Option<Foreign>> {
    for tool in [
        Tool::Diesel,
        Tool::Sqlx,
        Tool::GolangMigrate,
        Tool::Dbmate,
        Tool::Goose,
        Tool::Flyway,
        Tool::Refinery,
        Tool::Prisma,
        Tool::Drizzle,
        Tool::Pop,
    ] {
        let columns = source.columns(tool.table())?;
        let has = |names: &[&str]| names.iter().all(|n| columns.iter().any(|c| c == n));
        let t = source.table(tool.table());
        let history = match tool {
            // Numbered as the set's folders are (diesel's string order kept).
            Tool::Diesel if has(&["version", "run_on"]) => numbered(
                strings(source, &format!("SELECT version FROM {t}"))?
                    .into_iter()
                    .map(|version| {
                        (
                            crate::pack::layout::diesel_number(&version).ok(),
                            version,
                            None,
                        )
                    }),
            ),
            Tool::Sqlx if has(&["version", "success", "checksum"]) => {
                let sql = format!(
                    "SELECT version, {} FROM {t} WHERE success",
                    source.hex("checksum")
                );
                let rows = pairs(source, &sql)?;
                numbered(rows.into_iter().map(|(v, sum)| {
                    (
                        v.parse().ok(),
                        v,
                        sum.and_then(|sum| hex::decode(sum).ok())
                            .map(Recorded::Sqlx),
                    )
                }))
            }
            Tool::GolangMigrate if has(&["version", "dirty"]) => {
                let rows = pairs(source, &format!("SELECT version, dirty FROM {t}"))?;
                match rows.into_iter().next() {
                    Some((version, dirty)) => History::Current {
                        version: version.parse().unwrap_or(0),
                        dirty: dirty.is_some_and(|d| d != "0"),
                    },
                    None => numbered(std::iter::empty()),
                }
            }
            Tool::Dbmate if columns == ["version"] => {
                digits(strings(source, &format!("SELECT version FROM {t}"))?)
            }
            Tool::Goose if has(&["version_id", "is_applied"]) => {
                // One row per up or down: a version's newest row says where it stands.
                let applied = strings(
                    source,
                    &format!(
                        "SELECT version_id FROM {t} AS g
                         WHERE version_id > 0 AND is_applied
                           AND id = (SELECT max(id) FROM {t}
                                     WHERE version_id = g.version_id)"
                    ),
                )?;
                digits(applied)
            }
            Tool::Flyway if has(&["version", "success", "type", "checksum"]) => {
                let rows = pairs(
                    source,
                    &format!(
                        "SELECT version, checksum FROM {t}
                         WHERE success AND version IS NOT NULL AND type = 'SQL'"
                    ),
                )?;
                numbered(rows.into_iter().map(|(version, sum)| {
                    (
                        crate::pack::layout::flyway_version(&version).ok(),
                        version,
                        sum.and_then(|s| s.parse().ok()).map(Recorded::Flyway),
                    )
                }))
            }
            Tool::Refinery if has(&["version", "checksum"]) => {
                let rows = pairs(source, &format!("SELECT version, checksum FROM {t}"))?;
                numbered(rows.into_iter().map(|(version, sum)| {
                    (
                        version.parse().ok().filter(|v| *v > 0),
                        version,
                        sum.map(Recorded::Refinery),
                    )
                }))
            }
            // A migration is applied when it finished and was not rolled back (a failed
            // attempt resolved with `migrate resolve --rolled-back` has both rows).
            Tool::Prisma
                if has(&[
                    "migration_name",
                    "checksum",
                    "finished_at",
                    "rolled_back_at",
                ]) =>
            {
                let rows = pairs(
                    source,
                    &format!(
                        "SELECT migration_name, checksum FROM {t}
                         WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL"
                    ),
                )?;
                let mut history = numbered(rows.into_iter().map(|(name, sum)| {
                    let digits = name.split('_').next().unwrap_or_default();
                    let number = digits
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                        .then(|| crate::pack::layout::diesel_number(digits).ok())
                        .flatten();
                    (number, name, sum.map(Recorded::Sha256))
                }));
                // Started, never finished, never resolved: Prisma itself refuses to go on
                // (P3009) until `prisma migrate resolve` says how it ended.
                if let History::Versions { unfinished, .. } = &mut history {
                    *unfinished = strings(
                        source,
                        &format!(
                            "SELECT migration_name FROM {t} AS p
                             WHERE finished_at IS NULL AND rolled_back_at IS NULL
                               AND NOT EXISTS (SELECT 1 FROM {t} AS q
                                               WHERE q.migration_name = p.migration_name
                                                 AND q.finished_at IS NOT NULL
                                                 AND q.rolled_back_at IS NULL)"
                        ),
                    )?
                    .iter()
                    .map(|name| crate::text::neutralize(name, 128))
                    .collect();
                }
                history
            }
            // Versions are the journal's `when` of each migration (its `created_at`): the set
            // renumbers them from its journal (see `Migrator::adopt`).
            Tool::Drizzle if has(&["hash", "created_at"]) => {
                let rows = pairs(source, &format!("SELECT created_at, hash FROM {t}"))?;
                numbered(
                    rows.into_iter()
                        .map(|(when, sum)| (when.parse().ok(), when, sum.map(Recorded::Sha256))),
                )
            }
            // Numbered as the set's files are (a 20-digit version without its leading `20`).
            Tool::Pop if has(&["version"]) => numbered(
                strings(source, &format!("SELECT version FROM {t}"))?
                    .into_iter()
                    .map(|version| {
                        (
                            crate::pack::layout::pop_number(&version).ok(),
                            version,
                            None,
                        )
                    }),
            ),
            _ => continue,
        };
        return Ok(Some(Foreign { tool, history }));
    }
    Ok(None)
}

/// A column of text or numbers, as text.
fn strings(source: &mut dyn HistorySource, sql: &str) -> Result<Vec<String>> {
    Ok(source
        .rows(sql)?
        .into_iter()
        .map(|row| row.into_iter().next().flatten().unwrap_or_default())
        .collect())
}

/// A history of versions: those hsm-host could number, and the others by their text.
fn numbered(rows: impl Iterator<Item = (Option<u64>, String, Option<Recorded>)>) -> History {
    let mut applied = Vec::new();
    let mut unnumbered = Vec::new();
    for (number, text, recorded) in rows {
        match number {
            Some(number) => applied.push((number, recorded)),
            None => unnumbered.push(crate::text::neutralize(&text, 64)),
        }
    }
    History::Versions {
        applied,
        unnumbered,
        unfinished: Vec::new(),
    }
}

/// Versions as hsm-host numbers them: the digits of the tool's version (`2024-03-13-170000` is
/// 20240313170000), as the SQL set's file names are read.
fn digits(versions: Vec<String>) -> History {
    numbered(versions.into_iter().map(|v| {
        let digits: String = v.chars().filter(char::is_ascii_digit).collect();
        (digits.parse().ok(), v, None)
    }))
}

/// (version, checksum) pairs, both as text.
fn pairs(source: &mut dyn HistorySource, sql: &str) -> Result<Vec<(String, Option<String>)>> {
    Ok(source
        .rows(sql)?
        .into_iter()
        .map(|row| {
            let mut cells = row.into_iter();
            (
                cells.next().flatten().unwrap_or_default(),
                cells.next().flatten(),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

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
        assert_eq!(
            found.history,
            History::Versions {
                applied: vec![(1, None), (2, None)],
                unnumbered: vec![],
                unfinished: vec![],
            }
        );

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
