//! Databases another tool migrated: `hsm-host adopt` records what that tool applied (read from
//! its history table, left untouched) without running it again, then `up` goes on; `baseline`
//! does the same for a database without any history.

use std::path::Path;

use rusqlite::Connection;
use sha2::{Digest, Sha384};

use crate::support::{Env, dump, table_exists};

/// Ten golang-migrate/sqlx-style migrations in `dir`; returns their up files.
fn write_set(dir: &Path) -> Vec<std::path::PathBuf> {
    (1..=10)
        .map(|n| {
            let up = dir.join(format!("{n:04}_table_{n}.up.sql"));
            std::fs::write(
                &up,
                format!("CREATE TABLE t{n} (id INTEGER PRIMARY KEY, v TEXT);\nINSERT INTO t{n} (v) VALUES ('seed');\n"),
            )
            .unwrap();
            std::fs::write(dir.join(format!("{n:04}_table_{n}.down.sql")), format!("DROP TABLE t{n};\n")).unwrap();
            up
        })
        .collect()
}

/// Applies the first `count` files as the other tool did (each file as it is).
fn apply_directly(conn: &Connection, ups: &[std::path::PathBuf], count: usize) {
    for up in &ups[..count] {
        conn.execute_batch(&std::fs::read_to_string(up).unwrap())
            .unwrap();
    }
}

fn sqlx_history(conn: &Connection, ups: &[std::path::PathBuf], count: usize) {
    conn.execute_batch(
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL,
           installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL,
           checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
    )
    .unwrap();
    for (i, up) in ups[..count].iter().enumerate() {
        let checksum = Sha384::digest(std::fs::read(up).unwrap()).to_vec();
        conn.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (?1, 'table', 1, ?2, 1)",
            rusqlite::params![i as i64 + 1, checksum],
        )
        .unwrap();
    }
}

fn sqlx_rows(conn: &Connection) -> String {
    dump(conn, &[])
        .split("table ")
        .find(|section| section.starts_with("_sqlx_migrations"))
        .unwrap()
        .to_owned()
}

#[test]
fn a_sqlx_database_is_adopted_and_migrated_further() {
    let env = Env::empty();
    let ups = write_set(&env.migrations);
    std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
    let conn = Connection::open(&env.db).unwrap();
    apply_directly(&conn, &ups, 6);
    sqlx_history(&conn, &ups, 6);
    let before = std::fs::read(&env.db).unwrap();

    env.hsm(&["adopt", "--dry-run"])
        .assert_success()
        .assert_stdout_contains("Would record 6 migration(s) as applied without running them (applied by sqlx): 1, 2, 3, 4, 5, 6");
    assert_eq!(
        std::fs::read(&env.db).unwrap(),
        before,
        "a dry run wrote to the database"
    );

    let sqlx_before = sqlx_rows(&conn);
    env.hsm(&["adopt"]).assert_success();
    let status = env.status();
    assert_eq!(status["current_version"], 6);
    assert_eq!(status["pending"].as_array().unwrap().len(), 4);
    // Nothing ran again: each table still has its one seed row.
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM t1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1);

    env.hsm(&["up"]).assert_success();
    assert!(table_exists(&conn, "t10"));
    let history: Vec<(String, String)> = conn
        .prepare("SELECT direction, status FROM migration_history ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(history.iter().filter(|(_, s)| s == "adopted").count(), 6);
    assert_eq!(history.iter().filter(|(_, s)| s == "success").count(), 4);
    // sqlx's own table is as sqlx left it.
    assert_eq!(sqlx_rows(&conn), sqlx_before);
    env.hsm(&["adopt"])
        .assert_success()
        .assert_stdout_contains("Nothing to record");
}

