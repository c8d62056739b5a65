//! Damaged databases are refused before any change; migrations may not leave foreign-key
//! violations; component files may not change under an applied migration.

use crate::support::{Env, applied, assert_same_bytes, columns, corrupt_table, dump, history};

#[test]
fn a_corrupt_database_is_refused_before_any_change_naming_the_newest_backup() {
    let env = Env::with_examples();
    env.hsm(&["up", "3"]).assert_success();
    env.hsm(&["backup"]).assert_success();
    let newest = env.status()["backups"][0]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    corrupt_table(&env.db, "users");
    let before = std::fs::read(&env.db).unwrap();

    env.hsm(&["up"])
        .assert_code(1)
        .assert_stderr_contains("integrity_check failed")
        .assert_stderr_contains(&format!("hsm-host restore {newest}"));
    env.hsm(&["up", "--quick"])
        .assert_code(1)
        .assert_stderr_contains("nothing was changed");
    assert_same_bytes(&env.db, &before, "the corrupt database");
}

#[test]
fn existing_foreign_key_violations_are_refused() {
    let env = Env::with_examples();
    env.hsm(&["up", "4"]).assert_success();
    env.open()
        .execute_batch(
            "PRAGMA foreign_keys = OFF;
             INSERT INTO sessions (id, user_id, expires_at) VALUES ('s', 99, '2099-01-01');",
        )
        .unwrap();
    let before = std::fs::read(&env.db).unwrap();
    env.hsm(&["up"]).assert_code(1).assert_stderr_contains(
        "foreign_key_check found 1 violation(s): sessions row 1 references a missing users row",
    );
    assert_same_bytes(&env.db, &before, "the database");
}

#[test]
fn a_migration_that_introduces_a_foreign_key_violation_is_rolled_back() {
    let env = Env::with_examples();
    env.hsm(&["up"]).assert_success();
    let before = dump(&env.open(), &["migration_history"]);
    env.add(hsm_test_artifacts::GUEST_FK_VIOLATION);
    env.hsm(&["up"])
        .assert_code(1)
        .assert_stderr_contains(
            "migration 8 (fk_violation) failed during up: it left 1 foreign-key violation(s)",
        )
        .assert_stderr_contains("sessions row");
    let conn = env.open();
    assert_eq!(dump(&conn, &["migration_history"]), before);
    assert_eq!(history(&conn).last().unwrap().2, "failed");
}

#[test]
fn a_table_rebuild_does_not_cascade_deletes() {
    // v5's down rebuilds nothing, but DROP COLUMN on users with sessions pointing at it must
    // keep the sessions: foreign keys are off during migrations.
    let env = Env::with_examples();
    env.hsm(&["up", "5"]).assert_success();
    env.open()
        .execute_batch(
            "INSERT INTO users (id, name) VALUES (1, 'a');
             INSERT INTO sessions (id, user_id, expires_at) VALUES ('s1', 1, '2099-01-01');",
        )
        .unwrap();
    env.hsm(&["down", "4"]).assert_success();
    let conn = env.open();
    let sessions: i64 = conn
        .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sessions, 1);
    assert!(!columns(&conn, "users").iter().any(|c| c.0 == "role"));
}

#[test]
fn a_changed_component_file_is_flagged_refused_and_repairable() {
    let env = Env::with_examples();
    env.hsm(&["up", "3"]).assert_success();
    let v2 = env.migrations.join("v002_add_email_column.wasm");
    std::fs::copy(hsm_test_artifacts::GUEST_V2_CHANGED, &v2).unwrap();

    let before = std::fs::read(&env.db).unwrap();
    env.hsm(&["up"])
        .assert_code(1)
        .assert_stderr_contains("migration 2 (add_email_column) was applied as sha256")
        .assert_stderr_contains("hsm-host repair");
    assert_same_bytes(&env.db, &before, "the database");
    // Read by `up`, the file is known to `status` (which reads no file's code itself).
    let status = env.status();
    assert_eq!(status["changed_components"], serde_json::json!([2]));
    env.hsm(&["status"])
        .assert_success()
        .assert_stdout_contains("CHANGED since it was applied");

    env.hsm(&["repair"])
        .assert_success()
        .assert_stdout_contains("migrations 2");
    assert_eq!(env.status()["changed_components"], serde_json::json!([]));
    env.hsm(&["up"]).assert_success();
    assert_eq!(applied(&env.open()), [1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn down_runs_the_applied_component_even_when_the_file_changed_or_is_gone() {
    let env = Env::with_examples();
    env.hsm(&["up", "2"]).assert_success();
    std::fs::copy(
        hsm_test_artifacts::GUEST_V2_CHANGED,
        env.migrations.join("v002_add_email_column.wasm"),
    )
    .unwrap();
    env.hsm(&["down"])
        .assert_success()
        .assert_stdout_contains("Rolled back    2 add_email_column");
    assert!(!columns(&env.open(), "users").iter().any(|c| c.0 == "email"));

    std::fs::copy(
        hsm_test_artifacts::V002_ADD_EMAIL_COLUMN,
        env.migrations.join("v002_add_email_column.wasm"),
    )
    .unwrap();
    env.hsm(&["up", "5"]).assert_success();
    std::fs::remove_file(env.migrations.join("v005_add_user_role.wasm")).unwrap();
    let status = env.status();
    assert_eq!(status["missing_components"], serde_json::json!([5]));
    env.hsm(&["down", "4"]).assert_success();
    assert!(!columns(&env.open(), "users").iter().any(|c| c.0 == "role"));
}
