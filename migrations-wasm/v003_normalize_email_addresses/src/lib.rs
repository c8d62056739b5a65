//! Version 3: a data migration that cannot be undone (the original case is lost).

use hsm_guest::{Db, Result, log};

fn up(db: &Db) -> Result<()> {
    let changed = db.execute(
        "UPDATE users SET email = LOWER(email) WHERE email IS NOT NULL AND email <> LOWER(email)",
        (),
    )?;
    log::info(&format!("lowercased {changed} email addresses"));
    Ok(())
}

// No `down`: the migration is irreversible, and the host refuses to roll it back.
hsm_guest::migration! {
    version: 3,
    name: "normalize_email_addresses",
    description: "IRREVERSIBLE: convert all email addresses to lowercase (the original case is not kept)",
    up: up,
}
