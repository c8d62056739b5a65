//! The guest's SQL on PostgreSQL: one session per migration step, logged in as the migrator
//! role, inside the transaction the host opened. Every guest statement goes alone through the
//! extended protocol (one Parse each), transaction control is refused before it is sent, and
//! after each statement the host checks its transaction is still the one it opened.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use hsm_sandbox::contract::sql::Page;
use hsm_sandbox::contract::{SqlError, Value};
use hsm_sandbox::sql::{
    MAX_BATCH_ROWS, MAX_QUERY_BYTES, MAX_QUERY_ROWS, SQLITE_ABORT, SQLITE_AUTH, SQLITE_INTERRUPT,
    SQLITE_MISUSE, SQLITE_TOOBIG, ServerSql,
};
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::{Client, SimpleQueryMessage};

use crate::errors::{describe, to_sql_error};
use crate::split;
use crate::values::{PageBuilder, Param, Read};

/// The savepoint around each guest statement (a guest cannot name it: SAVEPOINT, RELEASE and
/// ROLLBACK are refused).
const STATEMENT_SAVEPOINT: &str = "hsm_guest_statement";

/// What the host and the guest's calls share of one step's session.
pub(crate) struct Shared {
    pub(crate) client: Mutex<Client>,
    /// The transaction the host opened (`pg_current_xact_id()` as text).
    pub(crate) xid: String,
    /// The running step's deadline and name (a dry run runs several on one session).
    step: Mutex<(Instant, String)>,
    /// Why the host's transaction is gone, once it is.
    pub(crate) ended: Mutex<Option<String>>,
    last_error: Mutex<Option<SqlError>>,
    /// The SQLSTATE of the server's last error, until the sandbox takes it.
    sqlstate: Mutex<Option<String>>,
    cursors: Mutex<HashMap<u32, Cursor>>,
    next_cursor: AtomicU32,
}

struct Cursor {
    name: String,
    columns: Vec<String>,
}

impl Shared {
    pub(crate) fn new(client: Client, xid: String, deadline: Instant, label: String) -> Self {
        Self {
            client: Mutex::new(client),
            xid,
            step: Mutex::new((deadline, label)),
            ended: Mutex::new(None),
            last_error: Mutex::new(None),
            sqlstate: Mutex::new(None),
            cursors: Mutex::new(HashMap::new()),
            next_cursor: AtomicU32::new(0),
        }
    }
}

impl Shared {
    pub(crate) fn deadline(&self) -> Instant {
        lock(&self.step).0
    }

    /// Starts the next step of a dry run on the same session and transaction.
    pub(crate) fn next_step(&self, deadline: Instant, label: String) {
        *lock(&self.step) = (deadline, label);
        *lock(&self.last_error) = None;
        lock(&self.cursors).clear();
    }
}

/// The sandbox's handle on the step's session.
pub(crate) struct GuestSession(pub(crate) Arc<Shared>);

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn misuse(message: impl Into<String>) -> SqlError {
    SqlError {
        code: SQLITE_MISUSE,
        message: message.into(),
    }
}

