//! The SQL policy for guest statements: what a migration may not do, enforced by SQLite's
//! authorizer (which sees each statement as it is compiled) while a guest runs. The host's own
//! statements run outside it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

use crate::tracking::{SharedTracking, Tracking};

/// PRAGMAs a guest may run: read-only introspection. Each may take a table or index name.
const READ_ONLY_PRAGMAS: [&str; 16] = [
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
    "foreign_key_check",
    "integrity_check",
    "quick_check",
    "collation_list",
    "function_list",
    "module_list",
    "pragma_list",
    "compile_options",
    "database_list",
];

/// PRAGMAs a guest may read but never set. `data_version` is read by FTS5 itself on every
/// query, so `MATCH` needs it. (Setting `foreign_keys` or `defer_foreign_keys` never reaches
/// SQLite: the proxy skips it, as hsm-host already has foreign keys off during a migration.)
const READABLE_SETTINGS: [&str; 11] = [
    "data_version",
    "foreign_keys",
    "defer_foreign_keys",
    "legacy_alter_table",
    "user_version",
    "application_id",
    "schema_version",
    "page_size",
    "page_count",
    "freelist_count",
    "encoding",
];

/// What the statements compiled under the policy could have done to the schema and to
/// `sqlite_sequence`, from the actions the authorizer saw. Compiling is not running, so this
/// may say more than happened, never less: every change to the schema is made by a statement
/// SQLite compiles, and the authorizer sees each one (a trigger's body with the statement that
/// fires it).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SchemaTouch {
    /// Tables and views (any case) on which objects were created or dropped: only objects
    /// whose `tbl_name` is one of these can have appeared, gone or changed...
    pub tables: BTreeSet<String>,
    /// ...unless a statement could change objects elsewhere too: `ALTER TABLE` (a rename
    /// rewrites the triggers and views that name the table), a virtual table (its module
    /// makes its own tables), an action SQLite added later.
    pub anywhere: bool,
    /// A statement writes `sqlite_sequence`.
    pub sequences: bool,
    /// A statement creates something in the temp schema (dropped when the guest's call ends).
    pub temp: bool,
    /// A statement gives a PRAGMA a value or an argument: it may have set the one setting a
    /// guest may change (reset when the guest's call ends).
    pub settings: bool,
    /// Tables (any case) a `DROP TABLE` names: what a step's report counts as rows removed.
    pub dropped: BTreeSet<String>,
}

impl SchemaTouch {
    fn record(&mut self, action: &AuthAction<'_>) {
        if let AuthAction::DropTable { table_name } = *action {
            self.dropped.insert(table_name.to_owned());
        }
        match *action {
            AuthAction::CreateTable { table_name }
            | AuthAction::DropTable { table_name }
            | AuthAction::CreateIndex { table_name, .. }
            | AuthAction::DropIndex { table_name, .. }
            | AuthAction::CreateTrigger { table_name, .. }
            | AuthAction::DropTrigger { table_name, .. }
            | AuthAction::CreateView {
                view_name: table_name,
            }
            | AuthAction::DropView {
                view_name: table_name,
            } if !self.tables.contains(table_name) => {
                self.tables.insert(table_name.to_owned());
            }
            AuthAction::CreateTempTable { .. }
            | AuthAction::CreateTempIndex { .. }
            | AuthAction::CreateTempTrigger { .. }
            | AuthAction::CreateTempView { .. } => self.temp = true,
            AuthAction::Pragma {
                pragma_value: Some(_),
                ..
            } => self.settings = true,
            AuthAction::AlterTable { .. }
            | AuthAction::CreateVtable { .. }
            | AuthAction::DropVtable { .. }
            | AuthAction::Unknown { .. } => self.anywhere = true,
            // (Every DDL statement also writes sqlite_schema, which a guest may not do
            // directly: writable_schema is not a setting it may change.)
            AuthAction::Insert { table_name }
            | AuthAction::Update { table_name, .. }
            | AuthAction::Delete { table_name }
                if table_name.eq_ignore_ascii_case("sqlite_sequence") =>
            {
                self.sequences = true;
            }
            _ => {}
        }
    }
}

