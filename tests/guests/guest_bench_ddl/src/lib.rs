//! A small DDL migration for the benchmarks. Its version lives in a marked data cell that the
//! benchmark harness patches, so one build yields any number of distinct components.

use hsm_guest::{Db, Result};

/// `HSMVERSN` then the version, little-endian. Patched in the built component's bytes.
#[used]
#[unsafe(no_mangle)]
static HSM_BENCH_VERSION: [u8; 16] = *b"HSMVERSN\x01\0\0\0\0\0\0\0";

fn version() -> u64 {
    // A volatile read: the value must come from the (patched) data, not be folded in.
    let cell = unsafe { core::ptr::read_volatile(&HSM_BENCH_VERSION) };
    u64::from_le_bytes(cell[8..].try_into().unwrap())
}

fn up(db: &Db) -> Result<()> {
    let v = version();
    db.execute_batch(&format!(
        "CREATE TABLE bench_{v} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, created_at TEXT);
         CREATE INDEX bench_{v}_name ON bench_{v} (name);"
    ))
}

fn down(db: &Db) -> Result<()> {
    db.execute_batch(&format!("DROP TABLE bench_{}", version()))
}

hsm_guest::migration! {
    version: version(),
    name: "bench_ddl",
    description: "Benchmark: one table and one index",
    up: up,
    down: down,
}
