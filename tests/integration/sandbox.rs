//! The adversarial suite: one attack per test, each ending in a clear error naming the cause,
//! the database's schema and data unchanged, and the same process able to run the next
//! migration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hsm_host::{Database, Error, Limits, Migrator, Runtime, Safety};
use tempfile::TempDir;

use crate::support::{Env, dump, history, table_exists};

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
    let arena = arena(limits);
    arena
        .db
        .connection()
        .execute("UPDATE attack SET name = ?1", [attack])
        .unwrap();
    let before = dump(&arena.db.connection(), &["migration_history"]);

    let cause = match arena.migrator.up(&arena.db, None) {
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
    cause
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
    assert_refused("commit_then_write", &["hsm-host owns the transaction"]);
    assert_refused("savepoint", &["hsm-host owns the transaction"]);
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
    assert_refused(
        "foreign_keys_on",
        &["PRAGMA foreign_keys = ON is not allowed"],
    );
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
fn flat_batches_that_are_not_whole_sets_are_refused() {
    assert_refused(
        "flat_misfit",
        &[
            "got 1 values, not a whole number of sets of 2",
            "not a whole number of sets of 0",
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
fn a_component_that_imports_the_network_is_refused_at_load() {
    let env = Env::with_examples();
    env.add(hsm_test_artifacts::GUEST_NET);
    env.hsm(&["status"])
        .assert_code(1)
        .assert_stderr_contains("guest_net.wasm")
        .assert_stderr_contains("migration 9 imports wasi:sockets/")
        .assert_stderr_contains("which hsm-host does not provide");
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
