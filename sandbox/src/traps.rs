//! Traps a migration could leave in the schema, to act after it in the application's own
//! connection where no policy runs: a trigger whose body writes hsm-host's tables, a trigger,
//! view, default, check, generated column or index that calls the guest's SQL functions (gone
//! once the migration ends, so every later use fails), and changes to `sqlite_sequence`'s rows
//! of hsm-host's tables. Checked before COMMIT; each refusal names the object.
//!
//! Every table or view the migration created or altered (or put a trigger or index on) is
//! exercised by compiling, never running, the statements that would use it: `INSERT`,
//! `UPDATE` of every column, `DELETE` and `SELECT`. SQLite compiles the triggers a statement
//! fires into it, and resolves defaults, checks, generated columns and index expressions, so a
//! missing function fails here, and the policy, armed while compiling, sees every statement of
//! every trigger body as if the guest had run it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use rusqlite::config::DbConfig;

use crate::policy;
use crate::schema::{self, Snapshot};
use crate::text::quote_identifier;
use crate::tracking::{SharedTracking, Tracking};

/// `Err(reason)` naming the first trap found among the objects that differ between the
/// snapshots. `after` holds, with each changed object, every object on the same table (a whole
/// snapshot, or the part [`schema::refresh`] reread).
pub fn check(
    conn: &Connection,
    before: &Snapshot,
    after: &Snapshot,
    tracking: SharedTracking,
) -> Result<(), String> {
    // The authorizer sees a rename by the old name only: the new one is checked here.
    if let Some(((kind, name), _)) = after.iter().find(|((kind, name), object)| {
        (kind == "table" || kind == "view")
            && before.get(&(kind.clone(), name.clone())) != Some(*object)
            && policy::is_table_function_name(name)
    }) {
        return Err(format!(
            "it left a {kind} named `{name}`, the name of one of SQLite's table-valued \
             functions: it would hide the function from every statement (the host's and the \
             application's); choose another name"
        ));
    }
    let targets = targets_of(before, after);
    if targets.is_empty() {
        return Ok(());
    }
    if targets
        .iter()
        .any(|t| t.kind == "virtual" || t.has_triggers)
    {
        check_shadow_tables(conn, before, &targets)?;
    }
    // The application's connection is not in defensive mode: there, a virtual table's shadow
    // tables are writable, so they are exercised as writable here too (compiling only).
    let defensive = conn
        .db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE)
        .unwrap_or(true);
    let _ = conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, false);
    let denial = Arc::new(Mutex::new(None));
    policy::arm(conn, Arc::clone(&denial), tracking, None);
    let result = targets
        .iter()
        .try_for_each(|target| exercise(conn, target, &denial));
    policy::disarm(conn);
    let _ = conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, defensive);
    result
}

/// A virtual table claims as its shadow tables every table named `<vtab>_<suffix>` for the
/// suffixes its module knows (fts5: `_content`, `_docsize`, ...), whoever made them. Refused:
/// a virtual table that claims a table that existed before (the application's own table would
/// become read-only to every later migration), and a trigger on a shadow table (a module's
/// table never has one; it would run when the application writes the table).
fn check_shadow_tables(
    conn: &Connection,
    before: &Snapshot,
    targets: &[Target],
) -> Result<(), String> {
    // A PRAGMA statement: a view named `pragma_table_list` would take the function's place.
    let shadows: Vec<String> = conn
        .prepare("PRAGMA main.table_list")
        .and_then(|mut stmt| {
            stmt.query_map([], |row| {
                Ok((row.get::<_, String>(1)?, row.get::<_, String>(2)?))
            })?
            .filter_map(|row| match row {
                Ok((name, kind)) => (kind == "shadow").then_some(Ok(name)),
                Err(e) => Some(Err(e)),
            })
            .collect::<rusqlite::Result<Vec<String>>>()
        })
        .map_err(|e| format!("cannot list the shadow tables of virtual tables: {e}"))?;
    for shadow in &shadows {
        let owner = targets.iter().filter(|t| t.kind == "virtual").find(|t| {
            shadow.len() > t.name.len() + 1
                && schema::same_name(&shadow[..t.name.len()], &t.name)
                && shadow.as_bytes()[t.name.len()] == b'_'
        });
        let existed = before
            .keys()
            .any(|(kind, name)| kind == "table" && schema::same_name(name, shadow));
        if let (Some(owner), true) = (owner, existed) {
            return Err(format!(
                "virtual table `{}` would take the existing table `{shadow}` as its own shadow                  table (SQLite names them `<virtual table>_<part>`): the table would become                  read-only to migrations and its triggers would escape the checks; give the                  virtual table another name",
                owner.name
            ));
        }
        if targets
            .iter()
            .any(|t| t.has_triggers && schema::same_name(&t.name, shadow))
        {
            return Err(format!(
                "it put a trigger on `{shadow}`, a shadow table of a virtual table (the                  module's own storage): triggers belong on the application's tables"
            ));
        }
    }
    Ok(())
}

