//! Version 11: `metadata()` never returns.

use hsm_guest::{Db, Result};

fn up(_db: &Db) -> Result<()> {
    Ok(())
}

fn forever() -> u64 {
    loop {
        std::hint::black_box(0);
    }
}

hsm_guest::migration! {
    version: forever(),
    name: "metadata_loops",
    description: "Test guest: metadata() loops",
    up: up,
}
