//! Version 6: indexes for the queries the application runs most.

use hsm_guest::{Db, Result};

// The guide also created idx_sessions_expires here, which version 4 already made (so the
// migration failed). The session lookup that needs help is "this user's live sessions".
fn up(db: &Db) -> Result<()> {
    db.execute_batch(
        "CREATE INDEX idx_users_email ON users(email);
         CREATE INDEX idx_sessions_user_expires ON sessions(user_id, expires_at);",
    )
}

fn down(db: &Db) -> Result<()> {
    db.execute_batch(
        "DROP INDEX idx_users_email;
         DROP INDEX idx_sessions_user_expires;",
    )
}

hsm_guest::migration! {
    version: 6,
    name: "add_performance_indexes",
    description: "Add indexes for query performance",
    up: up,
    down: down,
    // Its SQL is the same on both: it runs on PostgreSQL too (docs/postgresql.md).
    dialects: ["sqlite", "postgresql"],
}
