//! The adversarial suite: one attack per test, each ending in a clear error naming the cause,
//! the database's schema and data unchanged, and the same process able to run the next
//! migration.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hsm_host::{Database, Error, Limits, Migrator, Runtime, Safety};
use tempfile::TempDir;

use crate::support::{Env, assert_same_bytes, dump, history, table_exists};

struct Arena {
    _dir: TempDir,
    migrator: Migrator,
    db: Database,
}

fn arena(limits: Limits) -> Arena {
    let dir = tempfile::tempdir().unwrap();
    let runtime = Runtime::with_limits(limits).unwrap();
    let components = hsm_test_artifacts::EXAMPLES
        .iter()
        .chain([&hsm_test_artifacts::GUEST_ATTACK])
        .map(|path| runtime.load_file(Path::new(path)).unwrap())
        .collect();
    let migrator = Migrator::new(runtime, components)
        .unwrap()
        .with_safety(Safety {
            backups: None,
            ..Safety::default()
        });
    let db = Database::open(dir.path().join("arena.db")).unwrap();
    migrator.up(&db, Some(7)).unwrap();
    db.connection()
        .execute_batch(
            "CREATE TABLE attack (name TEXT NOT NULL); INSERT INTO attack VALUES ('none');",
        )
        .unwrap();
    Arena {
        _dir: dir,
        migrator,
        db,
    }
}

const FAST: Limits = Limits {
    timeout: Duration::from_secs(2),
    max_memory: 64 << 20,
};

/// Runs `attack` and returns the cause the host reported, after checking that nothing but the
/// failed history row changed and that a well-behaved migration still runs afterwards.
fn attack_with(limits: Limits, attack: &str) -> String {
    timed_attack(limits, attack).0
}

/// [`attack_with`], with how long the attacked `up` took.
fn timed_attack(limits: Limits, attack: &str) -> (String, Duration) {
    let arena = arena(limits);
    set_attack(&arena, attack);
    let before = dump(&arena.db.connection(), &["migration_history"]);

    let started = Instant::now();
    let outcome = arena.migrator.up(&arena.db, None);
    let took = started.elapsed();
    let cause = match outcome {
        Err(Error::MigrationFailed {
            version: 8, cause, ..
        }) => cause,
        Err(other) => panic!("{attack}: unexpected error {other}"),
        Ok(_) => panic!("{attack}: the attack was applied"),
    };

    let conn = arena.db.connection();
    assert_eq!(
        dump(&conn, &["migration_history"]),
        before,
        "{attack} changed the database"
    );
    let last = history(&conn).pop().unwrap();
    assert_eq!((last.0, last.2.as_str()), (8, "failed"), "{attack}");
    conn.execute("UPDATE attack SET name = 'none'", []).unwrap();
    drop(conn);
    arena
        .migrator
        .up(&arena.db, None)
        .unwrap_or_else(|e| panic!("after {attack}, the next migration failed: {e}"));
    assert!(table_exists(&arena.db.connection(), "survivor"));
    (cause, took)
}

fn set_attack(arena: &Arena, attack: &str) {
    arena
        .db
        .connection()
        .execute("UPDATE attack SET name = ?1", [attack])
        .unwrap();
}

#[track_caller]
fn assert_refused(attack: &str, expected: &[&str]) {
    let cause = attack_with(FAST, attack);
    for needle in expected {
        assert!(
            cause.contains(needle),
            "{attack}: {cause:?} lacks {needle:?}"
        );
    }
}

#[test]
fn infinite_loop_hits_the_time_limit() {
    assert_refused("infinite_loop", &["exceeded its time limit of 2 s"]);
}

#[test]
fn unbounded_recursive_cte_is_interrupted_at_the_deadline() {
    assert_refused("recursive_cte", &["exceeded its time limit of 2 s"]);
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    assert_refused("memory_bomb", &["exceeded its memory limit of 64.0 MiB"]);
}

#[test]
fn multi_gigabyte_allocation_hits_the_memory_limit() {
    assert_refused(
        "multi_gb_text",
        &["exceeded its memory limit of 64.0 MiB", "GiB"],
    );
}

