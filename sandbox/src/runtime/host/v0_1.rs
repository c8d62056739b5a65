//! Contract 0.1 (`wit/0.1/migration.wit`, 0.1.0 to 0.1.3) linked onto 0.2: every component
//! ever applied keeps running, since `down` runs the exact stored component. Each 0.1 function
//! is the 0.2 operation it became, its result converted to the older shape. Deleting this file,
//! its `mod` line, its two calls (`add_to_linker`, `functions_export`) and `wit/0.1/` removes
//! 0.1 whole.

use wasmtime::Store;
use wasmtime::component::{Instance, Linker, Resource, TypedFunc};

use super::super::functions::{FunctionId, FunctionsExport, typed_export};
use super::super::state::GuestState;
use crate::contract::{self, SqlError, Value};
use crate::sql::{CursorHandle, PreparedStatement, SQLITE_MISUSE, SQLITE_RANGE};

// Generated: documented in the 0.1 WIT. Only its imports are used; the exports of both
// versions have the same shape, so the 0.2 bindings call `metadata`/`up`/`down` of either.
#[allow(dead_code, missing_docs)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/0.1",
        world: "migration",
        with: {
            "hsm:migration/types": crate::contract::hsm::migration::types,
            "hsm:migration/sql.statement": crate::contract::PreparedStatement,
            "hsm:migration/sql.rows": crate::contract::CursorHandle,
        },
    });
}

use bindings::hsm::migration::{log, sql};

/// 0.1's types interface (any 0.1.z links against 0.1.3).
const TYPES: &str = "hsm:migration/types@0.1.3";
/// Where a 0.1 component exports its functions (0.1.1 and 0.1.2 are found by this name too).
const FUNCTIONS_EXPORT: &str = "hsm:migration/functions@0.1.3";

/// Adds the 0.1 interfaces to `linker`, beside 0.2's.
pub(in crate::runtime) fn add_to_linker(linker: &mut Linker<GuestState>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    // The types interface holds no functions: an empty instance satisfies its import.
    linker.instance(TYPES)?;
    sql::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |s| s)?;
    log::add_to_linker::<GuestState, HasSelf<GuestState>>(linker, |s| s)?;
    Ok(())
}

fn page(page: contract::sql::Page) -> sql::Page {
    sql::Page {
        columns: page.columns,
        cells: page.cells.into_iter().map(cell).collect(),
        bytes: page.bytes,
    }
}

fn cell(cell: contract::sql::Cell) -> sql::Cell {
    use contract::sql::Cell as C;
    let span = |s: contract::sql::Span| sql::Span {
        offset: s.offset,
        len: s.len,
    };
    match cell {
        C::Null => sql::Cell::Null,
        C::Integer(i) => sql::Cell::Integer(i),
        C::Real(r) => sql::Cell::Real(r),
        C::Text(s) => sql::Cell::Text(span(s)),
        C::Blob(s) => sql::Cell::Blob(span(s)),
    }
}

fn cell_v2(cell: sql::Cell) -> contract::sql::Cell {
    use contract::sql::Cell as C;
    let span = |s: sql::Span| contract::sql::Span {
        offset: s.offset,
        len: s.len,
    };
    match cell {
        sql::Cell::Null => C::Null,
        sql::Cell::Integer(i) => C::Integer(i),
        sql::Cell::Real(r) => C::Real(r),
        sql::Cell::Text(s) => C::Text(span(s)),
        sql::Cell::Blob(s) => C::Blob(span(s)),
    }
}

/// A 0.2 page's cells as 0.1 values, row after row.
fn page_values(page: contract::sql::Page) -> (Vec<String>, Vec<Value>) {
    use contract::sql::Cell as C;
    let bytes = page.bytes;
    // The host built the page: every span lies within its bytes, and TEXT is valid UTF-8.
    let span = |s: contract::sql::Span| {
        let start = s.offset as usize;
        bytes.get(start..start + s.len as usize).unwrap_or_default()
    };
    let values = page
        .cells
        .into_iter()
        .map(|cell| match cell {
            C::Null => Value::Null,
            C::Integer(i) => Value::Integer(i),
            C::Real(r) => Value::Real(r),
            C::Text(s) => Value::Text(String::from_utf8_lossy(span(s)).into_owned()),
            C::Blob(s) => Value::Blob(span(s).to_vec()),
        })
        .collect();
    (page.columns, values)
}

