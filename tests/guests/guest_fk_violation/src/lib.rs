//! Version 8: inserts a session for a user that does not exist. The host must refuse to commit.

use hsm_guest::{Db, Result};

fn up(db: &Db) -> Result<()> {
    db.execute(
        "INSERT INTO sessions (id, user_id, expires_at) VALUES (?1, ?2, ?3)",
        ("orphan", 424_242, "2099-01-01"),
    )?;
    Ok(())
}

hsm_guest::migration! {
    version: 8,
    name: "fk_violation",
    description: "Test guest: leaves a foreign-key violation",
    up: up,
}
