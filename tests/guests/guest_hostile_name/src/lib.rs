//! Version 9: a migration whose name and description try to drive the operator's terminal and
//! forge log lines, and whose description is far too long. Its `up` succeeds.

use hsm_guest::{Db, Result};

fn up(db: &Db) -> Result<()> {
    db.execute_batch("CREATE TABLE hostile_name_ran (x)")
}

hsm_guest::migration! {
    version: 9,
    name: "evil\x1b[31m\nFORGED  INFO up: all good\u{202e}",
    description: "d\r\n".repeat(100_000),
    up: up,
}