#[test]
fn a_changed_file_or_a_version_the_set_lacks_stops_adoption_and_records_nothing() {
    let env = Env::empty();
    let ups = write_set(&env.migrations);
    std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
    let conn = Connection::open(&env.db).unwrap();
    apply_directly(&conn, &ups, 3);
    sqlx_history(&conn, &ups, 3);
    std::fs::write(
        &ups[1],
        "CREATE TABLE t2 (id INTEGER PRIMARY KEY, v TEXT, edited INTEGER);\n",
    )
    .unwrap();
    let before = std::fs::read(&env.db).unwrap();
    env.hsm(&["adopt"])
        .assert_code(1)
        .assert_stderr_contains("version 2:")
        .assert_stderr_contains("0002_table_2.up.sql is not the file that was applied");
    assert_eq!(std::fs::read(&env.db).unwrap(), before);

    std::fs::remove_file(&ups[2]).unwrap();
    std::fs::remove_file(env.migrations.join("0003_table_3.down.sql")).unwrap();
    std::fs::write(
        &ups[1],
        std::fs::read_to_string(&ups[0])
            .unwrap()
            .replace("t1", "t2"),
    )
    .unwrap();
    env.hsm(&["adopt"])
        .assert_code(1)
        .assert_stderr_contains("sqlx applied version 3, which is not in the migration set");
}

#[test]
fn diesel_history_is_read_by_its_version_strings() {
    let env = Env::empty();
    for n in 1..=3 {
        let folder = env.migrations.join(format!("2024-01-0{n}-120000_t{n}"));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("up.sql"), format!("CREATE TABLE t{n} (x);")).unwrap();
        std::fs::write(folder.join("down.sql"), format!("DROP TABLE t{n};")).unwrap();
    }
    std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
    let conn = Connection::open(&env.db).unwrap();
    conn.execute_batch(
        "CREATE TABLE t1 (x); CREATE TABLE t2 (x);
         CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL,
                                                  run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
         INSERT INTO __diesel_schema_migrations (version) VALUES ('20240101120000'), ('20240102120000');",
    )
    .unwrap();
    env.hsm(&["adopt"])
        .assert_success()
        .assert_stdout_contains("(applied by diesel): 20240101120000, 20240102120000");
    env.hsm(&["up"]).assert_success();
    assert!(table_exists(&conn, "t3"));
}

#[test]
fn a_database_without_history_is_baselined() {
    let env = Env::empty();
    let ups = write_set(&env.migrations);
    std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
    let conn = Connection::open(&env.db).unwrap();
    apply_directly(&conn, &ups, 4);
    env.hsm(&["adopt"])
        .assert_code(1)
        .assert_stderr_contains("use `baseline VERSION`");
    env.hsm(&["baseline", "11"])
        .assert_code(1)
        .assert_stderr_contains("no migration has version 11");
    env.hsm(&["baseline", "4"])
        .assert_success()
        .assert_stdout_contains(
            "Recorded 4 migration(s) as applied without running them: 1, 2, 3, 4",
        );
    env.hsm(&["up"]).assert_success();
    assert_eq!(env.status()["current_version"], 10);
}

/// Flyway's checksum of a file, computed here from its definition: CRC-32 of the lines without
/// their breaks, as a signed 32-bit number.
fn flyway_crc(text: &str) -> i32 {
    crc32fast::hash(text.lines().collect::<String>().as_bytes()) as i32
}