/// A table or view to exercise.
struct Target {
    name: String,
    /// `table`, `view` or `virtual`.
    kind: &'static str,
    has_triggers: bool,
}

/// The tables and views that objects changed between the snapshots are, or are on.
fn targets_of(before: &Snapshot, after: &Snapshot) -> Vec<Target> {
    let tables: BTreeSet<&str> = after
        .iter()
        .filter(|(key, object)| before.get(*key) != Some(*object))
        .map(|(_, object)| object.table.as_str())
        .collect();
    tables
        .into_iter()
        .filter_map(|name| {
            let ((kind, _), object) = after.iter().find(|((kind, n), _)| {
                schema::same_name(n, name) && (kind == "table" || kind == "view")
            })?;
            let is_virtual = object.sql.as_deref().is_some_and(|sql| {
                sql.get(..14)
                    .is_some_and(|start| start.eq_ignore_ascii_case("CREATE VIRTUAL"))
            });
            Some(Target {
                name: name.to_owned(),
                kind: match (kind.as_str(), is_virtual) {
                    ("view", _) => "view",
                    (_, true) => "virtual",
                    _ => "table",
                },
                has_triggers: after.iter().any(|((kind, _), object)| {
                    kind == "trigger" && schema::same_name(&object.table, name)
                }),
            })
        })
        .collect()
}

