//! The adversarial suite, continued: deadlines that hold while a guest sleeps or the schema
//! slows the host's own checks, one memory budget for a migration and its functions, and the
//! scripts real sets write (table rebuilds, modules' own PRAGMAs) running as written.

use std::path::Path;
use std::time::{Duration, Instant};

use hsm_host::{Error, Runtime};

use crate::sandbox::{FAST, arena, assert_refused, set_attack, timed_attack};
use crate::support::{Env, history, table_exists};

/// A run may take its deadline plus this much (the guest is stopped at the deadline; the
/// rest is rolling back and recording the failure), with room for a loaded machine.
const PAST_DEADLINE: Duration = Duration::from_secs(2);

#[test]
fn sleeping_guests_and_functions_end_at_the_deadline() {
    for attack in ["sleep", "function_sleeps"] {
        let (cause, took) = timed_attack(FAST, attack);
        assert!(
            cause.contains("exceeded its time limit of 2 s"),
            "{attack}: {cause}"
        );
        assert!(
            took < FAST.timeout + PAST_DEADLINE,
            "{attack} held the run for {took:?}"
        );
    }
}

#[test]
fn a_schema_that_slows_the_hosts_checks_still_ends_at_the_deadline() {
    let (cause, took) = timed_attack(FAST, "view_chain");
    assert!(cause.contains("time limit of 2 s"), "{cause}");
    assert!(
        took < FAST.timeout + PAST_DEADLINE,
        "view_chain held the run for {took:?}"
    );
}

#[test]
fn metadata_that_sleeps_or_loops_fails_at_its_limit_and_says_so() {
    let runtime = Runtime::with_limits(FAST).unwrap();
    for path in [
        hsm_test_artifacts::GUEST_METADATA_SLEEPS,
        hsm_test_artifacts::GUEST_METADATA_LOOPS,
    ] {
        let started = Instant::now();
        match runtime.load_file(Path::new(path)) {
            Err(Error::InvalidComponent { reason, .. }) => assert!(
                reason.contains("metadata() did not return within its time limit of 2 s"),
                "{path}: {reason}"
            ),
            Err(other) => panic!("{path}: unexpected error {other}"),
            Ok(_) => panic!("{path} loaded"),
        }
        let took = started.elapsed();
        assert!(
            took < FAST.timeout + PAST_DEADLINE,
            "{path} held loading for {took:?}"
        );
    }
}

#[test]
fn a_function_instance_out_of_memory_names_the_limit() {
    assert_refused(
        "function_memory",
        &["exceeded its memory limit of 64.0 MiB", "--max-memory"],
    );
}

#[test]
fn a_migration_and_its_functions_share_one_memory_budget() {
    assert_refused(
        "split_memory",
        &["exceeded its memory limit of 64.0 MiB", "--max-memory"],
    );
}

#[test]
fn a_table_rebuild_script_runs_as_written() {
    let arena = arena(FAST);
    set_attack(&arena, "rebuild_script");
    arena
        .migrator
        .up(&arena.db, None)
        .unwrap_or_else(|e| panic!("the rebuild script must run as written: {e}"));
    let conn = arena.db.connection();
    let parent_id: i64 = conn
        .query_row("SELECT parent_id FROM child WHERE id = 10", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(parent_id, 1);
    assert!(table_exists(&conn, "survivor"));
    let legacy: i64 = conn
        .query_row("PRAGMA legacy_alter_table", [], |row| row.get(0))
        .unwrap();
    assert_eq!(legacy, 0, "the guest's legacy_alter_table outlived it");
}

#[test]
fn a_failing_statement_of_a_script_is_named_with_its_line() {
    assert_refused(
        "batch_error_line",
        &["no such table: nowhere in statement 3 (line 4:3): `INSERT INTO nowhere VALUES (2);`"],
    );
    assert_refused(
        "begin_in_the_middle",
        &[
            "hsm-host runs each migration in a transaction of its own",
            "in statement 2 (line 1:22): `BEGIN;`",
        ],
    );
}

#[test]
fn sqlite_modules_run_their_own_read_only_pragmas() {
    let arena = arena(FAST);
    set_attack(&arena, "modules");
    arena
        .migrator
        .up(&arena.db, None)
        .unwrap_or_else(|e| panic!("FTS5, FTS4, R*Tree, JSON and dbstat must work: {e}"));
    assert!(table_exists(&arena.db.connection(), "survivor"));
}

#[test]
fn guest_text_is_escaped_and_capped_wherever_it_goes() {
    let env = Env::with_examples();
    env.add(hsm_test_artifacts::GUEST_ATTACK);
    env.add(hsm_test_artifacts::GUEST_HOSTILE_NAME);
    env.hsm(&["up", "7"]).assert_success();
    let conn = env.open();
    conn.execute_batch(
        "CREATE TABLE attack (name TEXT); INSERT INTO attack VALUES ('huge_log_and_error');",
    )
    .unwrap();

    let run = env.hsm(&["up", "8"]);
    run.assert_code(1)
        .assert_stderr_contains("\\u{1b}[31mred\\r\\nforged line")
        .assert_stderr_contains("more bytes cut");
    let log = std::fs::read_to_string(env.log_file()).unwrap();
    for (what, text) in [("stderr", &run.stderr), ("the log file", &log)] {
        assert!(!text.contains('\x1b'), "an escape sequence reached {what}");
        assert!(text.len() < 2 << 20, "{what} got {} bytes", text.len());
        assert!(
            !text.lines().any(|line| line.starts_with("2099-01-01")),
            "a forged line reached {what}"
        );
    }
    let (_, _, _, error) = history(&conn).pop().unwrap();
    let error = error.unwrap();
    assert!(
        error.len() < 10_000,
        "a {} byte error was stored",
        error.len()
    );
    assert!(!error.chars().any(char::is_control), "{error:?}");

    conn.execute("UPDATE attack SET name = 'none'", []).unwrap();
    let run = env.hsm(&["up"]);
    run.assert_success();
    let status = env.hsm(&["status"]);
    let json = env.hsm(&["status", "--json"]);
    for (what, text) in [
        ("up", &run.stderr),
        ("status", &status.stdout),
        ("status --json", &json.stdout),
    ] {
        assert!(
            !text.contains('\x1b') && !text.contains("\\u001b"),
            "{what}: {text}"
        );
        assert!(!text.contains('\u{202e}'), "{what} shows a bidi override");
        assert!(
            !text
                .lines()
                .any(|line| line.trim_start().starts_with("FORGED")),
            "{what}"
        );
    }
    let (name, description): (String, String) = conn
        .query_row(
            "SELECT name, description FROM migrations WHERE version = 9",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert!(name.starts_with("evil\\u{1b}[31m\\nFORGED"), "{name:?}");
    assert!(description.len() < 2000, "{} bytes", description.len());
    assert!(!description.chars().any(char::is_control));
}