impl GuestSession {
    /// Runs `f` on the client unless the transaction is gone or the deadline passed, inside a
    /// savepoint: a failed statement is undone alone and the transaction goes on, as on SQLite
    /// (PostgreSQL would otherwise refuse everything after it). Checks afterwards that the
    /// transaction is still the host's.
    fn with_client<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, Failed>,
    ) -> Result<T, SqlError> {
        let shared = &self.0;
        let mut client = lock(&shared.client);
        self.refuse_if_ended()?;
        if Instant::now() >= shared.deadline() {
            return Err(self.out_of_time());
        }
        if let Err(e) = client.batch_execute(&format!("SAVEPOINT {STATEMENT_SAVEPOINT}")) {
            self.end(format!(
                "hsm-host could not open a savepoint: {}",
                describe(&e)
            ));
        }
        self.refuse_if_ended()?;
        let result = f(&mut client).map_err(|failed| match failed {
            Failed::Server(e) => self.explain(&e),
            Failed::Host(e) => e,
        });
        let close = match result {
            Ok(_) => format!("RELEASE SAVEPOINT {STATEMENT_SAVEPOINT}"),
            Err(_) => format!(
                "ROLLBACK TO SAVEPOINT {STATEMENT_SAVEPOINT}; RELEASE SAVEPOINT {STATEMENT_SAVEPOINT}"
            ),
        };
        let current = client
            .simple_query(&format!(
                "{close}; SELECT pg_catalog.pg_current_xact_id_if_assigned()::pg_catalog.text"
            ))
            .ok()
            .and_then(|messages| {
                messages.into_iter().find_map(|message| match message {
                    SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                    _ => None,
                })
            });
        if current.as_deref() != Some(shared.xid.as_str()) {
            self.end("the session is no longer in the transaction hsm-host opened".into());
        }
        self.refuse_if_ended()?;
        if let Err(error) = &result {
            *lock(&shared.last_error) = Some(error.clone());
        }
        result
    }

    /// Marks the host's transaction gone (the first reason stays).
    fn end(&self, why: String) {
        lock(&self.0.ended).get_or_insert(why);
    }

    fn out_of_time(&self) -> SqlError {
        SqlError {
            code: SQLITE_INTERRUPT,
            message: "interrupted: the migration ran out of time".into(),
        }
    }

    fn explain(&self, error: &postgres::Error) -> SqlError {
        *lock(&self.0.sqlstate) = error.code().map(|state| state.code().to_owned());
        let mut sql_error = to_sql_error(error);
        if Instant::now() >= self.0.deadline()
            && error.code() == Some(&postgres::error::SqlState::QUERY_CANCELED)
        {
            sql_error = self.out_of_time();
        }
        sql_error
    }

    fn refuse_if_ended(&self) -> Result<(), SqlError> {
        match &*lock(&self.0.ended) {
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

    /// The one statement of `sql`, refused when hsm-host does not send it.
    fn one_statement<'a>(&self, sql: &'a str) -> Result<&'a str, SqlError> {
        let all = split::statements(sql);
        let [statement] = all.as_slice() else {
            return Err(misuse(format!(
                "this call takes exactly one statement, and the SQL holds {}: run scripts with \
                 execute-batch",
                all.len()
            )));
        };
        refuse(statement.text)?;
        Ok(statement.text)
    }
}

/// Why a call failed: the server said so, or the host's bounds did.
enum Failed {
    Server(postgres::Error),
    Host(SqlError),
}

impl From<postgres::Error> for Failed {
    fn from(error: postgres::Error) -> Self {
        Failed::Server(error)
    }
}

/// Refuses what hsm-host never sends, before it reaches the server.
fn refuse(statement: &str) -> Result<(), SqlError> {
    match split::refusal(statement) {
        Some(reason) => Err(SqlError {
            code: SQLITE_AUTH,
            message: format!("refused by hsm-host's policy: {reason}"),
        }),
        None => Ok(()),
    }
}

fn params(values: &[Value]) -> Vec<Param<'_>> {
    values.iter().map(Param).collect()
}

