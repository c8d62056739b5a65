//! Snapshots of the database schema, compared before and after a migration to report what it
//! created, dropped and altered.
//!
//! A run reads the schema once; after each step it rereads only the objects on the tables the
//! step's DDL named (the sandbox's `SchemaTouch`), so a step costs what it changed, not
//! the size of the schema.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::Connection;
use serde::Serialize;

use crate::error::{Result, SqliteContext};
use crate::tracking::Tracking;

/// Every user object of the schema: (type, name) → the object.
pub type Snapshot = BTreeMap<(String, String), Object>;

/// One object of the schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// The table or view it is, or is on (`tbl_name`).
    pub table: String,
    /// Its SQL (`None` for the indexes SQLite makes itself).
    pub sql: Option<String>,
}

/// The rows of the schema this module reads: no internal objects, none of `tracking`'s tables.
const USER_OBJECTS: &str = "FROM main.sqlite_schema
     WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND tbl_name NOT IN (?1, ?2, ?3)";

/// Reads the schema, leaving out SQLite's internal objects and `tracking`'s tables.
pub fn snapshot(conn: &Connection, tracking: &Tracking) -> Result<Snapshot> {
    read(conn, tracking, None)
}

/// The objects on `tables` (all of them when `None`).
fn read(
    conn: &Connection,
    tracking: &Tracking,
    tables: Option<&BTreeSet<String>>,
) -> Result<Snapshot> {
    let [a, b, c] = tracking.host_tables();
    let sql = match tables {
        None => format!("SELECT type, name, tbl_name, sql {USER_OBJECTS}"),
        // SQLite compares names without case (ASCII only), as `same_name` does. The names are
        // written into the statement as string literals, not read through `json_each(…)`:
        // a table of that name would take the function's place.
        Some(tables) => {
            let list: Vec<String> = tables
                .iter()
                .map(|t| format!("'{}'", t.replace('\'', "''")))
                .collect();
            format!(
                "SELECT type, name, tbl_name, sql {USER_OBJECTS}
                   AND tbl_name COLLATE NOCASE IN ({})",
                list.join(", ")
            )
        }
    };
    let mut stmt = conn.prepare(&sql).context("cannot read the schema")?;
    let row = |row: &rusqlite::Row<'_>| {
        Ok((
            (row.get(0)?, row.get(1)?),
            Object {
                table: row.get(2)?,
                sql: row.get(3)?,
            },
        ))
    };
    stmt.query_map([a, b, c], row)
        .and_then(|rows| rows.collect())
        .context("cannot read the schema")
}

/// Brings `snapshot` up to date after a change to objects on `tables` only (names as the
/// authorizer saw them, any case): rereads those objects and nothing else. Returns that part
/// of the schema before and after; the rest is unchanged.
pub fn refresh(
    conn: &Connection,
    tracking: &Tracking,
    snapshot: &mut Snapshot,
    tables: &BTreeSet<String>,
) -> Result<(Snapshot, Snapshot)> {
    let after = read(conn, tracking, Some(tables))?;
    let on_tables = |object: &Object| tables.iter().any(|t| same_name(t, &object.table));
    let keys: Vec<(String, String)> = snapshot
        .iter()
        .filter(|(_, object)| on_tables(object))
        .map(|(key, _)| key.clone())
        .collect();
    let before: Snapshot = keys
        .into_iter()
        .filter_map(|key| snapshot.remove_entry(&key))
        .collect();
    snapshot.extend(after.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok((before, after))
}

/// How many objects `snapshot` should hold: a check that nothing changed outside what a
/// refresh reread.
pub fn count(conn: &Connection, tracking: &Tracking) -> Result<usize> {
    conn.query_row(
        &format!("SELECT count(*) {USER_OBJECTS}"),
        tracking.host_tables(),
        |row| row.get(0),
    )
    .context("cannot read the schema")
}

/// SQLite's comparison of identifiers: ASCII letters without case.
pub fn same_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// SQLite's count of schema changes to `main` (`PRAGMA schema_version`): it changes with
/// every change to the schema.
pub fn version(conn: &Connection) -> Result<i64> {
    conn.query_row("PRAGMA main.schema_version", [], |row| row.get(0))
        .context("cannot read the schema version")
}

/// The rows of each table in `snapshot`, by name: what a step that drops tables takes with
/// them. Virtual tables and their shadow tables are left out (counting a virtual table would
/// run its module's code; its shadow tables hold its index, not rows of its own).
pub fn row_counts(conn: &Connection, snapshot: &Snapshot) -> Result<BTreeMap<String, u64>> {
    // The PRAGMA itself, not `pragma_table_list`: a table of that name would take its place.
    let listed: Vec<(String, String)> = conn
        .prepare("PRAGMA main.table_list")
        .and_then(|mut stmt| {
            stmt.query_map([], |row| Ok((row.get("name")?, row.get("type")?)))?
                .collect()
        })
        .context("cannot list the tables")?;
    let plain = listed
        .into_iter()
        .filter(|(_, kind)| kind == "table")
        .map(|(name, _)| name);
    let mut counts = BTreeMap::new();
    for name in plain {
        if !snapshot.contains_key(&("table".to_owned(), name.clone())) {
            continue;
        }
        let quoted = crate::text::quote_identifier(&name);
        let rows: i64 = conn
            .query_row(&format!("SELECT count(*) FROM main.{quoted}"), [], |row| {
                row.get(0)
            })
            .context("cannot count the rows of the tables")?;
        counts.insert(name, u64::try_from(rows).unwrap_or(0));
    }
    Ok(counts)
}

/// The rows a step's `DROP TABLE`s took with them: for each table of `dropped` (names as the
/// statements wrote them, any case), its rows in `counts` (before the step) less the rows a
/// table of that name holds now, in `after` (a table rebuilt under its own name, or renamed
/// away and back, lost nothing). A rename alone drops nothing.
pub fn rows_dropped(
    conn: &Connection,
    counts: &BTreeMap<String, u64>,
    dropped: &BTreeSet<String>,
    after: &Snapshot,
) -> Result<u64> {
    let mut gone = 0;
    for (name, before) in counts {
        if !dropped.iter().any(|d| same_name(d, name)) {
            continue;
        }
        let now = match after.contains_key(&("table".to_owned(), name.clone())) {
            true => conn
                .query_row(
                    &format!(
                        "SELECT count(*) FROM main.{}",
                        crate::text::quote_identifier(name)
                    ),
                    [],
                    |row| row.get::<_, i64>(0),
                )
                .context("cannot count the rows of the tables")?,
            false => 0,
        };
        gone += before.saturating_sub(u64::try_from(now).unwrap_or(0));
    }
    Ok(gone)
}

/// What one migration did to the schema; each entry reads like `table users`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SchemaChange {
    /// Objects created, as `table users`.
    pub created: Vec<String>,
    /// Objects dropped.
    pub dropped: Vec<String>,
    /// Objects whose SQL changed.
    pub altered: Vec<String>,
}

