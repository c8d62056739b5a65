//! The operator's view: `hsm-host status | up | down` on real files.

use crate::support::{Env, applied, assert_same_bytes, columns, dump, history, table_exists};

#[test]
fn up_applies_every_example_and_status_shows_them() {
    let env = Env::with_examples();
    let run = env.hsm(&["up"]);
    run.assert_success()
        .assert_stdout_contains("Applied    1 initial_schema")
        .assert_stdout_contains(
            "created index idx_sessions_expires, index idx_sessions_user, table sessions",
        )
        .assert_stdout_contains("Version 0 -> 7.");

    let conn = env.open();
    assert_eq!(applied(&conn), vec![1, 2, 3, 4, 5, 6, 7]);
    for table in ["users", "sessions", "new_table"] {
        assert!(table_exists(&conn, table), "{table} missing");
    }
    let user_columns: Vec<String> = columns(&conn, "users").into_iter().map(|c| c.0).collect();
    assert_eq!(user_columns, ["id", "name", "email", "role"]);
    assert!(
        history(&conn)
            .iter()
            .all(|h| h.1 == "up" && h.2 == "success")
    );

    let status = env.status();
    assert_eq!(status["current_version"], 7);
    assert_eq!(status["applied"].as_array().unwrap().len(), 7);
    assert_eq!(status["pending"].as_array().unwrap().len(), 0);
    assert_eq!(status["history"].as_array().unwrap().len(), 7);
    assert_eq!(
        status["history"][0]["version"], 7,
        "newest history row first"
    );

    let human = env.hsm(&["status"]);
    human
        .assert_success()
        .assert_stdout_contains("Current version: 7");

    // Running again finds nothing to do and changes nothing.
    let before = dump(&conn, &[]);
    env.hsm(&["up"])
        .assert_success()
        .assert_stdout_contains("Nothing to do");
    assert_eq!(dump(&conn, &[]), before);
}

