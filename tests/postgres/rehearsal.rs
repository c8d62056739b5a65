//! Dry runs and baselines on PostgreSQL.

use crate::support::PgEnv;

fn set(env: &PgEnv) {
    env.write(
        "001_notes.up.sql",
        "CREATE TABLE notes (body text NOT NULL);\n\
         CREATE TEMP TABLE scratch (x int);\n\
         SET search_path = pg_temp, public;",
    );
    env.write("001_notes.down.sql", "DROP TABLE notes;");
    env.write(
        "002_fill.up.sql",
        "DO $$ BEGIN\n\
           IF to_regclass('pg_temp.scratch') IS NOT NULL THEN\n\
             RAISE EXCEPTION 'migration 1''s temp table reached migration 2';\n\
           END IF;\n\
         END $$;\n\
         INSERT INTO notes VALUES ('one'), ('two');",
    );
    env.write("002_fill.down.sql", "DELETE FROM notes;");
}

#[test]
fn a_dry_run_runs_every_step_in_order_and_keeps_nothing() {
    let env = PgEnv::new();
    set(&env);
    let dry = env.hsm(&["up", "--dry-run"]).success();
    assert!(dry.stdout().contains("notes"), "{}", dry.stdout());
    assert!(dry.stdout().contains("fill"), "{}", dry.stdout());
    assert!(env.applied().is_empty());
    assert!(env.history().is_empty());
    assert!(!env.has_table("notes"));
    let keys: i64 = env
        .client()
        .query_one("SELECT count(*) FROM hsm.step_keys", &[])
        .unwrap()
        .get(0);
    assert_eq!(keys, 0, "the dry run's secrets were left registered");
    env.hsm(&["up"]).success();
    let dry_down = env.hsm(&["down", "0", "--dry-run"]).success();
    assert!(dry_down.stdout().contains("notes"), "{}", dry_down.stdout());
    assert_eq!(env.applied(), vec![1, 2]);
    assert!(env.has_table("notes"));
}

#[test]
fn a_failing_step_fails_the_dry_run_and_nothing_stays() {
    let env = PgEnv::new();
    set(&env);
    env.write(
        "003_bad.up.sql",
        "CREATE TABLE planted (x int);\nINSERT INTO notes VALUES (NULL);",
    );
    let dry = env.hsm(&["up", "--dry-run"]).fails_with(1);
    assert!(dry.stderr().contains("migration 3"), "{}", dry.stderr());
    assert!(dry.stderr().contains("23502"), "{}", dry.stderr());
    assert!(env.applied().is_empty());
    assert!(!env.has_table("planted"));
    assert!(!env.has_table("notes"));
}

#[test]
fn a_baseline_records_the_schema_made_by_hand_and_up_goes_on_from_it() {
    let env = PgEnv::new();
    set(&env);
    env.write("003_more.up.sql", "INSERT INTO notes VALUES ('three');");
    env.client()
        .batch_execute(&format!(
            "SET ROLE {}; CREATE TABLE notes (body text NOT NULL); \
             INSERT INTO notes VALUES ('one'), ('two');",
            env.app_role
        ))
        .unwrap();
    let dry = env.hsm(&["baseline", "2", "--dry-run"]).success();
    assert!(env.applied().is_empty(), "{}", dry.stdout());
    env.hsm(&["baseline", "2"]).success();
    assert_eq!(env.applied(), vec![1, 2]);
    let statuses: Vec<String> = env.history().into_iter().map(|(_, _, s, _)| s).collect();
    assert_eq!(statuses, ["adopted", "adopted"]);
    env.hsm(&["up"]).success();
    let rows: i64 = env
        .client()
        .query_one("SELECT count(*) FROM notes", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 3);
    let again = env.hsm(&["baseline", "2"]).success();
    assert_eq!(env.applied(), vec![1, 2, 3], "{}", again.stdout());
    env.hsm(&["baseline", "9"]).fails_with(1);
}
