//! Directories for several databases (pop/popx: one file per dialect of a version) and a
//! database pop migrated, adopted: rules of the tools as real projects exercise them (see
//! docs/sql-sets.md), in fixtures of our own.

use crate::real_sets::write;
use crate::support::{Env, applied, table_exists};

/// A directory for several databases, as pop/popx lay them out (Ory's projects): one file per
/// dialect of a version, or one for all; SQLite's own (`.sqlite3.` or `.sqlite.`) wins over the
/// one for all, the others are not SQLite's; `.autocommit.` runs in hsm-host's transaction;
/// 20-digit versions are numbered without their leading `20`, in pop's order.
#[test]
fn a_directory_for_several_databases_runs_sqlites_files() {
    let env = Env::empty();
    let m = &env.migrations;
    let v1 = "20150100000001000000";
    let v2 = "20191100000001000000";
    let v3 = "20191100000001000001";
    let v4 = "20250708190000000000";
    for dialect in ["postgres", "mysql", "cockroach"] {
        write(
            m,
            &format!("{v1}_networks.{dialect}.up.sql"),
            "CREATE TABLE networks (id UUID PRIMARY KEY);",
        );
        write(
            m,
            &format!("{v1}_networks.{dialect}.down.sql"),
            "DROP TABLE networks;",
        );
    }
    write(
        m,
        &format!("{v1}_networks.sqlite3.up.sql"),
        "CREATE TABLE networks (id TEXT PRIMARY KEY);",
    );
    write(
        m,
        &format!("{v1}_networks.sqlite3.down.sql"),
        "DROP TABLE networks;",
    );
    // For every dialect, but SQLite has its own.
    write(
        m,
        &format!("{v2}_identities.up.sql"),
        "CREATE TABLE identities (id SERIAL);",
    );
    write(
        m,
        &format!("{v2}_identities.down.sql"),
        "DROP TABLE identities;",
    );
    write(
        m,
        &format!("{v2}_identities.sqlite.up.sql"),
        "CREATE TABLE identities (id INTEGER PRIMARY KEY, nid TEXT REFERENCES networks (id));",
    );
    write(
        m,
        &format!("{v2}_identities.sqlite.down.sql"),
        "DROP TABLE identities;",
    );
    // For every dialect, SQLite too; an empty down is a no-op.
    write(
        m,
        &format!("{v3}_identities_index.up.sql"),
        "CREATE INDEX identities_nid ON identities (nid);",
    );
    write(m, &format!("{v3}_identities_index.down.sql"), "");
    write(
        m,
        &format!("{v4}_external_id.autocommit.up.sql"),
        "ALTER TABLE identities ADD COLUMN external_id TEXT;",
    );
    write(
        m,
        &format!("{v4}_external_id.autocommit.down.sql"),
        "ALTER TABLE identities DROP COLUMN external_id;",
    );
    write(
        m,
        &format!("{v4}_external_id.cockroach.autocommit.up.sql"),
        "ALTER TABLE identities ADD COLUMN external_id STRING;",
    );
    write(
        m,
        &format!("{v4}_external_id.cockroach.autocommit.down.sql"),
        "ALTER TABLE identities DROP COLUMN external_id;",
    );
    env.hsm(&["up"]).assert_success();
    assert_eq!(
        applied(&env.open()),
        [
            150100000001000000,
            191100000001000000,
            191100000001000001,
            250708190000000000
        ]
    );
    let sql: String = env
        .open()
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'identities'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        sql.contains("nid TEXT REFERENCES networks") && sql.contains("external_id"),
        "{sql}"
    );
    env.hsm(&["down", "0"]).assert_success();
    assert!(!table_exists(&env.open(), "networks"));
    env.hsm(&["up"]).assert_success();

    // Versions of different lengths: pop's text order is not their numbers'.
    write(m, "9_short.sqlite3.up.sql", "SELECT 1;");
    write(m, "9_short.sqlite3.down.sql", "SELECT 1;");
    env.hsm(&["status"])
        .assert_code(1)
        .assert_stderr_contains("are of different lengths");
}

/// pop's history (`schema_migration`) is another tool's: `up` stops, `adopt` takes it over
/// (numbered as the files are), `up` applies the rest. Two SQLite files of one version are
/// refused; names pop does not read are named.
#[test]
fn a_database_pop_migrated_is_adopted_and_its_directory_read_strictly() {
    let env = Env::empty();
    let m = &env.migrations;
    let (v1, v2) = ("20191100000001000000", "20191100000002000000");
    write(
        m,
        &format!("{v1}_settings.sqlite3.up.sql"),
        "CREATE TABLE settings (k TEXT);",
    );
    write(
        m,
        &format!("{v1}_settings.sqlite3.down.sql"),
        "DROP TABLE settings;",
    );
    write(
        m,
        &format!("{v1}_settings.postgres.up.sql"),
        "CREATE TABLE settings (k TEXT);",
    );
    write(
        m,
        &format!("{v1}_settings.postgres.down.sql"),
        "DROP TABLE settings;",
    );
    write(
        m,
        &format!("{v2}_seed.up.sql"),
        "INSERT INTO settings VALUES ('a');",
    );
    write(m, &format!("{v2}_seed.down.sql"), "DELETE FROM settings;");
    std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
    rusqlite::Connection::open(&env.db)
        .unwrap()
        .execute_batch(&format!(
            "CREATE TABLE schema_migration (version VARCHAR(48) NOT NULL, version_self INT NOT NULL DEFAULT 0);
             CREATE TABLE settings (k TEXT);
             INSERT INTO schema_migration (version) VALUES ('{v1}');"
        ))
        .unwrap();
    env.hsm(&["up"])
        .assert_code(1)
        .assert_stderr_contains("migrated by pop");
    env.hsm(&["adopt"]).assert_success();
    env.hsm(&["up"]).assert_success();
    assert_eq!(
        applied(&env.open()),
        [191100000001000000, 191100000002000000]
    );

    write(
        m,
        "20191100000003000000_add.users.sqlite3.up.sql",
        "SELECT 1;",
    );
    let run = env.hsm(&["status"]);
    run.assert_success();
    assert!(
        run.stderr
            .contains("20191100000003000000_add.users.sqlite3.up.sql"),
        "{}",
        run.stderr
    );
    write(
        m,
        &format!("{v1}_settings.sqlite.up.sql"),
        "CREATE TABLE settings (k TEXT);",
    );
    env.hsm(&["status"])
        .assert_code(1)
        .assert_stderr_contains("is a second SQLite file of version");
}
