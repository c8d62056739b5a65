//! Integrity and foreign-key checks: before a run (a damaged database is refused), before each
//! COMMIT (a migration may not introduce foreign-key violations), and after a run.

use rusqlite::Connection;
use serde::Serialize;

use crate::error::{Result, SqliteContext};

/// Most problems `integrity_check` reports before stopping.
const MAX_PROBLEMS: u32 = 20;

/// Longest TEXT or BLOB SQLite may build while the checks run: the limit migrations run under
/// (`sql::MAX_VALUE_BYTES`), so an index expression computes here what it computed when the
/// migration wrote the row (a `printf` of 900 MB is NULL in both, not 900 MB here).
const CHECK_VALUE_BYTES: i32 = 32 << 20;

/// Runs `PRAGMA integrity_check` (or the faster `quick_check`) and returns the problems found;
/// empty when the database is sound. A database too damaged to check is one problem.
///
/// CHECK constraints are not re-evaluated (`ignore_check_constraints` while it runs): SQLite
/// enforced them when each row was written, and a migration's CHECK could otherwise make every
/// later check slow (gigabytes of `printf` per row) or fail at random (`random()`), refusing the
/// database for ever. The file's structure, NOT NULL, UNIQUE and every index are still checked.
pub fn problems(conn: &Connection, quick: bool) -> Vec<String> {
    let pragma = if quick {
        "quick_check"
    } else {
        "integrity_check"
    };
    let ignoring: bool = conn
        .query_row("PRAGMA ignore_check_constraints", [], |row| row.get(0))
        .unwrap_or(false);
    let length = conn.limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH);
    let _ = conn.execute_batch("PRAGMA ignore_check_constraints = ON");
    let _ = conn.set_limit(
        rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH,
        CHECK_VALUE_BYTES,
    );
    let sql = format!("PRAGMA main.{pragma}({MAX_PROBLEMS})");
    let rows: rusqlite::Result<Vec<String>> = conn
        .prepare(&sql)
        .and_then(|mut stmt| stmt.query_map([], |row| row.get(0))?.collect());
    if let Ok(length) = length {
        let _ = conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_LENGTH, length);
    }
    if !ignoring {
        let _ = conn.execute_batch("PRAGMA ignore_check_constraints = OFF");
    }
    match rows {
        Ok(rows) if rows.len() == 1 && rows[0] == "ok" => Vec::new(),
        Ok(rows) => rows,
        Err(error) => vec![format!("{pragma} could not run: {error}")],
    }
}

/// One row that references a missing parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FkViolation {
    /// The child table.
    pub table: String,
    /// The child row (`None` for a WITHOUT ROWID table).
    pub rowid: Option<i64>,
    /// The table it should reference.
    pub parent: String,
}

impl std::fmt::Display for FkViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.rowid {
            Some(rowid) => write!(
                f,
                "{} row {rowid} references a missing {} row",
                self.table, self.parent
            ),
            None => write!(
                f,
                "a {} row references a missing {} row",
                self.table, self.parent
            ),
        }
    }
}

/// Why `foreign_key_check` itself fails: almost always a "foreign key mismatch", a schema whose
/// foreign key names parent columns that are neither its primary key nor under a unique index
/// (a table rebuilt without them, say), which SQLite cannot check at all.
const CHECK_FAILED: &str = "cannot run foreign_key_check (a \"foreign key mismatch\" is a \
                            foreign key whose parent columns are neither the parent's primary \
                            key nor under a unique index)";

/// `PRAGMA foreign_key_check` over the whole database.
pub fn foreign_key_violations(conn: &Connection) -> Result<Vec<FkViolation>> {
    let mut stmt = conn
        .prepare("PRAGMA main.foreign_key_check")
        .context(CHECK_FAILED)?;
    stmt.query_map([], |row| {
        Ok(FkViolation {
            table: row.get(0)?,
            rowid: row.get(1)?,
            parent: row.get(2)?,
        })
    })
    .and_then(|rows| rows.collect())
    .context(CHECK_FAILED)
}

/// A short list for an error message: the first few, and how many more.
pub fn summarize<T: std::fmt::Display>(items: &[T]) -> String {
    const SHOWN: usize = 5;
    let mut text: Vec<String> = items.iter().take(SHOWN).map(ToString::to_string).collect();
    if items.len() > SHOWN {
        text.push(format!("and {} more", items.len() - SHOWN));
    }
    text.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sound_database_has_no_problems_and_violations_are_listed() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE p (id INTEGER PRIMARY KEY);
             CREATE TABLE c (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p(id));
             INSERT INTO p VALUES (1); INSERT INTO c VALUES (10, 1);",
        )
        .unwrap();
        assert!(problems(&conn, false).is_empty());
        assert!(problems(&conn, true).is_empty());
        assert!(foreign_key_violations(&conn).unwrap().is_empty());
        conn.execute_batch("PRAGMA foreign_keys = OFF; INSERT INTO c VALUES (11, 2);")
            .unwrap();
        let violations = foreign_key_violations(&conn).unwrap();
        assert_eq!(violations.len(), 1);
        assert_eq!(
            violations[0].to_string(),
            "c row 11 references a missing p row"
        );
    }
}
