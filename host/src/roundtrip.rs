//! `hsm-host test`: on a scratch database, every migration applied one at a time and, when it
//! is reversible, rolled back (the schema must be exactly what it was) and applied again (the
//! schema must be exactly what `up` made). What CI runs on a pull request.

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde::Serialize;

use crate::database::Database;
use crate::error::{Error, Result, SqliteContext};
use crate::migrator::Migrator;
use crate::tracking::Tracking;

/// How one migration fared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// `up`, `down` and `up` again left the schema as they should.
    Pass,
    /// Irreversible: applied, and its round trip skipped.
    Irreversible,
    /// Not tested: an earlier migration left the scratch database where this one cannot run.
    NotTested {
        /// Which one, and why.
        reason: String,
    },
    /// Something differed, or a step failed.
    Fail {
        /// What went wrong: the failing step's error, or the schema difference.
        reason: String,
    },
}

/// One migration's round trip.
#[derive(Debug, Clone, Serialize)]
pub struct Case {
    /// The migration's version.
    pub version: u64,
    /// Its name.
    pub name: String,
    /// How it fared.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Every migration's round trip, in version order.
#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    /// Each pending migration, as tested.
    pub cases: Vec<Case>,
}

impl TestReport {
    /// Whether every case passed or was irreversible.
    pub fn passed(&self) -> bool {
        self.cases
            .iter()
            .all(|c| matches!(c.outcome, Outcome::Pass | Outcome::Irreversible))
    }
}

impl Migrator {
    /// Tests every pending migration of `scratch` (a database the caller can throw away: in
    /// memory, or a copy) one at a time: `up`; then, if it is reversible, `down` must restore
    /// the schema exactly (tables, columns, indexes, triggers, views, foreign keys) and `up`
    /// again must reproduce it. Once a failure leaves the scratch database short of a
    /// migration, the ones after it are reported as not tested.
    ///
    /// # Errors
    /// [`Error::Sqlite`] when the schema cannot be read; the migrations' own failures are cases.
    pub fn test_round_trips(&self, scratch: &Database) -> Result<TestReport> {
        let tracking = scratch.tracking().clone();
        let status = self.status(Some(scratch))?;
        let mut previous = status.current_version;
        let pending: Vec<(u64, String, bool)> = status
            .pending
            .into_iter()
            .map(|p| (p.version, p.name, p.reversible))
            .collect();
        let mut cases = Vec::with_capacity(pending.len());
        let mut blocked: Option<String> = None;
        for (version, name, reversible) in pending {
            if let Some(reason) = &blocked {
                cases.push(Case {
                    version,
                    name,
                    outcome: Outcome::NotTested {
                        reason: reason.clone(),
                    },
                });
                continue;
            }
            let before = structure(&scratch.connection(), &tracking)?;
            let outcome = match self.up(scratch, Some(version)) {
                Err(error) => Outcome::Fail {
                    reason: format!("up failed: {error}"),
                },
                Ok(_) if !reversible => Outcome::Irreversible,
                Ok(_) => self.round_trip(scratch, &tracking, previous, version, &before)?,
            };
            if matches!(&outcome, Outcome::Fail { .. })
                && self.status(Some(scratch))?.current_version != version
            {
                blocked = Some(format!(
                    "migration {version} failed and could not be left applied for it"
                ));
            }
            cases.push(Case {
                version,
                name,
                outcome,
            });
            previous = version;
        }
        Ok(TestReport { cases })
    }

    /// `down` to `previous` and `up` to `version` again, comparing the schema each time.
    fn round_trip(
        &self,
        scratch: &Database,
        tracking: &Tracking,
        previous: u64,
        version: u64,
        before: &Structure,
    ) -> Result<Outcome> {
        let after = structure(&scratch.connection(), tracking)?;
        if let Err(error) = self.down(scratch, Some(previous)) {
            return Ok(Outcome::Fail {
                reason: format!("down failed: {error}"),
            });
        }
        let undone = structure(&scratch.connection(), tracking)?;
        if let Some(diff) = diff(before, &undone) {
            // Leave it applied for the migrations after it.
            let _ = self.up(scratch, Some(version));
            return Ok(Outcome::Fail {
                reason: format!("down did not restore the schema before up:\n{diff}"),
            });
        }
        if let Err(error) = self.up(scratch, Some(version)) {
            return Ok(Outcome::Fail {
                reason: format!("up after down failed: {error}"),
            });
        }
        let again = structure(&scratch.connection(), tracking)?;
        Ok(match diff(&after, &again) {
            Some(diff) => Outcome::Fail {
                reason: format!("up after down did not make the same schema as up:\n{diff}"),
            },
            None => Outcome::Pass,
        })
    }
}

/// The schema as its parts: for each object (`table users`, `index users_email`, ...) the lines
/// that describe it. Two schemas with the same structure compare equal even if their SQL text
/// differs in spacing (a table rebuilt by a down step).
type Structure = BTreeMap<String, Vec<String>>;

fn structure(conn: &Connection, tracking: &Tracking) -> Result<Structure> {
    let objects: Vec<(String, String, String, Option<String>)> = conn
        .prepare(
            "SELECT type, name, tbl_name, sql FROM main.sqlite_schema
             WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY type, name",
        )
        .and_then(|mut stmt| {
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                .collect()
        })
        .context("cannot read the schema")?;
    let mut out = Structure::new();
    for (kind, name, table, sql) in objects {
        if tracking.is_host_table(&table) {
            continue;
        }
        let lines = match kind.as_str() {
            "table" if !sql.as_deref().unwrap_or("").starts_with("CREATE VIRTUAL") => {
                table_lines(conn, &name)?
            }
            // An index SQLite made for a constraint has no SQL: its columns describe it.
            "index" => index_lines(conn, &name, sql.as_deref())?,
            _ => vec![normalize(sql.as_deref().unwrap_or(""))],
        };
        out.insert(format!("{kind} {name}"), lines);
    }
    Ok(out)
}