/// Values row after row, `width` each, as one list per row (a result without columns has no
/// rows).
fn split_rows(values: Vec<Value>, width: usize) -> Vec<Vec<Value>> {
    let count = values.len().checked_div(width).unwrap_or(0);
    let mut values = values.into_iter();
    (0..count)
        .map(|_| values.by_ref().take(width).collect())
        .collect()
}

/// 0.1 parameter values, `width` per set, as 0.2's parameter sets.
fn param_sets<'a>(width: u32, values: impl Iterator<Item = &'a Value>) -> contract::sql::ParamSets {
    use contract::sql::{Cell as C, Span};
    let mut bytes = Vec::new();
    let mut span = |data: &[u8]| {
        let offset = bytes.len() as u32;
        bytes.extend_from_slice(data);
        Span {
            offset,
            len: data.len() as u32,
        }
    };
    let cells = values
        .map(|value| match value {
            Value::Null => C::Null,
            Value::Integer(i) => C::Integer(*i),
            Value::Real(r) => C::Real(*r),
            Value::Text(t) => C::Text(span(t.as_bytes())),
            Value::Blob(b) => C::Blob(span(b)),
        })
        .collect();
    contract::sql::ParamSets {
        width,
        cells,
        bytes,
    }
}

impl GuestState {
    /// A query's rows as one flat list of values (0.1's list forms).
    fn query_values(&mut self, sql: String, params: Vec<Value>) -> Result<sql::FlatRows, SqlError> {
        let page = contract::sql::Host::query(self, sql, params)?;
        let (columns, values) = page_values(page);
        Ok(sql::FlatRows { columns, values })
    }

    /// A cursor's next rows as one flat list of values, and its width.
    fn next_values(
        &mut self,
        rows: Resource<CursorHandle>,
        max: u32,
    ) -> Result<(Vec<Value>, usize), SqlError> {
        let page = contract::sql::HostRows::next(self, rows, max)?;
        let (columns, values) = page_values(page);
        Ok((values, columns.len()))
    }

    /// Runs 0.2's `execute-many`, its errors named as the 0.1 function `call`.
    fn execute_sets(
        &mut self,
        call: &str,
        sql: String,
        sets: contract::sql::ParamSets,
    ) -> Result<u64, SqlError> {
        contract::sql::Host::execute_many(self, sql, sets).map_err(|mut error| {
            if let Some(rest) = error.message.strip_prefix("execute-many") {
                error.message = format!("{call}{rest}");
            }
            error
        })
    }
}

impl sql::Host for GuestState {
    fn execute(&mut self, sql: String, params: Vec<Value>) -> Result<u64, SqlError> {
        contract::sql::Host::execute(self, sql, params)
    }

    fn execute_batch(&mut self, sql: String) -> Result<(), SqlError> {
        contract::sql::Host::execute_batch(self, sql)
    }

    fn query(&mut self, sql: String, params: Vec<Value>) -> Result<sql::QueryResult, SqlError> {
        let sql::FlatRows { columns, values } = self.query_values(sql, params)?;
        let rows = split_rows(values, columns.len());
        Ok(sql::QueryResult { columns, rows })
    }

    fn query_page(&mut self, sql: String, params: Vec<Value>) -> Result<sql::Page, SqlError> {
        contract::sql::Host::query(self, sql, params).map(page)
    }

    fn last_insert_rowid(&mut self) -> i64 {
        contract::sql::Host::last_insert_rowid(self)
    }

    fn query_rows(
        &mut self,
        sql: String,
        params: Vec<Value>,
    ) -> Result<Resource<CursorHandle>, SqlError> {
        contract::sql::Host::query_rows(self, sql, params)
    }

