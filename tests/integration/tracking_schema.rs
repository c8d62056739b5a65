//! The tracking tables match the guide's schema column for column, and a database made by the
//! older Node tool is adopted as it is.

use rusqlite::Connection;

use crate::support::{Env, applied, assert_same_bytes, columns, sha256_file};

/// The guide's tracking schema, kept in the repository (`tests/fixtures/seed-schema.sql`) and
/// compiled in, so the tests read nothing outside the checkout.
fn seed_schema() -> &'static str {
    include_str!("../fixtures/seed-schema.sql")
}

#[test]
fn tracking_columns_equal_the_reference_schema() {
    let reference = Connection::open_in_memory().unwrap();
    reference.execute_batch(seed_schema()).unwrap();

    let env = Env::with_examples();
    env.hsm(&["up", "1"]).assert_success();
    let ours = env.open();
    assert_eq!(
        columns(&ours, "migration_history"),
        columns(&reference, "migration_history")
    );
    // The guide's columns, exactly and in order, then the one column hsm-host adds (by ALTER
    // TABLE ... ADD COLUMN, so databases of the older tool stay readable).
    let mut migrations = columns(&ours, "migrations");
    let added = migrations.split_off(columns(&reference, "migrations").len());
    assert_eq!(migrations, columns(&reference, "migrations"));
    assert_eq!(
        added,
        [("checksum".to_owned(), "TEXT".to_owned(), false, None, 0)]
    );
}

#[test]
fn a_database_from_the_node_tool_is_adopted() {
    let env = Env::with_examples();
    std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
    let conn = env.open();
    conn.execute_batch(seed_schema()).unwrap();
    conn.execute_batch(
        "CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL);
         INSERT INTO users (name) VALUES ('kept');
         INSERT INTO migrations (version, name, description, applied_at, backup_path)
           VALUES (1, 'initial_schema', 'Create initial database schema', '2025-11-16T10:00:00.000Z',
                   './data/backups/monitor.db.backup-2025-11-16T10-00-00-000Z');
         INSERT INTO migration_history (version, direction, status, started_at, completed_at)
           VALUES (1, 'up', 'success', '2025-11-16T10:00:00.000Z', '2025-11-16T10:00:00.100Z');",
    )
    .unwrap();
    drop(conn);

    let status = env.status();
    assert_eq!(status["current_version"], 1);
    assert_eq!(
        status["applied"][0]["applied_at"],
        "2025-11-16T10:00:00.000Z"
    );

    env.hsm(&["up"])
        .assert_success()
        .assert_stdout_contains("Version 1 -> 7.");
    let conn = env.open();
    assert_eq!(applied(&conn), [1, 2, 3, 4, 5, 6, 7]);
    let kept: String = conn
        .query_row("SELECT name FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, "kept");
    let node_row: String = conn
        .query_row(
            "SELECT applied_at FROM migrations WHERE version = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        node_row, "2025-11-16T10:00:00.000Z",
        "the Node tool's row is left as it was"
    );
    drop(conn);

    // `repair` records the file's checksum for the row the Node tool left without one.
    env.hsm(&["repair"]).assert_success();
    let checksum: Option<String> = env
        .open()
        .query_row(
            "SELECT checksum FROM migrations WHERE version = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let first = std::path::Path::new(hsm_test_artifacts::EXAMPLES[0]);
    assert_eq!(checksum.as_deref(), Some(sha256_file(first).as_str()));
}

#[test]
fn foreign_tables_with_our_names_are_refused() {
    let env = Env::with_examples();
    std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
    env.open()
        .execute_batch("CREATE TABLE migrations (id INTEGER PRIMARY KEY, script TEXT);")
        .unwrap();
    let before = std::fs::read(&env.db).unwrap();
    env.hsm(&["up"])
        .assert_code(1)
        .assert_stderr_contains("table `migrations` exists but has no column `version`");
    env.hsm(&["status"]).assert_code(1);
    assert_same_bytes(&env.db, &before, "the database");
}
