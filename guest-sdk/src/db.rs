//! [`Db`]: the migration's handle on the database, in the style of rusqlite.

use std::cell::OnceCell;
use std::rc::Rc;

use crate::bindings::hsm::migration::{log as host_log, sql as host};
use crate::{Dialect, Error, FromSql, Params, Result, Value};

/// The database being migrated, inside the transaction the host opened for this migration.
///
/// Every call runs on the host's connection; nothing is committed until `up`/`down` returns
/// `Ok`. Do not run BEGIN/COMMIT/SAVEPOINT: the host owns the transaction and refuses them.
#[derive(Debug)]
pub struct Db {
    _private: (),
}

impl Db {
    pub(crate) fn new() -> Self {
        Self { _private: () }
    }

    /// Runs one statement that returns no rows and returns the number of rows it changed.
    ///
    /// ```ignore
    /// db.execute("UPDATE users SET role = ?1 WHERE id = ?2", ("admin", 1))?;
    /// ```
    pub fn execute(&self, sql: &str, params: impl Params) -> Result<u64> {
        host::execute(sql, &params.into_values()).map_err(|e| sql_error(e, sql))
    }

    /// Runs several `;`-separated statements without parameters (a DDL script).
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        host::execute_batch(sql).map_err(|e| sql_error(e, sql))
    }

    /// Runs a query and returns all its rows.
    pub fn query(&self, sql: &str, params: impl Params) -> Result<Vec<Row>> {
        let page = host::query(sql, &params.into_values()).map_err(|e| sql_error(e, sql))?;
        Ok(result_rows(page))
    }

    /// Runs a query and maps every row with `f`.
    pub fn query_map<T>(
        &self,
        sql: &str,
        params: impl Params,
        mut f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        self.query(sql, params)?.iter().map(&mut f).collect()
    }

    /// Runs a query and maps its first row with `f`; [`Error::NoRows`] when there is none.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row) -> Result<T>,
    ) -> Result<T> {
        match self.query(sql, params)?.first() {
            Some(row) => f(row),
            None => Err(Error::NoRows {
                sql: sql.to_owned(),
            }),
        }
    }

    /// Runs a query and streams its rows, fetched from the host a batch at a time: for results
    /// too large to hold at once (a 10-million-row table). Iterate it; each item is a row or
    /// the error that stopped the query.
    ///
    /// ```ignore
    /// for row in db.query_stream("SELECT id, email FROM users", ())? {
    ///     let row = row?;
    ///     // ...
    /// }
    /// ```
    pub fn query_stream(&self, sql: &str, params: impl Params) -> Result<RowStream> {
        let cursor = host::query_rows(sql, &params.into_values()).map_err(|e| sql_error(e, sql))?;
        Ok(RowStream {
            columns: cursor.columns().into(),
            cursor,
            buffered: Vec::new().into_iter(),
            sql: sql.to_owned(),
            done: false,
        })
    }

    /// Compiles `sql` once for running many times: faster than [`Db::execute`] in a loop.
    ///
    /// ```ignore
    /// let insert = db.prepare("INSERT INTO t (id, v) VALUES (?1, ?2)")?;
    /// for (id, v) in rows {
    ///     insert.execute((id, v))?;
    /// }
    /// ```
    pub fn prepare(&self, sql: &str) -> Result<Statement> {
        let inner = host::Statement::prepare(sql).map_err(|e| sql_error(e, sql))?;
        Ok(Statement {
            inner,
            sql: sql.to_owned(),
        })
    }

    /// Runs one write statement once per parameter set, in a single call to the host: the
    /// fastest way to write many rows. Returns the total rows changed.
    ///
    /// ```ignore
    /// db.execute_many("UPDATE users SET email = ?2 WHERE id = ?1", batch.iter().map(|(id, e)| (*id, e.as_str())))?;
    /// ```
    pub fn execute_many<P: Params>(
        &self,
        sql: &str,
        rows: impl IntoIterator<Item = P>,
    ) -> Result<u64> {
        // One page of parameter sets when every set has the same width (tuples always do): no
        // list per row, and all text in one buffer.
        let mut values = Vec::new();
        let mut widths = Vec::new();
        for row in rows {
            let before = values.len();
            row.extend_values(&mut values);
            widths.push(values.len() - before);
        }
        match widths.first() {
            // No sets: the host still compiles (and so checks) the SQL.
            None => host::execute_many(
                sql,
                &host::ParamSets {
                    width: 1,
                    cells: Vec::new(),
                    bytes: Vec::new(),
                },
            )
            .map_err(|e| sql_error(e, sql)),
            Some(&width) if width > 0 && widths.iter().all(|&w| w == width) => {
                let (cells, bytes) = to_cells(values);
                let sets = host::ParamSets {
                    width: width as u32,
                    cells,
                    bytes,
                };
                host::execute_many(sql, &sets).map_err(|e| sql_error(e, sql))
            }
            // Sets of differing widths (or none): one prepared statement, run once per set.
            Some(_) => {
                let statement = self.prepare(sql)?;
                let mut values = values.into_iter();
                let mut changed = 0;
                for &width in &widths {
                    let set: Vec<Value> = values.by_ref().take(width).collect();
                    changed += statement.execute(set)?;
                }
                Ok(changed)
            }
        }
    }

    /// Makes the SQL function `name` (declared in the migration's `functions: [...]`) usable in
    /// the SQL this step runs, with `arity` arguments. SQLite calls it once per row, in a
    /// separate sandbox with no SQL access. It is registered as deterministic (same arguments,
    /// same result); see [`Db::register_function_with`] otherwise.
    pub fn register_function(&self, name: &str, arity: i32) -> Result<()> {
        self.register_function_with(name, arity, true)
    }

    /// [`Db::register_function`], saying whether the function is deterministic.
    pub fn register_function_with(
        &self,
        name: &str,
        arity: i32,
        deterministic: bool,
    ) -> Result<()> {
        host::register_function(name, arity, deterministic).map_err(|error| Error::Sql {
            code: error.code,
            message: error.message,
            sql: format!("register_function({name}, {arity})"),
        })
    }

    /// The rowid of the most recent successful INSERT.
    pub fn last_insert_rowid(&self) -> i64 {
        host::last_insert_rowid()
    }

    /// The database engine the migration runs on: one component can carry SQL for each
    /// dialect it declares in [`migration!`](crate::migration)'s `dialects`.
    ///
    /// ```ignore
    /// let serial = match db.dialect() {
    ///     Dialect::Sqlite => "INTEGER PRIMARY KEY",
    ///     Dialect::Postgresql => "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    /// };
    /// ```
    pub fn dialect(&self) -> Dialect {
        host::running_on()
    }

    /// The SQLSTATE of the error the previous call returned, when a database server gave one
    /// (`"23505"`: a unique violation); `None` on SQLite, after a success, and when the host
    /// refused the statement. [`Error::sqlite_code`] holds the SQLite code mapped from it.
    ///
    /// ```ignore
    /// match db.execute("INSERT INTO tags (name) VALUES (?1)", ("new",)) {
    ///     Err(_) if db.last_sqlstate().as_deref() == Some("23505") => {} // already there
    ///     other => other.map(drop)?,
    /// }
    /// ```
    pub fn last_sqlstate(&self) -> Option<String> {
        host::last_sqlstate()
    }

    /// Reports progress of a long data migration (see [`crate::log::progress`]).
    pub fn progress(&self, done: u64, total: u64) {
        host_log::progress(done, total);
    }
}

