//! Version 8: exercises every SDK call against the example schema and checks each result
//! inside the guest; any surprise fails the migration with a message saying what differed.

use hsm_guest::{Db, Dialect, Error, Result, Value, log};

fn check(condition: bool, what: &str) -> Result<()> {
    if condition {
        Ok(())
    } else {
        Err(Error::msg(format!("check failed: {what}")))
    }
}

fn up(db: &Db) -> Result<()> {
    db.execute_batch(
        "CREATE TABLE tour (id INTEGER PRIMARY KEY, i INTEGER, r REAL, t TEXT, b BLOB, n TEXT);",
    )?;

    // Typed parameters of every kind, as a tuple.
    let changed = db.execute(
        "INSERT INTO tour (i, r, t, b, n) VALUES (?1, ?2, ?3, ?4, ?5)",
        (
            42_i64,
            2.5_f64,
            "héllo",
            &[0_u8, 159, 146, 150][..],
            None::<String>,
        ),
    )?;
    check(changed == 1, "execute returns rows changed")?;
    let id = db.last_insert_rowid();
    check(id == 1, "last_insert_rowid is the new row")?;

    // Contract 0.2.1 on SQLite: the dialect, and no SQLSTATE after an error.
    check(db.dialect() == Dialect::Sqlite, "dialect is sqlite")?;
    let missing = db.execute("INSERT INTO no_such_table VALUES (1)", ());
    check(
        missing.is_err() && db.last_sqlstate().is_none(),
        "SQLite errors have no SQLSTATE",
    )?;

    // Typed reads by index and by name, including NULL as Option.
    let (i, r, t, b, n): (i64, f64, String, Vec<u8>, Option<String>) = db.query_row(
        "SELECT i, r, t, b, n FROM tour WHERE id = ?1",
        (id,),
        |row| {
            Ok((
                row.get(0)?,
                row.get("r")?,
                row.get("t")?,
                row.get(3)?,
                row.get("n")?,
            ))
        },
    )?;
    check(i == 42 && r == 2.5 && t == "héllo", "scalars round-trip")?;
    check(b == [0, 159, 146, 150], "blob round-trips")?;
    check(n.is_none(), "NULL reads as None")?;

    // Slices of &dyn ToSql, and query_map over several rows.
    for k in 2..=4_i64 {
        db.execute(
            "INSERT INTO tour (i, t) VALUES (?1, ?2)",
            &[&k as &dyn hsm_guest::ToSql, &format!("row{k}")],
        )?;
    }
    let texts = db.query_map(
        "SELECT t FROM tour WHERE i BETWEEN ?1 AND ?2 ORDER BY i",
        (2, 4),
        |row| row.get::<String>(0),
    )?;
    check(
        texts == ["row2", "row3", "row4"],
        "query_map maps every row",
    )?;

    // Raw values and column names.
    let rows = db.query(
        "SELECT i AS answer, NULL AS missing FROM tour WHERE id = 1",
        (),
    )?;
    check(rows[0].columns() == ["answer", "missing"], "column names")?;
    check(
        rows[0].values() == [Value::Integer(42), Value::Null],
        "raw values",
    )?;

    // Errors carry SQLite's code and the SQL that failed, and leave the transaction usable.
    match db.execute("INSERT INTO no_such_table VALUES (1)", ()) {
        Err(Error::Sql { code, message, sql }) => {
            check(code == 1, "missing table is SQLITE_ERROR")?;
            check(message.contains("no such table"), "SQLite's message")?;
            check(sql.contains("no_such_table"), "error names the SQL")?;
        }
        other => return Err(Error::msg(format!("expected an SQL error, got {other:?}"))),
    }
    match db.execute("INSERT INTO tour (id) VALUES (?1)", (1,)) {
        Err(e) => check(
            e.sqlite_code() == Some(1555),
            "primary key violation is SQLITE_CONSTRAINT_PRIMARYKEY",
        )?,
        Ok(_) => return Err(Error::msg("duplicate primary key was accepted")),
    }
    match db.execute("UPDATE tour SET i = ?1", ()) {
        Err(e) => check(
            e.sqlite_code() == Some(25),
            "missing parameter is SQLITE_RANGE",
        )?,
        Ok(_) => return Err(Error::msg("missing parameter was accepted")),
    }
    match db.query_row("SELECT 1 WHERE 0", (), |row| row.get::<i64>(0)) {
        Err(Error::NoRows { .. }) => {}
        other => return Err(Error::msg(format!("expected NoRows, got {other:?}"))),
    }
    match db.query_row("SELECT 'text'", (), |row| row.get::<i64>(0)) {
        Err(Error::Column { .. }) => {}
        other => {
            return Err(Error::msg(format!(
                "expected a column type error, got {other:?}"
            )));
        }
    }

    // Prepared statements and batch writes (contract 0.1.1).
    let insert = db.prepare("INSERT INTO tour (i, t) VALUES (?1, ?2)")?;
    for k in 10..13_i64 {
        check(
            insert.execute((k, format!("p{k}")))? == 1,
            "prepared execute",
        )?;
    }
    let by_i = db.prepare("SELECT t FROM tour WHERE i = ?1")?;
    let row = &by_i.query((11,))?[0];
    check(row.get::<String>(0)? == "p11", "prepared query")?;
    check(row.get_str("t")? == "p11", "get_str borrows TEXT")?;
    check(
        matches!(by_i.query((11,))?[0].get_str(5), Err(Error::Column { .. }))
            && matches!(
                db.query_row("SELECT 1", (), |r| r.get_str(0).map(str::to_owned)),
                Err(Error::Column { message, .. }) if message.contains("holds INTEGER")
            ),
        "get_str refuses a missing column and a non-TEXT value",
    )?;
    let changed = db.execute_many(
        "UPDATE tour SET t = ?2 WHERE i = ?1",
        [(10_i64, "q10"), (11, "q11"), (99, "nobody")],
    )?;
    check(changed == 2, "execute_many sums rows changed")?;

    // Parameter sets: rows keep their own values, a set of the wrong width is refused by
    // name, and an empty batch still checks the SQL.
    let sets: Vec<Vec<Value>> = vec![
        vec![Value::Integer(12), Value::Text("u12".into())],
        vec![Value::Integer(10), Value::Text("one".into())],
    ];
    check(
        db.execute_many("UPDATE tour SET t = ?2 WHERE i = ?1", sets)? == 2,
        "execute_many with lists of values",
    )?;
    let uneven: Vec<Vec<Value>> = vec![
        vec![Value::Integer(12), Value::Null],
        vec![Value::Integer(10)],
    ];
    match db.execute_many("UPDATE tour SET t = ?2 WHERE i = ?1", uneven) {
        Err(Error::Sql { message, .. }) => check(
            message.contains("2 parameters but 1 were given"),
            "a set of the wrong width is refused",
        )?,
        other => return Err(Error::msg(format!("uneven sets ran: {other:?}"))),
    }
    db.execute("UPDATE tour SET t = 'u12' WHERE i = 12", ())?;
    check(
        db.execute_many(
            "UPDATE tour SET t = ?2 WHERE i = ?1",
            Vec::<(i64, &str)>::new(),
        )? == 0
            && matches!(
                db.execute_many("UPDATE nowhere SET t = ?1", Vec::<(i64,)>::new()),
                Err(Error::Sql { .. })
            ),
        "an empty batch changes nothing but still checks its SQL",
    )?;
    let page = db
        .prepare("SELECT i, t FROM tour WHERE i BETWEEN ?1 AND ?2 ORDER BY i")?
        .query((10, 12))?;
    let seen: Vec<(i64, String)> = page
        .iter()
        .map(|row| Ok((row.get(0)?, row.get("t")?)))
        .collect::<Result<_>>()?;
    check(
        seen == [(10, "one".into()), (11, "q11".into()), (12, "u12".into())]
            && page[1].values() == [Value::Integer(11), Value::Text("q11".into())],
        "a page of rows reads back row by row",
    )?;
    match db.prepare("SELEKT nonsense") {
        Err(Error::Sql { sql, .. }) => {
            check(sql == "SELEKT nonsense", "prepare errors name the SQL")?
        }
        other => {
            return Err(Error::msg(format!(
                "expected a prepare error, got {other:?}"
            )));
        }
    }

    // Streaming cursors: 2,500 rows arrive over several pages.
    let stream = db.query_stream(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1) SELECT i FROM n",
        (2_500,),
    )?;
    check(stream.columns() == ["i"], "stream column names")?;
    let (mut count, mut sum) = (0_i64, 0_i64);
    for row in stream {
        count += 1;
        sum += row?.get::<i64>(0)?;
    }
    check(
        count == 2_500 && sum == 2_500 * 2_501 / 2,
        "the stream yields every row once",
    )?;
    match db.query_stream("SELECT * FROM no_such_table", ()) {
        Err(Error::Sql { message, .. }) => {
            check(message.contains("no such table"), "stream errors")?
        }
        other => {
            return Err(Error::msg(format!(
                "expected a stream error, got {other:?}"
            )));
        }
    }

    // Every result form of the contract returns the same cells (0.1's older forms are
    // checked by the frozen guest_contract_v013).
    check_result_forms(db)?;
    check_write_forms(db)?;

    // TEXT that is not UTF-8 is never handed over lossily, by query or by stream.
    for result in [
        db.query("SELECT CAST(x'ff' AS TEXT) AS bad", ()).map(drop),
        db.query_stream("SELECT CAST(x'ff' AS TEXT) AS bad", ())?
            .next()
            .expect("one row")
            .map(drop),
    ] {
        match result {
            Err(Error::Sql { message, .. }) => check(
                message.contains("column `bad` holds TEXT that is not valid UTF-8"),
                "invalid UTF-8 is named",
            )?,
            other => return Err(Error::msg(format!("invalid UTF-8 was read: {other:?}"))),
        }
    }

    // A cursor the guest never closes, half read: the host finalizes it when the call ends, so
    // the commit that follows still succeeds.
    let mut leaked = db.query_stream("SELECT i FROM tour", ())?;
    leaked.next();
    std::mem::forget(leaked);

    // Guest-defined SQL functions (contract 0.1.1).
    db.register_function("shout", 1)?;
    db.execute("INSERT INTO tour (i, t) VALUES (20, shout('quiet'))", ())?;
    let shouted: String = db.query_row("SELECT t FROM tour WHERE i = 20", (), |r| r.get(0))?;
    check(
        shouted == "QUIET!",
        "a guest function computes values inside SQLite",
    )?;
    // One argument goes through `call-unary` (contract 0.1.3), named by its position among
    // the declared functions; any other count through `call`, by name.
    db.register_function("hyphenate", -1)?;
    let results: Vec<Value> = db
        .query(
            "SELECT hyphenate('solo') UNION ALL SELECT hyphenate('a', 'b', 3) \
             UNION ALL SELECT shout(NULL) IS NULL",
            (),
        )?
        .iter()
        .map(|row| row.get(0))
        .collect::<Result<_>>()?;
    let expected = [
        Value::Text("solo".into()),
        Value::Text("a-b-3".into()),
        Value::Integer(1),
    ];
    check(
        results == expected,
        &format!("functions get their arguments whatever their count: {results:?}"),
    )?;
    db.register_function("refuse", 1)?;
    match db.query("SELECT refuse(1)", ()) {
        Err(Error::Sql { message, .. }) => check(
            message.contains("refused on purpose"),
            "function errors reach the caller",
        )?,
        other => {
            return Err(Error::msg(format!(
                "expected the function's error, got {other:?}"
            )));
        }
    }
    match db.register_function("not_declared", 0) {
        Err(Error::Sql { message, .. }) => check(
            message.contains("declares no SQL function `not_declared`")
                && message.contains("shout, refuse, hyphenate"),
            &format!("undeclared functions are refused at registration: {message}"),
        )?,
        Ok(()) => return Err(Error::msg("an undeclared function registered".to_owned())),
        Err(e) => return Err(e),
    }

    log::info("sdk tour passed");
    db.progress(1, 1);
    Ok(())
}

