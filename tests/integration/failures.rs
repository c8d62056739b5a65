//! Bad guests and bad files: a clear error, and the database exactly as it was.

use crate::support::{Env, applied, assert_same_bytes, dump, history, table_exists};

/// Applies the examples, then runs `up` with a failing version 8 and checks that nothing but
/// the history row changed.
fn assert_failed_guest_changes_nothing(guest: &str, expected: &[&str]) {
    let env = Env::with_examples();
    env.hsm(&["up"]).assert_success();
    let before = dump(&env.open(), &["migration_history"]);

    env.add(guest);
    let run = env.hsm(&["up"]);
    run.assert_code(1).assert_stderr_contains("migration 8 (");
    for needle in expected {
        run.assert_stderr_contains(needle);
    }

    let conn = env.open();
    assert_eq!(
        dump(&conn, &["migration_history"]),
        before,
        "schema or data changed"
    );
    assert!(!table_exists(&conn, "doomed"));
    let last = history(&conn).pop().unwrap();
    assert_eq!(
        (last.0, last.1.as_str(), last.2.as_str()),
        (8, "up", "failed")
    );
    let error = last.3.expect("the failed attempt records its error");
    for needle in expected {
        assert!(
            error.contains(needle),
            "history error {error:?} lacks {needle:?}"
        );
    }
    assert_eq!(env.status()["current_version"], 7);
}

#[test]
fn guest_returning_an_error_is_rolled_back_and_recorded() {
    assert_failed_guest_changes_nothing(
        hsm_test_artifacts::GUEST_FAILS_UP,
        &["fails_up", "refusing on purpose after writing"],
    );
}

#[test]
fn guest_that_traps_is_rolled_back_and_its_panic_reported() {
    assert_failed_guest_changes_nothing(
        hsm_test_artifacts::GUEST_TRAPS_UP,
        &[
            "traps_up",
            "trapped",
            "unreachable",
            "boom: the guest panicked on purpose",
        ],
    );
}

#[test]
fn a_failure_stops_the_run_after_the_migrations_before_it_committed() {
    let env = Env::with_examples();
    env.add(hsm_test_artifacts::GUEST_FAILS_UP);
    env.hsm(&["up"]).assert_code(1);
    assert_eq!(applied(&env.open()), [1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn duplicate_versions_are_refused_naming_both_files() {
    let env = Env::with_examples();
    env.add_as(
        hsm_test_artifacts::V001_INITIAL_SCHEMA,
        "copy_of_first.wasm",
    );
    let run = env.hsm(&["up"]);
    run.assert_code(1)
        .assert_stderr_contains("both declare version 1")
        .assert_stderr_contains("copy_of_first.wasm")
        .assert_stderr_contains("v001_initial_schema.wasm");
    // The directory is the right one: no hint to choose another.
    assert!(
        !run.stderr.contains("choose the directory"),
        "{}",
        run.stderr
    );
    assert!(
        !env.db.exists(),
        "nothing may be created when loading fails"
    );
}

#[test]
fn files_that_are_not_migration_components_are_refused_by_name() {
    let cases: [(&str, &[u8], &str); 3] = [
        (
            "garbage.wasm",
            b"this is not wasm at all",
            "not a WebAssembly file",
        ),
        (
            "core.wasm",
            b"\0asm\x01\0\0\0",
            "core WebAssembly module, not a component",
        ),
        (
            "truncated.wasm",
            b"\0asm\x0d\0\x01\0\x01",
            "not a valid WebAssembly component",
        ),
    ];
    for (name, bytes, reason) in cases {
        let env = Env::with_examples();
        std::fs::write(env.migrations.join(name), bytes).unwrap();
        // `status` compiles nothing: it lists the file as not read yet; `up` reads and refuses it.
        env.hsm(&["status"])
            .assert_success()
            .assert_stdout_contains("Not read yet (1)")
            .assert_stdout_contains(name);
        env.hsm(&["up"])
            .assert_code(1)
            .assert_stderr_contains(name)
            .assert_stderr_contains(reason);
    }

    let env = Env::with_examples();
    env.add(hsm_test_artifacts::GUEST_WRONG_WORLD);
    env.hsm(&["up"])
        .assert_code(1)
        .assert_stderr_contains("guest_wrong_world.wasm")
        .assert_stderr_contains("does not export the hsm:migration/migration world");
}

#[test]
fn missing_migrations_directory_is_a_clear_error() {
    let env = Env::empty();
    let out = env
        .command()
        .args(["up", "--migrations", "nowhere"])
        .output()
        .unwrap();
    // A failure that names the directory (its exit code: cli::colour_is_chosen_and_usage_…).
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot load the migrations in nowhere") && stderr.contains("--migrations"),
        "{stderr}"
    );
    // `status` still shows what the database records, and says why nothing else.
    let out = env
        .command()
        .args(["status", "--migrations", "nowhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the migrations directory nowhere does not exist"),
        "{stderr}"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_refused_untouched() {
    let env = Env::with_examples();
    std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
    std::fs::write(&env.db, b"definitely not sqlite, but someone's data").unwrap();
    env.hsm(&["up"])
        .assert_code(1)
        .assert_stderr_contains("cannot open database");
    assert_same_bytes(
        &env.db,
        b"definitely not sqlite, but someone's data",
        "the foreign file",
    );
}