/// A statement compiled once by [`Db::prepare`]; run it as often as needed.
#[derive(Debug)]
pub struct Statement {
    inner: host::Statement,
    sql: String,
}

impl Statement {
    /// Runs the statement with `params`; returns the rows changed.
    pub fn execute(&self, params: impl Params) -> Result<u64> {
        self.inner
            .execute(&params.into_values())
            .map_err(|e| sql_error(e, &self.sql))
    }

    /// Runs the query with `params`; returns all its rows.
    pub fn query(&self, params: impl Params) -> Result<Vec<Row>> {
        let page = self
            .inner
            .query(&params.into_values())
            .map_err(|e| sql_error(e, &self.sql))?;
        Ok(result_rows(page))
    }
}

/// Rows of [`Db::query_stream`], fetched [`RowStream::BATCH`] at a time.
#[derive(Debug)]
pub struct RowStream {
    cursor: host::Rows,
    columns: Rc<[String]>,
    buffered: std::vec::IntoIter<Row>,
    sql: String,
    done: bool,
}

impl RowStream {
    /// Rows asked of the host per call.
    pub const BATCH: u32 = 1_000;

    /// The column names, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }
}

impl Iterator for RowStream {
    type Item = Result<Row>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(row) = self.buffered.next() {
                return Some(Ok(row));
            }
            if self.done {
                return None;
            }
            match self.cursor.next(Self::BATCH) {
                Ok(page) if page.cells.is_empty() => self.done = true,
                Ok(page) => {
                    self.buffered = page_rows(Rc::clone(&self.columns), page).into_iter();
                }
                Err(error) => {
                    self.done = true;
                    return Some(Err(sql_error(error, &self.sql)));
                }
            }
        }
    }
}