#[test]
fn a_flyway_database_with_dotted_versions_is_adopted_with_its_checksums_checked() {
    let env = Env::empty();
    let files = [
        (
            "V1.1__users.sql",
            "CREATE TABLE users (id INTEGER PRIMARY KEY);\r\n",
        ),
        (
            "V1.2__posts.sql",
            "CREATE TABLE posts (id INTEGER PRIMARY KEY);\n",
        ),
        ("U1.2__posts.sql", "DROP TABLE posts;\n"),
        (
            "V2.0__tags.sql",
            "CREATE TABLE tags (id INTEGER PRIMARY KEY);\n",
        ),
        ("U2.0__tags.sql", "DROP TABLE tags;\n"),
    ];
    for (name, text) in files {
        std::fs::write(env.migrations.join(name), text).unwrap();
    }
    std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
    let conn = Connection::open(&env.db).unwrap();
    conn.execute_batch(
        "CREATE TABLE flyway_schema_history (installed_rank INT NOT NULL PRIMARY KEY,
           version VARCHAR(50), description VARCHAR(200) NOT NULL, type VARCHAR(20) NOT NULL,
           script VARCHAR(1000) NOT NULL, checksum INT, installed_by VARCHAR(100) NOT NULL,
           installed_on TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f','now')),
           execution_time INT NOT NULL, success BOOLEAN NOT NULL)",
    )
    .unwrap();
    for (rank, (name, text)) in files[..2].iter().enumerate() {
        conn.execute_batch(text).unwrap();
        conn.execute(
            "INSERT INTO flyway_schema_history (installed_rank, version, description, type,
               script, checksum, installed_by, execution_time, success)
             VALUES (?1, ?2, 'x', 'SQL', ?3, ?4, 'ci', 1, 1)",
            rusqlite::params![rank as i64 + 1, &name[1..4], name, flyway_crc(text)],
        )
        .unwrap();
    }

    env.hsm(&["adopt"])
        .assert_success()
        .assert_stdout_contains("applied by flyway");
    let status = env.status();
    // 1.2 as hsm-host numbers it: each part six digits.
    assert_eq!(status["current_version"], 1_000_002_000_000_u64);
    env.hsm(&["up"]).assert_success();
    assert!(table_exists(&conn, "tags"));
    // Down to 1.1 runs the undo files of 2.0 and of 1.2 (which Flyway applied), newest first.
    env.hsm(&["down", "1000001000000"]).assert_success();
    assert!(!table_exists(&conn, "tags") && !table_exists(&conn, "posts"));
    assert!(table_exists(&conn, "users"));

    // A file edited since Flyway ran it is not adopted.
    let env = Env::empty();
    for (name, text) in files {
        std::fs::write(env.migrations.join(name), text).unwrap();
    }
    std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
    let copy = Connection::open(&env.db).unwrap();
    copy.execute_batch(&dump_flyway(&conn)).unwrap();
    std::fs::write(
        env.migrations.join("V1.1__users.sql"),
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n",
    )
    .unwrap();
    env.hsm(&["adopt"])
        .assert_code(1)
        .assert_stderr_contains("V1.1__users.sql is not the file that was applied")
        .assert_stderr_contains("flyway_schema_history");
}

/// Flyway's table and rows, as SQL.
fn dump_flyway(conn: &Connection) -> String {
    let create: String = conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'flyway_schema_history'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let rows: Vec<String> = conn
        .prepare(
            "SELECT format('INSERT INTO flyway_schema_history VALUES (%d, %Q, %Q, %Q, %Q, %d, %Q, %Q, %d, %d);',
               installed_rank, version, description, type, script, checksum, installed_by,
               installed_on, execution_time, success)
             FROM flyway_schema_history WHERE type = 'SQL' AND version < '2'",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    format!("{create};\n{}", rows.join("\n"))
}

