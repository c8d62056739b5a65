//! The native baselines: the same work done by hand with rusqlite, measured beside ours.

use super::*;

/// What a careful hand-written rusqlite runner does for the same migrations: tracking tables,
/// a history row, one transaction per migration with its tracking row.
pub(crate) fn native_up(db: &Path, count: u64) {
    let conn = Connection::open(db).unwrap();
    conn.execute_batch(&hsm_host::tracking::Tracking::default().schema())
        .unwrap();
    for v in 1..=count {
        let now = chrono::Utc::now().to_rfc3339();
        conn.execute(
            "INSERT INTO migration_history (version, direction, status, started_at) VALUES (?1, 'up', 'running', ?2)",
            params![v, now],
        )
        .unwrap();
        let attempt = conn.last_insert_rowid();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn.execute_batch(&format!(
            "CREATE TABLE bench_{v} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, created_at TEXT);
             CREATE INDEX bench_{v}_name ON bench_{v} (name);"
        ))
        .unwrap();
        conn.execute(
            "INSERT INTO migrations (version, name, description, applied_at) VALUES (?1, 'bench_ddl', '', ?2)",
            params![v, now],
        )
        .unwrap();
        conn.execute(
            "UPDATE migration_history SET status = 'success', completed_at = ?1 WHERE id = ?2",
            params![now, attempt],
        )
        .unwrap();
        conn.execute_batch("COMMIT").unwrap();
    }
}

/// The same transformation as `guest_bench_data`, natively: pages, prepared statements.
pub(crate) fn native_transform(db: &Path) -> Duration {
    let conn = Connection::open(db).unwrap();
    let (elapsed, ()) = time(|| {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        {
            let mut page = conn
                .prepare("SELECT id, email FROM items WHERE id > ?1 ORDER BY id LIMIT 10000")
                .unwrap();
            let mut update = conn
                .prepare("UPDATE items SET email = ?2 WHERE id = ?1")
                .unwrap();
            let mut last = i64::MIN;
            loop {
                let rows: Vec<(i64, String)> = page
                    .query_map([last], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                let Some(tail) = rows.last() else { break };
                last = tail.0;
                for (id, email) in rows {
                    update
                        .execute(params![id, email.trim().to_lowercase()])
                        .unwrap();
                }
            }
        }
        conn.execute_batch("COMMIT").unwrap();
    });
    elapsed
}

/// `UPDATE items SET email = normalize_email(email)` with the function registered natively.
pub(crate) fn native_function_update(db: &Path) -> Duration {
    use rusqlite::functions::FunctionFlags;
    let conn = Connection::open(db).unwrap();
    conn.create_scalar_function(
        "normalize_email",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| Ok(ctx.get::<String>(0)?.trim().to_lowercase()),
    )
    .unwrap();
    time(|| {
        conn.execute_batch(
            "BEGIN IMMEDIATE; UPDATE items SET email = normalize_email(email); COMMIT;",
        )
        .unwrap()
    })
    .0
}

/// `SELECT sum(identity(id)) FROM items` with `identity` registered natively.
pub(crate) fn native_identity_sum(db: &Path) -> Duration {
    use rusqlite::functions::FunctionFlags;
    let conn = Connection::open(db).unwrap();
    conn.create_scalar_function(
        "identity",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| ctx.get::<i64>(0),
    )
    .unwrap();
    time(|| {
        conn.query_row("SELECT sum(identity(id)) FROM items", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
    })
    .0
}