impl SchemaChange {
    /// Whether the schema is unchanged.
    pub fn is_empty(&self) -> bool {
        self.created.is_empty() && self.dropped.is_empty() && self.altered.is_empty()
    }
}

/// Objects listed per kind of change in a report; the rest are counted.
pub const MAX_LISTED: usize = 100;

/// Compares two snapshots. Names are a migration's choice: each is escaped and capped, and
/// each list holds at most [`MAX_LISTED`] names and then `… and N more`.
pub fn diff(before: &Snapshot, after: &Snapshot) -> SchemaChange {
    let describe = |(kind, name): &(String, String)| {
        format!(
            "{kind} {}",
            crate::text::neutralize(name, crate::text::MAX_NAME)
        )
    };
    let mut change = SchemaChange::default();
    for (key, object) in after {
        match before.get(key) {
            None => change.created.push(describe(key)),
            Some(old) if old != object => change.altered.push(describe(key)),
            Some(_) => {}
        }
    }
    for key in before.keys().filter(|key| !after.contains_key(*key)) {
        change.dropped.push(describe(key));
    }
    for list in [
        &mut change.created,
        &mut change.dropped,
        &mut change.altered,
    ] {
        if list.len() > MAX_LISTED {
            let more = list.len() - MAX_LISTED;
            list.truncate(MAX_LISTED);
            list.push(format!("… and {more} more"));
        }
    }
    change
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_created_dropped_and_altered_objects() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE a (x); CREATE TABLE b (y); CREATE INDEX ia ON a (x);")
            .unwrap();
        let before = snapshot(&conn, &Tracking::default()).unwrap();
        conn.execute_batch("DROP TABLE b; ALTER TABLE a ADD COLUMN z; CREATE VIEW v AS SELECT 1;")
            .unwrap();
        let change = diff(&before, &snapshot(&conn, &Tracking::default()).unwrap());
        assert_eq!(change.created, vec!["view v"]);
        assert_eq!(change.dropped, vec!["table b"]);
        assert_eq!(change.altered, vec!["table a"]);
    }

    #[test]
    fn snapshot_leaves_out_tracking_and_internal_tables() {
        let conn = Connection::open_in_memory().unwrap();
        let app = Tracking::with_prefix("app_").unwrap();
        app.ensure_tables(&conn).unwrap();
        // With a prefix, a table called `migrations` is the application's.
        conn.execute_batch("CREATE TABLE migrations (id)").unwrap();
        let names: Vec<String> = snapshot(&conn, &app)
            .unwrap()
            .into_keys()
            .map(|k| k.1)
            .collect();
        assert_eq!(names, vec!["migrations"]);

        let conn = Connection::open_in_memory().unwrap();
        Tracking::default().ensure_tables(&conn).unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT)")
            .unwrap();
        let names: Vec<String> = snapshot(&conn, &Tracking::default())
            .unwrap()
            .into_keys()
            .map(|k| k.1)
            .collect();
        assert_eq!(names, vec!["t"]);
    }

    #[test]
    fn the_schema_version_moves_with_every_schema_change_and_only_then() {
        let conn = Connection::open_in_memory().unwrap();
        let mut seen = vec![version(&conn).unwrap()];
        for sql in [
            "CREATE TABLE t (x)",
            "CREATE INDEX i ON t (x)",
            "ALTER TABLE t ADD COLUMN y",
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END",
            "DROP TRIGGER tr",
        ] {
            conn.execute_batch(sql).unwrap();
            let now = version(&conn).unwrap();
            assert!(!seen.contains(&now), "{sql} left the version at {now}");
            seen.push(now);
        }
        conn.execute_batch("INSERT INTO t VALUES (1, 2); UPDATE t SET y = 3; DELETE FROM t")
            .unwrap();
        assert_eq!(version(&conn).unwrap(), *seen.last().unwrap());
    }
}