/// Enforces the policy on every statement `conn` compiles from now on (a trigger's body
/// included, when a statement that fires it is compiled); the reason for the last refusal goes
/// to `denial`, and what the statements could change to `touch`.
pub(crate) fn arm(
    conn: &Connection,
    denial: Arc<Mutex<Option<String>>>,
    tracking: SharedTracking,
    touch: Option<Arc<Mutex<SchemaTouch>>>,
) {
    let _ = conn.authorizer(Some(move |context: AuthContext<'_>| {
        if let Some(touch) = &touch {
            touch
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .record(&context.action);
        }
        match check(&context, &tracking) {
            Ok(()) => Authorization::Allow,
            Err(reason) => {
                let reason = match context.accessor {
                    Some(by) => format!("{reason} (in trigger or view `{by}`)"),
                    None => reason,
                };
                *denial.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
                Authorization::Deny
            }
        }
    }));
}

/// Stops enforcing the policy: the host's own statements run without it.
pub fn disarm(conn: &Connection) {
    let _ = conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
}

/// `Err(reason)` when the policy forbids the action; the reason names the rule. `tracking`
/// names the host's tables.
pub fn check(context: &AuthContext<'_>, tracking: &Tracking) -> Result<(), String> {
    match context.action {
        AuthAction::Attach { .. } | AuthAction::Detach { .. } => Err(
            "ATTACH and DETACH are not allowed: a migration works on its own database only".into(),
        ),
        AuthAction::Transaction { .. } | AuthAction::Savepoint { .. } => Err(
            "BEGIN, COMMIT, ROLLBACK, SAVEPOINT and RELEASE are not allowed here: hsm-host runs \
             each migration in a transaction of its own, committed when the migration ends \
             without an error and rolled back on any error (a SQL file's whole-file \
             BEGIN; … COMMIT; is dropped for that reason; a component returns Ok or an error)"
                .into(),
        ),
        AuthAction::Pragma {
            pragma_name,
            pragma_value,
        } => check_pragma(pragma_name, pragma_value),
        AuthAction::Function { function_name }
            if function_name.eq_ignore_ascii_case("load_extension") =>
        {
            Err("load_extension is not allowed".into())
        }
        // A temp object named like a host table would take its place in every unqualified
        // statement until the connection closes (the host qualifies its own, but an older
        // tool or the application may not).
        AuthAction::CreateTempTable { table_name: name }
        | AuthAction::CreateTempView { view_name: name }
        | AuthAction::CreateView { view_name: name }
        | AuthAction::CreateVtable {
            table_name: name, ..
        } if tracking.is_host_table(name) => Err(format!(
            "`{name}` is the name of a hsm-host table: a migration may not create another \
             object of that name (in any schema)"
        )),
        // The guest's own writes to sqlite_sequence are compared with the host's rows after
        // it ran; a trigger's would run later, in the application's connection, where nothing
        // compares them (one `seq` of 2^63-1 and every later history insert fails).
        AuthAction::Insert { table_name }
        | AuthAction::Update { table_name, .. }
        | AuthAction::Delete { table_name }
            if table_name.eq_ignore_ascii_case("sqlite_sequence") && context.accessor.is_some() =>
        {
            Err(
                "a trigger may not write sqlite_sequence: it would run after the migration, \
                 where hsm-host cannot check which rows it changes (set an AUTOINCREMENT \
                 counter in the migration itself)"
                    .into(),
            )
        }
        // A table or view named like a table-valued function takes its place in every
        // statement that names it (SQLite looks for tables first): the host's own reads of
        // `pragma_table_info(…)`, `json_each(…)` would fail, and the application's too.
        AuthAction::CreateTable { table_name: name }
        | AuthAction::CreateTempTable { table_name: name }
        | AuthAction::CreateView { view_name: name }
        | AuthAction::CreateTempView { view_name: name }
        | AuthAction::CreateVtable {
            table_name: name, ..
        } if is_table_function_name(name) => Err(format!(
            "`{name}` is the name of one of SQLite's table-valued functions: a table or view of \
             that name would hide it from every statement (the host's and the application's); \
             choose another name"
        )),
        AuthAction::Insert { table_name }
        | AuthAction::Update { table_name, .. }
        | AuthAction::Delete { table_name }
        | AuthAction::CreateTable { table_name }
        | AuthAction::DropTable { table_name }
        | AuthAction::AlterTable { table_name, .. }
        | AuthAction::CreateIndex { table_name, .. }
        | AuthAction::DropIndex { table_name, .. }
        | AuthAction::CreateTrigger { table_name, .. }
        | AuthAction::DropTrigger { table_name, .. }
        | AuthAction::CreateTempTrigger { table_name, .. }
        | AuthAction::DropTempTrigger { table_name, .. }
            if tracking.is_host_table(table_name) =>
        {
            Err(format!(
                "`{table_name}` belongs to hsm-host: migrations may read it but not change it{}",
                if tracking.prefix().is_empty() {
                    " (if the application has its own table of this name, keep hsm-host's \
                     tables under other names: --tracking-prefix hsm_)"
                } else {
                    ""
                }
            ))
        }
        _ => Ok(()),
    }
}

