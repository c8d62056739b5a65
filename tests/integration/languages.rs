//! Migrations written in Python (componentize-py) and JavaScript (componentize-js), through the
//! real binary: the examples apply, pass the round-trip test and roll back next to the Rust
//! ones; failures roll back with a clear message; the sandbox's core cases hold for them.
//! Their components are large (an interpreter each), so every test here goes through the
//! shared compile cache.

use hsm_test_artifacts::{
    JS_ATTACK, JS_V009_ADD_EMAIL_DOMAINS, PY_ATTACK, PY_BOTH_DIALECTS, PY_V008_ADD_DISPLAY_NAMES,
    lang_guest,
};

use crate::support::{Env, applied, table_exists};

#[test]
fn python_and_javascript_examples_apply_pass_the_round_trip_test_and_roll_back() {
    let env = Env::with_examples();
    env.add(lang_guest(PY_V008_ADD_DISPLAY_NAMES));
    env.add(lang_guest(JS_V009_ADD_EMAIL_DOMAINS));
    env.hsm(&["up", "7"]).assert_success();
    env.open()
        .execute_batch(
            "INSERT INTO users (name, email) VALUES ('  zoë   ångström ', 'Zoë@GMail.com'),
                                                   ('ADA lovelace', 'ada@Example.ORG'),
                                                   ('nobody', NULL);",
        )
        .unwrap();
    // The round trip of each, on a scratch copy of the seeded database: down restores the
    // schema exactly, and up again reproduces it.
    let db = env.db.to_str().unwrap().to_owned();
    let test = env.hsm(&["test", "--against", &db, "--json"]);
    test.assert_success();
    let report: serde_json::Value = serde_json::from_str(&test.stdout).unwrap();
    let outcomes: Vec<(u64, String)> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["version"].as_u64().unwrap(),
                c["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [(8, "pass".into()), (9, "pass".into())],
        "{report}"
    );
    env.hsm(&["up"])
        .assert_success()
        .assert_stdout_contains("add_display_names")
        .assert_stdout_contains("add_email_domains");
    let rows: Vec<(String, String, Option<String>, Option<i64>)> = env
        .open()
        .prepare("SELECT display_name, name_key, email_domain, free_mail FROM users ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        [
            (
                "Zoë Ångström".into(),
                "zoe angstrom".into(),
                Some("gmail.com".into()),
                Some(1)
            ),
            (
                "Ada Lovelace".into(),
                "ada lovelace".into(),
                Some("example.org".into()),
                Some(0)
            ),
            ("Nobody".into(), "nobody".into(), None, None),
        ]
    );
    env.hsm(&["down", "7"]).assert_success();
    let columns: Vec<String> = crate::support::columns(&env.open(), "users")
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(columns, ["id", "name", "email", "role"]);
    assert_eq!(applied(&env.open()), [1, 2, 3, 4, 5, 6, 7]);
}

/// Runs the attack guest's `attack` against a database at version 7; returns its stderr after
/// checking that it failed and left the database as it was.
fn attack(guest: &str, attack: &str) -> String {
    let env = Env::with_examples();
    env.add(guest);
    env.hsm(&["up", "7"]).assert_success();
    env.open()
        .execute_batch(&format!(
            "CREATE TABLE attack (name TEXT); INSERT INTO attack VALUES ('{attack}');"
        ))
        .unwrap();
    let run = env.hsm(&["up", "--timeout", "5s", "--max-memory", "128MiB"]);
    run.assert_code(1);
    let conn = env.open();
    assert_eq!(applied(&conn), [1, 2, 3, 4, 5, 6, 7], "{attack}");
    let left: Vec<String> = conn
        .prepare("SELECT name FROM attack")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(left, [attack], "{attack}: its writes were kept");
    assert!(!table_exists(&conn, "survivor"));
    assert!(!run.stderr.contains("LEAK"), "{attack}: {}", run.stderr);
    run.stderr
}

fn assert_attack(guest: &str, name: &str, expected: &[&str]) {
    let stderr = attack(guest, name);
    for needle in expected {
        assert!(
            stderr.contains(needle),
            "{name}: {stderr:?} lacks {needle:?}"
        );
    }
}