#[test]
fn stack_overflow_traps() {
    assert_refused("stack_overflow", &["trapped", "call stack exhausted"]);
}

#[test]
fn attach_is_refused_and_no_file_appears() {
    let file = PathBuf::from("/tmp/hsm-attack-attach.db");
    let _ = std::fs::remove_file(&file);
    assert_refused(
        "attach",
        &[
            "refused by hsm-host's policy",
            "ATTACH and DETACH are not allowed",
        ],
    );
    assert!(!file.exists());
}

#[test]
fn vacuum_into_is_refused_and_no_file_appears() {
    let file = PathBuf::from("/tmp/hsm-attack-vacuum.db");
    let _ = std::fs::remove_file(&file);
    assert_refused("vacuum_into", &["VACUUM is not allowed"]);
    assert!(!file.exists());
}

#[test]
fn transaction_control_is_refused() {
    assert_refused(
        "commit_then_write",
        &["hsm-host runs each migration in a transaction of its own"],
    );
    assert_refused(
        "savepoint",
        &["hsm-host runs each migration in a transaction of its own"],
    );
}

#[test]
fn tracking_tables_cannot_be_changed() {
    assert_refused("update_migrations", &["`migrations` belongs to hsm-host"]);
    assert_refused("drop_history", &["`migration_history` belongs to hsm-host"]);
    assert_refused(
        "trigger_on_tracking",
        &["`migration_history` belongs to hsm-host"],
    );
}

#[test]
fn writing_pragmas_are_refused() {
    assert_refused(
        "writable_schema",
        &["PRAGMA writable_schema = ON is not allowed"],
    );
    assert_refused("foreign_keys_on", &["foreign_keys reads 0"]);
}

#[test]
fn load_extension_is_refused() {
    assert_refused("load_extension", &["load_extension is not allowed"]);
}

#[test]
fn the_guest_sees_no_files_and_no_environment() {
    let passwd = attack_with(FAST, "read_passwd");
    assert!(passwd.starts_with("blocked: /etc/passwd"), "{passwd}");
    assert_refused("read_env", &["blocked: no environment variables"]);
}

#[test]
fn huge_results_and_huge_statements_are_bounded() {
    assert_refused(
        "huge_result",
        &[
            "larger than hsm-host's limit of 1000000 rows",
            "read it in pages",
        ],
    );
    assert_refused(
        "huge_sql",
        &[
            "over hsm-host's limit of 4.0 MiB",
            "pass data as parameters",
        ],
    );
}

#[test]
fn pages_of_parameters_that_do_not_fit_are_refused() {
    assert_refused(
        "page_misfit",
        &[
            "parameter 1 of set 1: its span 2..+8 is outside the 3 bytes sent",
            "its span 4294967295..+2 is outside the 3 bytes sent",
            "parameter 1 of set 2: its TEXT is not valid UTF-8",
            "got 1 cells, not a whole number of sets of 2",
            "got 1 cells, not a whole number of sets of 0",
        ],
    );
}

#[test]
fn panics_and_errors_are_reported() {
    assert_refused("panic", &["trapped", "attack: deliberate panic"]);
    assert_refused("error", &["attack: deliberate error"]);
}

#[test]
fn flooding_stdout_is_cut_off() {
    assert_refused(
        "flood_output",
        &["it printed more than 1.0 MiB to stdout or stderr"],
    );
}

#[test]
fn guest_sql_functions_are_bounded_and_direct_only() {
    assert_refused("function_loop", &["exceeded its time limit of 2 s"]);
    assert_refused("function_in_trigger", &["unsafe use of spin()"]);
}

