//! Version 5: users get a role.

use hsm_guest::{Db, Result};

fn up(db: &Db) -> Result<()> {
    db.execute_batch("ALTER TABLE users ADD COLUMN role TEXT DEFAULT 'user'")
}

// The guide rebuilt `users` with CREATE TABLE AS, which loses the primary key, AUTOINCREMENT
// and NOT NULL. DROP COLUMN removes just the column and keeps the table's definition.
fn down(db: &Db) -> Result<()> {
    db.execute_batch("ALTER TABLE users DROP COLUMN role")
}

hsm_guest::migration! {
    version: 5,
    name: "add_user_role",
    description: "Add role column to users table",
    up: up,
    down: down,
    // Its SQL is the same on both: it runs on PostgreSQL too (docs/postgresql.md).
    dialects: ["sqlite", "postgresql"],
}
