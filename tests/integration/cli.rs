//! The operator's view: `hsm-host status | up | down` on real files.

use crate::support::{Env, Run, applied, assert_same_bytes, columns, dump, history, table_exists};

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
fn status_of_a_missing_database_lists_everything_pending_and_creates_nothing() {
    let env = Env::with_examples();
    let status = env.status();
    assert_eq!(status["exists"], false);
    assert_eq!(status["current_version"], 0);
    assert_eq!(status["pending"].as_array().unwrap().len(), 7);
    assert_eq!(status["pending"][2]["reversible"], false);
    assert!(!env.db.exists());
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
fn inspect_says_what_a_component_is_and_whether_it_would_be_accepted() {
    let env = Env::empty();
    let good = env.add(hsm_test_artifacts::V003_NORMALIZE_EMAIL_ADDRESSES);
    let old = env.add(hsm_test_artifacts::GUEST_CONTRACT_V010);
    let run = env.hsm(&["inspect", good.to_str().unwrap(), old.to_str().unwrap()]);
    run.assert_success()
        .assert_stdout_contains("version      3")
        .assert_stdout_contains("name         normalize_email_addresses")
        .assert_stdout_contains("reversible   no")
        .assert_stdout_contains("contract     hsm:migration@0.2.0 (world migration-with-functions)")
        .assert_stdout_contains("contract     hsm:migration@0.1.0 (world migration)")
        .assert_stdout_contains("accepted     yes");
    let sha = hsm_host::runtime::sha256_hex(&std::fs::read(&good).unwrap());
    run.assert_stdout_contains(&format!("sha256       {sha}"));

    // A component of another world is described, refused with the reason, and the exit code
    // says so; one that imports sockets (as every Python component does) is accepted, and its
    // imports are listed.
    let other = env.add(hsm_test_artifacts::GUEST_WRONG_WORLD);
    let net = env.add(hsm_test_artifacts::GUEST_NET);
    let run = env.hsm(&[
        "inspect",
        "--json",
        good.to_str().unwrap(),
        other.to_str().unwrap(),
        net.to_str().unwrap(),
    ]);
    run.assert_code(1)
        .assert_stderr_contains("1 of 3 component(s) would be refused");
    let document: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        document["shape_version"], 2,
        "every document says its shape"
    );
    let found = &document["components"];
    assert_eq!(found[0]["accepted"], true);
    assert_eq!(found[0]["metadata"]["version"], 3);
    assert_eq!(found[1]["accepted"], false);
    assert!(
        found[1]["problem"]
            .as_str()
            .unwrap()
            .contains("hsm:migration"),
        "{}",
        found[1]["problem"]
    );
    assert_eq!(found[2]["accepted"], true, "{}", found[2]);
    assert!(
        found[2]["imports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i.as_str().unwrap().starts_with("wasi:sockets/"))
    );
    // Nothing was opened or created.
    assert!(!env.db.exists());
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
}

#[test]
fn completions_and_the_manual_page_are_printed_and_nothing_is_written() {
    let env = Env::empty();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef hsm-host"),
        ("fish", "complete -c hsm-host"),
    ] {
        let run = Run::from(env.command().args(["completions", shell]).output().unwrap());
        run.assert_success().assert_stdout_contains(marker);
        // Every subcommand is offered.
        for command in ["status", "up", "down", "inspect", "adopt", "pack"] {
            run.assert_stdout_contains(command);
        }
    }
    let run = Run::from(env.command().arg("man").output().unwrap());
    run.assert_success()
        .assert_stdout_contains(".TH hsm-host")
        .assert_stdout_contains("tracking\\-prefix")
        .assert_stdout_contains("\\fBhsm\\-host status\\fR");
    // No references to pages that do not exist.
    assert!(
        !run.stdout.contains("hsm\\-host\\-status(1)"),
        "{}",
        run.stdout
    );
    // A command's own options come first, the global ones under their heading.
    let help = Run::from(env.command().args(["status", "--help"]).output().unwrap());
    let own = help.stdout.find("--check").unwrap();
    let globals = help.stdout.find("Global options:").unwrap();
    assert!(own < globals, "{}", help.stdout);
    // No log file, no database.
    assert!(!env.dir.path().join("logs").exists());
    assert!(!env.db.exists());
}

