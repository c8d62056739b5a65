//! Shapes met in real projects' PostgreSQL migration directories (crates.io, ente, hatchet,
//! conductor, lemmy, realworld-axum-sqlx; pointed at unedited), reproduced in fixtures of our
//! own: each one either ran wrong or was refused where its tool runs it.

use crate::support::PgEnv;

#[test]
fn a_statement_starting_with_a_parenthesis_is_run_not_dropped() {
    // It was left out with the SQL after it, and the migration recorded as applied.
    let env = PgEnv::new();
    env.write(
        "1_paren.up.sql",
        "CREATE TABLE ps (v int);\n(SELECT 1/0);\nCREATE TABLE after_it (v int);",
    );
    let run = env.hsm(&["up"]).fails_with(1);
    assert!(
        run.stderr().contains("division by zero"),
        "{}",
        run.stderr()
    );
    assert!(env.applied().is_empty());
    assert!(!env.has_table("ps"));
}

#[test]
fn a_psql_meta_command_is_refused_by_name() {
    let env = PgEnv::new();
    env.write(
        "1_meta.up.sql",
        "CREATE TABLE pm (v int);\n\\set ON_ERROR_STOP on\nCREATE TABLE pm2 (v int);",
    );
    let run = env.hsm(&["up"]).fails_with(1);
    assert!(
        run.stderr().contains("\\set is a psql meta-command"),
        "{}",
        run.stderr()
    );
    assert!(env.applied().is_empty());
    assert!(!env.has_table("pm"));
}

#[test]
fn a_rule_with_several_actions_in_parentheses_is_one_statement() {
    let env = PgEnv::new();
    env.write(
        "1_rule.up.sql",
        "CREATE TABLE rt (v int); CREATE TABLE rlog (v int);\n\
         CREATE RULE rt_log AS ON INSERT TO rt DO ALSO \
         (INSERT INTO rlog VALUES (NEW.v); INSERT INTO rlog VALUES (NEW.v * 10));\n\
         INSERT INTO rt VALUES (2);",
    );
    env.hsm(&["up"]).success();
    let logged: Vec<i32> = env
        .client()
        .query("SELECT v FROM rlog ORDER BY v", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(logged, [2, 20]);
}

#[test]
fn a_lone_concurrent_index_runs_outside_a_transaction_in_every_layout() {
    // golang-migrate sends a file as one string and Flyway looks for the statement: neither
    // needs a marker, and the index was failed with 25001 here.
    for (first, second) in [
        ("1_t.up.sql", "2_t_x_idx.up.sql"),
        ("V1__t.sql", "V2__t_x_idx.sql"),
    ] {
        let env = PgEnv::new();
        env.write(first, "CREATE TABLE t (x int);");
        env.write(
            second,
            "-- an index for lookups\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_x_idx ON t (x);",
        );
        env.hsm(&["up", "--dry-run"]).success();
        env.hsm(&["up"]).success();
        assert_eq!(env.applied(), [1, 2], "{second}");
        let valid: bool = env
            .client()
            .query_one(
                "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_x_idx'::regclass",
                &[],
            )
            .unwrap()
            .get(0);
        assert!(valid, "{second}");
    }
}

#[test]
fn transaction_blocks_inside_a_file_run_inside_the_migrations_transaction() {
    // golang-migrate files that wrap parts in BEGIN … COMMIT: the blocks run inside the
    // host's transaction, so a failure undoes the whole file, not only its block.
    let env = PgEnv::new();
    env.write(
        "1_blocks.up.sql",
        "BEGIN;\nCREATE TABLE a (x int);\nCOMMIT;\n\nBEGIN;\nCREATE TABLE b (x int);\nCOMMIT;",
    );
    env.hsm(&["up"]).success();
    assert!(env.has_table("a") && env.has_table("b"));
    env.write(
        "2_blocks.up.sql",
        "BEGIN;\nCREATE TABLE c (x int);\nCOMMIT;\nBEGIN;\nSELECT 1/0;\nCOMMIT;",
    );
    env.hsm(&["up"]).fails_with(1);
    assert!(
        !env.has_table("c"),
        "the first block of a failed file stayed"
    );
    assert_eq!(env.applied(), [1]);
    // A block rolled back on purpose is not unwrapped: it is refused.
    std::fs::remove_file(env.migrations.join("2_blocks.up.sql")).unwrap();
    env.write(
        "2_rollback.up.sql",
        "BEGIN;\nCREATE TABLE d (x int);\nROLLBACK;",
    );
    let run = env.hsm(&["up"]).fails_with(1);
    assert!(
        run.stderr().contains("transaction control"),
        "{}",
        run.stderr()
    );
    assert!(!env.has_table("d"));
}

#[test]
fn a_dry_run_says_why_it_cannot_use_an_enum_value_an_earlier_migration_added() {
    let env = PgEnv::new();
    env.write(
        "1_type.up.sql",
        "CREATE TYPE res AS ENUM ('cpu'); CREATE TABLE lim (r res NOT NULL);",
    );
    env.write(
        "2_add_value.up.sql",
        "ALTER TYPE res ADD VALUE IF NOT EXISTS 'slot';",
    );
    env.write("3_use_value.up.sql", "INSERT INTO lim (r) VALUES ('slot');");
    let dry = env.hsm(&["up", "--dry-run"]).fails_with(1);
    assert!(
        dry.stderr().contains("a dry run cannot go past this"),
        "{}",
        dry.stderr()
    );
    assert!(env.applied().is_empty());
    env.hsm(&["up"]).success();
    assert_eq!(env.applied(), [1, 2, 3]);
}
