//! The adversarial suite: one attack per test, each ending in a clear error naming the cause,
//! the database's schema and data unchanged, and the same process able to run the next
//! migration.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hsm_host::{Database, Error, Limits, Migrator, Runtime, Safety};
use tempfile::TempDir;

use crate::support::{Env, assert_same_bytes, dump, history, table_exists};

pub(crate) struct Arena {
    _dir: TempDir,
    pub(crate) migrator: Migrator,
    pub(crate) db: Database,
}

pub(crate) fn arena(limits: Limits) -> Arena {
    arena_in(Runtime::with_limits(limits).unwrap())
}

/// [`arena`], its components loaded by `runtime`.
pub(crate) fn arena_in(runtime: Runtime) -> Arena {
    let dir = tempfile::tempdir().unwrap();
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

pub(crate) const FAST: Limits = Limits {
    timeout: Duration::from_secs(2),
    max_memory: 64 << 20,
};

/// Runs `attack` and returns the cause the host reported, after checking that nothing but the
/// failed history row changed and that a well-behaved migration still runs afterwards.
pub(crate) fn attack_with(limits: Limits, attack: &str) -> String {
    timed_attack(limits, attack).0
}

/// [`attack_with`], with how long the attacked `up` took.
pub(crate) fn timed_attack(limits: Limits, attack: &str) -> (String, Duration) {
    timed_attack_in(Runtime::with_limits(limits).unwrap(), attack)
}

/// [`timed_attack`], the components loaded by `runtime`.
pub(crate) fn timed_attack_in(runtime: Runtime, attack: &str) -> (String, Duration) {
    let arena = arena_in(runtime);
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

pub(crate) fn set_attack(arena: &Arena, attack: &str) {
    arena
        .db
        .connection()
        .execute("UPDATE attack SET name = ?1", [attack])
        .unwrap();
}

#[track_caller]
pub(crate) fn assert_refused(attack: &str, expected: &[&str]) {
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