#[test]
fn each_step_is_one_line_on_the_terminal_and_the_details_go_to_the_log() {
    let env = Env::with_examples();
    let run = env.hsm(&["up", "5"]);
    run.assert_success();
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.starts_with("Applied"))
            .count(),
        5,
        "{}",
        run.stdout
    );
    assert!(!run.stderr.contains(": starting"), "{}", run.stderr);
    assert!(!run.stderr.contains("rows changed"), "{}", run.stderr);
    let log = std::fs::read_to_string(env.log_file()).unwrap();
    assert!(
        log.contains("up migration 4 (add_sessions_table): starting"),
        "{log}"
    );
    // -v shows them again.
    env.hsm(&["down", "4", "-v"])
        .assert_success()
        .assert_stderr_contains("down migration 5 (add_user_role): starting");
}

#[test]
fn test_round_trips_every_migration_and_names_a_down_that_forgets_an_index() {
    let env = Env::with_examples();
    let run = env.hsm(&["test"]);
    run.assert_success()
        .assert_stdout_contains("pass     1 initial_schema")
        .assert_stdout_contains("skip     3 normalize_email_addresses (irreversible")
        .assert_stdout_contains("skip     7 migrate_legacy_data (irreversible")
        .assert_stdout_contains("5 passed, 2 irreversible, 0 failed, 0 not tested.");
    assert!(!env.db.exists(), "test touched the database");

    let env = Env::empty();
    for (name, up, down) in [
        ("1_t", "CREATE TABLE t (x);", "DROP TABLE t;"),
        (
            "2_idx",
            "CREATE INDEX t_x ON t (x);",
            "-- forgot DROP INDEX t_x\n",
        ),
        (
            "3_col",
            "ALTER TABLE t ADD COLUMN y INTEGER;",
            "ALTER TABLE t DROP COLUMN y;",
        ),
    ] {
        std::fs::write(env.migrations.join(format!("{name}.up.sql")), up).unwrap();
        std::fs::write(env.migrations.join(format!("{name}.down.sql")), down).unwrap();
    }
    let run = env.hsm(&["test"]);
    run.assert_code(1)
        .assert_stdout_contains("pass     1 t")
        .assert_stdout_contains("FAIL     2 idx: down did not restore the schema before up")
        .assert_stdout_contains("+ index t_x is left over")
        .assert_stdout_contains("----     3 col (not tested: migration 2 failed")
        .assert_stderr_contains("1 migration(s) failed their round trip");

    // Against a copy of a real database: the file is never written.
    env.hsm(&["up", "1", "--no-backup"]).assert_success();
    let before = std::fs::read(&env.db).unwrap();
    let run = env.hsm(&["test", "--json", "--against", env.db.to_str().unwrap()]);
    run.assert_code(1);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2, "{report}");
    assert_eq!(cases[0]["version"], 2);
    assert_eq!(cases[0]["outcome"], "fail");
    assert_eq!(cases[1]["outcome"], "not_tested");
    assert_same_bytes(&env.db, &before, "test --against");
}