#[test]
fn python_failures_roll_back_with_a_clear_message_and_the_sandbox_holds() {
    let guest = lang_guest(PY_ATTACK);
    let failed = "migration 8 (py_attack) failed during up: ";
    assert_attack(
        guest,
        "error",
        &[failed, "ValueError: refusing on purpose after writing"],
    );
    assert_attack(
        guest,
        "sql_error",
        &[
            failed,
            "no such table: no_such_table (SQLite code 1) in `INSERT INTO no_such_table",
        ],
    );
    assert_attack(guest, "trap", &[failed, "trapped"]);
    assert_attack(guest, "streams", &[failed, "RuntimeError: 40 streams read"]);
    assert_attack(guest, "dialect", &[failed, "dialect sqlite, sqlstate None"]);
    assert_attack(guest, "filesystem", &[failed, "blocked:", "/etc/passwd"]);
    assert_attack(guest, "network", &[failed, "blocked:"]);
    assert_attack(
        guest,
        "attach",
        &[failed, "refused by hsm-host's policy", "(SQLite code 23)"],
    );
    assert!(!std::path::Path::new("/tmp/hsm-py-attach.db").exists());
    assert_attack(
        guest,
        "tracking",
        &[failed, "`migrations` belongs to hsm-host"],
    );
    assert_attack(guest, "loop", &[failed, "exceeded its time limit of 5 s"]);
    assert_attack(
        guest,
        "memory",
        &[failed, "exceeded its memory limit of 128.0 MiB"],
    );
}

#[test]
fn javascript_failures_roll_back_with_a_clear_message_and_the_sandbox_holds() {
    let guest = lang_guest(JS_ATTACK);
    let failed = "migration 8 (js_attack) failed during up: ";
    assert_attack(
        guest,
        "error",
        &[failed, "RangeError: refusing on purpose after writing"],
    );
    assert_attack(
        guest,
        "sql_error",
        &[failed, "no such table: no_such_table (SQLite code 1)"],
    );
    assert_attack(guest, "streams", &[failed, "Error: 40 streams read"]);
    assert_attack(
        guest,
        "dialect",
        &[failed, "dialect sqlite, sqlstate undefined"],
    );
    // Built without HTTP (`-d http fetch-event`): fetch is there, and traps when called.
    assert_attack(guest, "network", &[failed, "trapped"]);
    assert_attack(
        guest,
        "attach",
        &[failed, "refused by hsm-host's policy", "(SQLite code 23)"],
    );
    assert!(!std::path::Path::new("/tmp/hsm-js-attach.db").exists());
    assert_attack(
        guest,
        "tracking",
        &[failed, "`migrations` belongs to hsm-host"],
    );
    assert_attack(guest, "loop", &[failed, "exceeded its time limit of 5 s"]);
    assert_attack(
        guest,
        "memory",
        &[failed, "exceeded its memory limit of 128.0 MiB"],
    );
}

#[test]
fn a_python_migration_declared_for_both_dialects_runs_on_sqlite_and_says_so() {
    let env = Env::empty();
    let built = lang_guest(PY_BOTH_DIALECTS);
    let undeclared = env.dir.path().join("undeclared.wasm");
    std::fs::copy(built, &undeclared).unwrap();
    env.hsm(&["inspect", undeclared.to_str().unwrap()])
        .assert_success()
        .assert_stdout_contains("dialects     sqlite (it declares none)");
    let declared = env.migrations.join("1_both_dialects.wasm");
    let declare = |file: &str, dialects: &str| {
        env.hsm(&[
            "declare",
            file,
            "--dialects",
            dialects,
            "-o",
            declared.to_str().unwrap(),
        ])
    };
    declare(undeclared.to_str().unwrap(), "sqlite,postgresql")
        .assert_success()
        .assert_stdout_contains("declares: sqlite, postgresql");
    // An unknown dialect is a usage error, and the file stays as it was.
    let before = std::fs::read(&declared).unwrap();
    declare(declared.to_str().unwrap(), "sqlite,oracle")
        .assert_code(2)
        .assert_stderr_contains("`oracle` is not a dialect hsm-host knows");
    assert_eq!(std::fs::read(&declared).unwrap(), before);
    env.hsm(&["inspect", declared.to_str().unwrap()])
        .assert_success()
        .assert_stdout_contains("dialects     sqlite, postgresql");

    env.hsm(&["up"]).assert_success();
    let notes: Vec<(String, Option<String>)> = env
        .open()
        .prepare("SELECT note, sqlstate FROM dialect_notes ORDER BY id")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        notes,
        [
            ("sqlite".to_owned(), None),
            ("duplicate (code 2067)".to_owned(), None)
        ]
    );
    env.hsm(&["down", "0"]).assert_success();
    assert!(!table_exists(&env.open(), "dialect_notes"));
}
