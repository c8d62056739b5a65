//! Other sessions at the same time: two `up` processes, a lock held by the application, and
//! a process killed in the middle of a migration.

use std::time::{Duration, Instant};

use crate::support::PgEnv;

#[test]
fn two_racing_ups_apply_each_migration_once() {
    let env = PgEnv::new();
    for v in 1..=5 {
        env.write(
            &format!("{v:03}_m{v}.up.sql"),
            &format!("CREATE TABLE t{v} (x int); SELECT pg_sleep(0.1);"),
        );
    }
    let a = env.hsm_command(&["up"]).spawn().unwrap();
    let b = env.hsm_command(&["up"]).spawn().unwrap();
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(env.applied(), vec![1, 2, 3, 4, 5]);
    let successes = env
        .history()
        .iter()
        .filter(|(_, _, status, _)| status == "success")
        .count();
    assert_eq!(successes, 5);
}

#[test]
fn a_lock_held_by_another_session_is_waited_for_and_retried() {
    let env = PgEnv::new();
    env.write("001_base.up.sql", "CREATE TABLE base (x int);");
    env.hsm(&["up"]).success();
    env.write("002_alter.up.sql", "ALTER TABLE base ADD COLUMN y int;");
    // The application holds the table for 3 s: longer than one lock_timeout (2 s).
    let holder = {
        let mut client = env.client();
        std::thread::spawn(move || {
            let mut tx = client.transaction().unwrap();
            tx.batch_execute("LOCK TABLE base IN ACCESS EXCLUSIVE MODE")
                .unwrap();
            std::thread::sleep(Duration::from_secs(3));
            tx.commit().unwrap();
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let run = env.hsm(&["up"]).success();
    holder.join().unwrap();
    assert!(run.stderr().contains("trying again"), "{}", run.stderr());
    assert_eq!(env.applied(), vec![1, 2]);
    let statuses: Vec<String> = env.history().into_iter().map(|(_, _, s, _)| s).collect();
    assert!(statuses.contains(&"failed".to_owned()), "{statuses:?}");
}

#[test]
fn a_process_killed_mid_migration_leaves_nothing_and_the_next_run_says_interrupted() {
    let env = PgEnv::new();
    env.write(
        "001_slow.up.sql",
        "CREATE TABLE planted (x int);\nINSERT INTO planted VALUES (1);\nSELECT pg_sleep(30);",
    );
    let mut child = env.hsm_command(&["up"]).spawn().unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    while !env.history().iter().any(|(_, _, s, _)| s == "running") {
        assert!(Instant::now() < until, "the migration never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(env.applied().is_empty());
    let status = env.hsm(&["status"]).success();
    assert!(
        status.stdout().contains("interrupted"),
        "{}",
        status.stdout()
    );
    env.write("001_slow.up.sql", "CREATE TABLE planted (x int);");
    env.hsm(&["up"]).success();
    assert_eq!(env.applied(), vec![1]);
}

#[test]
fn create_index_concurrently_runs_outside_the_transaction_while_a_racer_waits_for_the_lock() {
    let env = PgEnv::new();
    env.write(
        "001_base.up.sql",
        "CREATE TABLE base (x int); INSERT INTO base SELECT generate_series(1, 1000);",
    );
    env.hsm(&["up"]).success();
    env.write(
        "002_index.up.sql",
        "-- no-transaction\nCREATE INDEX CONCURRENTLY base_x ON base (x);",
    );
    env.write(
        "002_index.down.sql",
        "-- no-transaction\nDROP INDEX CONCURRENTLY base_x;",
    );
    // An application transaction that CREATE INDEX CONCURRENTLY must wait out.
    let holder = {
        let mut client = env.client();
        std::thread::spawn(move || {
            let mut tx = client.transaction().unwrap();
            tx.query("SELECT count(*) FROM base", &[]).unwrap();
            std::thread::sleep(Duration::from_millis(1500));
            tx.commit().unwrap();
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let first = env.hsm_command(&["up"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // A second run polls the advisory lock (a blocking pg_advisory_lock would deadlock with
    // the index build, which waits for every transaction, the waiting one's too).
    let racer = env.hsm_command(&["up"]).spawn().unwrap();
    for child in [first, racer] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    holder.join().unwrap();
    assert_eq!(env.applied(), vec![1, 2]);
    let valid: bool = env
        .client()
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'base_x'::regclass",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(valid);
    env.hsm(&["down"]).success();
    assert_eq!(env.applied(), vec![1]);
}

#[test]
fn an_invalid_index_a_failed_build_left_is_reported_and_dropped_on_the_retry() {
    let env = PgEnv::new();
    env.write(
        "001_base.up.sql",
        "CREATE TABLE emails (a text); INSERT INTO emails VALUES ('x'), ('x');",
    );
    env.hsm(&["up"]).success();
    env.write(
        "002_unique.up.sql",
        "-- no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY emails_a ON emails (a);",
    );
    let failed = env.hsm(&["up"]).fails_with(1);
    assert!(failed.stderr().contains("INVALID"), "{}", failed.stderr());
    assert_eq!(env.applied(), vec![1]);
    env.client()
        .batch_execute("DELETE FROM emails WHERE ctid = (SELECT min(ctid) FROM emails)")
        .unwrap();
    let retried = env.hsm(&["up"]).success();
    assert!(
        retried.stderr().contains("left INVALID is dropped"),
        "{}",
        retried.stderr()
    );
    assert_eq!(env.applied(), vec![1, 2]);
    // Anything beside the one statement is refused before it runs.
    env.write(
        "003_mixed.up.sql",
        "-- no-transaction\nCREATE TABLE planted (x int);\nCREATE INDEX CONCURRENTLY p ON emails (a);",
    );
    let mixed = env.hsm(&["up"]).fails_with(1);
    assert!(mixed.stderr().contains("exactly one"), "{}", mixed.stderr());
    assert!(!env.has_table("planted"));
}