#[test]
fn up_to_a_target_then_the_rest() {
    let env = Env::with_examples();
    env.hsm(&["up", "3"]).assert_success();
    assert_eq!(applied(&env.open()), vec![1, 2, 3]);
    let status = env.status();
    assert_eq!(status["current_version"], 3);
    let pending: Vec<u64> = status["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["version"].as_u64().unwrap())
        .collect();
    assert_eq!(pending, [4, 5, 6, 7]);
    env.hsm(&["up"])
        .assert_success()
        .assert_stdout_contains("Version 3 -> 7.");
    assert_eq!(applied(&env.open()), vec![1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn down_one_step_and_down_to_a_version() {
    let env = Env::with_examples();
    env.hsm(&["up", "6"]).assert_success();

    env.hsm(&["down"])
        .assert_success()
        .assert_stdout_contains("Rolled back    6 add_performance_indexes");
    let conn = env.open();
    assert_eq!(applied(&conn), vec![1, 2, 3, 4, 5]);
    let indexes: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema WHERE name IN ('idx_users_email', 'idx_sessions_user_expires')", [], |r| r.get(0))
        .unwrap();
    assert_eq!(indexes, 0);

    env.hsm(&["down", "3"])
        .assert_success()
        .assert_stdout_contains("Version 5 -> 3.");
    assert_eq!(applied(&conn), vec![1, 2, 3]);
    assert!(!table_exists(&conn, "sessions"));
    let user_columns: Vec<String> = columns(&conn, "users").into_iter().map(|c| c.0).collect();
    assert_eq!(user_columns, ["id", "name", "email"]);
    let statuses: Vec<String> = conn
        .prepare("SELECT status FROM migrations WHERE version IN (4, 5, 6) ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(statuses, ["rolled_back"; 3]);
}

#[test]
fn down_through_an_irreversible_migration_is_refused_and_changes_nothing() {
    let env = Env::with_examples();
    env.hsm(&["up", "4"]).assert_success();
    let before = dump(&env.open(), &[]);
    env.hsm(&["down", "2"])
        .assert_code(1)
        .assert_stderr_contains("migration 3 (normalize_email_addresses) is irreversible");
    assert_eq!(
        dump(&env.open(), &[]),
        before,
        "nothing may run when the range holds an irreversible step"
    );
}

#[test]
fn rolled_back_migration_can_be_applied_again() {
    let env = Env::with_examples();
    env.hsm(&["up", "5"]).assert_success();
    env.hsm(&["down"]).assert_success();
    let status = env.status();
    assert_eq!(status["current_version"], 4);
    assert_eq!(status["pending"][0]["version"], 5);
    assert_eq!(status["pending"][0]["rolled_back"], true);

    env.hsm(&["up", "5"]).assert_success();
    let conn = env.open();
    let (status, rolled_back_at): (String, Option<String>) = conn
        .query_row(
            "SELECT status, rolled_back_at FROM migrations WHERE version = 5",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(status, "applied");
    assert_eq!(rolled_back_at, None);
    assert!(columns(&conn, "users").iter().any(|c| c.0 == "role"));
    let directions: Vec<(i64, String)> = history(&conn)
        .into_iter()
        .filter(|h| h.0 == 5)
        .map(|h| (h.0, h.1))
        .collect();
    assert_eq!(
        directions,
        [(5, "up".into()), (5, "down".into()), (5, "up".into())]
    );
}

#[test]
fn dry_run_reports_and_leaves_the_file_byte_identical() {
    let env = Env::with_examples();
    env.hsm(&["up", "3"]).assert_success();
    let before = std::fs::read(&env.db).unwrap();

    for spelling in [&["up", "--dry-run"][..], &["up", "dry-run"][..]] {
        env.hsm(spelling)
            .assert_success()
            .assert_stdout_contains("Would apply    4 add_sessions_table")
            .assert_stdout_contains(
                "created index idx_sessions_expires, index idx_sessions_user, table sessions",
            )
            .assert_stdout_contains("Would apply    5 add_user_role")
            .assert_stdout_contains("altered table users")
            .assert_stdout_contains("Version would go 3 -> 7.");
        assert_same_bytes(&env.db, &before, &format!("dry run {spelling:?}"));
    }

    let json = env.hsm(&["up", "--dry-run", "--json"]);
    json.assert_success();
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["steps"].as_array().unwrap().len(), 4);
    assert_eq!(report["steps"][0]["schema"]["created"][2], "table sessions");
    assert_same_bytes(&env.db, &before, "the database");
}

#[test]
fn dry_run_counts_rows_a_data_migration_changes() {
    let env = Env::with_examples();
    env.hsm(&["up", "2"]).assert_success();
    env.open()
        .execute_batch("INSERT INTO users (name, email) VALUES ('A', 'A@X.ORG'), ('b', 'b@x.org'), ('C', NULL)")
        .unwrap();
    let run = env.hsm(&["up", "3", "--dry-run"]);
    run.assert_success()
        .assert_stdout_contains("3 normalize_email_addresses")
        .assert_stdout_contains("1 rows changed");
    let email: String = env
        .open()
        .query_row("SELECT email FROM users WHERE name = 'A'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(email, "A@X.ORG", "the dry run's update must be rolled back");
}

#[test]
fn dry_run_on_a_missing_database_creates_no_file() {
    let env = Env::with_examples();
    env.hsm(&["up", "--dry-run"])
        .assert_success()
        .assert_stdout_contains("Version would go 0 -> 7.");
    assert!(!env.db.exists());
    assert!(!env.db.parent().unwrap().exists());
}

#[test]
fn impossible_targets_are_usage_errors_that_change_nothing() {
    let env = Env::with_examples();
    env.hsm(&["up", "3"]).assert_success();
    let before = std::fs::read(&env.db).unwrap();
    env.hsm(&["up", "99"])
        .assert_code(2)
        .assert_stderr_contains("no migration with version 99");
    env.hsm(&["down", "5"])
        .assert_code(2)
        .assert_stderr_contains("below target 5");
    env.hsm(&["up", "2"])
        .assert_code(2)
        .assert_stderr_contains("hsm-host down 2");
    env.hsm(&["up", "three"])
        .assert_code(2)
        .assert_stderr_contains("neither a version number nor `dry-run`");
    env.hsm(&["sideways"]).assert_code(2);
    assert_same_bytes(&env.db, &before, "the database");
}

#[test]
fn global_options_go_before_or_after_the_subcommand_and_database_path_comes_from_the_env() {
    let env = Env::with_examples();
    let migrations = env.migrations.to_str().unwrap();
    let before = env.dir.path().join("before.db");
    let after = env.dir.path().join("after.db");
    let from_env = env.dir.path().join("env.db");

    let run = |cmd: &mut std::process::Command| {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(env.command().args([
        "--database",
        before.to_str().unwrap(),
        "--migrations",
        migrations,
        "up",
        "3",
    ]));
    run(env.command().args([
        "up",
        "3",
        "--database",
        after.to_str().unwrap(),
        "--migrations",
        migrations,
    ]));
    run(env.command().env("DATABASE_PATH", &from_env).args([
        "up",
        "2",
        "--migrations",
        migrations,
    ]));

    assert_eq!(
        applied(&rusqlite::Connection::open(&before).unwrap()),
        [1, 2, 3]
    );
    assert_eq!(
        applied(&rusqlite::Connection::open(&after).unwrap()),
        [1, 2, 3]
    );
    assert_eq!(
        applied(&rusqlite::Connection::open(&from_env).unwrap()),
        [1, 2]
    );
}

#[test]
fn default_paths_are_relative_to_the_working_directory() {
    let env = Env::with_examples();
    let out = env.command().args(["up", "1"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = env.dir.path().join("data/home-server-monitor.db");
    assert_eq!(applied(&rusqlite::Connection::open(db).unwrap()), [1]);
    // The log sits next to the database.
    let log = std::fs::read_to_string(env.dir.path().join("data/migration.log")).unwrap();
    assert!(
        log.contains("migration 1 (initial_schema): done"),
        "log file: {log}"
    );
}

#[test]
fn log_file_records_guest_messages() {
    let env = Env::with_examples();
    env.hsm(&["up"]).assert_success();
    let log = std::fs::read_to_string(env.log_file()).unwrap();
    assert!(
        log.contains("migration 3 (normalize_email_addresses): lowercased 0 email addresses"),
        "{log}"
    );
    assert!(
        log.contains("migration 7 (migrate_legacy_data): no legacy_table"),
        "{log}"
    );
    // Every layer's lines reach the file: the store's (backups), the sandbox's (loading, the
    // SQL proxy), the host's (each step).
    for (layer, line) in [
        ("hsm_store", "backup taken"),
        ("hsm_sandbox", "compil"),
        ("hsm_host", "starting"),
    ] {
        assert!(
            log.lines().any(|l| l.contains(layer) && l.contains(line)),
            "no {layer} line with {line:?}:\n{log}"
        );
    }
}

#[test]
fn legacy_rows_are_converted_by_version_7() {
    let env = Env::with_examples();
    env.hsm(&["up", "6"]).assert_success();
    env.open()
        .execute_batch(
            "CREATE TABLE legacy_table (id INTEGER PRIMARY KEY, data TEXT);
             INSERT INTO legacy_table VALUES (1, ' b = 2 ; a=1'), (2, NULL), (3, 'k =v');",
        )
        .unwrap();
    env.hsm(&["up"])
        .assert_success()
        .assert_stdout_contains("3 rows changed");
    let conn = env.open();
    assert!(!table_exists(&conn, "legacy_table"));
    let rows: Vec<(i64, String)> = conn
        .prepare("SELECT id, transformed_data FROM new_table ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [(1, "a=1;b=2".into()), (2, String::new()), (3, "k=v".into())]
    );
}

#[test]
fn down_dry_run_finds_a_broken_down_before_anything_is_touched() {
    let env = Env::empty();
    for (n, down) in [
        (1, "DROP TABLE t1;"),
        (2, "DROP TABLE t2;\nDROP TABLE no_such_table;"),
        (3, "DROP TABLE t3;"),
    ] {
        std::fs::write(
            env.migrations.join(format!("{n}_t{n}.up.sql")),
            format!("CREATE TABLE t{n} (x);"),
        )
        .unwrap();
        std::fs::write(env.migrations.join(format!("{n}_t{n}.down.sql")), down).unwrap();
    }
    env.hsm(&["up", "--no-backup"]).assert_success();
    let before = std::fs::read(&env.db).unwrap();

    // Rolling everything back would stop at 2, after 3 was rolled back: the rehearsal says so
    // and changes nothing.
    env.hsm(&["down", "0", "--dry-run"])
        .assert_code(1)
        .assert_stderr_contains("migration 2 (t2) failed during down")
        .assert_stderr_contains("no such table: no_such_table");
    assert_same_bytes(&env.db, &before, "down --dry-run that failed");

    env.hsm(&["down", "2", "--dry-run"])
        .assert_success()
        .assert_stdout_contains("Would roll back    3 t3")
        .assert_stdout_contains("dropped table t3")
        .assert_stdout_contains("Version would go 3 -> 2.");
    let json = env.hsm(&["down", "--dry-run", "--json"]);
    json.assert_success();
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["direction"], "down");
    assert_eq!(report["steps"][0]["version"], 3);
    assert_same_bytes(&env.db, &before, "down --dry-run");
    assert_eq!(applied(&env.open()), vec![1, 2, 3]);
}

#[test]
fn under_json_errors_are_json_too() {
    let env = Env::empty();
    std::fs::write(env.migrations.join("1_a.up.sql"), "CREATE TABLE a (x);").unwrap();
    std::fs::write(
        env.migrations.join("2_b.up.sql"),
        "CREATE TABLE b (x);\nINSERT INTO nowhere VALUES (1);",
    )
    .unwrap();
    let run = env.hsm(&["up", "--no-backup", "--json"]);
    run.assert_code(1);
    let error: serde_json::Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    let error = &error["error"];
    assert_eq!(error["kind"], "migration_failed");
    assert_eq!(error["meaning"], "failure");
    assert_eq!(error["exit_code"], 1);
    assert_eq!(error["version"], 2);
    assert_eq!(error["direction"], "up");
    assert_eq!(error["completed"], serde_json::json!([1]));
    // The guest failed with SQLite's own error: its code (SQLITE_ERROR) comes with it.
    assert_eq!(error["sqlite_code"], 1);
    assert!(
        error["cause"]
            .as_str()
            .unwrap()
            .contains("no such table: nowhere"),
        "{error}"
    );

    let run = env.hsm(&["up", "7", "--json"]);
    run.assert_code(2);
    let error: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(error["error"]["meaning"], "usage");
    assert_eq!(error["error"]["kind"], "plan");

    // A command line that does not parse, or a bad settings file, is a JSON error too.
    std::fs::write(env.dir.path().join("bad.toml"), "databse = 1\n").unwrap();
    let bad_config = env.dir.path().join("bad.toml");
    for args in [
        vec!["status", "--json", "--cache-max", "0"],
        vec!["--json", "gc", "--bogus"],
        vec!["status", "--json", "--config", bad_config.to_str().unwrap()],
    ] {
        let run = env.hsm(&args);
        run.assert_code(2);
        let error: serde_json::Value = serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", run.stdout));
        assert_eq!(error["shape_version"], 2);
        assert_eq!(error["error"]["meaning"], "usage", "{args:?}");
        assert!(!error["error"]["message"].as_str().unwrap().is_empty());
    }
}

/// Commands that need a database never make one: `down`, `repair`, `adopt` (even a dry run)
/// and `baseline` on a path that does not exist are usage errors and leave no file.
#[test]
fn commands_that_need_a_database_never_create_one() {
    let env = crate::support::Env::empty();
    std::fs::write(env.migrations.join("001_a.up.sql"), "CREATE TABLE a (x);").unwrap();
    for args in [
        &["down"][..],
        &["down", "0"],
        &["repair"],
        &["adopt", "--dry-run"],
        &["adopt"],
        &["baseline", "1"],
    ] {
        env.hsm(args)
            .assert_code(2)
            .assert_stderr_contains("does not exist");
        assert!(!env.db.exists(), "{args:?} made the database");
    }
}

/// An empty migrations directory: `status` says there is nothing (and `--check` is content),
/// `up` is a usage error that says how to make the first migration and creates no database.
#[test]
fn an_empty_migrations_directory_is_explained_and_nothing_is_made() {
    let env = crate::support::Env::empty();
    env.hsm(&["status"])
        .assert_success()
        .assert_stdout_contains("Pending (0):");
    env.hsm(&["status", "--check"]).assert_success();
    env.hsm(&["up"])
        .assert_code(2)
        .assert_stderr_contains("holds no migrations")
        .assert_stderr_contains("hsm-host new NAME");
    // `test`, a CI gate, does not pass on nothing.
    env.hsm(&["test"])
        .assert_code(2)
        .assert_stderr_contains("holds no migrations");
    assert!(!env.db.exists());
}
