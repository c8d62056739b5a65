//! Version 4: login sessions, with the indexes their lookups need.

use hsm_guest::{Db, Result};

fn up(db: &Db) -> Result<()> {
    db.execute_batch(
        "CREATE TABLE sessions (
            id TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL,
            expires_at TEXT NOT NULL,
            created_at TEXT DEFAULT CURRENT_TIMESTAMP,
            FOREIGN KEY (user_id) REFERENCES users(id)
        );
        CREATE INDEX idx_sessions_user ON sessions(user_id);
        CREATE INDEX idx_sessions_expires ON sessions(expires_at);",
    )
}

// Dropping the table drops its indexes with it.
fn down(db: &Db) -> Result<()> {
    db.execute_batch("DROP TABLE sessions")
}

hsm_guest::migration! {
    version: 4,
    name: "add_sessions_table",
    description: "Create sessions table for user authentication",
    up: up,
    down: down,
}
