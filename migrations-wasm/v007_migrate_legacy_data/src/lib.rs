//! Version 7: move rows of the old `legacy_table` (if this database has one) into `new_table`.
//!
//! The guide's version read `legacy_table` unconditionally, so it failed on every database that
//! never had one. Here `new_table` is always created and the legacy rows, when present, are
//! converted in batches with progress reports, then the old table is dropped.
//!
//! It shows the fast idiom for data migrations: a prepared statement reads one page at a time
//! (keyset paging, so memory stays flat however large the table), and `execute_many` writes
//! each page back in a single call to the host.

use hsm_guest::{Db, Result, log};

const BATCH: i64 = 500;

fn up(db: &Db) -> Result<()> {
    db.execute_batch(
        "CREATE TABLE new_table (
            id INTEGER PRIMARY KEY,
            transformed_data TEXT NOT NULL
        )",
    )?;

    let has_legacy: i64 = db.query_row(
        "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = 'legacy_table'",
        (),
        |row| row.get(0),
    )?;
    if has_legacy == 0 {
        log::info("no legacy_table in this database: nothing to convert");
        return Ok(());
    }

    let total: u64 = db.query_row("SELECT COUNT(*) FROM legacy_table", (), |row| row.get(0))?;
    let page =
        db.prepare("SELECT id, data FROM legacy_table WHERE id > ?1 ORDER BY id LIMIT ?2")?;
    let mut done = 0;
    let mut last_id = i64::MIN;
    loop {
        let rows = page.query((last_id, BATCH))?;
        let Some(last) = rows.last() else { break };
        last_id = last.get(0)?;
        let converted = rows
            .iter()
            .map(|row| {
                let data: Option<String> = row.get(1)?;
                Ok((row.get::<i64>(0)?, transform(data.as_deref().unwrap_or(""))))
            })
            .collect::<Result<Vec<_>>>()?;
        db.execute_many(
            "INSERT INTO new_table (id, transformed_data) VALUES (?1, ?2)",
            converted,
        )?;
        done += rows.len() as u64;
        db.progress(done, total);
    }
    db.execute_batch("DROP TABLE legacy_table")?;
    log::info(&format!("converted {done} legacy rows"));
    Ok(())
}

/// The legacy format kept `key = value` pairs separated by `;` with stray spaces; the new one
/// keeps them trimmed, `key=value`, sorted by key, so equal records compare equal.
fn transform(data: &str) -> String {
    let mut pairs: Vec<String> = data
        .split(';')
        .filter_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            Some(format!("{}={}", key.trim(), value.trim()))
        })
        .collect();
    pairs.sort();
    pairs.join(";")
}

hsm_guest::migration! {
    version: 7,
    name: "migrate_legacy_data",
    description: "IRREVERSIBLE: convert legacy_table rows into new_table and drop legacy_table",
    up: up,
}
