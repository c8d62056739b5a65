//! The data benchmark: normalise every `items.email` (trim, lowercase) in guest code, reading
//! pages with a prepared statement and writing each page back with `execute_many`.

use hsm_guest::{Db, Result};

const PAGE: i64 = 10_000;

fn up(db: &Db) -> Result<()> {
    let page = db.prepare("SELECT id, email FROM items WHERE id > ?1 ORDER BY id LIMIT ?2")?;
    let mut last = i64::MIN;
    loop {
        let rows = page.query((last, PAGE))?;
        let Some(tail) = rows.last() else { break };
        last = tail.get(0)?;
        let changed = rows
            .iter()
            .map(|row| Ok((row.get::<i64>(0)?, row.get_str(1)?.trim().to_lowercase())))
            .collect::<Result<Vec<_>>>()?;
        db.execute_many("UPDATE items SET email = ?2 WHERE id = ?1", changed)?;
    }
    Ok(())
}

hsm_guest::migration! {
    version: 1,
    name: "bench_data",
    description: "Benchmark: normalise one million emails in guest code",
    up: up,
}
