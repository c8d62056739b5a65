//! The data benchmark through a guest-defined SQL function: SQLite's own loop runs
//! `UPDATE items SET email = normalize_email(email)` and calls into the guest per row.

use hsm_guest::{Db, Result, Value};

fn normalize_email(args: &[Value]) -> Result<Value> {
    Ok(match &args[0] {
        Value::Text(email) => Value::Text(email.trim().to_lowercase()),
        other => other.clone(),
    })
}

fn up(db: &Db) -> Result<()> {
    db.register_function("normalize_email", 1)?;
    db.execute("UPDATE items SET email = normalize_email(email)", ())?;
    Ok(())
}

hsm_guest::migration! {
    version: 1,
    name: "bench_function",
    description: "Benchmark: normalise one million emails with a guest SQL function",
    up: up,
    functions: [normalize_email],
}
