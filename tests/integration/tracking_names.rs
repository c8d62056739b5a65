//! Tracking tables under a prefix, for an application that owns a table called `migrations`:
//! its migrations run with zero edits, the application's table stays the application's, and a
//! database tracked under one set of names is never taken for an empty one under another.

use rusqlite::Connection;

use crate::support::{Env, assert_same_bytes, table_exists};

/// A bird-tracking application whose domain has a `migrations` table: created, filled,
/// rebuilt under `PRAGMA foreign_keys=OFF` in a `BEGIN; … COMMIT;` wrapper, and viewed.
const SET: [(&str, &str, &str); 4] = [
    (
        "000001_create_migrations.up.sql",
        "CREATE TABLE species (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n\
         CREATE TABLE migrations (id INTEGER PRIMARY KEY, species_id INTEGER REFERENCES species (id), \
         route TEXT NOT NULL);\n",
        "DROP TABLE migrations;\nDROP TABLE species;\n",
    ),
    (
        "000002_seed.up.sql",
        "INSERT INTO species (name) VALUES ('swift'), ('stork');\n\
         INSERT INTO migrations (species_id, route) VALUES (1, 'EU-AF'), (2, 'EU-AF');\n",
        "DELETE FROM migrations;\nDELETE FROM species;\n",
    ),
    (
        "000003_rebuild_migrations.up.sql",
        "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n\
         CREATE TABLE migrations_new (id INTEGER PRIMARY KEY, species_id INTEGER NOT NULL \
         REFERENCES species (id), route TEXT NOT NULL, km INTEGER NOT NULL DEFAULT 0);\n\
         INSERT INTO migrations_new (id, species_id, route) SELECT id, species_id, route FROM migrations;\n\
         DROP TABLE migrations;\nALTER TABLE migrations_new RENAME TO migrations;\n\
         COMMIT;\nPRAGMA foreign_keys=ON;\n",
        "",
    ),
    (
        "000004_routes_view.up.sql",
        "CREATE VIEW routes AS SELECT s.name, m.route FROM migrations m JOIN species s ON s.id = m.species_id;\n",
        "DROP VIEW routes;\n",
    ),
];

fn write_set(env: &Env) {
    for (up_file, up, down) in SET {
        std::fs::write(env.migrations.join(up_file), up).unwrap();
        let down_file = up_file.replace(".up.sql", ".down.sql");
        std::fs::write(env.migrations.join(down_file), down).unwrap();
    }
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |row| row.get(0)).unwrap()
}

#[test]
fn an_application_that_owns_a_migrations_table_is_migrated_under_a_prefix() {
    let env = Env::empty();
    write_set(&env);

    // Under the seed's names the application's table cannot be created, and the refusal says
    // what to do; nothing is kept.
    env.hsm(&["up", "--no-backup"])
        .assert_code(1)
        .assert_stderr_contains("`migrations` belongs to hsm-host")
        .assert_stderr_contains("--tracking-prefix");
    std::fs::remove_file(&env.db).unwrap();

    env.hsm(&["up", "--tracking-prefix", "hsm_"])
        .assert_success();
    let conn = env.open();
    assert_eq!(
        count(&conn, "SELECT count(*) FROM migrations WHERE km = 0"),
        2
    );
    assert_eq!(count(&conn, "SELECT count(*) FROM routes"), 2);
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM hsm_migrations WHERE status = 'applied'"
        ),
        4
    );
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM hsm_migration_history WHERE status = 'success'"
        ),
        4
    );
    assert!(table_exists(&conn, "hsm_hsm_components"));
    assert!(!table_exists(&conn, "migration_history"));
    assert!(!table_exists(&conn, "hsm_components"));

    // The prefix also comes from the environment.
    let status = env
        .hsm_command(&["status", "--json"])
        .env("HSM_TRACKING_PREFIX", "hsm_")
        .output()
        .unwrap();
    assert!(status.status.success());
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["current_version"], 4);
    // The backup taken before the run was read with the same names: it was at version 0.
    assert_eq!(status["backups"][0]["schema_version"], 0);

    // Without the prefix, the database is not mistaken for an empty one: nothing runs, nothing
    // is written, and the error names the prefix to use.
    drop(conn);
    let before = std::fs::read(&env.db).unwrap();
    for command in [
        &["status"][..],
        &["up", "--no-backup"],
        &["down", "--no-backup"],
    ] {
        env.hsm(command)
            .assert_code(1)
            .assert_stderr_contains("run with --tracking-prefix hsm_");
        assert_same_bytes(&env.db, &before, &format!("{command:?} without the prefix"));
    }

    // Rolled back and applied again through the prefixed tables.
    env.hsm(&["down", "0", "--no-backup", "--tracking-prefix", "hsm_"])
        .assert_success();
    let conn = env.open();
    assert!(!table_exists(&conn, "migrations"));
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM hsm_migrations WHERE status = 'rolled_back'"
        ),
        4
    );
    env.hsm(&["up", "--no-backup", "--tracking-prefix", "hsm_"])
        .assert_success();
    assert_eq!(count(&conn, "SELECT count(*) FROM migrations"), 2);
}

#[test]
fn under_a_prefix_the_prefixed_tables_are_the_protected_ones() {
    let env = Env::empty();
    write_set(&env);
    std::fs::write(
        env.migrations.join("000005_forge.up.sql"),
        "UPDATE migrations SET km = 10000;\n\
         UPDATE hsm_migrations SET status = 'rolled_back';\n",
    )
    .unwrap();
    env.hsm(&["up", "--no-backup", "--tracking-prefix", "hsm_"])
        .assert_code(1)
        .assert_stderr_contains("`hsm_migrations` belongs to hsm-host");
    let conn = env.open();
    // The four before it applied; the fifth left nothing, not even its write to the
    // application's own table.
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM hsm_migrations WHERE status = 'applied'"
        ),
        4
    );
    assert_eq!(
        count(&conn, "SELECT count(*) FROM migrations WHERE km = 10000"),
        0
    );
}

#[test]
fn a_database_tracked_under_the_seeds_names_is_not_taken_for_new_under_a_prefix() {
    let env = Env::empty();
    std::fs::write(
        env.migrations.join("000001_t.up.sql"),
        "CREATE TABLE t (x);\n",
    )
    .unwrap();
    env.hsm(&["up", "--no-backup"]).assert_success();
    let before = std::fs::read(&env.db).unwrap();
    env.hsm(&["up", "--no-backup", "--tracking-prefix", "app_"])
        .assert_code(1)
        .assert_stderr_contains("run without --tracking-prefix");
    assert_same_bytes(&env.db, &before, "up under another prefix");
    assert!(!table_exists(&env.open(), "app_migrations"));
}

#[test]
fn a_prefix_that_is_not_a_plain_identifier_is_a_usage_error() {
    let env = Env::empty();
    for bad in ["a\"; DROP TABLE x; --", "1x", "sqlite_", "a b"] {
        env.hsm(&["status", "--tracking-prefix", bad])
            .assert_code(2)
            .assert_stderr_contains("invalid tracking prefix");
    }
    assert!(!env.db.exists());
}