/// The README's path for a new plugin author: `new`, `cargo build`, `test`, `up`, `down`.
#[test]
fn a_new_author_goes_from_nothing_to_a_tested_applied_and_rolled_back_migration() {
    let env = Env::empty();
    let work = env.dir.path().join("my-migrations");
    let made = env.hsm(&["new", "add_widgets", "--dir", work.to_str().unwrap()]);
    made.assert_success()
        .assert_stdout_contains("Made migration 1:")
        .assert_stdout_contains("v001_add_widgets");
    // The next commands, each with paths from where `new` ran.
    let release = work.join("target/wasm32-wasip2/release");
    made.assert_stdout_contains(&format!("(cd {} && cargo build", work.display()))
        .assert_stdout_contains(&format!("hsm-host test --migrations {}", release.display()))
        .assert_stdout_contains(&format!("cp {}/v001_add_widgets.wasm ", release.display()));
    // A second one takes the next version.
    env.hsm(&["new", "add_gadgets", "--dir", work.to_str().unwrap()])
        .assert_success()
        .assert_stdout_contains("Made migration 2:");
    env.hsm(&["new", "Bad-Name", "--dir", work.to_str().unwrap()])
        .assert_code(2)
        .assert_stderr_contains("is not a snake_case name");

    // Built as the README says, with the SDK and contract `new` vendored.
    let target = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("new-author-target");
    let mut cargo = std::process::Command::new(env!("CARGO"));
    cargo
        .current_dir(&work)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", &target);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
    ] {
        cargo.env_remove(var);
    }
    let built = cargo.output().unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let release = target.join("wasm32-wasip2/release");
    for wasm in ["v001_add_widgets.wasm", "v002_add_gadgets.wasm"] {
        std::fs::copy(release.join(wasm), env.migrations.join(wasm)).unwrap();
    }
    env.hsm(&["test"])
        .assert_success()
        .assert_stdout_contains("pass     1 add_widgets")
        .assert_stdout_contains("pass     2 add_gadgets");
    env.hsm(&["up"]).assert_success();
    assert!(table_exists(&env.open(), "add_widgets"));
    env.hsm(&["down", "0"]).assert_success();
    assert!(!table_exists(&env.open(), "add_gadgets"));

    // Or as SQL files, read as they are.
    let sql = Env::empty();
    sql.hsm(&["new", "add_notes", "--sql"])
        .assert_success()
        .assert_stdout_contains("1_add_notes.up.sql");
    sql.hsm(&["test"])
        .assert_success()
        .assert_stdout_contains("pass     1 add_notes");
}

/// Runs `args` under a pseudo-terminal (util-linux `script`), as an operator at a terminal
/// would; returns everything the terminal showed.
fn on_a_terminal(env: &Env, args: &[&str]) -> String {
    let mut line = format!(
        "'{}' --database '{}' --migrations '{}' --log-file '{}'",
        env!("CARGO_BIN_EXE_hsm-host"),
        env.db.display(),
        env.migrations.display(),
        env.log_file().display()
    );
    for arg in args {
        line.push_str(&format!(" '{arg}'"));
    }
    let run = std::process::Command::new("script")
        .args(["-qfec", &line, "/dev/null"])
        .current_dir(env.dir.path())
        .env("XDG_CACHE_HOME", crate::support::test_cache_home())
        .env("TERM", "xterm")
        .env("COLUMNS", "120")
        .env_remove("DATABASE_PATH")
        .env_remove("HSM_TRACKING_PREFIX")
        .output()
        .expect("util-linux `script` runs the command under a pseudo-terminal");
    assert!(run.status.success(), "{run:?}");
    String::from_utf8_lossy(&run.stdout).into_owned()
}

