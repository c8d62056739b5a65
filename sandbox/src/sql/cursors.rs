//! Cursors: a result of any size read in batches (`query-stream` and prepared statements).

use super::*;

impl GuestSql {
    /// Starts a query whose rows the guest reads in batches.
    pub(crate) fn open_cursor(
        &self,
        sql: &str,
        params: Vec<Value>,
    ) -> Result<CursorHandle, SqlError> {
        check_sql(sql)?;
        check_params(params.iter().map(value_ref))?;
        self.with_conn(|conn| {
            let mut cursors = lock(&self.cursors);
            if cursors.len() >= MAX_LIVE_CURSORS {
                return Err(SqlError {
                    code: SQLITE_TOOBIG,
                    message: format!(
                        "too many open cursors: hsm-host keeps at most {MAX_LIVE_CURSORS} per \
                         migration; drop the ones you have read"
                    ),
                });
            }
            let cursor =
                cursor::RawCursor::open(conn, sql, params, false).map_err(|e| self.explain(e))?;
            let id = self.next_cursor.fetch_add(1, Ordering::Relaxed);
            cursors.insert(id, cursor);
            Ok(CursorHandle { id })
        })
    }

    pub(crate) fn cursor_columns(&self, handle: &CursorHandle) -> Vec<String> {
        let _conn = self.conn();
        lock(&self.cursors)
            .get(&handle.id)
            .map(|c| c.columns().to_vec())
            .unwrap_or_default()
    }

    /// The next rows of a cursor as a page, at most `max` (and [`MAX_BATCH_ROWS`]); without
    /// cells when done.
    pub(crate) fn cursor_next(&self, handle: &CursorHandle, max: u32) -> Result<Page, SqlError> {
        let mut page = PageBuilder::default();
        let columns = self.cursor_batch(handle, max, &mut page)?;
        Ok(page.finish(columns))
    }

    /// Hands the next batch's cells to `cells`, row after row; returns the column names.
    fn cursor_batch(
        &self,
        handle: &CursorHandle,
        max: u32,
        cells: &mut PageBuilder,
    ) -> Result<Vec<String>, SqlError> {
        self.with_conn(|conn| {
            let mut cursors = lock(&self.cursors);
            let cursor = cursors.get_mut(&handle.id).ok_or_else(|| SqlError {
                code: SQLITE_MISUSE,
                message: "this cursor is closed".into(),
            })?;
            let max = (max as usize).clamp(1, MAX_BATCH_ROWS);
            cursor
                .next_batch(conn, max, MAX_QUERY_BYTES, cells)
                .map_err(|e| self.explain(e))?;
            Ok(cursor.columns().to_vec())
        })
    }

    pub(crate) fn close_cursor(&self, handle: &CursorHandle) {
        let _conn = self.conn();
        lock(&self.cursors).remove(&handle.id);
    }
}