/// The rows of `PRAGMA main.<pragma>("<name>")`, each as its cells in text. PRAGMA statements,
/// not `pragma_table_xinfo(…)`: a table of that name (an older tool could have left one) would
/// take the function's place.
fn pragma_rows(conn: &Connection, pragma: &str, name: &str) -> Result<Vec<Vec<String>>> {
    let sql = format!(
        "PRAGMA main.{pragma}({})",
        crate::text::quote_identifier(name)
    );
    conn.prepare(&sql)
        .and_then(|mut stmt| {
            stmt.query_map([], |r| {
                let count = r.as_ref().column_count();
                let mut cells = Vec::with_capacity(count);
                for i in 0..count {
                    cells.push(match r.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => "NULL".to_owned(),
                        rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                        rusqlite::types::ValueRef::Real(f) => f.to_string(),
                        rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => {
                            String::from_utf8_lossy(t).into_owned()
                        }
                    });
                }
                Ok(cells)
            })?
            .collect()
        })
        .context(format!("cannot read the structure of {name}"))
}

fn table_lines(conn: &Connection, table: &str) -> Result<Vec<String>> {
    // table_xinfo: cid, name, type, notnull, dflt_value, pk, hidden (in cid order).
    let mut lines: Vec<String> = pragma_rows(conn, "table_xinfo", table)?
        .into_iter()
        .map(|c| format!("column {}", c[1..7].join(" ")))
        .collect();
    // foreign_key_list: id, seq, table, from, to, on_update, on_delete, match.
    let mut keys = pragma_rows(conn, "foreign_key_list", table)?;
    let number = |cell: &str| cell.parse::<i64>().unwrap_or(0);
    keys.sort_by_key(|c| (number(&c[0]), number(&c[1])));
    lines.extend(
        keys.into_iter()
            .map(|c| format!("foreign key {}", c[2..8].join(" "))),
    );
    Ok(lines)
}

fn index_lines(conn: &Connection, index: &str, sql: Option<&str>) -> Result<Vec<String>> {
    // index_xinfo: seqno, cid, name, desc, coll, key (in seqno order).
    let mut lines: Vec<String> = pragma_rows(conn, "index_xinfo", index)?
        .into_iter()
        .filter(|c| c[5] == "1")
        .map(|c| {
            let name = if c[2] == "NULL" {
                "<expression>"
            } else {
                &c[2]
            };
            let desc = if c[3] == "1" { " DESC" } else { "" };
            format!("{name}{desc}")
        })
        .collect();
    if let Some(sql) = sql {
        lines.push(normalize(sql));
    }
    Ok(lines)
}

/// SQL with runs of white space made one space, for comparing what was written differently.
fn normalize(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What differs, one line per object: `- table t: column x INTEGER ...` / `+ ...`.
fn diff(expected: &Structure, found: &Structure) -> Option<String> {
    let mut lines = Vec::new();
    for (object, want) in expected {
        match found.get(object) {
            None => lines.push(format!("  - {object} is missing")),
            Some(have) if have != want => {
                lines.push(format!("  ~ {object} differs:"));
                for line in want.iter().filter(|l| !have.contains(l)) {
                    lines.push(format!("      expected: {line}"));
                }
                for line in have.iter().filter(|l| !want.contains(l)) {
                    lines.push(format!("      found:    {line}"));
                }
            }
            Some(_) => {}
        }
    }
    for object in found.keys().filter(|o| !expected.contains_key(*o)) {
        lines.push(format!("  + {object} is left over"));
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// A scratch copy of the database at `path`, in memory: `test --against` never touches the
/// original.
///
/// # Errors
/// [`Error::OpenDatabase`] when the file cannot be read as a database.
pub fn scratch_copy(path: &std::path::Path, tracking: Tracking) -> Result<Database> {
    let scratch = Database::open_in_memory()?.with_tracking(tracking);
    scratch
        .connection()
        .restore(
            rusqlite::MAIN_DB,
            path,
            None::<fn(rusqlite::backup::Progress)>,
        )
        .map_err(|e| Error::OpenDatabase {
            path: path.to_owned(),
            source: e.into(),
        })?;
    Ok(scratch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structure_ignores_spacing_and_names_what_differs() {
        let a = Connection::open_in_memory().unwrap();
        let b = Connection::open_in_memory().unwrap();
        a.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, x TEXT NOT NULL, p INTEGER REFERENCES t (id));
             CREATE INDEX t_x ON t (x);",
        )
        .unwrap();
        b.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY,\n   x TEXT NOT NULL, p INTEGER REFERENCES t (id));
             CREATE INDEX t_x ON t   (x);",
        )
        .unwrap();
        let tracking = Tracking::default();
        let (sa, sb) = (
            structure(&a, &tracking).unwrap(),
            structure(&b, &tracking).unwrap(),
        );
        assert_eq!(diff(&sa, &sb), None);
        b.execute_batch("DROP INDEX t_x").unwrap();
        let d = diff(&sa, &structure(&b, &tracking).unwrap()).unwrap();
        assert!(d.contains("- index t_x is missing"), "{d}");
        b.execute_batch("CREATE INDEX t_x ON t (x DESC)").unwrap();
        let d = diff(&sa, &structure(&b, &tracking).unwrap()).unwrap();
        assert!(
            d.contains("~ index t_x differs") && d.contains("x DESC"),
            "{d}"
        );
    }
}
