//! Going back: `down` reporting the rows its dropped tables took (and not those a rename or a
//! rebuild kept), `redo` running a migration down and up again, and `export` writing an
//! applied component back out.

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

/// A redo whose up half fails says its down half stays done, in text and in JSON.
#[test]
fn a_redo_whose_up_fails_says_the_down_stays_done() {
    let env = crate::support::Env::empty();
    let m = &env.migrations;
    std::fs::write(m.join("001_a.up.sql"), "CREATE TABLE a (x);").unwrap();
    std::fs::write(m.join("001_a.down.sql"), "DROP TABLE a;").unwrap();
    env.hsm(&["up"]).assert_success();
    // The up file changed since: redo's up half now fails.
    std::fs::write(
        m.join("001_a.up.sql"),
        "CREATE TABLE a (x); INSERT INTO nowhere VALUES (1);",
    )
    .unwrap();
    env.hsm(&["repair"]).assert_success();
    let run = env.hsm(&["redo", "--json"]);
    run.assert_code(1);
    let error: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(error["shape_version"], 2, "{}", run.stdout);
    assert_eq!(
        error["error"]["completed"],
        serde_json::json!([1]),
        "{}",
        run.stdout
    );
    assert!(
        error["error"]["cause"]
            .as_str()
            .unwrap()
            .contains("the database is at version 0"),
        "{}",
        run.stdout
    );
    assert_eq!(crate::support::applied(&env.open()), Vec::<i64>::new());
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

/// What `down` reports as removed is what `DROP TABLE`s took: a rename moves rows and a table
/// rebuilt under its own name keeps them (nothing removed), a table dropped and made again
/// empty lost them all (even though the schema reads the same before and after).
#[test]
fn renames_and_rebuilds_remove_nothing_and_a_drop_and_recreate_does() {
    let env = crate::support::Env::empty();
    let m = &env.migrations;
    std::fs::write(
        m.join("001_a.up.sql"),
        "CREATE TABLE users (x); CREATE TABLE t\u{e9}st (x); CREATE TABLE keep (x);",
    )
    .unwrap();
    std::fs::write(
        m.join("001_a.down.sql"),
        "DROP TABLE users; DROP TABLE keep;",
    )
    .unwrap();
    std::fs::write(
        m.join("002_rename.up.sql"),
        "ALTER TABLE users RENAME TO accounts;",
    )
    .unwrap();
    std::fs::write(
        m.join("002_rename.down.sql"),
        "ALTER TABLE accounts RENAME TO users;",
    )
    .unwrap();
    std::fs::write(m.join("003_rebuild.up.sql"), "SELECT 1;").unwrap();
    std::fs::write(
        m.join("003_rebuild.down.sql"),
        "CREATE TABLE keep_new (x); INSERT INTO keep_new SELECT x FROM keep;
         DROP TABLE keep; ALTER TABLE keep_new RENAME TO keep;
         DROP TABLE t\u{e9}st; CREATE TABLE t\u{e9}st (x);",
    )
    .unwrap();
    env.hsm(&["up"]).assert_success();
    env.open()
        .execute_batch(
            "INSERT INTO accounts VALUES (1), (2), (3);
             INSERT INTO keep VALUES (1), (2);
             INSERT INTO t\u{e9}st VALUES (1), (2), (3), (4);",
        )
        .unwrap();
    let steps = |run: &crate::support::Run| -> Vec<(u64, u64)> {
        let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        report["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["version"].as_u64().unwrap(),
                    s["rows_dropped"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    // Down to 1: the rebuild keeps keep's 2 rows and loses test's 4; the rename none.
    let run = env.hsm(&["down", "1", "--dry-run", "--json"]);
    run.assert_success();
    assert_eq!(steps(&run), [(3, 4), (2, 0)], "{}", run.stdout);
    let run = env.hsm(&["down", "1", "--json"]);
    run.assert_success();
    assert_eq!(steps(&run), [(3, 4), (2, 0)], "{}", run.stdout);
    let kept: i64 = env
        .open()
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, 3);
    // Down to 0: users (3 rows) and keep (2 rows) dropped.
    let run = env.hsm(&["down", "0", "--json"]);
    run.assert_success();
    assert_eq!(steps(&run), [(1, 5)], "{}", run.stdout);
}