/// Whether `name` is (any case) a table-valued function of this SQLite build: every PRAGMA's
/// `pragma_<name>` and the eponymous virtual tables.
pub(crate) fn is_table_function_name(name: &str) -> bool {
    const EPONYMOUS: [&str; 7] = [
        "json_each",
        "json_tree",
        "jsonb_each",
        "jsonb_tree",
        "dbstat",
        "generate_series",
        "carray",
    ];
    name.get(..7)
        .is_some_and(|start| start.eq_ignore_ascii_case("pragma_"))
        || EPONYMOUS.iter().any(|e| e.eq_ignore_ascii_case(name))
}

/// PRAGMAs a guest may set: `legacy_alter_table`, which table rebuilds written for older
/// SQLite set so `ALTER TABLE … RENAME` leaves references alone. It changes nothing outside the
/// schema the migration writes anyway, and is reset when the guest call ends.
const SETTABLE: [&str; 1] = ["legacy_alter_table"];

fn check_pragma(name: &str, value: Option<&str>) -> Result<(), String> {
    let name = name.to_ascii_lowercase();
    if READ_ONLY_PRAGMAS.contains(&name.as_str())
        || SETTABLE.contains(&name.as_str())
        || (value.is_none() && READABLE_SETTINGS.contains(&name.as_str()))
    {
        return Ok(());
    }
    Err(match value {
        Some(value) => format!(
            "PRAGMA {name} = {value} is not allowed: migrations may only run read-only PRAGMAs \
             (table_info, index_list, foreign_key_list, ...)"
        ),
        None => format!(
            "PRAGMA {name} is not allowed: migrations may only run read-only PRAGMAs \
             (table_info, index_list, foreign_key_list, ...)"
        ),
    })
}

/// Statements the authorizer cannot see: `VACUUM` (and `VACUUM INTO`, which writes a file).
/// SQLite refuses them inside the host's transaction anyway; this names the rule. Checked on
/// each statement's leading keyword.
pub fn check_statement_text(sql: &str) -> Result<(), String> {
    // Split as the proxy runs scripts (one splitter for both).
    for statement in crate::sql::script::statements(sql) {
        let keyword = first_keyword(statement.text);
        if keyword.eq_ignore_ascii_case("vacuum") {
            return Err(
                "VACUUM is not allowed: it rewrites the whole database (and VACUUM INTO writes \
                 a file); hsm-host owns the database file"
                    .into(),
            );
        }
    }
    Ok(())
}

