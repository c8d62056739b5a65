//! What a stranger's review of the PostgreSQL backend found, each kept as a test: code of the
//! migration's own that would run at COMMIT after the checks, or as the host's role in a
//! later run; a password set by the migration; a migration that outlives its deadline; and
//! passwords in output.

use std::time::{Duration, Instant};

use crate::support::PgEnv;

fn refused(env: &PgEnv, hostile: &str, needle: &str) {
    env.refuses(hostile, needle);
}

fn is_superuser(env: &PgEnv, role: &str) -> bool {
    env.client()
        .query_one("SELECT rolsuper FROM pg_roles WHERE rolname = $1", &[&role])
        .unwrap()
        .get(0)
}

#[test]
fn a_deferred_trigger_of_the_migration_runs_before_the_checks_and_is_refused() {
    let env = PgEnv::new();
    let trap = format!(
        "CREATE TABLE trap (x int);
         CREATE FUNCTION trap_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
           EXECUTE 'ALTER DATABASE {db} SET search_path = public, pg_catalog';
           EXECUTE 'CREATE TABLE made_at_commit (x int)'; RETURN NULL; END $$;
         CREATE CONSTRAINT TRIGGER trap_t AFTER INSERT ON trap DEFERRABLE INITIALLY DEFERRED
           FOR EACH ROW EXECUTE FUNCTION trap_fn();
         CREATE FUNCTION public.current_setting(text) RETURNS text LANGUAGE plpgsql AS $$ BEGIN
           IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
             EXECUTE 'ALTER ROLE {app} SUPERUSER';
           END IF;
           RETURN pg_catalog.current_setting($1); END $$;
         RESET ROLE;
         INSERT INTO trap VALUES (1);",
        db = env.database,
        app = env.app_role
    );
    refused(&env, &trap, "what would reach");
    assert!(!env.has_table("made_at_commit"));
    let settings: i64 = env
        .client()
        .query_one("SELECT count(*) FROM pg_db_role_setting", &[])
        .unwrap()
        .get(0);
    assert_eq!(settings, 0);
    // A deferrable trigger, even harmless, is refused: its code would run after the checks.
    refused(
        &env,
        "CREATE TABLE t2 (x int);
         CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
         CREATE CONSTRAINT TRIGGER t2_t AFTER INSERT ON t2 DEFERRABLE FOR EACH ROW EXECUTE FUNCTION noop();",
        "NOT DEFERRABLE",
    );
    // A NOT DEFERRABLE constraint trigger is an ordinary trigger: accepted.
    env.write(
        "003_ok.up.sql",
        "CREATE TABLE t3 (x int);
         CREATE FUNCTION noop3() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
         CREATE CONSTRAINT TRIGGER t3_t AFTER INSERT ON t3 NOT DEFERRABLE FOR EACH ROW EXECUTE FUNCTION noop3();",
    );
    env.hsm(&["up"]).success();
    assert!(!is_superuser(&env, &env.app_role));
}

#[test]
fn functions_planted_in_public_never_run_as_the_host_or_in_doctor_and_init() {
    let env = PgEnv::new();
    let plant = |name: &str, args: &str, returns: &str, value: &str| {
        format!(
            "CREATE FUNCTION public.{name}({args}) RETURNS {returns} LANGUAGE plpgsql AS $$ BEGIN
               IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
                 EXECUTE 'CREATE TABLE public.pwned_{name} (x int)';
               END IF;
               RETURN {value}; END $$;\n"
        )
    };
    let planted = [
        plant("pg_has_role", "text, oid, text", "boolean", "false"),
        plant("pg_has_role", "text, text, text", "boolean", "false"),
        plant("pg_try_advisory_lock", "text", "boolean", "true"),
        plant("current_setting", "text", "text", "'150000'"),
        plant("pg_backend_pid", "", "integer", "0"),
    ]
    .concat();
    env.write("001_plant.up.sql", &planted);
    env.hsm(&["up"]).success();
    env.client()
        .batch_execute(&format!("ALTER ROLE {} CREATEROLE", env.app_role))
        .unwrap();
    let doctor = env.hsm(&["pg", "doctor"]).fails_with(1);
    assert!(
        doctor.stdout().contains("may create roles"),
        "{}",
        doctor.stdout()
    );
    env.hsm(&["pg", "init"]).fails_with(2);
    env.client()
        .batch_execute(&format!("ALTER ROLE {} NOCREATEROLE", env.app_role))
        .unwrap();
    env.write("002_more.up.sql", "CREATE TABLE more (x int);");
    env.hsm(&["up"]).success();
    env.hsm(&["status"]).success();
    let pwned: i64 = env
        .client()
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'pwned%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(pwned, 0, "a planted function ran as the host");
}

