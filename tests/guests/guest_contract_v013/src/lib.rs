//! Version 9, built against a frozen copy of `hsm:migration@0.1.3` (in `wit/` beside this
//! file) with plain wit-bindgen: hosts on contract 0.2 run 0.1 components through an adapter,
//! and this guest calls every 0.1 form the adapter converts (lists, flat lists and pages, both
//! ways; `call-unary` and `call` by name) and checks each gives the same answer.

wit_bindgen::generate!({
    path: "wit",
    world: "migration-with-functions",
    additional_derives: [PartialEq],
});

use exports::hsm::migration::functions;
use hsm::migration::types::Value;
use hsm::migration::{log, sql};

struct Old;

fn fail(e: sql::SqlError) -> String {
    e.message
}

fn check(condition: bool, what: &str) -> Result<(), String> {
    if condition {
        Ok(())
    } else {
        Err(format!("0.1.3 check failed: {what}"))
    }
}

const QUERY: &str = "SELECT 7 AS i, 1.5 AS r, 'héllo' AS t, x'00ff' AS b, NULL AS n \
                     UNION ALL SELECT -1, 0.0, '', x'', 'ünï' ORDER BY i";

fn expected() -> Vec<Vec<Value>> {
    vec![
        vec![
            Value::Integer(-1),
            Value::Real(0.0),
            Value::Text(String::new()),
            Value::Blob(Vec::new()),
            Value::Text("ünï".into()),
        ],
        vec![
            Value::Integer(7),
            Value::Real(1.5),
            Value::Text("héllo".into()),
            Value::Blob(vec![0, 255]),
            Value::Null,
        ],
    ]
}

fn from_page(page: sql::Page) -> Vec<Vec<Value>> {
    let bytes = |span: sql::Span| {
        page.bytes[span.offset as usize..(span.offset + span.len) as usize].to_vec()
    };
    let cells: Vec<Value> = page
        .cells
        .iter()
        .map(|cell| match *cell {
            sql::Cell::Null => Value::Null,
            sql::Cell::Integer(i) => Value::Integer(i),
            sql::Cell::Real(r) => Value::Real(r),
            sql::Cell::Text(span) => Value::Text(String::from_utf8(bytes(span)).unwrap()),
            sql::Cell::Blob(span) => Value::Blob(bytes(span)),
        })
        .collect();
    cells.chunks(5).map(<[Value]>::to_vec).collect()
}

fn flat(values: Vec<Value>) -> Vec<Vec<Value>> {
    values.chunks(5).map(<[Value]>::to_vec).collect()
}

/// Every 0.1 result form returns the same rows.
fn read_forms() -> Result<(), String> {
    let statement = sql::Statement::prepare(QUERY).map_err(fail)?;
    let forms: Vec<(&str, Vec<Vec<Value>>)> = vec![
        ("query", sql::query(QUERY, &[]).map_err(fail)?.rows),
        (
            "query-page",
            from_page(sql::query_page(QUERY, &[]).map_err(fail)?),
        ),
        ("statement.query", statement.query(&[]).map_err(fail)?.rows),
        (
            "statement.query-flat",
            flat(statement.query_flat(&[]).map_err(fail)?.values),
        ),
        (
            "statement.query-page",
            from_page(statement.query_page(&[]).map_err(fail)?),
        ),
        (
            "rows.next-batch",
            sql::query_rows(QUERY, &[])
                .map_err(fail)?
                .next_batch(10)
                .map_err(fail)?,
        ),
        (
            "rows.next-batch-flat",
            flat(
                sql::query_rows(QUERY, &[])
                    .map_err(fail)?
                    .next_batch_flat(10)
                    .map_err(fail)?,
            ),
        ),
        (
            "rows.next-page",
            from_page(
                sql::query_rows(QUERY, &[])
                    .map_err(fail)?
                    .next_page(10)
                    .map_err(fail)?,
            ),
        ),
    ];
    for (form, rows) in forms {
        check(rows == expected(), &format!("{form} returned {rows:?}"))?;
    }
    let cursor = sql::query_rows("SELECT 1 AS a, 2 AS b", &[]).map_err(fail)?;
    check(cursor.columns() == ["a", "b"], "rows.columns")?;
    cursor.next_batch(10).map_err(fail)?;
    check(
        cursor.next_batch(10).map_err(fail)?.is_empty(),
        "a read cursor is empty",
    )
}