/// The same query through the SDK and through each raw form of the contract.
fn check_result_forms(db: &Db) -> Result<()> {
    use hsm_guest::bindings::hsm::migration::sql;

    let query = "SELECT 7 AS i, 1.5 AS r, 'héllo' AS t, x'00ff' AS b, NULL AS n \
                 UNION ALL SELECT -1, 0.0, '', x'', 'ünï' ORDER BY i";
    let expected: Vec<Vec<Value>> = vec![
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
    ];
    let raw = |e: sql::SqlError| Error::msg(e.message);
    let from_page = |page: sql::Page| -> Vec<Vec<Value>> {
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
    };

    let sdk: Vec<Vec<Value>> = db
        .query(query, ())?
        .iter()
        .map(|row| row.values().to_vec())
        .collect();
    let streamed: Vec<Vec<Value>> = db
        .query_stream(query, ())?
        .map(|row| row.map(|row| row.values().to_vec()))
        .collect::<Result<_>>()?;
    let statement = sql::Statement::prepare(query).map_err(raw)?;
    let forms: Vec<(&str, Vec<Vec<Value>>)> = vec![
        ("Db::query", sdk),
        ("Db::query_stream", streamed),
        ("query", from_page(sql::query(query, &[]).map_err(raw)?)),
        (
            "statement.query",
            from_page(statement.query(&[]).map_err(raw)?),
        ),
        (
            "rows.next",
            from_page(
                sql::query_rows(query, &[])
                    .map_err(raw)?
                    .next(10)
                    .map_err(raw)?,
            ),
        ),
    ];
    for (form, rows) in forms {
        check(rows == expected, &format!("{form} returned {rows:?}"))?;
    }
    Ok(())
}

