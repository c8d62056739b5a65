//! SQL functions a migrations directory provides to its SQL migrations (`sql-functions.wasm`,
//! the `sql-functions` world), as real sets need them: Unicode `normalize(text, form)`,
//! `BIN2B64` / `B642BIN`. The functions run in the sandbox, under the migration's limits,
//! usable only directly in its SQL.

use std::path::Path;

use crate::support::{Env, applied, table_exists};

fn write(dir: &Path, path: &str, text: &str) {
    std::fs::write(dir.join(path), text).unwrap();
}

fn with_functions() -> Env {
    let env = Env::empty();
    env.add_as(
        hsm_test_artifacts::GUEST_SQL_FUNCTIONS,
        "sql-functions.wasm",
    );
    write(
        &env.migrations,
        "001_create_users.up.sql",
        "CREATE TABLE users (name TEXT, key BLOB, key64 TEXT);\n\
         INSERT INTO users (name, key) VALUES ('Ame\u{301}lie', x'00ff10');\n\
         UPDATE users SET name = normalize(name, 'nfc'), key64 = BIN2B64(key);\n",
    );
    write(
        &env.migrations,
        "001_create_users.down.sql",
        "DROP TABLE users;\n",
    );
    env
}

#[test]
fn a_directorys_sql_functions_serve_its_sql_migrations() {
    let env = with_functions();
    write(
        &env.migrations,
        "002_decode_keys.up.sql",
        "UPDATE users SET key = B642BIN(key64 || '') WHERE key64 IS NOT NULL;\n\
         INSERT INTO users (name, key) VALUES ('decoded', b642bin('AP8Q'));\n",
    );
    write(
        &env.migrations,
        "002_decode_keys.down.sql",
        "DELETE FROM users WHERE name = 'decoded';\n",
    );
    env.hsm(&["up"]).assert_success();
    let rows: Vec<(String, Vec<u8>, Option<String>)> = env
        .open()
        .prepare("SELECT name, key, key64 FROM users ORDER BY rowid")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            (
                "Am\u{e9}lie".to_owned(),
                vec![0, 255, 16],
                Some("AP8Q".to_owned())
            ),
            ("decoded".to_owned(), vec![0, 255, 16], None),
        ]
    );
    // The directory's functions are not a migration; round trips and rollbacks use them too.
    assert_eq!(applied(&env.open()), [1, 2]);
    env.hsm(&["test"]).assert_success();
    env.hsm(&["down", "0"]).assert_success();
    env.hsm(&["up", "--dry-run"]).assert_success();
    env.hsm(&["up"]).assert_success();
    assert_eq!(applied(&env.open()), [1, 2]);
}

#[test]
fn without_the_function_component_the_error_says_where_functions_come_from() {
    let env = with_functions();
    std::fs::remove_file(env.migrations.join("sql-functions.wasm")).unwrap();
    env.hsm(&["up"])
        .assert_code(1)
        .assert_stderr_contains("no such function: normalize")
        .assert_stderr_contains("sql-functions.wasm component in its directory");
    assert!(!table_exists(&env.open(), "users"));
    assert_eq!(applied(&env.open()), Vec::<i64>::new());
}