/// The first word of a statement, after whitespace and `--`/`/* */` comments.
fn first_keyword(mut sql: &str) -> &str {
    loop {
        sql = sql.trim_start();
        if let Some(rest) = sql.strip_prefix("--") {
            sql = rest.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(rest) = sql.strip_prefix("/*") {
            sql = rest.split_once("*/").map_or("", |(_, after)| after);
        } else {
            break;
        }
    }
    let end = sql
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(sql.len());
    &sql[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vacuum_is_found_behind_comments_and_other_statements() {
        assert!(check_statement_text("VACUUM").is_err());
        assert!(check_statement_text("  -- tidy\n /* now */ vacuum INTO '/tmp/x'").is_err());
        assert!(check_statement_text("CREATE TABLE t (x); VACUUM;").is_err());
        assert!(check_statement_text("CREATE TABLE vacuum_log (x)").is_ok());
        assert!(check_statement_text("SELECT 'vacuum'").is_ok());
        assert!(check_statement_text("INSERT INTO t VALUES ('a; vacuum')").is_ok());
        assert!(check_statement_text("SELECT 1 /* ; vacuum */; SELECT \"x;vacuum\"").is_ok());
    }

    #[test]
    fn table_function_names_are_recognised() {
        for name in [
            "pragma_table_info",
            "PRAGMA_page_count",
            "json_each",
            "JSON_TREE",
        ] {
            assert!(is_table_function_name(name), "{name}");
        }
        for name in ["pragmatic", "json_docs", "users", "pragma"] {
            assert!(!is_table_function_name(name), "{name}");
        }
    }

    #[test]
    fn pragmas_are_read_only() {
        assert!(check_pragma("table_info", Some("users")).is_ok());
        assert!(check_pragma("user_version", None).is_ok());
        assert!(check_pragma("user_version", Some("5")).is_err());
        assert!(check_pragma("foreign_keys", Some("ON")).is_err());
        assert!(check_pragma("writable_schema", Some("1")).is_err());
        assert!(check_pragma("journal_mode", None).is_err());
    }
}

/// The policy's account of what a statement touched drives the schema refresh after a step:
/// what it reads must equal a whole read.
#[cfg(test)]
mod schema_refresh_tests {
    use rusqlite::Connection;

    use crate::schema;
    use crate::tracking::Tracking;

    /// Runs `sql` under the policy, and returns what it touched.
    fn touched(conn: &Connection, sql: &str) -> crate::policy::SchemaTouch {
        use std::sync::{Arc, Mutex};
        let touch = Arc::new(Mutex::new(crate::policy::SchemaTouch::default()));
        crate::policy::arm(
            conn,
            Arc::new(Mutex::new(None)),
            Default::default(),
            Some(Arc::clone(&touch)),
        );
        conn.execute_batch(sql).unwrap();
        crate::policy::disarm(conn);
        touch.lock().unwrap().clone()
    }

    #[test]
    fn a_refresh_of_the_tables_a_step_named_equals_a_whole_read() {
        let conn = Connection::open_in_memory().unwrap();
        let tracking = Tracking::default();
        tracking.ensure_tables(&conn).unwrap();
        conn.execute_batch(
            "CREATE TABLE Users (id INTEGER PRIMARY KEY, email TEXT UNIQUE);
             CREATE TABLE keep (x); CREATE INDEX keep_x ON keep (x);
             CREATE TABLE gone (y); CREATE INDEX gone_y ON gone (y);
             CREATE TRIGGER gone_t AFTER INSERT ON gone BEGIN SELECT 1; END;
             CREATE VIEW v AS SELECT 1;",
        )
        .unwrap();
        let mut snapshot = schema::snapshot(&conn, &tracking).unwrap();
        let whole_before = snapshot.clone();
        // Names in another case than at creation; a dropped table takes its index and trigger.
        let touch = touched(
            &conn,
            "CREATE INDEX users_email ON USERS (email);
             DROP TABLE GONE;
             DROP VIEW v; CREATE VIEW v AS SELECT 2;
             CREATE TABLE new (z); CREATE TRIGGER new_t AFTER DELETE ON new BEGIN SELECT 1; END;",
        );
        assert!(!touch.anywhere && !touch.sequences, "{touch:?}");
        let (before, after) =
            schema::refresh(&conn, &tracking, &mut snapshot, &touch.tables).unwrap();
        let whole_after = schema::snapshot(&conn, &tracking).unwrap();
        assert_eq!(snapshot, whole_after);
        assert_eq!(schema::count(&conn, &tracking).unwrap(), whole_after.len());
        assert_eq!(
            schema::diff(&before, &after),
            schema::diff(&whole_before, &whole_after)
        );
        let change = schema::diff(&before, &after);
        assert_eq!(
            change.created,
            ["index users_email", "table new", "trigger new_t"]
        );
        assert_eq!(
            change.dropped,
            ["index gone_y", "table gone", "trigger gone_t"]
        );
        assert_eq!(change.altered, ["view v"]);
    }

    #[test]
    fn statements_that_change_objects_elsewhere_ask_for_a_whole_read() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE t (x); CREATE TABLE log (y);
             CREATE TRIGGER log_t AFTER INSERT ON log BEGIN INSERT INTO t VALUES (1); END;",
        )
        .unwrap();
        // The rename rewrites log_t, an object on another table.
        let touch = touched(&conn, "ALTER TABLE t RENAME TO t2");
        assert!(touch.anywhere, "{touch:?}");
        let touch = touched(&conn, "CREATE VIRTUAL TABLE docs USING fts5(body)");
        assert!(touch.anywhere, "{touch:?}");
        let touch = touched(
            &conn,
            "CREATE TABLE s (id INTEGER PRIMARY KEY AUTOINCREMENT);
             UPDATE sqlite_sequence SET seq = 5",
        );
        assert!(touch.sequences && !touch.anywhere, "{touch:?}");
        // Rows only: nothing touched.
        let touch = touched(&conn, "INSERT INTO t2 VALUES (2); DELETE FROM log");
        assert_eq!(touch, Default::default());
        // What the end of a guest call undoes.
        let touch = touched(
            &conn,
            "CREATE TEMP TABLE scratch (a); CREATE TEMP VIEW w AS SELECT 1",
        );
        assert!(
            touch.temp && !touch.settings && touch.tables.is_empty(),
            "{touch:?}"
        );
        let touch = touched(&conn, "PRAGMA legacy_alter_table = ON");
        assert!(touch.settings && !touch.temp, "{touch:?}");
    }
}