    fn execute_many(&mut self, sql: String, rows: Vec<Vec<Value>>) -> Result<u64, SqlError> {
        // 0.2 takes sets of one width, at least 1; a statement has one parameter count, so
        // sets of other widths could never all bind.
        let width = rows.first().map_or(1, Vec::len);
        if let Some((index, set)) = rows.iter().enumerate().find(|(_, set)| set.len() != width) {
            return Err(SqlError {
                code: SQLITE_RANGE,
                message: format!(
                    "execute-many: set {} has {} values where set 1 has {width}",
                    index + 1,
                    set.len()
                ),
            });
        }
        if width == 0 {
            // A statement without parameters, run once per (empty) set.
            let mut changed = 0;
            for _ in &rows {
                changed += contract::sql::Host::execute(self, sql.clone(), Vec::new())?;
            }
            return Ok(changed);
        }
        let sets = param_sets(width as u32, rows.iter().flatten());
        self.execute_sets("execute-many", sql, sets)
    }

    fn execute_many_flat(
        &mut self,
        sql: String,
        width: u32,
        values: Vec<Value>,
    ) -> Result<u64, SqlError> {
        if width == 0 || !values.len().is_multiple_of(width as usize) {
            return Err(SqlError {
                code: SQLITE_MISUSE,
                message: format!(
                    "execute-many-flat got {} values, not a whole number of sets of {width}",
                    values.len()
                ),
            });
        }
        let sets = param_sets(width, values.iter());
        self.execute_sets("execute-many-flat", sql, sets)
    }

    fn execute_many_page(
        &mut self,
        sql: String,
        width: u32,
        cells: Vec<sql::Cell>,
        bytes: Vec<u8>,
    ) -> Result<u64, SqlError> {
        let cells = cells.into_iter().map(cell_v2).collect();
        let sets = contract::sql::ParamSets {
            width,
            cells,
            bytes,
        };
        self.execute_sets("execute-many-page", sql, sets)
    }

    fn register_function(
        &mut self,
        name: String,
        arity: i32,
        deterministic: bool,
    ) -> Result<(), SqlError> {
        contract::sql::Host::register_function(self, name, arity, deterministic)
    }
}

impl sql::HostRows for GuestState {
    fn columns(&mut self, rows: Resource<CursorHandle>) -> Vec<String> {
        contract::sql::HostRows::columns(self, rows)
    }

    fn next_batch(
        &mut self,
        rows: Resource<CursorHandle>,
        max: u32,
    ) -> Result<Vec<Vec<Value>>, SqlError> {
        let (values, width) = self.next_values(rows, max)?;
        Ok(split_rows(values, width))
    }

    fn next_batch_flat(
        &mut self,
        rows: Resource<CursorHandle>,
        max: u32,
    ) -> Result<Vec<Value>, SqlError> {
        self.next_values(rows, max).map(|(values, _)| values)
    }

    fn next_page(&mut self, rows: Resource<CursorHandle>, max: u32) -> Result<sql::Page, SqlError> {
        contract::sql::HostRows::next(self, rows, max).map(page)
    }

    fn drop(&mut self, rows: Resource<CursorHandle>) -> wasmtime::Result<()> {
        contract::sql::HostRows::drop(self, rows)
    }
}

impl sql::HostStatement for GuestState {
    fn prepare(&mut self, sql: String) -> Result<Resource<PreparedStatement>, SqlError> {
        contract::sql::HostStatement::prepare(self, sql)
    }

    fn execute(
        &mut self,
        statement: Resource<PreparedStatement>,
        params: Vec<Value>,
    ) -> Result<u64, SqlError> {
        contract::sql::HostStatement::execute(self, statement, params)
    }

    fn query(
        &mut self,
        statement: Resource<PreparedStatement>,
        params: Vec<Value>,
    ) -> Result<sql::QueryResult, SqlError> {
        let page = contract::sql::HostStatement::query(self, statement, params)?;
        let (columns, values) = page_values(page);
        let rows = split_rows(values, columns.len());
        Ok(sql::QueryResult { columns, rows })
    }

