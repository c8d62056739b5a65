//! `--single-transaction`: every migration of a run in one transaction, so a deploy reaches
//! its target or leaves the database as it was.

use crate::support::{Env, applied, history, table_exists};

/// What a failed all-or-nothing run must leave: none of its migrations, one `failed` row.
fn assert_nothing_applied_but_the_failure(env: &Env, failed: i64) {
    let conn = env.open();
    assert_eq!(applied(&conn), Vec::<i64>::new());
    assert!(!table_exists(&conn, "users"), "the first migration's table");
    let rows = history(&conn);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].0, rows[0].2.as_str()), (failed, "failed"));
}

#[test]
fn a_failure_rolls_back_the_whole_run_and_the_rest_commits_once() {
    let env = Env::with_examples();
    env.add(hsm_test_artifacts::GUEST_FAILS_UP);
    env.hsm(&["up", "--single-transaction"])
        .assert_code(1)
        .assert_stderr_contains("migration 8")
        .assert_stderr_contains("the 7 migration(s) this run did before it were rolled back");
    assert_nothing_applied_but_the_failure(&env, 8);
    let rows = history(&env.open());
    assert!(
        rows[0]
            .3
            .as_deref()
            .unwrap()
            .contains("refusing on purpose"),
        "{rows:?}"
    );

    // Without the failing migration, the same run reaches its target, with every row.
    std::fs::remove_file(env.migrations.join("guest_fails_up.wasm")).unwrap();
    env.hsm(&["up", "6", "--single-transaction"])
        .assert_success();
    let conn = env.open();
    assert_eq!(applied(&conn), [1, 2, 3, 4, 5, 6]);
    let successes = history(&conn).iter().filter(|h| h.2 == "success").count();
    assert_eq!(successes, 6);
    drop(conn);

    // down too, from the settings file.
    let config = env.dir.path().join("hsm.toml");
    std::fs::write(&config, "single_transaction = true\n").unwrap();
    let config = config.to_str().unwrap();
    env.hsm(&["down", "4", "--config", config]).assert_success();
    assert_eq!(applied(&env.open()), [1, 2, 3, 4]);
}

/// A process killed in the middle of an all-or-nothing run leaves nothing of it; the next
/// command records the step it was in as interrupted.
#[test]
fn a_kill_inside_the_run_leaves_nothing_of_it() {
    for point in ["attempt-written", "before-commit"] {
        let env = Env::with_examples();
        let output = env
            .hsm_command(&["up", "--single-transaction"])
            .env("HSM_KILL_AT", point)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{point}");
        let status = env.status();
        // Killed at the first step's attempt, or before the one commit after the last.
        let interrupted = if point == "attempt-written" { 1 } else { 7 };
        assert_eq!(
            status["interrupted"],
            serde_json::json!([interrupted]),
            "{point}"
        );
        assert_nothing_applied_but_the_failure(&env, interrupted);
    }
}

#[test]
fn an_all_or_nothing_run_takes_one_backup() {
    let env = Env::with_examples();
    env.hsm(&["up", "--single-transaction"]).assert_success();
    let backups = std::fs::read_dir(env.db.parent().unwrap().join("backups"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().contains(".backup-")
        })
        .count();
    assert_eq!(backups, 1, "one backup for the run");
}
