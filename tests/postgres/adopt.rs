//! `adopt` on PostgreSQL: other tools' history tables as they make them on a server (shapes
//! read from dbmate 2 run against this server, and from sqlx's and golang-migrate's
//! PostgreSQL drivers), taken over without running anything again.

use sha2::{Digest, Sha384};

use crate::support::PgEnv;

fn app_sql(env: &PgEnv, sql: &str) {
    env.client()
        .batch_execute(&format!("SET ROLE {}; {sql}", env.app_role))
        .unwrap();
}

#[test]
fn a_dbmate_database_is_adopted_after_up_refuses_to_run_it_again() {
    let env = PgEnv::new();
    env.write(
        "20240101000000_create_users.sql",
        "-- migrate:up\nCREATE TABLE users (id bigserial PRIMARY KEY, email text);\n\n-- migrate:down\nDROP TABLE users;\n",
    );
    env.write(
        "20240102000000_add_name.sql",
        "-- migrate:up\nALTER TABLE users ADD COLUMN name text;\n\n-- migrate:down\nALTER TABLE users DROP COLUMN name;\n",
    );
    // What dbmate left: its table, and the schema its two migrations made.
    app_sql(
        &env,
        "CREATE TABLE schema_migrations (version character varying NOT NULL PRIMARY KEY);
         INSERT INTO schema_migrations VALUES ('20240101000000'), ('20240102000000');
         CREATE TABLE users (id bigserial PRIMARY KEY, email text, name text);",
    );
    let refused = env.hsm(&["up"]).fails_with(1);
    assert!(refused.stderr().contains("dbmate"), "{}", refused.stderr());
    assert!(env.applied().is_empty());
    let dry = env.hsm(&["adopt", "--dry-run"]).success();
    assert!(dry.stdout().contains("Would record 2"), "{}", dry.stdout());
    assert!(env.applied().is_empty());
    env.hsm(&["adopt"]).success();
    assert_eq!(env.applied(), vec![20240101000000, 20240102000000]);
    env.write(
        "20240103000000_add_role.sql",
        "-- migrate:up\nALTER TABLE users ADD COLUMN role text;\n\n-- migrate:down\nALTER TABLE users DROP COLUMN role;\n",
    );
    env.hsm(&["up"]).success();
    assert_eq!(env.applied().len(), 3);
    let statuses: Vec<String> = env.history().into_iter().map(|(_, _, s, _)| s).collect();
    assert_eq!(statuses, ["adopted", "adopted", "success"]);
}

#[test]
fn sqlx_checksums_are_compared_and_a_dirty_golang_migrate_database_is_refused() {
    let env = PgEnv::new();
    let first = "CREATE TABLE notes (id bigserial PRIMARY KEY, body text);\n";
    env.write("20240101000000_notes.sql", first);
    env.write(
        "20240102000000_tags.sql",
        "CREATE TABLE tags (name text);\n",
    );
    let sum = |text: &str| Sha384::digest(text.as_bytes()).to_vec();
    app_sql(
        &env,
        "CREATE TABLE _sqlx_migrations (version bigint PRIMARY KEY, description text NOT NULL,
           installed_on timestamptz NOT NULL DEFAULT now(), success boolean NOT NULL,
           checksum bytea NOT NULL, execution_time bigint NOT NULL);
         CREATE TABLE notes (id bigserial PRIMARY KEY, body text);",
    );
    let insert = |checksum: Vec<u8>| {
        env.client()
            .execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum,
                   execution_time) VALUES (20240101000000, 'notes', true, $1, 1)",
                &[&checksum],
            )
            .unwrap();
    };
    insert(sum("a different file\n"));
    let changed = env.hsm(&["adopt"]).fails_with(1);
    assert!(
        changed.stderr().contains("SHA-384 differs"),
        "{}",
        changed.stderr()
    );
    assert!(env.applied().is_empty());
    env.client()
        .batch_execute("DELETE FROM _sqlx_migrations")
        .unwrap();
    insert(sum(first));
    env.hsm(&["adopt"]).success();
    assert_eq!(env.applied(), vec![20240101000000]);
    env.hsm(&["up"]).success();
    assert_eq!(env.applied(), vec![20240101000000, 20240102000000]);

    let migrate = PgEnv::new();
    migrate.write("1_a.up.sql", "CREATE TABLE a (x int);");
    migrate.write("1_a.down.sql", "DROP TABLE a;");
    app_sql(
        &migrate,
        "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);
         INSERT INTO schema_migrations VALUES (1, true);",
    );
    let dirty = migrate.hsm(&["adopt"]).fails_with(1);
    assert!(dirty.stderr().contains("dirty"), "{}", dirty.stderr());
    assert!(migrate.applied().is_empty());
}