/// The same rows written through the SDK and through each raw batch form of the contract.
fn check_write_forms(db: &Db) -> Result<()> {
    use hsm_guest::bindings::hsm::migration::sql;

    db.execute_batch("CREATE TEMP TABLE forms (form INTEGER, t TEXT, b BLOB, r REAL)")?;
    let insert = "INSERT INTO forms VALUES (?1, ?2, ?3, ?4)";
    let set = |form: i64, t: &str| {
        vec![
            Value::Integer(form),
            Value::Text(t.into()),
            Value::Blob(t.as_bytes().to_vec()),
            Value::Null,
        ]
    };
    let raw = |e: sql::SqlError| Error::msg(e.message);
    db.execute_many(
        insert,
        [
            (0, "ä", b"\xc3\xa4".to_vec(), None::<f64>),
            (0, "", Vec::new(), None),
        ],
    )?;
    db.execute_many(insert, [set(1, "ä"), set(1, "")])?;
    let statement = db.prepare(insert)?;
    for values in [set(2, "ä"), set(2, "")] {
        statement.execute(values)?;
    }
    // Sets without parameters cannot be a page: the SDK runs them one by one.
    check(
        db.execute_many("INSERT INTO forms DEFAULT VALUES", [(), (), ()])? == 3
            && db.execute("DELETE FROM forms WHERE form IS NULL", ())? == 3,
        "execute_many runs sets without parameters",
    )?;
    let span = |offset, len| sql::Span { offset, len };
    let cells = vec![
        sql::Cell::Integer(3),
        sql::Cell::Text(span(0, 2)),
        sql::Cell::Blob(span(0, 2)),
        sql::Cell::Null,
        sql::Cell::Integer(3),
        sql::Cell::Text(span(2, 0)),
        sql::Cell::Blob(span(2, 0)),
        sql::Cell::Null,
    ];
    let sets = sql::ParamSets {
        width: 4,
        cells,
        bytes: "ä".as_bytes().to_vec(),
    };
    sql::execute_many(insert, &sets).map_err(raw)?;
    for form in 1..=3_i64 {
        let differing: i64 = db.query_row(
            "SELECT count(*) FROM (SELECT t, b, r FROM forms WHERE form = 0 \
             EXCEPT SELECT t, b, r FROM forms WHERE form = ?1)",
            (form,),
            |row| row.get(0),
        )?;
        let count: i64 = db.query_row(
            "SELECT count(*) FROM forms WHERE form = ?1",
            (form,),
            |row| row.get(0),
        )?;
        check(
            differing == 0 && count == 2,
            &format!("batch form {form} wrote the rows the SDK wrote"),
        )?;
    }
    db.execute_batch("DROP TABLE forms")
}

fn down(db: &Db) -> Result<()> {
    db.execute_batch("DROP TABLE tour")
}

fn shout(args: &[Value]) -> Result<Value> {
    match &args[0] {
        Value::Text(text) => Ok(Value::Text(format!("{}!", text.to_uppercase()))),
        other => Ok(other.clone()),
    }
}

fn hyphenate(args: &[Value]) -> Result<Value> {
    let parts: Vec<String> = args
        .iter()
        .map(|arg| match arg {
            Value::Text(text) => text.clone(),
            Value::Integer(i) => i.to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    Ok(Value::Text(parts.join("-")))
}

fn refuse(_args: &[Value]) -> Result<Value> {
    Err(Error::msg("refused on purpose"))
}

hsm_guest::migration! {
    version: 8,
    name: "sdk_tour",
    description: "Test guest: every SDK call, checked",
    up: up,
    down: down,
    functions: [shout, refuse, hyphenate],
}
