//! Version 8: changes schema and data, then panics (a trap). The host must undo both.

use hsm_guest::{Db, Result};

fn up(db: &Db) -> Result<()> {
    db.execute_batch("CREATE TABLE doomed (id INTEGER PRIMARY KEY)")?;
    db.execute("INSERT INTO users (name) VALUES (?1)", ("Mallory",))?;
    panic!("boom: the guest panicked on purpose");
}

hsm_guest::migration! {
    version: 8,
    name: "traps_up",
    description: "Test guest: writes, then panics",
    up: up,
}