/// Values as page cells, their TEXT and BLOB bytes in one buffer (wasm32: every offset fits
/// in a u32).
fn to_cells(values: Vec<Value>) -> (Vec<host::Cell>, Vec<u8>) {
    let mut bytes = Vec::new();
    let mut span = |data: &[u8]| {
        let offset = bytes.len() as u32;
        bytes.extend_from_slice(data);
        host::Span {
            offset,
            len: data.len() as u32,
        }
    };
    let cells = values
        .iter()
        .map(|value| match value {
            Value::Null => host::Cell::Null,
            Value::Integer(i) => host::Cell::Integer(*i),
            Value::Real(r) => host::Cell::Real(*r),
            Value::Text(text) => host::Cell::Text(span(text.as_bytes())),
            Value::Blob(blob) => host::Cell::Blob(span(blob)),
        })
        .collect();
    (cells, bytes)
}

/// The rows of a query's result.
fn result_rows(mut page: host::Page) -> Vec<Row> {
    let columns = std::mem::take(&mut page.columns).into();
    page_rows(columns, page)
}

/// The rows of one page, row after row (a result without columns has no rows).
fn page_rows(columns: Rc<[String]>, page: host::Page) -> Vec<Row> {
    let width = columns.len();
    let count = page.cells.len().checked_div(width).unwrap_or(0);
    let page = Rc::new(Page {
        cells: page.cells,
        bytes: page.bytes,
        values: OnceCell::new(),
    });
    (0..count)
        .map(|i| Row {
            columns: Rc::clone(&columns),
            page: Rc::clone(&page),
            start: i * width,
        })
        .collect()
}

/// Rows that arrived together: their cells row after row, the bytes of every TEXT and BLOB
/// in one buffer.
#[derive(Debug)]
struct Page {
    cells: Vec<host::Cell>,
    bytes: Vec<u8>,
    /// Every cell as a [`Value`], made the first time [`Row::values`] asks.
    values: OnceCell<Vec<Value>>,
}

impl Page {
    /// The bytes of a TEXT or BLOB cell. The host checks what it sends: a span outside the page
    /// or TEXT that is not UTF-8 would be its bug, reported rather than read.
    fn bytes(&self, span: host::Span) -> core::result::Result<&[u8], String> {
        let start = span.offset as usize;
        self.bytes
            .get(start..start.saturating_add(span.len as usize))
            .ok_or_else(|| "points outside the page the host sent (a host bug)".to_owned())
    }

