//! Version 10: `metadata()` sleeps for a minute before it answers.

use hsm_guest::{Db, Result};

fn up(_db: &Db) -> Result<()> {
    Ok(())
}

hsm_guest::migration! {
    version: {
        std::thread::sleep(std::time::Duration::from_secs(60));
        10
    },
    name: "metadata_sleeps",
    description: "Test guest: metadata() sleeps",
    up: up,
}
