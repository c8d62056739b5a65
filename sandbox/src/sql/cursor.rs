//! Streaming cursors: a query stepped a batch at a time across guest calls, so a result of any
//! size never sits in memory whole.
//!
//! rusqlite's `Statement` borrows its `Connection`, which here lives behind a mutex shared with
//! the host; a statement that outlives one host call cannot be expressed with it. So a cursor
//! holds a raw `sqlite3_stmt`, used only while the connection's mutex is held and finalized
//! when the guest drops the cursor or its call ends (whichever comes first).

use std::ffi::{CStr, c_int};
use std::ptr;

use rusqlite::Connection;
use rusqlite::ffi;
use rusqlite::types::ValueRef;

use super::page::PageBuilder;
use crate::contract::{SqlError, Value};

/// A prepared statement being stepped. Owned by the call's `GuestSql`.
pub(crate) struct RawCursor {
    stmt: *mut ffi::sqlite3_stmt,
    columns: Vec<String>,
    done: bool,
}

// SAFETY: the statement is only touched through `&mut self` methods that take the connection
// (so the caller holds the connection's mutex), and SQLite runs in multi-thread mode where a
// connection and its statements may move between threads as long as they are not used
// concurrently.
unsafe impl Send for RawCursor {}

impl RawCursor {
    /// Prepares `sql` (exactly one statement) on `conn` and binds `params`. A statement that
    /// returns no columns (`CREATE …`, `INSERT` without `RETURNING`) is refused unless
    /// `rowless` allows it (a one-shot query runs it and returns no rows).
    pub(crate) fn open(
        conn: &Connection,
        sql: &str,
        params: Vec<Value>,
        rowless: bool,
    ) -> Result<Self, SqlError> {
        // SAFETY: the handle is valid while `conn` is borrowed; every call below passes it
        // back to SQLite only within this borrow.
        let db = unsafe { conn.handle() };
        let mut stmt = ptr::null_mut();
        let mut tail = ptr::null();
        let len = c_int::try_from(sql.len()).map_err(|_| misuse("the SQL text is too long"))?;
        // SAFETY: `sql` is valid for `len` bytes; SQLite writes the statement and tail pointers.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(db, sql.as_ptr().cast(), len, 0, &mut stmt, &mut tail)
        };
        if rc != ffi::SQLITE_OK {
            return Err(last_error(db));
        }
        let mut cursor = Self {
            stmt,
            columns: Vec::new(),
            done: false,
        };
        if stmt.is_null() {
            return Err(misuse("no statement to run"));
        }
        // SAFETY: `tail` points into `sql` (SQLite returns a pointer within the input).
        let consumed = unsafe { tail.cast::<u8>().offset_from(sql.as_ptr()) } as usize;
        if !sql[consumed.min(sql.len())..].trim().is_empty() {
            return Err(misuse(
                "more than one statement: a query runs one statement (run a script with execute-batch)",
            ));
        }
        // SAFETY: `stmt` is a valid prepared statement until `finalize`.
        let count = unsafe { ffi::sqlite3_column_count(stmt) };
        if count == 0 && !rowless {
            return Err(misuse(
                "this statement returns no rows: run it with execute",
            ));
        }
        for i in 0..count {
            // SAFETY: `i` is in range; the name is a NUL-terminated string owned by SQLite.
            let name = unsafe { ffi::sqlite3_column_name(stmt, i) };
            let name = if name.is_null() {
                String::new()
            } else {
                unsafe { CStr::from_ptr(name) }
                    .to_string_lossy()
                    .into_owned()
            };
            cursor.columns.push(name);
        }
        for (index, value) in params.into_iter().enumerate() {
            cursor.bind(db, index as c_int + 1, value)?;
        }
        Ok(cursor)
    }

    fn bind(&mut self, db: *mut ffi::sqlite3, index: c_int, value: Value) -> Result<(), SqlError> {
        // SAFETY: `self.stmt` is valid; text and blob are copied by SQLite (SQLITE_TRANSIENT).
        let rc = unsafe {
            match &value {
                Value::Null => ffi::sqlite3_bind_null(self.stmt, index),
                Value::Integer(i) => ffi::sqlite3_bind_int64(self.stmt, index, *i),
                Value::Real(r) => ffi::sqlite3_bind_double(self.stmt, index, *r),
                Value::Text(t) => ffi::sqlite3_bind_text64(
                    self.stmt,
                    index,
                    t.as_ptr().cast(),
                    t.len() as u64,
                    ffi::SQLITE_TRANSIENT(),
                    ffi::SQLITE_UTF8 as u8,
                ),
                Value::Blob(b) => ffi::sqlite3_bind_blob64(
                    self.stmt,
                    index,
                    b.as_ptr().cast(),
                    b.len() as u64,
                    ffi::SQLITE_TRANSIENT(),
                ),
            }
        };
        if rc == ffi::SQLITE_RANGE {
            return Err(SqlError {
                code: super::SQLITE_RANGE,
                message: format!("parameter {index} does not exist in this statement"),
            });
        }
        if rc != ffi::SQLITE_OK {
            return Err(last_error(db));
        }
        Ok(())
    }

    /// Readies the statement to run again from the start with `params` in place of the
    /// last run's.
    pub(crate) fn rebind(&mut self, conn: &Connection, params: Vec<Value>) -> Result<(), SqlError> {
        self.reset();
        // SAFETY: as in `open`; `self.stmt` is valid until `finalize`.
        let db = unsafe { conn.handle() };
        unsafe { ffi::sqlite3_clear_bindings(self.stmt) };
        for (index, value) in params.into_iter().enumerate() {
            self.bind(db, index as c_int + 1, value)?;
        }
        Ok(())
    }

    /// Ends the current run, so the statement holds no read open (its bindings stay).
    pub(crate) fn reset(&mut self) {
        // SAFETY: `self.stmt` is valid until `finalize`. The result repeats the last step's
        // error, already reported.
        unsafe { ffi::sqlite3_reset(self.stmt) };
        self.done = false;
    }

    /// Whether the statement has run to its end.
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    pub(crate) fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Steps up to `max` rows (fewer once `max_bytes` are read; none once done) and hands
    /// their cells to `cells`, row after row.
    pub(crate) fn next_batch(
        &mut self,
        conn: &Connection,
        max: usize,
        max_bytes: usize,
        cells: &mut PageBuilder,
    ) -> Result<(), SqlError> {
        let mut rows = 0;
        let mut bytes = 0;
        // SAFETY: as in `open`; the caller holds the connection for the whole batch.
        let db = unsafe { conn.handle() };
        while !self.done && rows < max && bytes < max_bytes {
            // SAFETY: `self.stmt` is valid until `finalize`.
            match unsafe { ffi::sqlite3_step(self.stmt) } {
                ffi::SQLITE_ROW => {
                    self.read_row(&mut bytes, cells)?;
                    rows += 1;
                }
                ffi::SQLITE_DONE => self.done = true,
                _ => {
                    self.done = true;
                    return Err(last_error(db));
                }
            }
        }
        Ok(())
    }

    fn read_row(&self, bytes: &mut usize, cells: &mut PageBuilder) -> Result<(), SqlError> {
        for (i, column) in self.columns.iter().enumerate() {
            let i = i as c_int;
            // SAFETY: `i` is a valid column of the current row; pointers returned by
            // column_text/blob stay valid until the next step, and `cells` copies them at once.
            let value = unsafe {
                match ffi::sqlite3_column_type(self.stmt, i) {
                    ffi::SQLITE_INTEGER => {
                        ValueRef::Integer(ffi::sqlite3_column_int64(self.stmt, i))
                    }
                    ffi::SQLITE_FLOAT => ValueRef::Real(ffi::sqlite3_column_double(self.stmt, i)),
                    ffi::SQLITE_TEXT => {
                        let data = ffi::sqlite3_column_text(self.stmt, i);
                        let len = ffi::sqlite3_column_bytes(self.stmt, i) as usize;
                        *bytes += len + 16;
                        ValueRef::Text(raw_slice(data, len))
                    }
                    ffi::SQLITE_BLOB => {
                        let data = ffi::sqlite3_column_blob(self.stmt, i).cast::<u8>();
                        let len = ffi::sqlite3_column_bytes(self.stmt, i) as usize;
                        *bytes += len + 16;
                        ValueRef::Blob(raw_slice(data, len))
                    }
                    _ => ValueRef::Null,
                }
            };
            cells.push(value, column)?;
        }
        Ok(())
    }
}