/// Every 0.1 batch form writes the same rows; a flat batch that is not whole sets is refused.
fn write_forms() -> Result<(), String> {
    sql::execute_batch("CREATE TEMP TABLE forms (form INTEGER, t TEXT, b BLOB)").map_err(fail)?;
    let insert = "INSERT INTO forms VALUES (?1, ?2, ?3)";
    let set = |form: i64, t: &str| {
        vec![
            Value::Integer(form),
            Value::Text(t.into()),
            Value::Blob(t.as_bytes().to_vec()),
        ]
    };
    let changed = sql::execute_many(insert, &[set(1, "ä"), set(1, "")]).map_err(fail)?
        + sql::execute_many_flat(insert, 3, &[set(2, "ä"), set(2, "")].concat()).map_err(fail)?;
    let span = |offset, len| sql::Span { offset, len };
    let cells = [
        sql::Cell::Integer(3),
        sql::Cell::Text(span(0, 2)),
        sql::Cell::Blob(span(0, 2)),
        sql::Cell::Integer(3),
        sql::Cell::Text(span(2, 0)),
        sql::Cell::Blob(span(2, 0)),
    ];
    let changed =
        changed + sql::execute_many_page(insert, 3, &cells, "ä".as_bytes()).map_err(fail)?;
    check(
        changed == 6,
        &format!("the batch forms changed {changed} rows"),
    )?;
    let distinct = sql::query(
        "SELECT count(*) FROM (SELECT DISTINCT t, b FROM forms)",
        &[],
    )
    .map_err(fail)?;
    check(
        distinct.rows == [vec![Value::Integer(2)]],
        "every batch form wrote the same two rows",
    )?;
    let misfit = sql::execute_many_flat(insert, 2, &[Value::Null]);
    check(
        matches!(&misfit, Err(e) if e.message.contains("got 1 values, not a whole number of sets of 2")),
        &format!("a flat batch that is not whole sets is refused: {misfit:?}"),
    )?;
    let zero = sql::execute_many_flat(insert, 0, &[Value::Null]);
    check(
        matches!(&zero, Err(e) if e.message.contains("not a whole number of sets of 0")),
        &format!("a flat batch of width 0 is refused: {zero:?}"),
    )?;
    // A parameterless statement once per empty set; no sets at all change nothing.
    let empty = sql::execute_many("INSERT INTO forms (form) VALUES (4)", &[vec![], vec![]]);
    check(
        matches!(empty, Ok(2)),
        &format!("empty sets run a parameterless statement: {empty:?}"),
    )?;
    let none = sql::execute_many(insert, &[]);
    check(matches!(none, Ok(0)), &format!("no sets: {none:?}"))?;
    let ragged = sql::execute_many(insert, &[set(5, "a"), vec![Value::Null]]);
    check(
        matches!(&ragged, Err(e) if e.message.contains("set 2 has 1 values where set 1 has 3")),
        &format!("sets of different widths are refused: {ragged:?}"),
    )?;
    let outside = sql::execute_many_page(insert, 3, &cells, b"");
    check(
        matches!(&outside, Err(e) if e.message.starts_with("execute-many-page: parameter 2 of set 1")),
        &format!("a cell outside the bytes is refused by its form's name: {outside:?}"),
    )?;
    sql::execute_batch("DROP TABLE temp.forms").map_err(fail)
}

impl Guest for Old {
    fn metadata() -> Metadata {
        Metadata {
            version: 9,
            name: "contract_v013".into(),
            description: "Test guest built against hsm:migration@0.1.3".into(),
            reversible: true,
        }
    }

    fn up() -> Result<(), String> {
        read_forms()?;
        write_forms()?;
        sql::execute_batch("CREATE TABLE v013_guest (id INTEGER PRIMARY KEY, note TEXT)")
            .map_err(fail)?;
        sql::execute("INSERT INTO v013_guest VALUES (1, 'note')", &[]).map_err(fail)?;
        check(sql::last_insert_rowid() == 1, "last-insert-rowid")?;
        // One argument: `call-unary` by position; two: `call` by name.
        sql::register_function("shout", 1, true).map_err(fail)?;
        sql::register_function("join2", 2, true).map_err(fail)?;
        sql::execute(
            "UPDATE v013_guest SET note = join2(shout(note), ?1)",
            &[Value::Text("0.1.3".into())],
        )
        .map_err(fail)?;
        log::log(log::Level::Info, "0.1.3 forms checked");
        log::progress(1, 1);
        Ok(())
    }

    fn down() -> Result<(), String> {
        sql::execute_batch("DROP TABLE v013_guest").map_err(fail)
    }
}

impl functions::Guest for Old {
    fn call(name: String, args: Vec<Value>) -> Result<Value, String> {
        match (name.as_str(), args.as_slice()) {
            ("join2", [Value::Text(a), Value::Text(b)]) => Ok(Value::Text(format!("{a} via {b}"))),
            // `shout` has one argument: the host must use call-unary for it.
            _ => Err(format!("call got {name} with {} arguments", args.len())),
        }
    }

    fn names() -> Vec<String> {
        vec!["join2".into(), "shout".into()]
    }

    fn call_unary(index: u32, arg: Value) -> Result<Value, String> {
        match (index, arg) {
            (1, Value::Text(text)) => Ok(Value::Text(text.to_uppercase())),
            (index, arg) => Err(format!("call-unary got {index} with {arg:?}")),
        }
    }
}

export!(Old);