fn exercise(
    conn: &Connection,
    target: &Target,
    denial: &Mutex<Option<String>>,
) -> Result<(), String> {
    let what = format!("{} `{}`", target.kind, target.name);
    let table = format!("main.{}", quote_identifier(&target.name));
    compile(conn, &what, &format!("SELECT * FROM {table}"), denial)?;
    let writable = target.kind == "table" || (target.kind == "view" && target.has_triggers);
    if !writable {
        return Ok(());
    }
    compile(
        conn,
        &what,
        &format!("INSERT INTO {table} DEFAULT VALUES"),
        denial,
    )?;
    // Without triggers, an UPDATE or DELETE compiles nothing an INSERT did not: the same
    // defaults, checks, generated columns and index expressions (foreign-key actions reach
    // only the application's tables, which are never the host's children).
    if !target.has_triggers {
        return Ok(());
    }
    // Resolving the SELECT above made the columns readable.
    let columns = conn
        .prepare(&format!(
            "PRAGMA main.table_xinfo({})",
            quote_identifier(&target.name)
        ))
        .and_then(|mut stmt| {
            stmt.query_map([], |row| {
                Ok((row.get::<_, String>(1)?, row.get::<_, i64>(6)?))
            })?
            .filter_map(|row| match row {
                Ok((name, 0)) => Some(Ok(name)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<rusqlite::Result<Vec<String>>>()
        })
        .map_err(|e| format!("cannot read the columns of {what}: {e}"))?;
    if !columns.is_empty() {
        let set: Vec<String> = columns
            .iter()
            .map(|c| format!("{0} = {0}", quote_identifier(c)))
            .collect();
        compile(
            conn,
            &what,
            &format!("UPDATE {table} SET {}", set.join(", ")),
            denial,
        )?;
    }
    compile(conn, &what, &format!("DELETE FROM {table}"), denial)
}

/// Compiles `sql`, which uses `what`; a refusal or a failure to compile is the trap.
fn compile(
    conn: &Connection,
    what: &str,
    sql: &str,
    denial: &Mutex<Option<String>>,
) -> Result<(), String> {
    let Err(error) = conn.prepare(sql) else {
        return Ok(());
    };
    if let Some(reason) = denial.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Err(format!(
            "it left a trap in the schema: using {what} would do what migrations may not: \
             {reason}"
        ));
    }
    let message = match &error {
        rusqlite::Error::SqliteFailure(_, Some(message)) => message.clone(),
        rusqlite::Error::SqlInputError { msg, .. } => msg.clone(),
        other => other.to_string(),
    };
    // A view without INSTEAD OF triggers for every kind of write is not writable.
    if what.starts_with("view") && message.starts_with("cannot modify") {
        return Ok(());
    }
    Err(format!(
        "it left {what} that would fail once the migration is over (`{sql}` does not compile: \
         {message}); a trigger, view, default, check, generated column or index may not use \
         the migration's own SQL functions"
    ))
}

/// Rows of `sqlite_sequence` that belong to hsm-host's tables, to compare before and after a
/// migration: a guest that changes them breaks or redirects the host's next history insert.
pub fn host_sequences(
    conn: &Connection,
    tracking: &Tracking,
) -> rusqlite::Result<Vec<(String, Option<i64>)>> {
    // sqlite_sequence exists from the first AUTOINCREMENT table on (the history's).
    let mut stmt = match conn.prepare(
        "SELECT name, seq FROM main.sqlite_sequence
         WHERE name COLLATE NOCASE IN (?1, ?2, ?3) ORDER BY name, seq",
    ) {
        Ok(stmt) => stmt,
        Err(e) if e.to_string().contains("no such table") => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let rows = stmt
        .query_map(tracking.host_tables(), |row| {
            Ok((row.get::<_, String>(0)?, row.get(1)?))
        })?
        .collect::<rusqlite::Result<Vec<(String, Option<i64>)>>>()?;
    Ok(rows
        .into_iter()
        .filter(|(name, _)| tracking.is_host_table(name))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema;

    fn after_migration(setup: &str, migration: &str) -> Result<(), String> {
        let conn = Connection::open_in_memory().unwrap();
        let tracking = SharedTracking::default();
        tracking.ensure_tables(&conn).unwrap();
        conn.execute_batch(setup).unwrap();
        let before = schema::snapshot(&conn, &tracking).unwrap();
        conn.execute_batch(migration).unwrap();
        check(
            &conn,
            &before,
            &schema::snapshot(&conn, &tracking).unwrap(),
            tracking,
        )
    }

    #[test]
    fn a_trigger_that_writes_host_tables_is_named() {
        let error = after_migration(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)",
            "CREATE TRIGGER wipe AFTER UPDATE OF email ON users
             BEGIN DELETE FROM migrations; END",
        )
        .unwrap_err();
        assert!(error.contains("table `users`"), "{error}");
        assert!(
            error.contains("`migrations` belongs to hsm-host"),
            "{error}"
        );
        assert!(error.contains("trigger or view `wipe`"), "{error}");
    }

    #[test]
    fn an_instead_of_trigger_on_a_view_is_checked_too() {
        let error = after_migration(
            "CREATE TABLE t (x)",
            "CREATE VIEW v AS SELECT x FROM t;
             CREATE TRIGGER vi INSTEAD OF INSERT ON v
             BEGIN INSERT INTO migration_history (version, direction, status, started_at)
                   VALUES (1, 'up', 'success', 'now'); END",
        )
        .unwrap_err();
        assert!(
            error.contains("`migration_history` belongs to hsm-host"),
            "{error}"
        );
    }

    /// (SQLite resolves a CHECK or generated column as it creates it: a function missing then
    /// cannot be named there.)
    #[test]
    fn objects_that_call_missing_functions_are_named() {
        for (migration, object) in [
            ("CREATE VIEW v AS SELECT gone(x) FROM t", "view `v`"),
            (
                "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT gone(1); END",
                "table `t`",
            ),
            ("CREATE TABLE d (x DEFAULT (gone(1)))", "table `d`"),
        ] {
            let error = after_migration("CREATE TABLE t (x)", migration).expect_err(migration);
            assert!(error.contains(object), "{migration}: {error}");
            assert!(error.contains("function: gone"), "{migration}: {error}");
        }
    }

    #[test]
    fn a_trigger_on_a_table_a_virtual_table_claims_is_refused() {
        // fts5 with content='' makes no `_content` table but claims the name: a table put
        // there first (with a trap on it) would become a shadow table, skipped by older checks.
        let error = after_migration(
            "",
            "CREATE TABLE x_content (id INTEGER PRIMARY KEY, c0);
             CREATE TRIGGER x_trap AFTER INSERT ON x_content
             BEGIN UPDATE migrations SET status = 'rolled_back'; END;
             CREATE VIRTUAL TABLE x USING fts5(body, content='');",
        )
        .unwrap_err();
        assert!(error.contains("shadow table"), "{error}");
        assert!(error.contains("x_content"), "{error}");
    }

    #[test]
    fn a_virtual_table_may_not_claim_an_existing_table() {
        let error = after_migration(
            "CREATE TABLE post_content (id INTEGER PRIMARY KEY, c0)",
            "CREATE VIRTUAL TABLE post USING fts5(body, content='')",
        )
        .unwrap_err();
        assert!(
            error.contains("virtual table `post` would take the existing table `post_content`"),
            "{error}"
        );
    }

    #[test]
    fn a_trigger_added_later_to_a_real_shadow_table_is_refused() {
        let error = after_migration(
            "CREATE VIRTUAL TABLE docs USING fts5(body)",
            "CREATE TRIGGER d AFTER INSERT ON docs_content BEGIN SELECT 1; END",
        )
        .unwrap_err();
        assert!(error.contains("`docs_content`, a shadow table"), "{error}");
    }

    #[test]
    fn a_trigger_body_may_not_write_sqlite_sequence() {
        let error = after_migration(
            "CREATE TABLE app (id INTEGER PRIMARY KEY AUTOINCREMENT, x)",
            "CREATE TRIGGER dos AFTER INSERT ON app BEGIN
               UPDATE sqlite_sequence SET seq = 9223372036854775807
               WHERE name = 'migration_history'; END",
        )
        .unwrap_err();
        assert!(error.contains("may not write sqlite_sequence"), "{error}");
        assert!(error.contains("trigger or view `dos`"), "{error}");
    }

    #[test]
    fn a_table_renamed_like_a_table_valued_function_is_refused() {
        for migration in [
            "ALTER TABLE x RENAME TO pragma_table_info",
            "ALTER TABLE x RENAME TO JSON_EACH",
        ] {
            let error = after_migration("CREATE TABLE x (a)", migration).expect_err(migration);
            assert!(
                error.contains("table-valued functions"),
                "{migration}: {error}"
            );
        }
    }

    #[test]
    fn ordinary_schema_changes_pass() {
        after_migration(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT)",
            "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT,
                                 at TEXT DEFAULT CURRENT_TIMESTAMP, n AS (length(what)));
             CREATE INDEX audit_lower ON audit (lower(what));
             CREATE TRIGGER users_audit AFTER UPDATE ON users
             BEGIN INSERT INTO audit (what) VALUES (new.email); END;
             CREATE VIEW recent AS SELECT * FROM audit ORDER BY id DESC LIMIT 10;
             CREATE VIRTUAL TABLE docs USING fts5(body);
             CREATE VIRTUAL TABLE boxes USING rtree(id, x0, x1);
             ALTER TABLE users ADD COLUMN name TEXT;",
        )
        .unwrap();
    }
}