#[test]
fn progress_bars_are_drawn_on_a_terminal_and_nowhere_else() {
    let env = Env::with_examples();
    env.add(hsm_test_artifacts::GUEST_SLOW_BULK);
    env.hsm(&["up", "7"]).assert_success();
    // A database large enough for the backup's bar (64 MiB and up).
    env.open()
        .execute_batch(
            "CREATE TABLE ballast (b BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
             INSERT INTO ballast SELECT randomblob(4000) FROM n;",
        )
        .unwrap();
    let shown = on_a_terminal(&env, &["up"]);
    // The bar of the backup taken before migrating, and of the migration's own progress.
    assert!(shown.contains("taking a backup (MiB)"), "{shown}");
    assert!(shown.contains("migration 8 (slow_bulk)"), "{shown}");
    assert!(shown.contains("Version 7 -> 8."), "{shown}");
    // Into a pipe, or under --json: no bar, and none in the log file.
    env.hsm(&["down"]).assert_success();
    let piped = env.hsm(&["up"]);
    piped.assert_success();
    assert!(
        !piped.stderr.contains("taking a backup (MiB)"),
        "{}",
        piped.stderr
    );
    let log = std::fs::read_to_string(env.log_file()).unwrap();
    assert!(!log.contains("taking a backup (MiB)"));
    env.hsm(&["down"]).assert_success();
    let json = on_a_terminal(&env, &["up", "--json"]);
    assert!(!json.contains("taking a backup (MiB)"), "{json}");
    // Restoring a large backup draws its own bar.
    let backup = std::fs::read_dir(env.dir.path().join("data/backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let shown = on_a_terminal(&env, &["restore", backup.to_str().unwrap(), "--yes"]);
    assert!(shown.contains("restoring (MiB)"), "{shown}");
}

/// `status --check` is a CI and cron gate: exit 1 while anything needs the operator (pending,
/// changed, failed), 0 once the database is up to date.
#[test]
fn status_check_exits_1_while_anything_needs_attention() {
    let env = crate::support::Env::empty();
    let m = &env.migrations;
    std::fs::write(
        m.join("001_notes.up.sql"),
        "CREATE TABLE notes (id INTEGER);",
    )
    .unwrap();
    std::fs::write(m.join("001_notes.down.sql"), "DROP TABLE notes;").unwrap();
    env.hsm(&["status", "--check"])
        .assert_code(1)
        .assert_stderr_contains("needs attention: 1 pending");
    env.hsm(&["up"]).assert_success();
    env.hsm(&["status", "--check"]).assert_success();
    std::fs::write(m.join("002_bad.up.sql"), "CREATE TABLE notes (id INTEGER);").unwrap();
    env.hsm(&["up"]).assert_code(1);
    env.hsm(&["status", "--check"])
        .assert_code(1)
        .assert_stderr_contains("1 pending, 1 failed");
    std::fs::remove_file(m.join("002_bad.up.sql")).unwrap();
    std::fs::write(m.join("001_notes.down.sql"), "DROP TABLE IF EXISTS notes;").unwrap();
    env.hsm(&["status", "--check"])
        .assert_code(1)
        .assert_stderr_contains("1 changed since applied");
    env.hsm(&["repair"]).assert_success();
    env.hsm(&["status", "--check"]).assert_success();
}

/// Without its migrations directory, `status` still shows what the database records (each
/// applied migration missing its file), and `up` says once why it cannot go on.
#[test]
fn status_without_the_migrations_directory_shows_the_records() {
    let env = crate::support::Env::empty();
    std::fs::write(env.migrations.join("001_a.up.sql"), "CREATE TABLE a (x);").unwrap();
    env.hsm(&["up"]).assert_success();
    std::fs::remove_dir_all(&env.migrations).unwrap();
    let status = env.status();
    assert_eq!(status["current_version"], 1);
    assert_eq!(status["missing_components"], serde_json::json!([1]));
    let run = env.hsm(&["up"]);
    run.assert_code(2);
    assert_eq!(
        run.stderr.matches("No such file or directory").count(),
        1,
        "the cause is said once: {}",
        run.stderr
    );
}

/// `export` writes the component a migration was applied from back out, byte for byte, never
/// over a file; a version not applied is refused.
#[test]
fn export_writes_the_applied_component_back() {
    let env = crate::support::Env::with_examples();
    env.hsm(&["up", "1"]).assert_success();
    let first = std::fs::read_dir(&env.migrations)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("v001"))
        .unwrap();
    let out = env.dir.path().join("exported.wasm");
    env.hsm(&["export", "1", "-o", out.to_str().unwrap()])
        .assert_success();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&first).unwrap());
    env.hsm(&["export", "1", "-o", out.to_str().unwrap()])
        .assert_code(1)
        .assert_stderr_contains("cannot create");
    env.hsm(&["export", "2"])
        .assert_code(1)
        .assert_stderr_contains("migration 2 is not applied");
}

