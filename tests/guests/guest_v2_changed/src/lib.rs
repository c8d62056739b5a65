//! An edited version 2, as if someone changed a migration after it shipped. Its `down` must
//! never run: the host rolls back with the component that applied version 2.

use hsm_guest::{Db, Error, Result};

fn up(db: &Db) -> Result<()> {
    db.execute_batch("ALTER TABLE users ADD COLUMN email TEXT NOT NULL DEFAULT ''")
}

fn down(_db: &Db) -> Result<()> {
    Err(Error::msg(
        "the edited component's down ran instead of the applied one",
    ))
}

hsm_guest::migration! {
    version: 2,
    name: "add_email_column",
    description: "Add email column to users table (edited after shipping)",
    up: up,
    down: down,
}
