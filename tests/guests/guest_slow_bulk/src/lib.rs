//! Version 8: a long data migration (many statements, progress reports), for the kill tests.

use hsm_guest::{Db, Result};

/// Batches of 1,000 rows each.
const BATCHES: u64 = 300;

fn up(db: &Db) -> Result<()> {
    db.execute_batch("CREATE TABLE bulk (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")?;
    for batch in 0..BATCHES {
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
             INSERT INTO bulk (id, payload) SELECT ?1 * 1000 + i, hex(randomblob(32)) FROM n",
            (batch as i64,),
        )?;
        db.progress(batch + 1, BATCHES);
    }
    Ok(())
}

fn down(db: &Db) -> Result<()> {
    db.execute_batch("DROP TABLE bulk")
}

hsm_guest::migration! {
    version: 8,
    name: "slow_bulk",
    description: "Test guest: inserts 300,000 rows in 300 statements",
    up: up,
    down: down,
}