/// Colour only when asked for or on a terminal (never under NO_COLOR); the operator's own
/// mistakes (a bad name for `new`, a migrations directory that is not there) exit 2.
#[test]
fn colour_is_chosen_and_usage_mistakes_exit_2() {
    let env = crate::support::Env::empty();
    std::fs::write(env.migrations.join("001_a.up.sql"), "CREATE TABLE a (x);").unwrap();
    let run = env.hsm(&["up", "--color", "always"]);
    run.assert_success();
    assert!(run.stderr.contains("\u{1b}["), "{}", run.stderr);
    let run = env.hsm(&["status", "--color", "never", "-v"]);
    assert!(!run.stderr.contains('\u{1b}'), "{}", run.stderr);
    env.hsm(&["new", "BadName", "--sql"])
        .assert_code(2)
        .assert_stderr_contains("is not a snake_case name");
    let mut cmd = env.command();
    cmd.args(["up", "--migrations", "nowhere", "--database"])
        .arg(&env.db);
    crate::support::Run::from(cmd.output().unwrap())
        .assert_code(2)
        .assert_stderr_contains("choose the directory with --migrations");
}

/// `redo` rolls the newest migration back and applies it again: a changed file's new down and
/// up both run (each run with its backup and checks).
#[test]
fn redo_runs_the_newest_migration_down_and_up_again() {
    let env = crate::support::Env::empty();
    let m = &env.migrations;
    std::fs::write(m.join("001_a.up.sql"), "CREATE TABLE a (x);").unwrap();
    std::fs::write(m.join("001_a.down.sql"), "DROP TABLE a;").unwrap();
    std::fs::write(m.join("002_b.up.sql"), "CREATE TABLE b (x);").unwrap();
    std::fs::write(m.join("002_b.down.sql"), "DROP TABLE b;").unwrap();
    env.hsm(&["redo"])
        .assert_code(2)
        .assert_stderr_contains("nothing to redo");
    env.hsm(&["up"]).assert_success();
    env.open().execute("INSERT INTO b VALUES (1)", []).unwrap();
    env.hsm(&["redo"])
        .assert_success()
        .assert_stdout_contains("Version 2 -> 1.")
        .assert_stdout_contains("Version 1 -> 2.");
    let rows: i64 = env
        .open()
        .query_row("SELECT count(*) FROM b", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0, "b was dropped and made again");
    assert_eq!(crate::support::applied(&env.open()), [1, 2]);
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
    assert!(!env.db.exists());
}

