//! The floor of a guest SQL function: `identity` returns its integer argument, so SQLite's
//! loop over `SELECT sum(identity(id)) FROM items` costs one call into the component per row
//! and nothing else (no text crosses, nothing is allocated on either side).

use hsm_guest::{Db, Result, Value};

fn identity(args: &[Value]) -> Result<Value> {
    Ok(args[0].clone())
}

fn up(db: &Db) -> Result<()> {
    db.register_function("identity", 1)?;
    let sum: i64 = db.query_row("SELECT sum(identity(id)) FROM items", (), |row| row.get(0))?;
    hsm_guest::log::info(&format!("sum of ids: {sum}"));
    Ok(())
}

hsm_guest::migration! {
    version: 1,
    name: "bench_call_floor",
    description: "Benchmark: one guest function call per row, doing nothing",
    up: up,
    functions: [identity],
}
