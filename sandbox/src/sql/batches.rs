//! Many writes in one call: one statement run once per parameter set.

use super::*;

impl GuestSql {
    /// Runs one statement once per parameter set.
    pub(crate) fn execute_many(&self, sql: &str, sets: ParamSets) -> Result<u64, SqlError> {
        let call = "execute-many";
        let ParamSets {
            width,
            cells,
            bytes,
        } = &sets;
        let width = whole_sets(call, "cells", *width, cells.len())?;
        let params = cells
            .iter()
            .enumerate()
            .map(|(index, cell)| {
                page::cell_ref(cell, bytes).map_err(|reason| SqlError {
                    code: SQLITE_MISUSE,
                    message: format!(
                        "{call}: parameter {} of set {}: {reason}",
                        index % width + 1,
                        index / width + 1
                    ),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.execute_each(sql, params.chunks(width).map(|set| set.iter().copied()))
    }

    /// Runs `sql` once per parameter set.
    fn execute_each<'a, Set>(
        &self,
        sql: &str,
        sets: impl Iterator<Item = Set>,
    ) -> Result<u64, SqlError>
    where
        Set: Iterator<Item = ValueRef<'a>> + Clone,
    {
        check_sql(sql)?;
        self.with_conn(|conn| {
            let mut stmt = conn.prepare_cached(sql).map_err(|e| self.error(e))?;
            if stmt.column_count() > 0 {
                return Err(SqlError {
                    code: SQLITE_MISUSE,
                    message: "this statement returns rows: execute-many is for writes".into(),
                });
            }
            let mut changed = 0;
            for params in sets {
                check_params(params.clone())?;
                changed += stmt
                    .execute(params_from_iter(params.map(ToSqlOutput::Borrowed)))
                    .map_err(|e| self.error(e))? as u64;
                // A set whose statement rolled the transaction back stops the batch here.
                if conn.is_autocommit() {
                    break;
                }
            }
            Ok(changed)
        })
    }
}
