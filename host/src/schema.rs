//! Snapshots of the database schema, compared before and after a migration to report what it
//! created, dropped and altered.

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde::Serialize;

use crate::error::{Result, SqliteContext};
use crate::tracking::Tracking;

/// Every user object of the schema: (type, name) → its SQL.
pub type Snapshot = BTreeMap<(String, String), Option<String>>;

/// Reads the schema, leaving out SQLite's internal objects and `tracking`'s tables.
pub fn snapshot(conn: &Connection, tracking: &Tracking) -> Result<Snapshot> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT type, name, sql FROM main.sqlite_schema
             WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
               AND tbl_name NOT IN (?1, ?2, ?3)",
        )
        .context("cannot read the schema")?;
    stmt.query_map(tracking.host_tables(), |row| {
        Ok(((row.get(0)?, row.get(1)?), row.get(2)?))
    })
    .and_then(|rows| rows.collect())
    .context("cannot read the schema")
}

/// SQLite's count of schema changes to `main` (`PRAGMA schema_version`): it changes with
/// every change to the schema.
pub fn version(conn: &Connection) -> Result<i64> {
    conn.query_row("PRAGMA main.schema_version", [], |row| row.get(0))
        .context("cannot read the schema version")
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

/// Compares two snapshots.
pub fn diff(before: &Snapshot, after: &Snapshot) -> SchemaChange {
    let describe = |(kind, name): &(String, String)| format!("{kind} {name}");
    let mut change = SchemaChange::default();
    for (key, sql) in after {
        match before.get(key) {
            None => change.created.push(describe(key)),
            Some(old) if old != sql => change.altered.push(describe(key)),
            Some(_) => {}
        }
    }
    for key in before.keys().filter(|key| !after.contains_key(*key)) {
        change.dropped.push(describe(key));
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
