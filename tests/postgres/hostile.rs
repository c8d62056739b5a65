//! A stranger's migration against the PostgreSQL guarantees: each is refused (by hsm-host, or
//! by the server because of who the session is) and nothing of it stays.

use crate::support::PgEnv;

/// A database at version 1 with `hostile` as migration 2; `up` fails naming `needle`, and the
/// tracking rows and the application's tables are as they were.
fn refused(hostile: &str, needle: &str) -> PgEnv {
    let env = PgEnv::new();
    env.refuses(hostile, needle);
    let rows: i64 = env
        .client()
        .query_one("SELECT count(*) FROM hsm.migrations", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
    env
}

#[test]
fn commit_and_rollback_in_a_script_are_refused_before_the_server_sees_them() {
    for end in [
        "COMMIT",
        "/* c */ commit",
        "END",
        "ROLLBACK",
        "ABORT",
        "SAVEPOINT s",
        "PREPARE TRANSACTION 'x'",
    ] {
        refused(
            &format!(
                "CREATE TABLE planted (x int);\n{end};\nINSERT INTO hsm.migrations (version, name, applied_at) VALUES (99, 'x', 'now');"
            ),
            "transaction control",
        );
    }
}

#[test]
fn a_commit_inside_do_or_a_procedure_is_refused_by_the_server() {
    refused(
        "CREATE TABLE planted (x int);\nDO $$ BEGIN COMMIT; END $$;",
        "invalid transaction termination",
    );
    refused(
        "CREATE TABLE planted (x int);\n\
         CREATE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN COMMIT; END $$;\nCALL p();",
        "invalid transaction termination",
    );
}

#[test]
fn set_role_reset_role_and_set_config_leave_the_tracking_tables_out_of_reach() {
    for escape in [
        "RESET ROLE;",
        "SET ROLE NONE;",
        "SELECT set_config('role', 'none', false);",
        "SET SESSION AUTHORIZATION DEFAULT;",
    ] {
        refused(
            &format!(
                "CREATE TABLE planted (x int);\n{escape}\nINSERT INTO hsm.migrations (version, name, applied_at) VALUES (99, 'x', 'now');"
            ),
            "permission denied",
        );
    }
    refused(
        "CREATE TABLE planted (x int);\nSET ROLE postgres;",
        "permission denied",
    );
}

#[test]
fn tracking_writes_through_do_functions_and_the_gated_functions_are_refused() {
    refused(
        "CREATE TABLE planted (x int);\n\
         DO $$ BEGIN INSERT INTO hsm.migrations (version, name, applied_at) VALUES (99, 'x', 'now'); END $$;",
        "permission denied",
    );
    refused(
        "CREATE TABLE planted (x int);\n\
         CREATE FUNCTION sneak() RETURNS void SECURITY DEFINER LANGUAGE sql AS $$ DELETE FROM hsm.migrations $$;\n\
         SELECT sneak();",
        "permission denied",
    );
    refused(
        "CREATE TABLE planted (x int);\nSELECT hsm.begin_step('guess');",
        "only hsm-host opens a migration step",
    );
    refused(
        "CREATE TABLE planted (x int);\nSELECT hsm.finish_step('guess', 'x', 'x', 'x', 'now');",
        "only hsm-host records a migration",
    );
    refused(
        "CREATE TABLE planted (x int);\nUPDATE hsm.steps SET finished = true;",
        "permission denied",
    );
}

#[test]
fn grants_extensions_and_copy_are_refused() {
    refused(
        "CREATE TABLE planted (x int);\nGRANT ALL ON hsm.migrations TO PUBLIC;",
        "permission denied",
    );
    let env = refused(
        "CREATE TABLE planted (x int);\nCREATE EXTENSION dblink;",
        "permission denied",
    );
    let dblink: i64 = env
        .client()
        .query_one(
            "SELECT count(*) FROM pg_extension WHERE extname = 'dblink'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(dblink, 0);
    refused(
        "CREATE TABLE planted (x int);\nCOPY base FROM '/etc/passwd';",
        "COPY is not allowed",
    );
    refused(
        "CREATE TABLE planted (x int);\nSELECT pg_read_file('/etc/passwd');",
        "permission denied",
    );
}

#[test]
fn session_defaults_planted_for_the_next_migration_are_refused() {
    for plant in [
        "ALTER ROLE CURRENT_USER SET statement_timeout = '1ms';",
        "ALTER ROLE SESSION_USER SET default_transaction_read_only = on;",
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET search_path = planted, public', \
         current_database()); END $$;",
    ] {
        let env = refused(
            &format!("CREATE TABLE planted (x int);\nRESET ROLE;\n{plant}"),
            "session defaults",
        );
        let settings: i64 = env
            .client()
            .query_one("SELECT count(*) FROM pg_db_role_setting", &[])
            .unwrap()
            .get(0);
        assert_eq!(settings, 0, "{plant}");
    }
}

#[test]
fn temp_objects_and_settings_do_not_reach_the_next_migration() {
    let env = PgEnv::new();
    env.write(
        "001_shadow.up.sql",
        "CREATE TABLE notes (body text);\n\
         CREATE TEMP TABLE notes (body text);\n\
         PREPARE leftover AS SELECT 1;\n\
         LISTEN somewhere;\n\
         SELECT pg_advisory_lock(42);\n\
         SET search_path = pg_temp, public;\n\
         SET lock_timeout = '1ms';\n\
         SET statement_timeout = '1ms';",
    );
    env.write(
        "002_write.up.sql",
        "INSERT INTO notes VALUES ('kept'); SELECT pg_sleep(0.05);",
    );
    env.hsm(&["up"]).success();
    let kept: i64 = env
        .client()
        .query_one("SELECT count(*) FROM public.notes", &[])
        .unwrap()
        .get(0);
    assert_eq!(kept, 1, "migration 2 wrote into migration 1's temp table");
}

#[test]
fn a_statement_past_the_deadline_is_cancelled_and_nothing_stays() {
    let env = PgEnv::new();
    env.write(
        "001_slow.up.sql",
        "CREATE TABLE planted (x int);\nSELECT pg_sleep(60);",
    );
    let started = std::time::Instant::now();
    let run = env.hsm(&["up", "--timeout", "2s"]).fails_with(1);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert!(run.stderr().contains("time limit"), "{}", run.stderr());
    assert!(env.applied().is_empty());
    assert!(!env.has_table("planted"));
}