    fn query_flat(
        &mut self,
        statement: Resource<PreparedStatement>,
        params: Vec<Value>,
    ) -> Result<sql::FlatRows, SqlError> {
        let page = contract::sql::HostStatement::query(self, statement, params)?;
        let (columns, values) = page_values(page);
        Ok(sql::FlatRows { columns, values })
    }

    fn query_page(
        &mut self,
        statement: Resource<PreparedStatement>,
        params: Vec<Value>,
    ) -> Result<sql::Page, SqlError> {
        contract::sql::HostStatement::query(self, statement, params).map(page)
    }

    fn drop(&mut self, statement: Resource<PreparedStatement>) -> wasmtime::Result<()> {
        contract::sql::HostStatement::drop(self, statement)
    }
}

impl log::Host for GuestState {
    fn log(&mut self, level: log::Level, message: String) {
        use contract::log::Level as L;
        let level = match level {
            log::Level::Trace => L::Trace,
            log::Level::Debug => L::Debug,
            log::Level::Info => L::Info,
            log::Level::Warn => L::Warn,
            log::Level::Error => L::Error,
        };
        contract::log::Host::log(self, level, message);
    }

    fn progress(&mut self, done: u64, total: u64) {
        contract::log::Host::progress(self, done, total);
    }
}

type CallFunc = TypedFunc<(String, Vec<Value>), (Result<Value, String>,)>;
type NamesFunc = TypedFunc<(), (Vec<String>,)>;
type CallUnaryFunc = TypedFunc<(u32, Value), (Result<Value, String>,)>;

/// A 0.1 `functions` export: `call` by name; since 0.1.3 also `names` and `call-unary`, the
/// fast form for one argument.
struct Functions {
    call: CallFunc,
    /// Empty before 0.1.3: `call-unary`'s numbering.
    names: Vec<String>,
    call_unary: Option<CallUnaryFunc>,
}

/// The 0.1 `functions` export of `instance`, if it has one.
pub(in crate::runtime) fn functions_export(
    instance: &Instance,
    store: &mut Store<GuestState>,
) -> Result<Option<Box<dyn FunctionsExport>>, String> {
    let Some(interface) = instance.get_export_index(&mut *store, None, FUNCTIONS_EXPORT) else {
        return Ok(None);
    };
    let Some(call): Option<CallFunc> =
        typed_export(instance, store, FUNCTIONS_EXPORT, &interface, "call")?
    else {
        return Ok(None);
    };
    let names: Option<NamesFunc> =
        typed_export(instance, store, FUNCTIONS_EXPORT, &interface, "names")?;
    let call_unary: Option<CallUnaryFunc> =
        typed_export(instance, store, FUNCTIONS_EXPORT, &interface, "call-unary")?;
    let (names, call_unary) = match (names, call_unary) {
        (Some(names), Some(call_unary)) => {
            let (names,) = names
                .call(&mut *store, ())
                .map_err(|e| format!("{FUNCTIONS_EXPORT}#names trapped: {e:#}"))?;
            (names, Some(call_unary))
        }
        _ => (Vec::new(), None),
    };
    Ok(Some(Box::new(Functions {
        call,
        names,
        call_unary,
    })))
}

impl FunctionsExport for Functions {
    fn names(&self) -> Vec<String> {
        self.names.clone()
    }

    /// 0.1 finds functions by name when called: an unknown name fails the statement using it.
    fn lookup(&self, name: &str) -> Result<FunctionId, String> {
        Ok(FunctionId {
            index: self.names.iter().position(|n| n == name).map(|i| i as u32),
            name: name.to_owned(),
        })
    }

    fn call(
        &self,
        store: &mut Store<GuestState>,
        function: &FunctionId,
        mut args: Vec<Value>,
    ) -> wasmtime::Result<Result<Value, String>> {
        let outcome = match (&self.call_unary, function.index, args.len()) {
            (Some(call_unary), Some(index), 1) => {
                let arg = args.pop().expect("one argument");
                call_unary.call(store, (index, arg))
            }
            _ => self.call.call(store, (function.name.clone(), args)),
        };
        outcome.map(|(result,)| result)
    }
}
