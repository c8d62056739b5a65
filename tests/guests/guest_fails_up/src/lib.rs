//! Version 8: changes schema and data, then returns an error. The host must undo both.

use hsm_guest::{Db, Error, Result};

fn up(db: &Db) -> Result<()> {
    db.execute_batch("CREATE TABLE doomed (id INTEGER PRIMARY KEY)")?;
    db.execute(
        "INSERT INTO users (name, email) VALUES (?1, ?2)",
        ("Mallory", "m@example.com"),
    )?;
    Err(Error::msg("refusing on purpose after writing"))
}

fn down(db: &Db) -> Result<()> {
    db.execute_batch("DROP TABLE doomed")
}

hsm_guest::migration! {
    version: 8,
    name: "fails_up",
    description: "Test guest: writes, then fails",
    up: up,
    down: down,
}
