//! The SQL proxy: runs a guest's statements on the host's connection, under the SQL policy
//! and the call's deadline, with bounds on what one call may send or receive. Values and errors
//! become the contract's types; guest input never panics the host.

mod batches;
mod bounds;
mod cursor;
mod cursors;
pub(crate) mod heap;
mod page;
pub mod script;
mod server;
mod session;
mod statements;
mod values;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use rusqlite::functions::FunctionFlags;
use rusqlite::limits::Limit;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, params_from_iter};

pub(crate) use crate::contract::{CursorHandle, PreparedStatement};
use crate::contract::{
    SqlError, Value,
    sql::{Page, ParamSets},
};
use crate::database::Database;
use crate::error::human_bytes;
use crate::policy;
use page::PageBuilder;

pub use bounds::*;
use bounds::{PROGRESS_STEPS, check_params, check_sql, check_sql_size};
pub use server::ServerSql;
pub(crate) use session::Session;
use values::{checked_text, from_sqlite, to_sql_error, to_sqlite};
use values::{value_ref, whole_sets};

/// Computes one guest-defined SQL function: `args -> value or message`.
pub(crate) type FunctionCaller = Arc<dyn Fn(Vec<Value>) -> Result<Value, String> + Send + Sync>;

/// Why a guest may not register `name`: it is one of SQLite's own functions (`lower`, `like`,
/// `count`, `load_extension`, …). The schema's CHECKs, indexes and generated columns use them:
/// another `lower` would commit rows that break them and index entries SQLite cannot find, and
/// removing it afterwards would hide SQLite's own from every later statement of the process.
pub(crate) fn builtin_function(name: &str) -> Option<String> {
    static BUILTIN: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let builtin = BUILTIN.get_or_init(|| {
        // Read from SQLite itself, so a newer SQLite's functions are covered too.
        let conn = rusqlite::Connection::open_in_memory();
        let names = conn.and_then(|conn| {
            let mut stmt = conn.prepare("PRAGMA function_list")?;
            let names = stmt
                .query_map([], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            Ok(names)
        });
        let mut names: Vec<String> = names
            .unwrap_or_default()
            .into_iter()
            .map(|n| n.to_ascii_lowercase())
            .collect();
        names.push("load_extension".into());
        names
    });
    let lower = name.to_ascii_lowercase();
    builtin.contains(&lower).then(|| {
        format!(
            "cannot register function `{}`: it is one of SQLite's own functions, which the \
             schema's constraints and indexes rely on; give yours another name",
            crate::text::neutralize(name, 64)
        )
    })
}

/// Whether a script holds no statement at all (blanks and comments only).
pub fn script_is_empty(sql: &str) -> bool {
    script::statements(sql).is_empty()
}

/// The guest's view of the database for one call: the policy is enforced and the deadline
/// armed while it exists; dropping it disarms both.
pub(crate) struct GuestSql {
    db: Arc<Mutex<Connection>>,
    /// Names the migration in log lines.
    label: String,
    /// Why the authorizer last refused, to explain SQLITE_AUTH to the guest.
    denial: Arc<Mutex<Option<String>>>,
    deadline: Instant,
    /// Why the host's transaction is gone, once it is: a rollback happened while the guest ran,
    /// or the connection is back in autocommit. From then on every statement is refused.
    ended: Arc<Mutex<Option<String>>>,
    /// SQL functions the guest registered, removed when the call ends.
    functions: Mutex<Vec<(String, i32)>>,
    /// Open cursors, finalized when the guest drops them or the call ends. Locked only
    /// while the connection is.
    cursors: Mutex<HashMap<u32, cursor::RawCursor>>,
    next_cursor: AtomicU32,
    /// Live prepared-statement resources: how many, and the bytes of SQL they hold.
    statements: Mutex<(usize, usize)>,
    /// The compiled form of each prepared statement's query, by SQL text, reused by every
    /// `statement.query`. Locked only while the connection is.
    statement_queries: Mutex<HashMap<String, cursor::RawCursor>>,
    /// The connection's length limit before the call, restored when it ends.
    length_limit: i32,
    /// Holds this call's share of SQLite's heap limit.
    _heap: heap::Reservation,
    /// The last error SQLite gave the guest: its code is the migration's if the guest fails
    /// with its message.
    last_error: Mutex<Option<SqlError>>,
    /// What the guest's statements could change in the schema, as the policy saw them.
    touch: Arc<Mutex<policy::SchemaTouch>>,
    closed: bool,
}

/// What a guest call left on the connection, found when it ends.
#[derive(Debug, Default)]
pub(crate) struct Closed {
    /// Why the host's transaction was ended during the call, if it was.
    pub(crate) transaction_ended: Option<String>,
    /// Why the connection could not be reset for the next migration, if it could not.
    pub(crate) reset_failed: Option<String>,
    /// The last error SQLite gave the guest.
    pub(crate) last_error: Option<SqlError>,
    /// What its statements could have changed in the schema.
    pub(crate) touch: policy::SchemaTouch,
}

impl GuestSql {
    pub(crate) fn open(database: &Database, label: String, deadline: Instant) -> Self {
        let db = database.shared();
        let denial = Arc::new(Mutex::new(None));
        let ended = Arc::new(Mutex::new(None));
        let touch = Arc::new(Mutex::new(policy::SchemaTouch::default()));
        let length_limit;
        {
            let conn = lock(&db);
            // Statements the host prepared earlier were not checked by the policy; statements
            // the guest prepares must not outlive it.
            conn.flush_prepared_statement_cache();
            policy::arm(
                &conn,
                Arc::clone(&denial),
                database.shared_tracking(),
                Some(Arc::clone(&touch)),
            );
            let _ = conn.progress_handler(PROGRESS_STEPS, Some(move || Instant::now() >= deadline));
            // No COMMIT may happen while a guest runs: if its SQL ended the host's transaction
            // (INSERT OR ROLLBACK, RAISE(ROLLBACK), an error SQLite rolls back on), each later
            // statement would otherwise commit on its own. This turns any commit into a rollback.
            let _ = conn.commit_hook(Some(|| true));
            let record = Arc::clone(&ended);
            let _ = conn.rollback_hook(Some(move || {
                lock(&record).get_or_insert_with(|| {
                    "SQLite rolled it back (INSERT OR ROLLBACK, ON CONFLICT ROLLBACK, \
                     RAISE(ROLLBACK), or an error SQLite answers with a rollback)"
                        .into()
                });
            }));
            length_limit = conn
                .limit(Limit::SQLITE_LIMIT_LENGTH)
                .unwrap_or(MAX_VALUE_BYTES);
            let _ = conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES);
        }
        Self {
            db,
            label,
            denial,
            deadline,
            ended,
            touch,
            functions: Mutex::new(Vec::new()),
            cursors: Mutex::new(HashMap::new()),
            next_cursor: AtomicU32::new(0),
            statements: Mutex::new((0, 0)),
            statement_queries: Mutex::new(HashMap::new()),
            length_limit,
            _heap: heap::reserve(SQL_HEAP_BUDGET),
            last_error: Mutex::new(None),
            closed: false,
        }
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        lock(&self.db)
    }

    /// Runs `f` on the connection unless the host's transaction is gone or the deadline has
    /// passed, and checks afterwards that the transaction is still open.
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        let conn = self.conn();
        self.refuse_if_ended()?;
        if Instant::now() >= self.deadline {
            return Err(SqlError {
                code: SQLITE_INTERRUPT,
                message: "interrupted: the migration ran out of time".into(),
            });
        }
        let result = f(&conn);
        if conn.is_autocommit() {
            lock(&self.ended).get_or_insert_with(|| {
                "the connection left the transaction (SQLite rolled it back)".into()
            });
        }
        self.refuse_if_ended()?;
        if let Err(error) = &result {
            *lock(&self.last_error) = Some(error.clone());
        }
        result
    }

    fn refuse_if_ended(&self) -> Result<(), SqlError> {
        match &*lock(&self.ended) {
            Some(reason) => Err(SqlError {
                code: SQLITE_ABORT,
                message: format!(
                    "hsm-host's transaction was ended: {reason}. The migration is stopped and \
                     nothing it wrote is kept; no further SQL runs in it"
                ),
            }),
            None => Ok(()),
        }
    }

    /// Runs one statement that returns no rows; returns the rows changed.
    pub(crate) fn execute(&self, sql: &str, params: Vec<Value>) -> Result<u64, SqlError> {
        check_sql(sql)?;
        if self.skipped(sql) {
            return Ok(0);
        }
        check_params(params.iter().map(value_ref))?;
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(sql).map_err(|e| self.error(e))?;
            if stmt.column_count() > 0 {
                return Err(SqlError {
                    code: SQLITE_MISUSE,
                    message: "this statement returns rows: run it with query, not execute".into(),
                });
            }
            let changed = stmt
                .execute(params_from_iter(
                    params.iter().map(|p| ToSqlOutput::Borrowed(value_ref(p))),
                ))
                .map_err(|e| self.error(e))?;
            Ok(changed as u64)
        })
    }

    /// Runs a `;`-separated script without parameters, one statement at a time: a failure
    /// says which statement and where it starts; a whole-script `BEGIN; … COMMIT;` wrapper is
    /// dropped; `PRAGMA foreign_keys = …` and `defer_foreign_keys` are skipped (see
    /// [`script::host_meaning`]).
    pub(crate) fn execute_batch(&self, sql: &str) -> Result<(), SqlError> {
        check_sql(sql)?;
        let all = script::statements(sql);
        let run = script::to_run(&all);
        if run.len() < all.len() {
            tracing::info!(
                "{}: its script's BEGIN … COMMIT runs inside hsm-host's transaction",
                self.label
            );
        }
        self.with_conn(|conn| {
            for (number, statement) in &run {
                if self.skipped(statement.text) {
                    continue;
                }
                conn.execute_batch(statement.text).map_err(|e| {
                    // A syntax error says where in the statement: shown as a place in the file.
                    let at = match &e {
                        rusqlite::Error::SqlInputError { offset, .. } => {
                            usize::try_from(*offset).ok()
                        }
                        _ => None,
                    };
                    let mut error = self.error(e);
                    if let Some((line, column)) = at.map(|at| statement.position_of(at)) {
                        error.message = format!("{} at line {line}:{column}", error.message);
                    }
                    if all.len() > 1 {
                        error.message =
                            format!("{} in {}", error.message, statement.describe(*number));
                    }
                    error
                })?;
                // A statement that ended the transaction stops the script here.
                if conn.is_autocommit() {
                    break;
                }
            }
            Ok(())
        })
    }

    /// Whether `statement` is a PRAGMA hsm-host gives its own meaning and does not run; says
    /// so in the log.
    fn skipped(&self, statement: &str) -> bool {
        let Some(why) = script::host_meaning(statement) else {
            return false;
        };
        tracing::info!(
            "{}: `{}` skipped: {why}",
            self.label,
            crate::text::neutralize(statement.trim(), 100)
        );
        true
    }

    /// Runs one query and returns all its rows as a page, within the proxy's bounds.
    pub(crate) fn query(&self, sql: &str, params: Vec<Value>) -> Result<Page, SqlError> {
        let mut page = PageBuilder::default();
        let columns = self.query_into(sql, params, &mut page)?;
        Ok(page.finish(columns))
    }

    /// Runs one query, handing its cells to `cells` row after row, within the proxy's bounds;
    /// returns the column names.
    fn query_into(
        &self,
        sql: &str,
        params: Vec<Value>,
        cells: &mut PageBuilder,
    ) -> Result<Vec<String>, SqlError> {
        check_sql(sql)?;
        check_params(params.iter().map(value_ref))?;
        self.with_conn(|conn| {
            let mut cursor =
                cursor::RawCursor::open(conn, sql, params, true).map_err(|e| self.explain(e))?;
            self.drain(conn, &mut cursor, cells)?;
            Ok(cursor.columns().to_vec())
        })
    }

    /// Reads every row of `cursor` into `cells`: one read engine, so a query is a cursor
    /// drained at once, within the query bounds (one more row or byte than allowed is an
    /// error, not a silent cut).
    fn drain(
        &self,
        conn: &Connection,
        cursor: &mut cursor::RawCursor,
        cells: &mut PageBuilder,
    ) -> Result<(), SqlError> {
        cursor
            .next_batch(conn, MAX_QUERY_ROWS + 1, MAX_QUERY_BYTES + 1, cells)
            .map_err(|e| self.explain(e))?;
        if !cursor.is_done() {
            return Err(SqlError {
                code: SQLITE_TOOBIG,
                message: format!(
                    "the result is larger than hsm-host's limit of {MAX_QUERY_ROWS} rows \
                     or {} per query: read it in pages (ORDER BY a key, WHERE key > ?, \
                     LIMIT n)",
                    human_bytes(MAX_QUERY_BYTES as u64)
                ),
            });
        }
        Ok(())
    }

    /// Makes `name(...)` callable from this call's SQL, computed by `caller`.
    pub(crate) fn register_function(
        &self,
        name: &str,
        arity: i32,
        deterministic: bool,
        caller: FunctionCaller,
    ) -> Result<(), SqlError> {
        let valid_name = !name.is_empty()
            && name.len() <= 255
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.eq_ignore_ascii_case("load_extension");
        if !valid_name || !(-1..=127).contains(&arity) {
            return Err(SqlError {
                code: SQLITE_MISUSE,
                message: format!(
                    "cannot register function `{}` with {arity} arguments: names are letters, \
                     digits and _; arity is -1 (any) to 127",
                    crate::text::neutralize(name, 64)
                ),
            });
        }
        if let Some(reason) = builtin_function(name) {
            return Err(SqlError {
                code: SQLITE_MISUSE,
                message: reason,
            });
        }
        let mut flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DIRECTONLY;
        if deterministic {
            flags |= FunctionFlags::SQLITE_DETERMINISTIC;
        }
        self.with_conn(|conn| {
            conn.create_scalar_function(name, arity, flags, move |context| {
                // Once per row: the argument's name is only formatted for an error.
                let args = (0..context.len())
                    .map(|i| from_sqlite(context.get_raw(i), format_args!("argument {}", i + 1)))
                    .collect::<Result<Vec<Value>, SqlError>>()
                    .map_err(|e| rusqlite::Error::UserFunctionError(e.message.into()))?;
                caller(args)
                    .map(to_sqlite)
                    .map_err(|message| rusqlite::Error::UserFunctionError(message.into()))
            })
            .map_err(|e| self.error(e))
        })?;
        lock(&self.functions).push((name.to_owned(), arity));
        Ok(())
    }

    pub(crate) fn last_insert_rowid(&self) -> i64 {
        self.conn().last_insert_rowid()
    }

    /// Explains refusals and interruptions in the host's words.
    fn error(&self, error: rusqlite::Error) -> SqlError {
        self.explain(to_sql_error(error))
    }

    fn explain(&self, mut sql_error: SqlError) -> SqlError {
        // A refusal surfaces as SQLITE_AUTH when running, as a plain error when compiling:
        // either way the authorizer has just recorded why.
        let denial = lock(&self.denial).take();
        if let Some(reason) = denial {
            sql_error.code = SQLITE_AUTH;
            sql_error.message = format!("refused by hsm-host's policy: {reason}");
        } else if sql_error.code & 0xff == SQLITE_INTERRUPT && Instant::now() >= self.deadline {
            sql_error.message = "interrupted: the migration ran out of time".into();
        }
        sql_error
    }

    /// Ends the call: finalizes its cursors and statements, removes its functions, hooks and
    /// policy, and drops every temp object it made, so the next migration (perhaps another
    /// author's) starts from a clean connection. Says whether the transaction survived.
    pub(crate) fn close(mut self) -> Closed {
        self.reset()
    }

    fn reset(&mut self) -> Closed {
        self.closed = true;
        let conn = lock(&self.db);
        if conn.is_autocommit() {
            lock(&self.ended).get_or_insert_with(|| {
                "the connection left the transaction (SQLite rolled it back)".into()
            });
        }
        lock(&self.cursors).clear();
        lock(&self.statement_queries).clear();
        for (name, arity) in lock(&self.functions).drain(..) {
            let _ = conn.remove_function(name.as_str(), arity);
        }
        policy::disarm(&conn);
        let _ = conn.progress_handler(0, None::<fn() -> bool>);
        let _ = conn.commit_hook(None::<fn() -> bool>);
        let _ = conn.rollback_hook(None::<fn()>);
        let _ = conn.set_limit(Limit::SQLITE_LIMIT_LENGTH, self.length_limit);
        // What the policy saw compiled says what there is to undo (it sees every statement).
        let touch = std::mem::take(&mut *lock(&self.touch));
        if touch.settings {
            // The one setting a guest may change (see the policy) is not the next one's.
            let _ = conn.execute_batch("PRAGMA legacy_alter_table = OFF");
        }
        conn.flush_prepared_statement_cache();
        let reset_failed = (touch.temp || touch.anywhere)
            .then(|| drop_temp_objects(&conn).err())
            .flatten()
            .map(|e| format!("hsm-host could not remove the temp objects it made: {e}"));
        Closed {
            transaction_ended: lock(&self.ended).take(),
            reset_failed,
            last_error: lock(&self.last_error).take(),
            touch,
        }
    }
}

