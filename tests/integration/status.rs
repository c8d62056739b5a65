//! `status` as the operator reads it: a missing database, files this machine has not read
//! (known by the checksum an applied row recorded, or listed as not read yet), `--check` as a
//! gate, and a database without its migrations directory.

use crate::support::Env;

#[test]
fn status_of_a_missing_database_lists_everything_pending_and_creates_nothing() {
    let env = Env::with_examples();
    // Never compiled with this cache: `status` compiles nothing, so their versions are unknown.
    let cache = env.dir.path().join("cache");
    let cache = cache.to_str().unwrap();
    let json = |args: &[&str]| -> serde_json::Value {
        let run = env.hsm(&[args, &["--json", "--cache-dir", cache]].concat());
        run.assert_success();
        serde_json::from_str(&run.stdout).unwrap()
    };
    let status = json(&["status"]);
    assert_eq!(status["exists"], false);
    assert_eq!(status["pending"].as_array().unwrap().len(), 0);
    assert_eq!(status["unread_components"].as_array().unwrap().len(), 7);
    env.hsm(&["status", "--cache-dir", cache])
        .assert_success()
        .assert_stdout_contains("Not read yet (7)")
        .assert_stdout_contains("v001_initial_schema.wasm");
    env.hsm(&["status", "--check", "--cache-dir", cache])
        .assert_code(1)
        .assert_stderr_contains("7 not read yet");

    // Once a run has read them, they are pending by version.
    env.hsm(&["up", "--dry-run", "--cache-dir", cache])
        .assert_success();
    let status = json(&["status"]);
    assert_eq!(status["exists"], false);
    assert_eq!(status["current_version"], 0);
    assert_eq!(status["pending"].as_array().unwrap().len(), 7);
    assert_eq!(status["pending"][2]["reversible"], false);
    assert_eq!(status["unread_components"], serde_json::json!([]));
    assert!(!env.db.exists());
}

/// A database migrated elsewhere (a new machine, an emptied cache): `status` knows each
/// applied file by the checksum the database recorded, without compiling it.
#[test]
fn status_knows_applied_files_by_their_checksum_on_a_new_machine() {
    let env = Env::with_examples();
    env.hsm(&["up", "5", "--no-cache"]).assert_success();
    let cache = env.dir.path().join("cache");
    let run = env.hsm(&["status", "--json", "--cache-dir", cache.to_str().unwrap()]);
    run.assert_success();
    let status: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(status["current_version"], 5);
    assert_eq!(status["missing_components"], serde_json::json!([]));
    assert_eq!(status["unread_components"].as_array().unwrap().len(), 2);

    // A copy of an applied file beside it: `up` would refuse the two, and so does status.
    env.add_as(hsm_test_artifacts::V002_ADD_EMAIL_COLUMN, "v002_copy.wasm");
    let fresh = env.dir.path().join("fresh-cache");
    let fresh = fresh.to_str().unwrap();
    for args in [
        &["status"][..],
        &["status", "--check"],
        &["up", "--dry-run"],
    ] {
        env.hsm(&[args, &["--cache-dir", fresh]].concat())
            .assert_code(1)
            .assert_stderr_contains("v002_copy.wasm")
            .assert_stderr_contains("version 2");
    }
}

/// A file changed since it was applied, on a machine whose cache never read it: the applied
/// row says no file was read for it and points at the list of files not read yet.
#[test]
fn status_points_from_an_applied_migration_without_a_file_to_the_files_not_read() {
    let env = Env::with_examples();
    env.hsm(&["up", "2", "--no-cache"]).assert_success();
    // v002's file replaced by another component's bytes (a rebuild, a wrong copy).
    env.add_as(
        hsm_test_artifacts::V003_NORMALIZE_EMAIL_ADDRESSES,
        "v002_add_email_column.wasm",
    );
    let cache = env.dir.path().join("cache");
    env.hsm(&["status", "--cache-dir", cache.to_str().unwrap()])
        .assert_success()
        .assert_stdout_contains("[no file read for it: changed or missing, see Not read yet]")
        .assert_stdout_contains(
            "Not read yet (6): files neither the compile cache nor an applied migration knows",
        );
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

/// `status` logs nothing, so it opens no log file (and starts no writer thread); a run that
/// changes something logs it.
#[test]
fn status_opens_no_log_file_and_up_writes_one() {
    let env = Env::with_examples();
    env.hsm(&["status"]).assert_success();
    assert!(!env.log_file().exists(), "status wrote a log file");
    env.hsm(&["up", "1"]).assert_success();
    let log = std::fs::read_to_string(env.log_file()).unwrap();
    assert!(log.contains("migration 1"), "{log}");
}