fn as_sql<'a>(params: &'a [Param<'_>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// Reads `rows` into `page` within the bounds; `Ok(false)` when more rows were left.
fn drain(
    rows: &mut postgres::RowIter<'_>,
    page: &mut PageBuilder,
    max_rows: usize,
) -> Result<bool, Failed> {
    while page.rows < max_rows {
        let Some(row) = rows.next()? else {
            return Ok(true);
        };
        for i in 0..row.len() {
            let read: Read = row.try_get(i)?;
            page.push(read).map_err(Failed::Host)?;
        }
        page.rows += 1;
        if page.byte_len() > MAX_QUERY_BYTES {
            return Ok(false);
        }
    }
    Ok(rows.next()?.is_none())
}

fn too_big() -> SqlError {
    SqlError {
        code: SQLITE_TOOBIG,
        message: format!(
            "the result is larger than hsm-host's limit of {MAX_QUERY_ROWS} rows or {} MiB per \
             query: read it in pages (ORDER BY a key, WHERE key > $1, LIMIT n) or with query-rows",
            MAX_QUERY_BYTES >> 20
        ),
    }
}

impl ServerSql for GuestSession {
    fn execute(&self, sql: &str, values: &[Value]) -> Result<u64, SqlError> {
        let sql = self.one_statement(sql)?;
        let params = params(values);
        let mut returns_rows = false;
        let changed = self.with_client(|client| {
            let statement = client.prepare(sql)?;
            if !statement.columns().is_empty() {
                returns_rows = true;
                return Ok(0);
            }
            Ok(client.execute(&statement, &as_sql(&params))?)
        })?;
        if returns_rows {
            return Err(misuse(
                "this statement returns rows: run it with query, not execute",
            ));
        }
        Ok(changed)
    }

    fn execute_batch(&self, sql: &str) -> Result<(), SqlError> {
        let all = split::statements(sql);
        let run = split::unwrap_transaction(&all);
        if run.len() < all.len() {
            tracing::info!(
                "{}: its script's BEGIN … COMMIT runs inside hsm-host's transaction",
                lock(&self.0.step).1
            );
        }
        for statement in &run {
            let located = |mut error: SqlError| {
                if all.len() > 1 {
                    error.message = format!(
                        "{} in the statement at line {}: {}",
                        error.message,
                        statement.line,
                        hsm_store::text::neutralize(statement.text, 80)
                    );
                }
                error
            };
            refuse(statement.text).map_err(located)?;
            self.with_client(|client| Ok(client.execute(statement.text, &[]).map(drop)?))
                .map_err(located)?;
        }
        Ok(())
    }

    fn query(&self, sql: &str, values: &[Value]) -> Result<Page, SqlError> {
        let sql = self.one_statement(sql)?;
        let params = params(values);
        let mut page = PageBuilder::default();
        let mut columns = Vec::new();
        let complete = self.with_client(|client| {
            let statement = client.prepare(sql)?;
            columns = statement
                .columns()
                .iter()
                .map(|c| c.name().to_owned())
                .collect();
            let mut rows = client.query_raw(&statement, as_sql(&params))?;
            drain(&mut rows, &mut page, MAX_QUERY_ROWS)
        })?;
        if !complete {
            return Err(too_big());
        }
        Ok(page.finish(columns))
    }

    fn prepare(&self, sql: &str) -> Result<(), SqlError> {
        let sql = self.one_statement(sql)?;
        self.with_client(|client| Ok(client.prepare(sql).map(drop)?))
    }

    fn open_cursor(&self, sql: &str, values: &[Value]) -> Result<u32, SqlError> {
        let sql = self.one_statement(sql)?;
        let params = params(values);
        let id = self.0.next_cursor.fetch_add(1, Ordering::Relaxed);
        let name = format!("hsm_cursor_{id}");
        let mut columns = Vec::new();
        self.with_client(|client| {
            columns = client
                .prepare(sql)?
                .columns()
                .iter()
                .map(|c| c.name().to_owned())
                .collect();
            client.execute(
                &format!("DECLARE {name} NO SCROLL CURSOR FOR {sql}"),
                &as_sql(&params),
            )?;
            Ok(())
        })?;
        lock(&self.0.cursors).insert(id, Cursor { name, columns });
        Ok(id)
    }

    fn cursor_columns(&self, id: u32) -> Vec<String> {
        lock(&self.0.cursors)
            .get(&id)
            .map(|c| c.columns.clone())
            .unwrap_or_default()
    }

    fn cursor_next(&self, id: u32, max: u32) -> Result<Page, SqlError> {
        let (name, columns) = lock(&self.0.cursors)
            .get(&id)
            .map(|c| (c.name.clone(), c.columns.clone()))
            .ok_or_else(|| misuse("this cursor is closed"))?;
        let max = (max as usize).clamp(1, MAX_BATCH_ROWS);
        let mut page = PageBuilder::default();
        self.with_client(|client| {
            let mut rows = client.query_raw(
                &format!("FETCH FORWARD {max} FROM {name}"),
                std::iter::empty::<&(dyn ToSql + Sync)>(),
            )?;
            drain(&mut rows, &mut page, max).map(drop)
        })?;
        Ok(page.finish(columns))
    }

    fn close_cursor(&self, id: u32) {
        if let Some(cursor) = lock(&self.0.cursors).remove(&id) {
            let _ = self.with_client(|client| {
                client.execute(&format!("CLOSE {}", cursor.name), &[])?;
                Ok(())
            });
        }
    }

    fn execute_many(&self, sql: &str, sets: &[Vec<Value>]) -> Result<u64, SqlError> {
        let sql = self.one_statement(sql)?;
        self.with_client(|client| {
            let statement = client.prepare(sql)?;
            let mut changed = 0;
            for set in sets {
                let params = params(set);
                changed += client.execute(&statement, &as_sql(&params))?;
            }
            Ok(changed)
        })
    }

    fn close(&self) -> Option<String> {
        lock(&self.0.cursors).clear();
        lock(&self.0.ended).clone()
    }

    fn take_sqlstate(&self) -> Option<String> {
        lock(&self.0.sqlstate).take()
    }

    fn last_error(&self) -> Option<SqlError> {
        lock(&self.0.last_error).take()
    }
}