/// The functions run in the sandbox: the migration's time and memory limits stop them, their
/// errors fail the migration, and a trigger or view cannot call them (they would run again,
/// later, as the application's SQL). Each failure leaves the database as it was.
#[test]
fn a_directorys_sql_functions_stay_in_the_sandbox() {
    let env = with_functions();
    env.hsm(&["up"]).assert_success();
    for (sql, expected) in [
        ("SELECT spin();", "exceeded its time limit"),
        ("SELECT length(hog());", "exceeded its memory limit"),
        ("UPDATE users SET name = fail();", "fail() always fails"),
        (
            "CREATE TABLE t (x);\nCREATE TRIGGER t_copy AFTER INSERT ON t BEGIN UPDATE users SET key64 = bin2b64(x'01'); END;\nINSERT INTO t VALUES (1);",
            "unsafe use of bin2b64()",
        ),
        (
            "CREATE VIEW encoded AS SELECT bin2b64(key) AS k FROM users;\nSELECT * FROM encoded;",
            "unsafe use of bin2b64()",
        ),
        ("SELECT nosuch(1);", "provides only normalize, bin2b64"),
    ] {
        write(&env.migrations, "002_hostile.up.sql", sql);
        let before = std::fs::read(&env.db).unwrap();
        env.hsm(&[
            "up",
            "--timeout",
            "2s",
            "--max-memory",
            "64MiB",
            "--no-backup",
        ])
        .assert_code(1)
        .assert_stderr_contains(expected);
        assert_eq!(applied(&env.open()), [1], "{sql}");
        assert!(!table_exists(&env.open(), "t"), "{sql}");
        assert_eq!(
            std::fs::read(&env.db).unwrap().len(),
            before.len(),
            "{sql}: the file changed size"
        );
    }
}

/// The file must be a function component, in the directory: a migration component under that
/// name, or a link to a file outside, is refused by name before anything runs.
#[test]
fn a_function_component_that_is_not_one_is_refused_by_name() {
    let env = with_functions();
    let provider = env.migrations.join("sql-functions.wasm");
    std::fs::copy(hsm_test_artifacts::EXAMPLES[0], &provider).unwrap();
    env.hsm(&["up"])
        .assert_code(1)
        .assert_stderr_contains("sql-functions.wasm")
        .assert_stderr_contains("sql-functions world");
    assert!(!env.db.exists() || applied(&env.open()).is_empty());

    std::fs::remove_file(&provider).unwrap();
    let outside = env.dir.path().join("elsewhere.wasm");
    std::fs::copy(hsm_test_artifacts::GUEST_SQL_FUNCTIONS, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &provider).unwrap();
    env.hsm(&["up"])
        .assert_code(1)
        .assert_stderr_contains("sql-functions.wasm");
    assert!(!env.db.exists() || applied(&env.open()).is_empty());
}

/// A function with the name of one of SQLite's own would change what the schema's CHECKs,
/// expression indexes and generated columns compute (and, removed after the step, hide SQLite's
/// own from the host's checks): refused by name before anything runs.
#[test]
fn a_directory_may_not_replace_sqlites_own_functions() {
    let env = with_functions();
    env.add_as(
        hsm_test_artifacts::GUEST_SQL_FUNCTIONS_SHADOW,
        "sql-functions.wasm",
    );
    env.hsm(&["up"])
        .assert_code(1)
        .assert_stderr_contains("cannot register function `lower`: it is one of SQLite's own");
    assert!(!env.db.exists() || applied(&env.open()).is_empty());
}

/// `pack` takes the set's functions along: the packed directory runs as the SQL one does.
#[test]
fn pack_takes_the_sets_functions_along() {
    let env = with_functions();
    let out = env.dir.path().join("packed");
    env.hsm(&[
        "pack",
        env.migrations.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ])
    .assert_success()
    .assert_stdout_contains("copied")
    .assert_stdout_contains("1 SQL migrations packed.");
    assert!(out.join("sql-functions.wasm").is_file());
    // A packed component imports contract 0.2.0: it links against this 0.2.1 host (semver).
    let packed = std::fs::read_dir(&out)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.file_name().unwrap() != "sql-functions.wasm")
        .unwrap();
    env.hsm(&["inspect", packed.to_str().unwrap()])
        .assert_success()
        .assert_stdout_contains("contract     hsm:migration@0.2.0 (world migration)");
    let mut cmd = env.command();
    cmd.args(["up", "--database"])
        .arg(&env.db)
        .arg("--migrations")
        .arg(&out)
        .arg("--log-file")
        .arg(env.log_file());
    let run = crate::support::Run::from(cmd.output().unwrap());
    run.assert_success();
    assert_eq!(applied(&env.open()), [1]);
}
