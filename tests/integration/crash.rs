//! Real processes against one database: concurrent deploys, a held lock, `kill -9` at random
//! instants, and a backup that cannot be written.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::support::{Env, Run, applied, assert_same_bytes, columns, history, table_exists};

fn spawn(env: &Env, args: &[&str]) -> Child {
    env.hsm_command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn concurrent_deploys_apply_each_migration_exactly_once() {
    let env = Env::with_examples();
    let children: Vec<Child> = (0..4).map(|_| spawn(&env, &["up"])).collect();
    for child in children {
        let run = Run::from(child.wait_with_output().unwrap());
        run.assert_success();
    }
    let conn = env.open();
    assert_eq!(applied(&conn), [1, 2, 3, 4, 5, 6, 7]);
    let attempts = history(&conn);
    assert_eq!(attempts.len(), 7, "{attempts:?}");
    assert!(attempts.iter().all(|h| h.1 == "up" && h.2 == "success"));
    let versions: Vec<i64> = attempts.iter().map(|h| h.0).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7]);
}

#[test]
fn a_held_lock_makes_others_wait_then_fail_naming_the_holder() {
    let env = Env::with_examples();
    std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
    let held = hsm_host::lock::acquire(&env.db, Duration::ZERO).unwrap();
    let started = Instant::now();
    env.hsm(&["up", "--lock-timeout", "1"])
        .assert_code(1)
        .assert_stderr_contains(&format!("pid {}", std::process::id()))
        .assert_stderr_contains("--lock-timeout");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "it must wait before giving up"
    );
    env.hsm(&["restore", "whatever.db", "--yes"]).assert_code(1);
    drop(held);
    env.hsm(&["up"]).assert_success();
    assert_eq!(applied(&env.open()), [1, 2, 3, 4, 5, 6, 7]);
}

/// What must hold after any crash: the database opens and is sound, and every migration is
/// either wholly applied (schema present, row `applied`) or not at all.
fn assert_consistent(conn: &Connection) -> Vec<i64> {
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let versions = if table_exists(conn, "migrations") {
        applied(conn)
    } else {
        Vec::new()
    };
    let has = |v: i64| versions.contains(&v);
    assert_eq!(has(1), table_exists(conn, "users"));
    if has(1) {
        let users: Vec<String> = columns(conn, "users").into_iter().map(|c| c.0).collect();
        assert_eq!(has(2), users.contains(&"email".to_owned()));
        assert_eq!(has(5), users.contains(&"role".to_owned()));
    }
    assert_eq!(has(4), table_exists(conn, "sessions"));
    assert_eq!(has(7), table_exists(conn, "new_table"));
    assert_eq!(has(8), table_exists(conn, "bulk"));
    if has(8) {
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM bulk", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 300_000, "migration 8 is applied only in full");
    }
    versions
}

#[test]
fn kill_9_at_random_instants_never_leaves_a_half_applied_migration() {
    let env = Env::with_examples();
    env.add(hsm_test_artifacts::GUEST_SLOW_BULK);
    env.hsm(&["up", "7"]).assert_success();

    // How long a whole `up` of the long migration takes here, to aim the kills inside it.
    let started = Instant::now();
    env.hsm(&["up", "--no-backup"]).assert_success();
    let whole = started.elapsed();
    env.hsm(&["down", "--no-backup"]).assert_success();

    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut interrupted_reported = 0;
    for round in 0..12 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let fraction = (seed >> 33) as f64 / (1u64 << 31) as f64;
        let delay = whole.mul_f64(0.2 + 0.8 * fraction);

        let mut child = spawn(&env, &["up", "--no-backup"]);
        std::thread::sleep(delay);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let conn = env.open();
        let versions = assert_consistent(&conn);
        // The attempt the killed process was running, as its lock file holds it, unless its
        // row was committed before the kill.
        let running: Vec<i64> = hsm_host::lock::left_attempt(&env.db)
            .filter(|attempt| !attempt_recorded(&conn, &attempt.started_at))
            .map(|attempt| attempt.version as i64)
            .into_iter()
            .collect();
        drop(conn);

        let status = env.status();
        let reported: Vec<i64> = status["interrupted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(
            reported, running,
            "round {round}: every interrupted run is reported"
        );
        interrupted_reported += reported.len();
        let conn = env.open();
        assert!(
            history(&conn).iter().all(|h| h.2 != "running"),
            "round {round}: marked failed"
        );
        if !running.is_empty() {
            let message: String = conn
                .query_row(
                    "SELECT error_message FROM migration_history ORDER BY id DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(
                message,
                "interrupted: the process ended during the migration"
            );
        }
        drop(conn);
        if versions.contains(&8) {
            env.hsm(&["down", "--no-backup"]).assert_success();
        }
    }
    assert!(
        interrupted_reported > 0,
        "no kill landed inside the migration (whole run took {whole:?}); the test aimed badly"
    );
    // After all that, a normal run still completes.
    env.hsm(&["up"]).assert_success();
    assert_consistent(&env.open());
}

fn attempt_recorded(conn: &Connection, started_at: &str) -> bool {
    conn.query_row(
        "SELECT count(*) > 0 FROM migration_history WHERE started_at = ?1",
        [started_at],
        |r| r.get(0),
    )
    .unwrap()
}

