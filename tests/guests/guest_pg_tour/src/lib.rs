//! Version 1 of a PostgreSQL set: every `sql` function on a real server, the value mapping both
//! ways, and the refusals a guest meets there. Fails with the first expectation that does not
//! hold, so the host's test sees which.

use hsm_guest::{Db, Dialect, Error, Result, Value};

fn expect(what: &str, holds: bool) -> Result<()> {
    match holds {
        true => Ok(()),
        false => Err(Error::msg(format!("expectation failed: {what}"))),
    }
}

fn expect_refused(what: &str, result: Result<impl Sized>, needle: &str) -> Result<()> {
    match result {
        Ok(_) => Err(Error::msg(format!("{what} was not refused"))),
        Err(e) if e.to_string().contains(needle) => Ok(()),
        Err(e) => Err(Error::msg(format!(
            "{what}: refused, but not with {needle:?}: {e}"
        ))),
    }
}

fn up(db: &Db) -> Result<()> {
    db.execute_batch(
        "CREATE TABLE pg_tour (
           id bigserial PRIMARY KEY, small smallint, n int, big bigint, r double precision,
           price numeric(10, 2), flag boolean, label text, code varchar(8), data bytea,
           doc jsonb, at timestamptz, day date, uid uuid);
         CREATE INDEX pg_tour_label ON pg_tour (label);",
    )?;
    let changed = db.execute(
        "INSERT INTO pg_tour (small, n, big, r, price, flag, label, code, data, doc, at, day, uid)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        vec![
            Value::Integer(7),
            Value::Integer(42),
            Value::Integer(9_000_000_000),
            Value::Real(2.5),
            Value::Text("12.50".into()),
            Value::Integer(1),
            Value::Text("héllo".into()),
            Value::Text("ab".into()),
            Value::Blob(vec![0, 1, 255]),
            Value::Text(r#"{"k": [1, 2]}"#.into()),
            Value::Text("2026-12-07T10:00:00Z".into()),
            Value::Text("2026-12-07".into()),
            Value::Text("0e2d8c8e-9a3b-4f5e-8d6c-7b1a2c3d4e5f".into()),
        ],
    )?;
    expect("one row inserted", changed == 1)?;
    let rows = db.query(
        "SELECT small, n, big, r, price, flag, label, code, data, doc, at, day, uid, NULL::text AS nothing
           FROM pg_tour WHERE n = $1",
        (42i64,),
    )?;
    expect("one row read", rows.len() == 1)?;
    let row = &rows[0];
    expect("smallint as integer", row.get::<i64>(0)? == 7)?;
    expect("bigint as integer", row.get::<i64>(2)? == 9_000_000_000)?;
    expect("double as real", row.get::<f64>(3)? == 2.5)?;
    expect("numeric as text", row.get::<String>(4)? == "12.50")?;
    expect("boolean as 1", row.get::<i64>(5)? == 1)?;
    expect("text as text", row.get::<String>(6)? == "héllo")?;
    expect("varchar as text", row.get::<String>(7)? == "ab")?;
    expect("bytea as blob", row.get::<Vec<u8>>(8)? == vec![0u8, 1, 255])?;
    expect("jsonb as text", row.get::<String>(9)? == r#"{"k": [1, 2]}"#)?;
    expect(
        "timestamptz as text",
        row.get::<String>(10)?.starts_with("2026-12-07T10:00:00"),
    )?;
    expect("date as text", row.get::<String>(11)? == "2026-12-07")?;
    expect(
        "uuid as text",
        row.get::<String>(12)? == "0e2d8c8e-9a3b-4f5e-8d6c-7b1a2c3d4e5f",
    )?;
    expect("null as null", matches!(row.values()[13], Value::Null))?;
    expect("column names", row.columns()[13] == "nothing")?;

    let many = db.execute_many(
        "INSERT INTO pg_tour (n, label) VALUES ($1, $2)",
        (0..500i64).map(|i| (i + 1000, format!("bulk {i}"))),
    )?;
    expect("execute-many wrote 500", many == 500)?;
    let insert = db.prepare("UPDATE pg_tour SET small = $1 WHERE n = $2")?;
    expect(
        "a prepared statement runs",
        insert.execute((1i64, 1000i64))? == 1,
    )?;
    let mut streamed = 0;
    for row in db.query_stream("SELECT n FROM pg_tour WHERE n >= $1 ORDER BY n", (1000i64,))? {
        let row = row?;
        expect("streamed in order", row.get::<i64>(0)? == 1000 + streamed)?;
        streamed += 1;
    }
    expect("all 500 streamed", streamed == 500)?;

    // Contract 0.2.1: the dialect, and the SQLSTATE beside the mapped code.
    expect("dialect is postgresql", db.dialect() == Dialect::Postgresql)?;
    expect("no SQLSTATE before a failure", db.last_sqlstate().is_none())?;
    db.execute("CREATE UNIQUE INDEX pg_tour_code ON pg_tour (code)", ())?;
    let duplicate = db.execute("INSERT INTO pg_tour (code) VALUES ('ab')", ());
    expect(
        "a unique violation maps to SQLITE_CONSTRAINT_UNIQUE",
        duplicate.as_ref().err().and_then(Error::sqlite_code) == Some(2067),
    )?;
    expect(
        "a unique violation's SQLSTATE is 23505",
        db.last_sqlstate().as_deref() == Some("23505"),
    )?;
    db.query("SELECT 1", ())?;
    expect(
        "a success clears the SQLSTATE",
        db.last_sqlstate().is_none(),
    )?;
    let _ = db.execute("COMMIT", ());
    expect(
        "a host refusal has no SQLSTATE",
        db.last_sqlstate().is_none(),
    )?;
    let _ = db.query("SELECT no_such_column FROM pg_tour", ());
    expect(
        "an undefined column's SQLSTATE is 42703",
        db.last_sqlstate().as_deref() == Some("42703"),
    )?;

    expect_refused(
        "an int4 out of range",
        db.execute("UPDATE pg_tour SET n = $1", (1i64 << 40,)),
        "out of range",
    )?;
    expect_refused("COMMIT", db.execute("COMMIT", ()), "transaction control")?;
    expect_refused(
        "two statements in one execute",
        db.execute("SELECT 1; DELETE FROM pg_tour", ()),
        "exactly one statement",
    )?;
    expect_refused(
        "a column of a type that does not map",
        db.query("SELECT '1 day'::interval", ()),
        "cast it",
    )?;
    Ok(())
}

fn down(db: &Db) -> Result<()> {
    db.execute_batch("DROP TABLE pg_tour")
}

hsm_guest::migration! {
    version: 1,
    name: "pg_tour",
    description: "Test guest: the sql interface on PostgreSQL",
    up: up,
    down: down,
    dialects: ["postgresql"],
}
