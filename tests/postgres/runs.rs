//! Up, down and status on PostgreSQL, with SQL files and a Rust component.

use crate::support::PgEnv;

fn users_set(env: &PgEnv) {
    env.write(
        "001_create_users.up.sql",
        "CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE);\n\
         CREATE FUNCTION users_lower() RETURNS trigger LANGUAGE plpgsql AS $$\n\
         BEGIN NEW.email := lower(NEW.email); RETURN NEW; END; $$;\n\
         CREATE TRIGGER users_lower BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION users_lower();\n",
    );
    env.write(
        "001_create_users.down.sql",
        "DROP TABLE users; DROP FUNCTION users_lower();",
    );
    env.write(
        "002_seed.up.sql",
        "INSERT INTO users (email) VALUES ('A@Example.com'), ('b@example.com');",
    );
    env.write("002_seed.down.sql", "DELETE FROM users;");
}

#[test]
fn sql_files_go_up_and_down_with_tracking_rows_inside_their_transactions() {
    let env = PgEnv::new();
    users_set(&env);
    let status = env.hsm(&["status"]).success();
    assert!(
        status.stdout().contains("Pending (2)"),
        "{}",
        status.stdout()
    );
    let up = env.hsm(&["up"]).success();
    assert!(up.stdout().contains("Version 0 -> 2."), "{}", up.stdout());
    assert_eq!(env.applied(), vec![1, 2]);
    let mut client = env.client();
    let emails: Vec<String> = client
        .query("SELECT email FROM users ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(emails, ["a@example.com", "b@example.com"]);
    // What the migrations made belongs to the application's role, not the migrator.
    let owner: String = client
        .query_one(
            "SELECT tableowner::text FROM pg_tables WHERE tablename = 'users'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(owner, env.app_role);
    let history = env.history();
    assert_eq!(history.len(), 2);
    assert!(
        history
            .iter()
            .all(|(_, d, s, _)| d == "up" && s == "success")
    );
    // Checksums are recorded, so a changed file is refused before anything runs.
    env.write(
        "002_seed.up.sql",
        "INSERT INTO users (email) VALUES ('c@example.com');",
    );
    let changed = env.hsm(&["up"]).fails_with(1);
    assert!(
        changed.stderr().contains("was applied as"),
        "{}",
        changed.stderr()
    );
    env.write(
        "002_seed.up.sql",
        "INSERT INTO users (email) VALUES ('A@Example.com'), ('b@example.com');",
    );
    env.hsm(&["down"]).success();
    assert_eq!(env.applied(), vec![1]);
    env.hsm(&["down", "0"]).success();
    assert!(env.applied().is_empty());
    assert!(!env.has_table("users"));
    let json = env.hsm(&["status", "--json"]).success();
    let status: serde_json::Value = serde_json::from_str(&json.stdout()).unwrap();
    assert_eq!(status["current_version"], 0);
    assert_eq!(status["server"], true);
    assert!(
        !json
            .stdout()
            .contains(&std::env::var("PGPASSWORD").unwrap())
    );
}

#[test]
fn a_failing_migration_leaves_nothing_and_is_recorded_failed() {
    let env = PgEnv::new();
    users_set(&env);
    env.write(
        "003_breaks.up.sql",
        "CREATE TABLE doomed (x int);\nINSERT INTO users (email) VALUES ('a@example.com');",
    );
    let run = env.hsm(&["up"]).fails_with(1);
    assert!(run.stderr().contains("migration 3"), "{}", run.stderr());
    assert!(run.stderr().contains("23505"), "{}", run.stderr());
    assert_eq!(env.applied(), vec![1, 2]);
    assert!(!env.has_table("doomed"));
    let last = env.history().pop().unwrap();
    assert_eq!((last.0, last.2.as_str()), (3, "failed"));
}

#[test]
fn a_rust_component_runs_every_sql_function_on_the_server() {
    let env = PgEnv::new();
    env.add(hsm_test_artifacts::GUEST_PG_TOUR);
    let up = env.hsm(&["up"]);
    let up = up.success();
    assert!(up.stdout().contains("pg_tour"), "{}", up.stdout());
    let rows: i64 = env
        .client()
        .query_one("SELECT count(*) FROM pg_tour", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 501);
    env.hsm(&["down"]).success();
    assert!(!env.has_table("pg_tour"));
}

#[test]
fn init_refuses_a_superuser_application_role_and_doctor_refuses_a_widened_migrator() {
    let env = PgEnv::uninitialised();
    let refused = env
        .hsm(&["pg", "init", "--app-role", "postgres"])
        .fails_with(2);
    assert!(
        refused.stderr().contains("superuser"),
        "{}",
        refused.stderr()
    );
    env.hsm(&["pg", "init"]).success();
    let doctor = env.hsm(&["pg", "doctor"]).success();
    assert!(
        doctor.stdout().contains("is a boundary"),
        "{}",
        doctor.stdout()
    );
    // An operator widens the migrator by hand: doctor says so and exits 1.
    env.client()
        .batch_execute(&format!(
            "GRANT pg_read_server_files TO hsm_migrator_{}",
            env.database
        ))
        .unwrap();
    let doctor = env.hsm(&["pg", "doctor"]).fails_with(1);
    assert!(
        doctor.stdout().contains("pg_read_server_files"),
        "{}",
        doctor.stdout()
    );
    // Without init, up says what to run.
    let bare = PgEnv::uninitialised();
    bare.write("001_a.up.sql", "CREATE TABLE a (x int);");
    let run = bare.hsm(&["up"]).fails_with(2);
    assert!(run.stderr().contains("pg init"), "{}", run.stderr());
}

#[test]
fn a_component_written_for_sqlite_alone_is_refused_before_anything_runs() {
    let env = PgEnv::new();
    env.write("002_setup.up.sql", "CREATE TABLE setup (x int);");
    // The first example migration: built without `dialects`, so SQLite's.
    env.add(hsm_test_artifacts::EXAMPLES[0]);
    let run = env.hsm(&["up"]).fails_with(1);
    assert!(
        run.stderr().contains("written for SQLite"),
        "{}",
        run.stderr()
    );
    assert!(env.applied().is_empty(), "the SQL migration after it ran");
    assert!(env.history().is_empty());
    assert!(!env.has_table("setup"));
    let dry = env.hsm(&["up", "--dry-run"]).fails_with(1);
    assert!(
        dry.stderr().contains("written for SQLite"),
        "{}",
        dry.stderr()
    );
}

#[test]
fn a_python_migration_runs_on_postgresql_once_declared_for_it() {
    use hsm_test_artifacts::{PY_BOTH_DIALECTS, lang_guest};
    let env = PgEnv::new();
    let target = env.migrations.join("1_both_dialects.wasm");
    std::fs::copy(lang_guest(PY_BOTH_DIALECTS), &target).unwrap();
    // As built it declares nothing: SQLite's, refused before anything runs.
    let refused = env.hsm(&["up"]).fails_with(1);
    assert!(
        refused.stderr().contains("is written for SQLite"),
        "{}",
        refused.stderr()
    );
    assert!(env.applied().is_empty());
    env.hsm(&[
        "declare",
        target.to_str().unwrap(),
        "--dialects",
        "postgresql,sqlite",
    ])
    .success();
    env.hsm(&["up"]).success();
    let notes: Vec<(String, Option<String>)> = env
        .client()
        .query("SELECT note, sqlstate FROM dialect_notes ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        notes,
        [
            ("postgresql".to_owned(), None),
            ("duplicate (code 2067)".to_owned(), Some("23505".to_owned()))
        ]
    );
    env.hsm(&["down", "0"]).success();
    assert!(!env.has_table("dialect_notes"));
}

#[test]
fn repair_accepts_a_changed_file_and_refuses_another_migration_at_its_version() {
    let env = PgEnv::new();
    env.write("1_tags.up.sql", "CREATE TABLE tags (id bigint);");
    env.write("1_tags.down.sql", "DROP TABLE tags;");
    env.hsm(&["up"]).success();
    // The file changed after it was applied (a comment added): up refuses until repaired.
    env.write(
        "1_tags.up.sql",
        "-- tags, for the search page\nCREATE TABLE tags (id bigint);",
    );
    env.write("2_more.up.sql", "CREATE TABLE more (id bigint);");
    let refused = env.hsm(&["up"]).fails_with(1);
    assert!(
        refused.stderr().contains("hsm-host repair"),
        "{}",
        refused.stderr()
    );
    assert!(!env.has_table("more"));
    let repaired = env.hsm(&["repair"]).success();
    assert!(repaired.stdout().contains('1'), "{}", repaired.stdout());
    let status = env.hsm(&["status", "--json"]).success();
    let status: serde_json::Value = serde_json::from_str(&status.stdout()).unwrap();
    assert_eq!(status["changed_components"], serde_json::json!([]));
    env.hsm(&["up"]).success();
    assert_eq!(env.applied(), [1, 2]);
    // Another migration at an applied version is not a changed file: refused, nothing written.
    std::fs::remove_file(env.migrations.join("1_tags.up.sql")).unwrap();
    std::fs::remove_file(env.migrations.join("1_tags.down.sql")).unwrap();
    env.write("1_labels.up.sql", "CREATE TABLE labels (id bigint);");
    let before: Option<String> = env
        .client()
        .query_one("SELECT checksum FROM hsm.migrations WHERE version = 1", &[])
        .unwrap()
        .get(0);
    let run = env.hsm(&["repair"]);
    assert_ne!(run.code(), Some(0), "{}", run.stdout());
    let after: Option<String> = env
        .client()
        .query_one("SELECT checksum FROM hsm.migrations WHERE version = 1", &[])
        .unwrap()
        .get(0);
    assert_eq!(before, after);
}
