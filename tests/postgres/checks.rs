//! amcheck after a run: called where a superuser installed it in a schema of its own, never
//! where the migrations' role could replace its functions.

use crate::support::PgEnv;

fn log_of(env: &PgEnv) -> String {
    std::fs::read_to_string(env.dir.path().join("migration.log")).unwrap_or_default()
}

fn indexed_set(env: &PgEnv) {
    env.write(
        "1_items.up.sql",
        "CREATE TABLE items (id bigint PRIMARY KEY, name text UNIQUE);\n\
         INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 500) g;",
    );
    env.write("1_items.down.sql", "DROP TABLE items;");
}

#[test]
fn amcheck_in_its_own_schema_verifies_every_index_after_a_run() {
    let env = PgEnv::new();
    env.client()
        .batch_execute("CREATE SCHEMA amcheck; CREATE EXTENSION amcheck SCHEMA amcheck")
        .unwrap();
    indexed_set(&env);
    env.hsm(&["up"]).success();
    let log = log_of(&env);
    // items' two indexes and the tracking tables' own.
    let line = log
        .lines()
        .find(|l| l.contains("amcheck: "))
        .unwrap_or_else(|| panic!("no amcheck line in {log}"));
    let count: usize = line
        .split("amcheck: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(count >= 2, "{line}");
    // A run with nothing to do checks nothing.
    env.hsm(&["up"]).success();
    assert_eq!(log_of(&env).matches("amcheck: ").count(), 1);
    // A partitioned table's index has no storage of its own: not reported corrupt (review).
    env.write(
        "2_partitioned.up.sql",
        "CREATE TABLE p (x int) PARTITION BY RANGE (x);\n\
         CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100);\n\
         CREATE INDEX p_x ON p (x);",
    );
    env.hsm(&["up"]).success();
    assert_eq!(env.applied(), [1, 2]);
}

#[test]
fn amcheck_in_a_schema_the_application_owns_is_never_called() {
    let env = PgEnv::new();
    // `public` belongs to the application's role here: a migration could drop the
    // extension's functions with the schema and plant its own for the host to call.
    env.client()
        .batch_execute(&format!(
            "ALTER SCHEMA public OWNER TO {app}; CREATE EXTENSION amcheck SCHEMA public",
            app = env.app_role
        ))
        .unwrap();
    indexed_set(&env);
    env.hsm(&["up"]).success();
    let log = log_of(&env);
    assert!(
        log.contains("hsm-host does not call functions there"),
        "{log}"
    );
    assert!(!log.contains("B-tree indexes verified"), "{log}");
    assert_eq!(env.applied(), [1]);
}
