//! Version 1: the `users` table everything else builds on.

use hsm_guest::{Db, Result};

fn up(db: &Db) -> Result<()> {
    db.execute_batch(
        "CREATE TABLE users (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL
        )",
    )
}

fn down(db: &Db) -> Result<()> {
    db.execute_batch("DROP TABLE users")
}

hsm_guest::migration! {
    version: 1,
    name: "initial_schema",
    description: "Create initial database schema",
    up: up,
    down: down,
}