#[test]
fn the_migrator_password_and_the_database_limits_are_the_operators() {
    let env = PgEnv::new();
    refused(
        &env,
        "CREATE TABLE planted (x int);\nRESET ROLE;\nALTER ROLE CURRENT_USER PASSWORD 'attacker-knows';",
        "what would reach",
    );
    let login = postgres::Client::connect(
        &format!(
            "postgresql://hsm_migrator_{}:attacker-knows@{}:{}/{}",
            env.database,
            std::env::var("PGHOST").unwrap(),
            std::env::var("PGPORT").unwrap(),
            env.database
        ),
        postgres::NoTls,
    );
    assert!(
        login.is_err(),
        "the migration's password let an outsider in"
    );
    refused(
        &env,
        &format!(
            "DO $$ BEGIN EXECUTE 'ALTER DATABASE {} CONNECTION LIMIT 0'; END $$;",
            env.database
        ),
        "what would reach",
    );
    env.write("003_after.up.sql", "CREATE TABLE after (x int);");
    env.hsm(&["up"]).success();
}

#[test]
fn a_migration_that_catches_the_cancel_is_ended_at_its_deadline() {
    let env = PgEnv::new();
    env.write(
        "001_stubborn.up.sql",
        "CREATE TABLE planted (x int);
         SET statement_timeout = 0; SET client_connection_check_interval = 0;
         DO $$ BEGIN LOOP BEGIN PERFORM pg_sleep(3600);
           EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END $$;",
    );
    let started = Instant::now();
    let run = env.hsm(&["up", "--timeout", "3s"]).fails_with(1);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(run.stderr().contains("time limit"), "{}", run.stderr());
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let left: i64 = env
            .client()
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = $1",
                &[&format!("hsm_migrator_{}", env.database)],
            )
            .unwrap()
            .get(0);
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < until,
            "the migration's session outlived the run"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!env.has_table("planted"));
}

#[test]
fn a_comment_ended_by_a_carriage_return_does_not_hide_a_rollback() {
    let env = PgEnv::new();
    refused(
        &env,
        "CREATE TABLE planted (x int);\n-- x\rROLLBACK --\nWORK;",
        "transaction control",
    );
}