/// Every column of every history row, in order.
fn history_rows(conn: &Connection) -> Vec<HistoryRow> {
    conn.prepare(
        "SELECT id, version, direction, status, backup_path, error_message, started_at,
                completed_at
         FROM migration_history ORDER BY id",
    )
    .unwrap()
    .query_map([], |r| {
        Ok(HistoryRow {
            id: r.get(0)?,
            version: r.get(1)?,
            direction: r.get(2)?,
            status: r.get(3)?,
            backup_path: r.get(4)?,
            error_message: r.get(5)?,
            started_at: r.get(6)?,
            completed_at: r.get(7)?,
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

#[derive(Debug, PartialEq)]
struct HistoryRow {
    id: i64,
    version: i64,
    direction: String,
    status: String,
    backup_path: Option<String>,
    error_message: Option<String>,
    started_at: String,
    completed_at: Option<String>,
}

/// One commit per migration, and the tables still end as the seed protocol leaves them (a
/// `running` row committed before the migration, closed after it, turned into an interrupted
/// failure by the next run when the process died) wherever the process is killed: after the
/// attempt is written, inside the transaction before COMMIT, after COMMIT, and after a failed
/// migration's rollback.
#[test]
fn a_kill_at_each_point_of_a_step_leaves_the_rows_the_seed_protocol_leaves() {
    const INTERRUPTED: &str = "interrupted: the process ended during the migration";
    for (point, failing, applied_after, outcome) in [
        ("attempt-written", false, false, Some(INTERRUPTED)),
        ("before-commit", false, false, Some(INTERRUPTED)),
        ("committed", false, true, None),
        ("rolled-back", true, false, Some(INTERRUPTED)),
    ] {
        let env = Env::with_examples();
        env.hsm(&["up", "6"]).assert_success();
        if failing {
            env.hsm(&["up"]).assert_success();
            env.add(hsm_test_artifacts::GUEST_FAILS_UP);
        }
        let version = if failing { 8 } else { 7 };
        let before = history_rows(&env.open());

        let output = env
            .hsm_command(&["up"])
            .env("HSM_KILL_AT", point)
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(output.status.signal(), Some(libc::SIGKILL), "{point}");
        let left = hsm_host::lock::left_attempt(&env.db).expect("the attempt is in the lock file");
        assert_eq!(left.version, version, "{point}");

        // The next command records what the dead process left, once.
        let status = env.status();
        let reported = status["interrupted"].as_array().unwrap().len();
        assert_eq!(
            reported,
            usize::from(outcome.is_some()),
            "{point}: {status}"
        );
        assert!(
            hsm_host::lock::left_attempt(&env.db).is_none(),
            "{point}: cleared"
        );
        env.status();

        let conn = env.open();
        let rows = history_rows(&conn);
        assert_eq!(
            rows[..before.len()],
            before[..],
            "{point}: earlier rows untouched"
        );
        let [row] = &rows[before.len()..] else {
            panic!("{point}: one row for the attempt: {rows:#?}");
        };
        assert_eq!(row.id, before.last().unwrap().id + 1, "{point}");
        assert_eq!(row.version, version as i64, "{point}");
        assert_eq!(row.direction, "up", "{point}");
        assert_eq!(
            row.status,
            if outcome.is_some() {
                "failed"
            } else {
                "success"
            }
        );
        assert_eq!(row.error_message.as_deref(), outcome, "{point}");
        assert_eq!(row.started_at, left.started_at, "{point}");
        assert!(
            row.completed_at.as_deref() >= Some(row.started_at.as_str()),
            "{point}"
        );
        let backup = row.backup_path.as_deref().expect("the run's backup");
        assert!(Path::new(backup).exists(), "{point}: {backup}");
        assert_eq!(left.backup_path.as_deref(), Some(backup), "{point}");
        let is_applied = applied(&conn).contains(&(version as i64));
        assert_eq!(is_applied, applied_after, "{point}");
        assert_consistent(&conn);
        drop(conn);

        // And a run afterwards goes on from there.
        if !failing {
            env.hsm(&["up"]).assert_success();
            assert_eq!(applied(&env.open()), [1, 2, 3, 4, 5, 6, 7]);
        }
    }
}

/// A migration that fails is recorded with its error, in one row, and nothing is left in the
/// lock file.
#[test]
fn a_failed_migration_has_one_failed_row_and_leaves_no_attempt() {
    let env = Env::with_examples();
    env.hsm(&["up"]).assert_success();
    env.add(hsm_test_artifacts::GUEST_FAILS_UP);
    env.hsm(&["up"]).assert_code(1);
    let rows = history_rows(&env.open());
    let last = rows.last().unwrap();
    assert_eq!((last.version, last.status.as_str()), (8, "failed"));
    assert!(
        last.error_message
            .as_deref()
            .unwrap()
            .contains("refusing on purpose"),
        "{last:?}"
    );
    assert_eq!(rows.iter().filter(|r| r.version == 8).count(), 1);
    assert!(hsm_host::lock::left_attempt(&env.db).is_none());
}

#[test]
fn a_backup_that_cannot_be_written_stops_the_run_before_any_change() {
    let env = Env::with_examples();
    env.hsm(&["up", "3"]).assert_success();
    // Make the database larger than the file size limit the child will get.
    crate::support::add_ballast(&env.open());
    let before = std::fs::read(&env.db).unwrap();
    assert!(before.len() > 512 * 1024);

    let mut cmd = env.hsm_command(&["up"]);
    // SAFETY: only async-signal-safe libc calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // Writing past the limit then fails with EFBIG instead of killing the process.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: 256 * 1024,
                rlim_max: 256 * 1024,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let run = Run::from(cmd.output().unwrap());
    run.assert_code(1)
        .assert_stderr_contains("cannot write a backup")
        .assert_stderr_contains("the database was not changed");
    assert_same_bytes(&env.db, &before, "the database");
    let backups = env.db.parent().unwrap().join("backups");
    let leftovers: Vec<String> = std::fs::read_dir(&backups)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "partial backup left behind: {leftovers:?}"
    );
    assert_eq!(applied(&env.open()), [1, 2, 3]);
}