/// A reader that stops early (`| head`) ends the command quietly with exit 0: no panic, no
/// ERROR line. The completion script is larger than a pipe holds, so the write fails for sure.
#[test]
fn a_closed_pipe_is_a_quiet_exit() {
    use std::io::Read;
    let env = crate::support::Env::with_examples();
    for args in [&["completions", "bash"][..], &["completions", "fish"]] {
        let mut child = env
            .hsm_command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 16];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
    // A reader gone before anything is written: every write fails.
    env.hsm(&["up", "3"]).assert_success();
    for args in [&["status", "--json"][..], &["status"], &["restore"]] {
        let mut child = env
            .hsm_command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

/// `down` of a migration that drops a table says how many rows went with it, in the dry run
/// before anything is touched and in the run itself; a virtual table is named, never counted.
#[test]
fn down_reports_the_rows_removed_with_the_tables_it_drops() {
    let env = crate::support::Env::empty();
    let m = &env.migrations;
    std::fs::write(m.join("001_a.up.sql"), "CREATE TABLE keep (x);").unwrap();
    std::fs::write(m.join("001_a.down.sql"), "DROP TABLE keep;").unwrap();
    std::fs::write(
        m.join("002_notes.up.sql"),
        "CREATE TABLE \"odd \"\"name\" (x); CREATE VIRTUAL TABLE search USING fts5(body);",
    )
    .unwrap();
    std::fs::write(
        m.join("002_notes.down.sql"),
        "DROP TABLE \"odd \"\"name\"; DROP TABLE search;",
    )
    .unwrap();
    env.hsm(&["up"]).assert_success();
    let conn = env.open();
    conn.execute_batch(
        "INSERT INTO keep VALUES (1), (2);
         INSERT INTO \"odd \"\"name\" VALUES (1), (2), (3);
         INSERT INTO search VALUES ('hello');",
    )
    .unwrap();
    drop(conn);
    env.hsm(&["down", "--dry-run"])
        .assert_success()
        .assert_stdout_contains("3 rows removed with the dropped tables");
    let run = env.hsm(&["down", "--json"]);
    run.assert_success();
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["steps"][0]["rows_dropped"], 3, "{}", run.stdout);
    assert_eq!(report["steps"][0]["rows_changed"], 0, "{}", run.stdout);
    // A step that drops nothing reports nothing removed.
    env.hsm(&["up"]).assert_success();
    let rows: i64 = env
        .open()
        .query_row("SELECT count(*) FROM keep", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 2, "the table the down left alone keeps its rows");
}

/// `new --python` / `--js`: the next free version (after the migrations directory's), the
/// module with its helper beside it, the contract vendored, and the exact build command.
#[test]
fn new_makes_python_and_javascript_migrations_with_their_build_command() {
    let env = crate::support::Env::with_examples();
    let work = env.dir.path().join("authors");
    let made = env.hsm(&[
        "new",
        "add_notes",
        "--python",
        "--dir",
        work.to_str().unwrap(),
    ]);
    made.assert_success()
        .assert_stdout_contains("Made migration 8:")
        .assert_stdout_contains("componentize-py -d ../wit -w migration-with-functions");
    assert!(work.join("v008_add_notes/app.py").is_file());
    assert!(work.join("v008_add_notes/hsm_guest.py").is_file());
    assert!(work.join("wit/migration.wit").is_file());
    let app = std::fs::read_to_string(work.join("v008_add_notes/app.py")).unwrap();
    assert!(
        app.contains("version=8") && app.contains("name=\"add_notes\""),
        "{app}"
    );
    env.hsm(&["new", "add_tags", "--js", "--dir", work.to_str().unwrap()])
        .assert_success()
        .assert_stdout_contains("Made migration 9:")
        .assert_stdout_contains("componentize-js app.js -w ../wit");
    assert!(work.join("v009_add_tags/hsm-guest.js").is_file());
    env.hsm(&["new", "x", "--js", "--python"]).assert_code(2);
}

/// `test --with DIR`: a new migration is tested on top of the ones it builds on (alone it finds
/// no `users` table); two directories with one version are refused.
#[test]
fn test_with_takes_the_migrations_a_new_one_builds_on() {
    let env = crate::support::Env::with_examples();
    let new = env.dir.path().join("new");
    std::fs::create_dir(&new).unwrap();
    std::fs::write(
        new.join("008_add_nickname.up.sql"),
        "ALTER TABLE users ADD COLUMN nickname TEXT;",
    )
    .unwrap();
    std::fs::write(
        new.join("008_add_nickname.down.sql"),
        "ALTER TABLE users DROP COLUMN nickname;",
    )
    .unwrap();
    let test = |args: &[&str]| {
        let mut cmd = env.command();
        cmd.args(["test", "--migrations"]).arg(&new).args(args);
        crate::support::Run::from(cmd.output().unwrap())
    };
    test(&[])
        .assert_code(1)
        .assert_stdout_contains("no such table: users");
    test(&["--with", env.migrations.to_str().unwrap()])
        .assert_success()
        .assert_stdout_contains("pass     8 add_nickname")
        .assert_stdout_contains("6 passed, 2 irreversible, 0 failed");
    std::fs::write(new.join("001_clash.up.sql"), "SELECT 1;").unwrap();
    test(&["--with", env.migrations.to_str().unwrap()])
        .assert_code(1)
        .assert_stderr_contains("version 1");
}