#[test]
fn a_refinery_database_with_unversioned_migrations_is_adopted_under_layout_refinery() {
    let env = Env::empty();
    let files = [
        (
            "V1__users.sql",
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);",
        ),
        ("U2__seed.sql", "INSERT INTO users (name) VALUES ('root');"),
        (
            "V3__posts.sql",
            "CREATE TABLE posts (id INTEGER PRIMARY KEY);",
        ),
    ];
    for (name, text) in files {
        std::fs::write(env.migrations.join(name), text).unwrap();
    }
    std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
    let conn = Connection::open(&env.db).unwrap();
    conn.execute_batch(
        "CREATE TABLE refinery_schema_history (version INT4 PRIMARY KEY, name VARCHAR(255),
           applied_on VARCHAR(255), checksum VARCHAR(255))",
    )
    .unwrap();
    for (name, text) in &files[..2] {
        conn.execute_batch(text).unwrap();
        let path = env.migrations.join(name);
        let sum = hsm_host::adopt::refinery_checksum(&path, text.as_bytes()).unwrap();
        conn.execute(
            "INSERT INTO refinery_schema_history VALUES (?1, ?2, 'now', ?3)",
            rusqlite::params![
                name[1..2].parse::<i64>().unwrap(),
                &name[3..name.len() - 4],
                sum.to_string()
            ],
        )
        .unwrap();
    }
    // Read as Flyway, `U2` would undo a V2 that is not there: the error says what to do.
    env.hsm(&["adopt"])
        .assert_code(1)
        .assert_stderr_contains("--layout refinery");
    env.hsm(&["adopt", "--layout", "refinery"])
        .assert_success()
        .assert_stdout_contains("applied by refinery");
    env.hsm(&["up", "--layout", "refinery"]).assert_success();
    assert!(table_exists(&conn, "posts"));
    let users: i64 = conn
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 1, "the seed ran once, by refinery");
    env.hsm(&["status", "--layout", "refinery"])
        .assert_success();
    env.hsm(&["status", "--layout", "nope"])
        .assert_code(2)
        .assert_stderr_contains("unknown layout `nope`");
}

/// golang-migrate, dbmate and goose, each with its history table as the tool makes it and the
/// first six of ten migrations applied by it: adopted, then migrated further by hsm-host.
#[test]
fn golang_migrate_dbmate_and_goose_databases_are_adopted_and_migrated_further() {
    let histories = [
        (
            "golang-migrate",
            "CREATE TABLE schema_migrations (version uint64, dirty bool);
             CREATE UNIQUE INDEX version_unique ON schema_migrations (version);
             INSERT INTO schema_migrations (version, dirty) VALUES (6, 0);",
        ),
        (
            "dbmate",
            "CREATE TABLE IF NOT EXISTS \"schema_migrations\" (version varchar(128) primary key);
             INSERT INTO schema_migrations (version) VALUES ('1'), ('2'), ('3'), ('4'), ('5'), ('6');",
        ),
        (
            "goose",
            "CREATE TABLE goose_db_version (id INTEGER PRIMARY KEY AUTOINCREMENT,
               version_id INTEGER NOT NULL, is_applied INTEGER NOT NULL,
               tstamp TIMESTAMP DEFAULT (datetime('now')));
             INSERT INTO goose_db_version (version_id, is_applied) VALUES
               (0, 1), (1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1), (7, 1), (7, 0);",
        ),
    ];
    for (tool, history) in histories {
        let env = Env::empty();
        let ups = write_set(&env.migrations);
        std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
        let conn = Connection::open(&env.db).unwrap();
        apply_directly(&conn, &ups, 6);
        conn.execute_batch(history).unwrap();
        let theirs = dump(&conn, &[]);
        env.hsm(&["adopt"])
            .assert_success()
            .assert_stdout_contains(&format!("(applied by {tool}): 1, 2, 3, 4, 5, 6"));
        env.hsm(&["up"]).assert_success();
        assert_eq!(env.status()["current_version"], 10, "{tool}");
        // Nothing ran twice, and the tool's own table is as it was.
        let seeded: i64 = conn
            .query_row("SELECT count(*) FROM t6", [], |r| r.get(0))
            .unwrap();
        assert_eq!(seeded, 1, "{tool}");
        let table = if tool == "goose" {
            "goose_db_version"
        } else {
            "schema_migrations"
        };
        let section = |dump: &str| {
            dump.split("table ")
                .find(|s| s.starts_with(table))
                .map(str::to_owned)
        };
        assert_eq!(section(&dump(&conn, &[])), section(&theirs), "{tool}");
    }
}