#[test]
fn passwords_in_any_spelling_of_the_url_stay_out_of_output_and_the_log() {
    let env = PgEnv::new();
    let host = std::env::var("PGHOST").unwrap();
    let port = std::env::var("PGPORT").unwrap();
    for url in [
        format!(
            "postgresql://postgres:SEKRIT1/x@{host}:{port}/{}",
            env.database
        ),
        format!(
            "postgresql://postgres:SEKRIT2?x@{host}:{port}/{}",
            env.database
        ),
        format!(
            "postgresql://{host}:{port}/{}?user=postgres&passwor%64=SEKRIT3",
            env.database
        ),
        format!(
            "postgresql://{host}:{port}/{}?%70assword=SEKRIT4&port=bad",
            env.database
        ),
        format!("postgresql://postgres:SEKRIT5@{host}:1/{}", env.database),
    ] {
        let log = env.dir.path().join("secret.log");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hsm-host"))
            .args(["status", "--json", "--database", &url, "--migrations"])
            .arg(&env.migrations)
            .arg("--log-file")
            .arg(&log)
            .output()
            .unwrap();
        let text = format!(
            "{}{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        assert!(!text.contains("SEKRIT"), "{url}:\n{text}");
    }
}

#[test]
fn a_with_hold_cursor_is_closed_unread_before_the_checks() {
    let env = PgEnv::new();
    env.write(
        "001_cursor.up.sql",
        &format!(
            "CREATE FUNCTION public.evil() RETURNS int LANGUAGE plpgsql VOLATILE AS $$ BEGIN
               EXECUTE 'ALTER DATABASE {db} SET work_mem = ''77MB''';
               EXECUTE format('ALTER ROLE %I PASSWORD %L', session_user, 'known');
               RETURN 1; END $$;
             DECLARE c CURSOR WITH HOLD FOR SELECT public.evil();",
            db = env.database
        ),
    );
    env.hsm(&["up"]).success();
    let settings: i64 = env
        .client()
        .query_one("SELECT count(*) FROM pg_db_role_setting", &[])
        .unwrap()
        .get(0);
    assert_eq!(settings, 0, "the cursor's query ran at COMMIT");
    env.write("002_next.up.sql", "CREATE TABLE next (x int);");
    env.hsm(&["up"]).success();
}

#[test]
fn revoking_connect_on_the_database_is_refused() {
    let env = PgEnv::new();
    refused(
        &env,
        &format!(
            "REVOKE CONNECT ON DATABASE {db} FROM PUBLIC, {app}, hsm_migrator_{db};",
            db = env.database,
            app = env.app_role
        ),
        "what would reach",
    );
    env.write("003_after.up.sql", "CREATE TABLE after (x int);");
    env.hsm(&["up"]).success();
}

#[test]
fn outside_a_transaction_only_plain_index_forms_run_and_the_invalid_drop_takes_its_own_index() {
    let env = PgEnv::new();
    env.write(
        "001_base.up.sql",
        "CREATE TABLE t (x int); CREATE UNIQUE INDEX keep_me ON t (x);
         CREATE TABLE d (x int); INSERT INTO d VALUES (1), (1);
         CREATE FUNCTION vol() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT 1';
         CREATE FUNCTION imm(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT $1';",
    );
    env.hsm(&["up"]).success();
    for planted in [
        "CREATE INDEX CONCURRENTLY ti ON t ((public.imm(x)));",
        "CREATE INDEX CONCURRENTLY ti ON t (x) WHERE public.imm(x) > 0;",
        "CREATE TABLE index AS SELECT 1 concurrently, vol();",
        "CREATE /* index concurrently */ TABLE y (x int);",
    ] {
        env.write("002_x.up.sql", &format!("-- no-transaction\n{planted}"));
        let run = env.hsm(&["up"]).fails_with(1);
        assert!(
            run.stderr().contains("plain columns"),
            "{planted}:\n{}",
            run.stderr()
        );
        assert_eq!(env.applied(), vec![1]);
    }
    env.write(
        "002_x.up.sql",
        "-- no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY \"keep_me/**/\" ON d (x);",
    );
    env.hsm(&["up"]).fails_with(1);
    env.client()
        .batch_execute("DELETE FROM d WHERE ctid = (SELECT min(ctid) FROM d)")
        .unwrap();
    env.hsm(&["up"]).success();
    let indexes: Vec<(String, String, bool)> = env
        .client()
        .query(
            "SELECT c.relname::text, t.relname::text, i.indisvalid FROM pg_index i
               JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
              WHERE c.relname LIKE 'keep_me%' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        indexes,
        [
            ("keep_me".to_owned(), "t".to_owned(), true),
            ("keep_me/**/".to_owned(), "d".to_owned(), true)
        ]
    );
}