    fn text(&self, span: host::Span) -> core::result::Result<&str, String> {
        std::str::from_utf8(self.bytes(span)?)
            .map_err(|_| "holds TEXT that is not valid UTF-8 (a host bug)".to_owned())
    }

    fn value(&self, index: usize) -> core::result::Result<Value, String> {
        Ok(match self.cells[index] {
            host::Cell::Null => Value::Null,
            host::Cell::Integer(i) => Value::Integer(i),
            host::Cell::Real(r) => Value::Real(r),
            host::Cell::Text(span) => Value::Text(self.text(span)?.to_owned()),
            host::Cell::Blob(span) => Value::Blob(self.bytes(span)?.to_vec()),
        })
    }

    /// Every cell as a value; a cell the host sent malformed (its bug) reads as NULL here and
    /// as an error through [`Row::get`].
    fn values(&self) -> &[Value] {
        self.values.get_or_init(|| {
            (0..self.cells.len())
                .map(|i| self.value(i).unwrap_or(Value::Null))
                .collect()
        })
    }
}

fn sql_error(error: host::SqlError, sql: &str) -> Error {
    Error::Sql {
        code: error.code,
        message: error.message,
        sql: sql.to_owned(),
    }
}

/// One result row. Read columns by index (`row.get::<i64>(0)`) or by name (`row.get::<String>("email")`).
///
/// Rows that arrived together share one page of values (cloning a row is cheap); keeping one
/// row keeps its page.
#[derive(Debug, Clone)]
pub struct Row {
    columns: Rc<[String]>,
    /// The cells of the rows that came with this one (one allocation for a whole result);
    /// this row's start at `start`.
    page: Rc<Page>,
    start: usize,
}

impl Row {
    /// Reads a column as `T`. Reading NULL needs `Option<T>`.
    pub fn get<T: FromSql>(&self, column: impl ColumnIndex) -> Result<T> {
        let index = column.index(&self.columns)?;
        self.page
            .value(self.start + index)
            .and_then(|value| T::from_sql(&value))
            .map_err(|message| Error::Column {
                column: self.columns[index].clone(),
                message,
            })
    }

    /// Reads a TEXT column without copying it (`get::<String>` copies): for loops over many
    /// rows.
    pub fn get_str(&self, column: impl ColumnIndex) -> Result<&str> {
        let index = column.index(&self.columns)?;
        let error = |message: String| Error::Column {
            column: self.columns[index].clone(),
            message,
        };
        match self.page.cells[self.start + index] {
            host::Cell::Text(span) => self.page.text(span).map_err(error),
            _ => {
                let value = self.page.value(self.start + index).map_err(error)?;
                Err(error(format!(
                    "holds {}, cannot be read as &str",
                    crate::value::kind(&value)
                )))
            }
        }
    }

    /// The column names, in order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// The raw values, in column order. The first call on a row makes the values of its whole
    /// page; [`Row::get`] and [`Row::get_str`] read cells without that.
    pub fn values(&self) -> &[Value] {
        &self.page.values()[self.start..self.start + self.columns.len()]
    }
}

/// Something that picks a column: its index (`usize`) or its name (`&str`).
pub trait ColumnIndex {
    /// The index of the column in `columns`.
    fn index(&self, columns: &[String]) -> Result<usize>;
}

impl ColumnIndex for usize {
    fn index(&self, columns: &[String]) -> Result<usize> {
        if *self < columns.len() {
            Ok(*self)
        } else {
            Err(Error::Column {
                column: self.to_string(),
                message: format!("out of range: the row has {} columns", columns.len()),
            })
        }
    }
}

impl ColumnIndex for &str {
    fn index(&self, columns: &[String]) -> Result<usize> {
        columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(self))
            .ok_or_else(|| Error::Column {
                column: (*self).to_owned(),
                message: format!("no such column; the row has {}", columns.join(", ")),
            })
    }
}