/// The `len` bytes SQLite returned at `data` (empty for a NULL pointer, SQLite's zero-length
/// value).
///
/// # Safety
/// `data` must be null or valid for `len` bytes for the returned lifetime.
unsafe fn raw_slice<'a>(data: *const u8, len: usize) -> &'a [u8] {
    if data.is_null() {
        &[]
    } else {
        // SAFETY: the caller's promise.
        unsafe { std::slice::from_raw_parts(data, len) }
    }
}

/// Finalizes the statement. Owners drop cursors only while holding the connection's mutex.
impl Drop for RawCursor {
    fn drop(&mut self) {
        if !self.stmt.is_null() {
            // SAFETY: `self.stmt` is valid and finalized exactly once, here.
            unsafe { ffi::sqlite3_finalize(self.stmt) };
        }
    }
}

fn misuse(message: &str) -> SqlError {
    SqlError {
        code: super::SQLITE_MISUSE,
        message: message.to_owned(),
    }
}

fn last_error(db: *mut ffi::sqlite3) -> SqlError {
    // SAFETY: `db` is a valid connection handle; the message is NUL-terminated and copied.
    unsafe {
        let message = CStr::from_ptr(ffi::sqlite3_errmsg(db))
            .to_string_lossy()
            .into_owned();
        SqlError {
            code: ffi::sqlite3_extended_errcode(db),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::page::PageBuilder;

    #[test]
    fn a_column_name_that_is_not_utf8_is_read_lossily_never_a_panic() {
        let conn = Connection::open_in_memory().unwrap();
        // Only raw SQL bytes can name a column this way (the database may come from anywhere).
        let sql = b"CREATE TABLE t (\"a\xff\xfe\" INTEGER); INSERT INTO t VALUES (7);\0";
        // SAFETY: a valid connection and a NUL-terminated statement.
        let rc = unsafe {
            ffi::sqlite3_exec(
                conn.handle(),
                sql.as_ptr().cast(),
                None,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        assert_eq!(rc, ffi::SQLITE_OK);
        let mut cursor = RawCursor::open(&conn, "SELECT * FROM t", Vec::new(), false).unwrap();
        assert_eq!(cursor.columns(), ["a\u{fffd}\u{fffd}"]);
        let mut page = PageBuilder::default();
        cursor.next_batch(&conn, 10, 1 << 20, &mut page).unwrap();
        assert!(cursor.is_done());
    }

    #[test]
    fn a_rowless_statement_runs_only_where_allowed() {
        let conn = Connection::open_in_memory().unwrap();
        assert!(RawCursor::open(&conn, "CREATE TABLE t (x)", Vec::new(), false).is_err());
        let mut cursor = RawCursor::open(&conn, "CREATE TABLE t (x)", Vec::new(), true).unwrap();
        cursor
            .next_batch(&conn, 10, 1 << 20, &mut PageBuilder::default())
            .unwrap();
        assert!(cursor.is_done());
        conn.query_row("SELECT count(*) FROM t", [], |_| Ok(()))
            .unwrap();
    }
}
