//! Prepared statements: compiled once at `prepare` (so errors and policy refusals come then),
//! counted against the live-statement bounds, and reused by every run: `statement.execute`
//! through the connection's statement cache, `statement.query` through its own compiled
//! cursor, reset and rebound each time.

use super::*;

impl GuestSql {
    /// Compiles `sql` once, so that errors and policy refusals come at prepare time. Counts
    /// against the live-statement bounds until [`GuestSql::forget_statement`].
    pub(crate) fn prepare(&self, sql: &str) -> Result<PreparedStatement, SqlError> {
        check_sql(sql)?;
        {
            let (count, bytes) = *lock(&self.statements);
            if count >= MAX_LIVE_STATEMENTS || bytes + sql.len() > MAX_LIVE_STATEMENT_BYTES {
                return Err(SqlError {
                    code: SQLITE_TOOBIG,
                    message: format!(
                        "too many live prepared statements: hsm-host keeps at most \
                         {MAX_LIVE_STATEMENTS} holding {} of SQL per migration; drop the ones \
                         you no longer need",
                        human_bytes(MAX_LIVE_STATEMENT_BYTES as u64)
                    ),
                });
            }
        }
        self.with_conn(|conn| {
            conn.prepare_cached(sql)
                .map(drop)
                .map_err(|e| self.error(e))
        })?;
        let mut live = lock(&self.statements);
        live.0 += 1;
        live.1 += sql.len();
        Ok(PreparedStatement {
            sql: sql.to_owned(),
        })
    }

    /// Runs a prepared statement's query: compiled on its first run, then reset and rebound,
    /// so a statement queried once per row is not compiled once per row.
    pub(crate) fn statement_query(&self, sql: &str, params: Vec<Value>) -> Result<Page, SqlError> {
        check_params(params.iter().map(value_ref))?;
        let mut page = PageBuilder::default();
        let columns = self.with_conn(|conn| {
            let mut queries = lock(&self.statement_queries);
            let cursor = match queries.entry(sql.to_owned()) {
                std::collections::hash_map::Entry::Occupied(entry) => {
                    let cursor = entry.into_mut();
                    cursor.rebind(conn, params)?;
                    cursor
                }
                std::collections::hash_map::Entry::Vacant(entry) => entry.insert(
                    cursor::RawCursor::open(conn, sql, params, true)
                        .map_err(|e| self.explain(e))?,
                ),
            };
            let drained = self.drain(conn, cursor, &mut page);
            // A statement left mid-result would hold its read open until the next run.
            cursor.reset();
            drained.map(|()| cursor.columns().to_vec())
        })?;
        Ok(page.finish(columns))
    }

    /// A prepared statement the guest dropped no longer counts against the bounds, and its
    /// compiled query is finalized.
    pub(crate) fn forget_statement(&self, statement: &PreparedStatement) {
        {
            let _conn = self.conn();
            lock(&self.statement_queries).remove(&statement.sql);
        }
        let mut live = lock(&self.statements);
        live.0 = live.0.saturating_sub(1);
        live.1 = live.1.saturating_sub(statement.sql.len());
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn rows(page: &Page) -> Vec<i64> {
        use crate::contract::sql::Cell;
        let integer = |cell: &Cell| match cell {
            Cell::Integer(i) => *i,
            other => panic!("not an integer: {other:?}"),
        };
        page.cells.iter().map(integer).collect()
    }

    #[test]
    fn a_statement_query_reruns_with_new_parameters_and_holds_no_read_between_runs() {
        let db = Database::open_in_memory().unwrap();
        db.connection()
            .execute_batch("CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1), (2), (3); BEGIN")
            .unwrap();
        let sql = GuestSql::open(&db, "test".into(), Instant::now() + Duration::from_secs(60));
        let statement = sql
            .prepare("SELECT a FROM t WHERE a >= ?1 ORDER BY a")
            .unwrap();
        let run = |from: i64| sql.statement_query(&statement.sql, vec![Value::Integer(from)]);
        assert_eq!(rows(&run(2).unwrap()), [2, 3]);
        assert_eq!(rows(&run(3).unwrap()), [3]);
        // A wrong parameter count fails that run only.
        let error = sql
            .statement_query(&statement.sql, vec![Value::Integer(1), Value::Integer(2)])
            .unwrap_err();
        assert!(error.message.contains("parameter 2"), "{}", error.message);
        assert_eq!(rows(&run(1).unwrap()), [1, 2, 3]);
        // The kept statement is reset: the table can go, and the next run says it is gone.
        sql.execute("DROP TABLE t", Vec::new()).unwrap();
        let error = run(1).unwrap_err();
        assert!(error.message.contains("no such table"), "{}", error.message);
        sql.forget_statement(&statement);
        assert!(lock(&sql.statement_queries).is_empty());
        let closed = sql.close();
        assert!(closed.transaction_ended.is_none(), "{closed:?}");
    }
}
