//! The database file is input too: tracking rows an older tool (or anyone who could write the
//! file) left, and another tool's history, shown through the real binary. What reaches the
//! terminal is escaped and bounded, whatever the rows hold.

use rusqlite::Connection;

use crate::support::{Env, Run};

fn assert_bounded_and_escaped(what: &str, run: &Run, bound: usize) {
    for (sink, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        let raw = text
            .chars()
            .find(|&c| c.is_control() && c != '\n' && c != '\t');
        assert!(raw.is_none(), "{what}: {sink} holds {raw:?}");
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with("FORGED")),
            "{what}: a forged line in {sink}"
        );
        assert!(text.len() < bound, "{what}: {sink} is {} bytes", text.len());
    }
}

#[test]
fn status_escapes_and_caps_every_column_of_a_planted_row() {
    let env = Env::with_examples();
    env.hsm(&["up", "2"]).assert_success();
    let huge = format!("2024\r\nFORGED 9 applied\x1b[2J{}", "x".repeat(30 << 20));
    {
        let conn = Connection::open(&env.db).unwrap();
        conn.execute(
            "UPDATE migrations SET applied_at = ?1, status = ?1 WHERE version = 1",
            [&huge],
        )
        .unwrap();
        conn.execute(
            "UPDATE migration_history SET started_at = ?1, direction = ?1, status = ?1
             WHERE version = 2",
            [&huge],
        )
        .unwrap();
    }
    for json in [false, true] {
        let args: &[&str] = if json {
            &["status", "--json"]
        } else {
            &["status"]
        };
        let run = env.hsm(args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        assert_bounded_and_escaped(&format!("{args:?}"), &run, 256 << 10);
        if json {
            let status: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
            let shown = status["history"]
                .as_array()
                .unwrap()
                .iter()
                .find(|row| row["version"] == 2)
                .unwrap()["started_at"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(shown.starts_with("2024\\r\\nFORGED"), "{shown}");
            assert!(shown.ends_with("more bytes cut)"), "{shown}");
        }
    }
}

#[test]
fn adopt_names_the_first_problems_of_a_flooded_history_and_counts_the_rest() {
    let env = Env::empty();
    std::fs::write(
        env.migrations.join("0001_users.sql"),
        "CREATE TABLE users (id);",
    )
    .unwrap();
    std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
    {
        let conn = Connection::open(&env.db).unwrap();
        conn.execute_batch(
            "CREATE TABLE users (id);
             CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL,
                 run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000)
             INSERT INTO __diesel_schema_migrations (version) SELECT 1000 + i FROM n;",
        )
        .unwrap();
    }
    let run = env.hsm(&["adopt"]);
    run.assert_code(1)
        .assert_stderr_contains("not in the migration set")
        .assert_stderr_contains("and 49995 more");
    assert_bounded_and_escaped("adopt", &run, 16 << 10);
}

#[test]
fn tables_an_older_tool_named_like_table_valued_functions_do_not_stop_the_host() {
    let env = Env::with_examples();
    std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
    {
        let conn = Connection::open(&env.db).unwrap();
        conn.execute_batch(
            "CREATE TABLE pragma_table_info (x); CREATE TABLE pragma_page_count (x);
             CREATE TABLE pragma_page_size (x); CREATE TABLE json_each (value);
             CREATE VIEW pragma_table_list (schema, name, type) AS SELECT NULL, NULL, NULL;
             CREATE TABLE pragma_table_xinfo (x);",
        )
        .unwrap();
    }
    env.hsm(&["up", "3"]).assert_success();
    env.hsm(&["status"]).assert_success();
    let against = env.db.to_str().unwrap().to_owned();
    env.hsm(&["test", "--against", &against]).assert_success();
    let path = env.take_backup();
    env.hsm(&["up"]).assert_success();
    env.hsm(&["restore", &path, "--yes"]).assert_success();
    assert_eq!(env.status()["current_version"], 3);
}