#[test]
fn guest_output_cannot_drive_the_terminal_and_time_limit_comes_from_the_cli() {
    let env = Env::with_examples();
    env.add(hsm_test_artifacts::GUEST_ATTACK);
    env.hsm(&["up", "7"]).assert_success();
    let conn = env.open();
    conn.execute_batch(
        "CREATE TABLE attack (name TEXT); INSERT INTO attack VALUES ('print_escapes');",
    )
    .unwrap();
    let run = env.hsm(&["up"]);
    run.assert_code(1)
        .assert_stderr_contains("terminal takeover");
    assert!(
        !run.stderr.contains('\x1b'),
        "escape sequences reached the terminal: {:?}",
        run.stderr
    );

    conn.execute("UPDATE attack SET name = 'infinite_loop'", [])
        .unwrap();
    env.hsm(&["up", "--timeout", "1s"])
        .assert_code(1)
        .assert_stderr_contains(
            "migration 8 (attack) failed during up: it exceeded its time limit of 1 s",
        );
}

#[test]
fn a_component_that_reaches_for_the_network_gets_nothing_and_keeps_nothing() {
    // Sockets are linked (Python's runtime imports them) with every capability refused.
    let env = Env::with_examples();
    env.add(hsm_test_artifacts::GUEST_NET);
    let run = env.hsm(&["up"]);
    run.assert_code(1)
        .assert_stderr_contains("migration 9 (net) failed during up: blocked: tcp:")
        .assert_stderr_contains("; udp:")
        .assert_stderr_contains("; lookup:");
    assert!(!run.stderr.contains("LEAK"), "{}", run.stderr);
    assert_eq!(crate::support::applied(&env.open()), [1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn random_and_truncated_bytes_are_clean_errors() {
    let runtime = Runtime::new().unwrap();
    let real = std::fs::read(hsm_test_artifacts::V001_INITIAL_SCHEMA).unwrap();
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for i in 0..20 {
        let len = (next() % 4096) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if i % 2 == 0 {
            // Random bytes behind a valid component header get past the first check.
            bytes.splice(0..0, *b"\0asm\x0d\0\x01\0");
        }
        cases.push(bytes);
    }
    for step in 1..30 {
        cases.push(real[..real.len() * step / 30].to_vec());
    }
    let mut flipped = real.clone();
    for _ in 0..64 {
        let at = (next() as usize) % flipped.len();
        flipped[at] ^= 0xff;
    }
    cases.push(flipped);
    for (i, bytes) in cases.iter().enumerate() {
        let origin = PathBuf::from(format!("case-{i}.wasm"));
        match runtime.load(origin, bytes) {
            Err(Error::InvalidComponent { path, reason }) => {
                assert_eq!(path, PathBuf::from(format!("case-{i}.wasm")));
                assert!(!reason.is_empty());
            }
            Err(other) => panic!("case {i}: unexpected error kind {other}"),
            // A flip may land in a custom section and leave a valid component.
            Ok(component) => assert_eq!(component.version(), 1, "case {i}"),
        }
    }
}

// Round two: the transaction, name resolution, schema traps, host memory, wall time, guest
// text, errors that name their limit, and SQLite's own modules.

#[test]
fn ending_the_transaction_stops_the_migration_and_keeps_nothing() {
    for attack in [
        "or_rollback_then_write",
        "conflict_rollback_then_write",
        "raise_rollback_then_write",
        "rollback_in_batch_then_write",
    ] {
        let cause = attack_with(FAST, attack);
        assert!(
            cause.contains("it ended hsm-host's transaction"),
            "{attack}: {cause}"
        );
    }
}

#[test]
fn writes_after_an_interrupt_at_the_deadline_are_not_kept() {
    assert_refused("interrupt_then_write", &["exceeded its time limit of 2 s"]);
}

#[test]
fn a_dry_run_whose_guest_ends_the_transaction_leaves_the_file_byte_for_byte() {
    let arena = arena(FAST);
    set_attack(&arena, "or_rollback_then_write");
    let path = arena.db.path().unwrap().to_owned();
    let before = std::fs::read(&path).unwrap();
    match arena.migrator.dry_run(&arena.db, None) {
        Err(Error::MigrationFailed { cause, .. }) => {
            assert!(cause.contains("it ended hsm-host's transaction"), "{cause}")
        }
        other => panic!("the dry run was not refused: {other:?}"),
    }
    assert_same_bytes(&path, &before, "the dry run");
}

#[test]
fn down_is_guarded_like_up() {
    let arena = arena(FAST);
    arena.migrator.up(&arena.db, None).unwrap();
    for (attack, expected) in [
        (
            "raise_rollback_then_write",
            "it ended hsm-host's transaction",
        ),
        (
            "trap_trigger_writes_host",
            "`migration_history` belongs to hsm-host",
        ),
        (
            "temp_migrations",
            "`migrations` is the name of a hsm-host table",
        ),
    ] {
        set_attack(&arena, attack);
        let before = dump(&arena.db.connection(), &["migration_history"]);
        match arena.migrator.down(&arena.db, None) {
            Err(Error::MigrationFailed {
                version: 8, cause, ..
            }) => assert!(cause.contains(expected), "{attack}: {cause}"),
            other => panic!("{attack}: down was not refused: {other:?}"),
        }
        assert_eq!(
            dump(&arena.db.connection(), &["migration_history"]),
            before,
            "{attack} changed the database"
        );
    }
    set_attack(&arena, "none");
    arena.migrator.down(&arena.db, None).unwrap();
    assert!(!table_exists(&arena.db.connection(), "survivor"));
}

#[test]
fn temp_objects_named_like_host_tables_are_refused() {
    assert_refused(
        "temp_migrations",
        &["`migrations` is the name of a hsm-host table"],
    );
    assert_refused(
        "temp_view_history",
        &["`migration_history` is the name of a hsm-host table"],
    );
    assert_refused(
        "temp_components",
        &["refused by hsm-host's policy", "`hsm_components`"],
    );
}

#[test]
fn the_next_migration_inherits_no_temp_objects_functions_or_statements() {
    let arena = arena(FAST);
    set_attack(&arena, "temp_leftovers");
    arena.migrator.up(&arena.db, None).unwrap();
    let conn = arena.db.connection();
    let temp: i64 = conn
        .query_row("SELECT count(*) FROM temp.sqlite_schema", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(temp, 0, "temp objects outlived their migration");
    let status: String = conn
        .query_row(
            "SELECT status FROM main.migrations WHERE version = 8",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(status, "applied");
    let error = conn
        .execute_batch("SELECT spin(1)")
        .unwrap_err()
        .to_string();
    assert!(error.contains("no such function: spin"), "{error}");
    assert!(!conn.is_busy(), "a statement of the guest is still running");
    // The temp trigger on main.attack is gone with its table.
    conn.execute("INSERT INTO attack VALUES ('after')", [])
        .unwrap();
    let users: i64 = conn
        .query_row(
            "SELECT count(*) FROM users WHERE email = 'spied'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(users, 0);
}

#[test]
fn traps_left_in_the_schema_are_refused_by_name() {
    assert_refused(
        "trap_trigger_writes_host",
        &[
            "table `users`",
            "`migration_history` belongs to hsm-host",
            "`wipe_history`",
        ],
    );
    assert_refused(
        "trap_trigger_calls_function",
        &["table `hooked`", "no such function: spin"],
    );
    assert_refused("trap_view_calls_function", &["spin"]);
    // SQLite itself refuses the guest's (direct-only) function in a CHECK as it is made.
    assert_refused("trap_check_calls_function", &["spin()"]);
    assert_refused(
        "trap_sequence",
        &["sqlite_sequence's rows of hsm-host's tables"],
    );
}

#[test]
fn an_application_may_set_its_own_autoincrement_counter() {
    let arena = arena(FAST);
    set_attack(&arena, "own_sequence");
    arena.migrator.up(&arena.db, None).unwrap();
    let seq: i64 = arena
        .db
        .connection()
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'survivor'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(seq, 100);
}

#[test]
fn values_statements_and_cursors_are_bounded() {
    assert_refused("huge_value", &["string or blob too big"]);
    assert_refused("huge_printf", &["bounded: printf built nothing"]);
    assert_refused("many_statements", &["too many live prepared statements"]);
    assert_refused("many_cursors", &["too many open cursors"]);
}

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
