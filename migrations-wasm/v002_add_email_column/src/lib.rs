//! Version 2: users get an email address.

use hsm_guest::{Db, Result};

fn up(db: &Db) -> Result<()> {
    db.execute_batch("ALTER TABLE users ADD COLUMN email TEXT")
}

// SQLite has had DROP COLUMN since 3.35; unlike the guide's rebuild by hand, it keeps the
// table's constraints, AUTOINCREMENT counter and any other columns added later.
fn down(db: &Db) -> Result<()> {
    db.execute_batch("ALTER TABLE users DROP COLUMN email")
}

hsm_guest::migration! {
    version: 2,
    name: "add_email_column",
    description: "Add email column to users table",
    up: up,
    down: down,
    // Its SQL is the same on both: it runs on PostgreSQL too (docs/postgresql.md).
    dialects: ["sqlite", "postgresql"],
}