impl Drop for GuestSql {
    fn drop(&mut self) {
        if !self.closed {
            self.reset();
        }
    }
}

/// Drops every object of the temp schema: a temp trigger, view or table (a temp table named
/// like an application table hides it) must not change what the next migration does.
fn drop_temp_objects(conn: &Connection) -> rusqlite::Result<()> {
    let objects: Vec<(String, String)> = conn
        .prepare(
            "SELECT type, name FROM temp.sqlite_schema WHERE type IN ('trigger', 'view', 'table')
               AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
             ORDER BY CASE WHEN type = 'trigger' THEN 0 WHEN type = 'view' THEN 1
                           WHEN sql LIKE 'CREATE VIRTUAL%' THEN 2 ELSE 3 END",
        )?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (kind, name) in objects {
        // Dropping a virtual table drops its shadow tables, and a table its triggers.
        conn.execute_batch(&format!(
            "DROP {kind} IF EXISTS temp.{}",
            crate::text::quote_identifier(&name)
        ))?;
    }
    // SQLite's own temp tables (`sqlite_sequence`, made by a temp AUTOINCREMENT table) cannot
    // be dropped; their rows can, so the next migration's counters start afresh.
    let has_sequence: bool = conn.query_row(
        "SELECT count(*) > 0 FROM temp.sqlite_schema WHERE name = 'sqlite_sequence'",
        [],
        |row| row.get(0),
    )?;
    if has_sequence {
        conn.execute_batch("DELETE FROM temp.sqlite_sequence")?;
    }
    Ok(())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod builtin_tests {
    #[test]
    fn sqlites_own_functions_are_known_and_others_are_not() {
        for name in [
            "lower",
            "LIKE",
            "count",
            "substr",
            "load_extension",
            "json_extract",
            "printf",
        ] {
            assert!(super::builtin_function(name).is_some(), "{name}");
        }
        for name in ["normalize", "bin2b64", "normalize_email"] {
            assert!(super::builtin_function(name).is_none(), "{name}");
        }
    }
}
