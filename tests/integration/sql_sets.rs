//! Plain SQL migration sets, shaped like real projects' (table rebuilds under
//! `PRAGMA foreign_keys=OFF`, files wrapped in `BEGIN; … COMMIT;`, empty downs, triggers,
//! views), in each layout hsm-host reads: applied with zero edits through `--migrations`, the
//! final schema equal to what SQLite itself makes of the same files, rolled back and applied
//! again exactly; packed into components that are byte for byte the same every time.

use std::path::Path;

use rusqlite::Connection;

use crate::support::{Env, Run};

/// One migration of the project: name, up, down (`None`: no down file).
struct Migration {
    name: String,
    up: String,
    down: Option<String>,
}

fn migration(name: impl Into<String>, up: impl Into<String>, down: Option<&str>) -> Migration {
    Migration {
        name: name.into(),
        up: up.into(),
        down: down.map(str::to_owned),
    }
}

/// A monitoring application's history: 54 migrations, one of which makes the application's own
/// table called `migrations` (so the set runs with `--tracking-prefix`).
fn project() -> Vec<Migration> {
    let mut set = vec![
        migration(
            "create_hosts",
            "-- Hosts being monitored.\nCREATE TABLE hosts (\n  id INTEGER PRIMARY KEY,\n  name TEXT NOT NULL UNIQUE,\n  created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP\n);\n",
            Some("DROP TABLE hosts;\n"),
        ),
        migration(
            "create_metrics",
            "CREATE TABLE metrics (id INTEGER PRIMARY KEY, host_id INTEGER NOT NULL REFERENCES hosts (id) ON DELETE CASCADE, name TEXT NOT NULL, value REAL);\nCREATE INDEX metrics_host ON metrics (host_id);\n",
            Some("DROP INDEX metrics_host;\nDROP TABLE metrics;\n"),
        ),
        migration(
            "seed_hosts",
            "INSERT INTO hosts (name) VALUES ('alpha'), ('beta');\nINSERT INTO metrics (host_id, name, value) VALUES (1, 'load', 0.5);\n",
            Some("-- Seed data stays: nothing to undo.\n"),
        ),
    ];
    for i in 0..16 {
        set.push(migration(
            format!("create_service_{i}"),
            format!("CREATE TABLE service_{i} (id INTEGER PRIMARY KEY, host_id INTEGER REFERENCES hosts (id), label TEXT);\nINSERT INTO service_{i} (host_id, label) VALUES (1, 'web');\n"),
            Some(&format!("DROP TABLE service_{i};\n")),
        ));
        set.push(migration(
            format!("add_port_to_service_{i}"),
            format!("ALTER TABLE service_{i} ADD COLUMN port INTEGER;\n"),
            Some(&format!("ALTER TABLE service_{i} DROP COLUMN port;\n")),
        ));
        set.push(migration(
            format!("rebuild_service_{i}"),
            format!(
                "PRAGMA foreign_keys=OFF;\n\nBEGIN TRANSACTION;\n\nCREATE TABLE service_{i}_new (\n  id INTEGER PRIMARY KEY,\n  host_id INTEGER NOT NULL REFERENCES hosts (id),\n  label TEXT NOT NULL DEFAULT '',\n  port INTEGER NOT NULL DEFAULT 0 CHECK (port >= 0)\n);\nINSERT INTO service_{i}_new (id, host_id, label, port)\n  SELECT id, host_id, coalesce(label, ''), coalesce(port, 0) FROM service_{i};\nDROP TABLE service_{i};\nALTER TABLE service_{i}_new RENAME TO service_{i};\nCREATE INDEX service_{i}_host ON service_{i} (host_id);\n\nCOMMIT;\n\nPRAGMA foreign_keys=ON;\n"
            ),
            Some(&format!(
                "PRAGMA foreign_keys=OFF;\nBEGIN;\nCREATE TABLE service_{i}_old (id INTEGER PRIMARY KEY, host_id INTEGER REFERENCES hosts (id), label TEXT, port INTEGER);\nINSERT INTO service_{i}_old SELECT id, host_id, label, port FROM service_{i};\nDROP TABLE service_{i};\nALTER TABLE service_{i}_old RENAME TO service_{i};\nCOMMIT;\nPRAGMA foreign_keys=ON;\n"
            )),
        ));
    }
    set.push(migration(
        "create_migrations",
        "-- Hosts moved between data centres.\nCREATE TABLE migrations (\n  id INTEGER PRIMARY KEY,\n  host_id INTEGER NOT NULL REFERENCES hosts (id),\n  from_dc TEXT NOT NULL,\n  to_dc TEXT NOT NULL\n);\nINSERT INTO migrations (host_id, from_dc, to_dc) VALUES (1, 'fra', 'ams');\n",
        Some("DROP TABLE migrations;\n"),
    ));
    set.push(migration(
        "host_metrics_view",
        "CREATE VIEW host_metrics AS\n  SELECT h.name, count(m.id) AS n FROM hosts h LEFT JOIN metrics m ON m.host_id = h.id GROUP BY h.id;\n",
        Some("DROP VIEW host_metrics;\n"),
    ));
    set.push(migration(
        "audit_renames",
        "CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT NOT NULL);\nCREATE TRIGGER hosts_audit AFTER UPDATE OF name ON hosts\nBEGIN\n  INSERT INTO audit (what) VALUES ('renamed ' || old.name || ' to ' || new.name);\nEND;\n",
        Some("DROP TRIGGER hosts_audit;\nDROP TABLE audit;\n"),
    ));
    set
}

/// Writes the project in `layout`.
fn write_set(dir: &Path, layout: &str, set: &[Migration]) {
    let write = |path: &Path, text: &str| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    for (i, m) in set.iter().enumerate() {
        let n = i + 1;
        let name = &m.name;
        match layout {
            "diesel" => {
                let folder = dir.join(format!("2024-01-01-{n:06}_{name}"));
                write(&folder.join("up.sql"), &m.up);
                if let Some(down) = &m.down {
                    write(&folder.join("down.sql"), down);
                }
            }
            "golang-migrate" => {
                write(&dir.join(format!("{n:06}_{name}.up.sql")), &m.up);
                if let Some(down) = &m.down {
                    write(&dir.join(format!("{n:06}_{name}.down.sql")), down);
                }
            }
            "goose" => {
                let down = m.down.as_deref().map_or(String::new(), |d| {
                    format!("-- +goose Down\n-- +goose StatementBegin\n{d}-- +goose StatementEnd\n")
                });
                let text = format!(
                    "-- +goose Up\n-- +goose StatementBegin\n{}-- +goose StatementEnd\n\n{down}",
                    m.up
                );
                write(&dir.join(format!("{n:05}_{name}.sql")), &text);
            }
            "dbmate" => {
                let down = m
                    .down
                    .as_deref()
                    .map_or(String::new(), |d| format!("-- migrate:down\n{d}"));
                write(
                    &dir.join(format!("2024010100{n:04}_{name}.sql")),
                    &format!("-- migrate:up\n{}\n{down}", m.up),
                );
            }
            "flyway" => {
                write(&dir.join(format!("V{n}__{name}.sql")), &m.up);
                if let Some(down) = &m.down {
                    write(&dir.join(format!("U{n}__{name}.sql")), down);
                }
            }
            other => panic!("unknown layout {other}"),
        }
    }
}

/// The application's schema: every object but the tracking tables and SQLite's own.
fn schema(conn: &Connection) -> Vec<(String, String, Option<String>)> {
    conn.prepare(
        "SELECT type, name, sql FROM sqlite_schema
         WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
           AND name NOT IN ('hsm_migrations', 'hsm_migration_history', 'hsm_hsm_components',
                            'migration_history', 'hsm_components')
           AND (name <> 'migrations' OR sql NOT LIKE '%applied_at%')
         ORDER BY type, name",
    )
    .unwrap()
    .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// What SQLite makes of the same files, run as they are, in order.
fn applied_directly(set: &[Migration]) -> Vec<(String, String, Option<String>)> {
    let conn = Connection::open_in_memory().unwrap();
    for m in set {
        conn.execute_batch(&m.up)
            .unwrap_or_else(|e| panic!("{}: {e}", m.name));
    }
    schema(&conn)
}

#[test]
fn real_shaped_sets_apply_as_sqlite_applies_them_and_round_trip_in_every_layout() {
    let set = project();
    let expected = applied_directly(&set);
    assert!(
        expected.len() > 30,
        "the project makes {} objects",
        expected.len()
    );
    for layout in ["diesel", "golang-migrate", "goose", "dbmate", "flyway"] {
        let env = Env::empty();
        write_set(&env.migrations, layout, &set);
        // The project has a table of its own called `migrations`.
        let prefixed = |args: &[&str]| env.hsm(&[args, &["--tracking-prefix", "hsm_"]].concat());
        prefixed(&["up", "--no-backup"]).assert_success();
        let conn = env.open();
        assert_eq!(schema(&conn), expected, "{layout}: up");
        let services: i64 = conn
            .query_row(
                "SELECT count(*) FROM service_15 WHERE port = 0 AND label = 'web'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(services, 1, "{layout}: the rebuild kept the row");

        prefixed(&["down", "0", "--no-backup"]).assert_success();
        assert_eq!(
            schema(&conn),
            [],
            "{layout}: down to 0 leaves no object behind"
        );
        prefixed(&["up", "--no-backup"]).assert_success();
        assert_eq!(schema(&conn), expected, "{layout}: up again");
    }
}

#[test]
fn packing_is_deterministic_and_packed_components_are_the_ones_applied() {
    let env = Env::empty();
    let sql = env.dir.path().join("sql");
    write_set(&sql, "diesel", &project());
    let first = env.dir.path().join("first");
    let second = env.dir.path().join("second");
    for out in [&first, &second] {
        env.hsm(&["pack", sql.to_str().unwrap(), "-o", out.to_str().unwrap()])
            .assert_success()
            .assert_stdout_contains("54 SQL migrations packed.");
    }
    let files = std::fs::read_dir(&first).unwrap().count();
    assert_eq!(files, 54);
    for entry in std::fs::read_dir(&first).unwrap() {
        let path = entry.unwrap().path();
        let again = second.join(path.file_name().unwrap());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            std::fs::read(&again).unwrap(),
            "{}",
            path.display()
        );
        assert!(
            std::fs::metadata(&path).unwrap().len() < 16 << 10,
            "{} is large",
            path.display()
        );
    }

    // Applied from the SQL files, a migration is recorded by their digests; its packed
    // component is a component like any other, recorded by its own sha256: switching a
    // database to the packed files is a change `repair` accepts, after which they are the
    // ones applied.
    let prefix = ["--tracking-prefix", "hsm_"];
    hsm_with(&env, &sql, &["up", "--no-backup", prefix[0], prefix[1]]).assert_success();
    let status = |dir: &Path| {
        let run = hsm_with(&env, dir, &["status", "--json", prefix[0], prefix[1]]);
        run.assert_success();
        serde_json::from_str::<serde_json::Value>(&run.stdout).unwrap()
    };
    assert_eq!(status(&sql)["changed_components"], serde_json::json!([]));
    let through_packed = status(&first);
    assert_eq!(through_packed["pending"], serde_json::json!([]));
    assert_eq!(
        through_packed["changed_components"]
            .as_array()
            .unwrap()
            .len(),
        54
    );
    hsm_with(&env, &first, &["repair", prefix[0], prefix[1]]).assert_success();
    assert_eq!(status(&first)["changed_components"], serde_json::json!([]));
    hsm_with(
        &env,
        &first,
        &["down", "20240101000050", prefix[0], prefix[1]],
    )
    .assert_success();
    hsm_with(&env, &second, &["up", prefix[0], prefix[1]]).assert_success();
}

/// `hsm-host ARGS` on `env`'s database with another migrations directory.
/// `hsm-host pack` makes the same bytes from the same files in every release (for contract
/// 0.2), so a packed set applied from its components, and any signature over them, stays
/// valid when hsm-host is upgraded. (A SQL migration applied from its files is recorded by the
/// files' digests, which packing does not enter: see sql_identity.rs.)
#[test]
fn packing_makes_the_same_bytes_in_every_release() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let write = |name: &str, text: &str| std::fs::write(src.join(name), text).unwrap();
    write(
        "20240101000000_create_a.up.sql",
        "CREATE TABLE a (id INTEGER PRIMARY KEY);\n",
    );
    write("20240101000000_create_a.down.sql", "DROP TABLE a;\n");
    write(
        "20240102000000_seed.up.sql",
        "-- irreversible\nINSERT INTO a VALUES (1);\n",
    );
    let out = dir.path().join("out");
    let written = hsm_host::pack::pack_dir(&src, &out, None).unwrap();
    let sums: Vec<String> = written
        .iter()
        .map(|path| hsm_host::runtime::sha256_hex(&std::fs::read(path).unwrap()))
        .collect();
    assert_eq!(
        sums,
        [
            "7897efa15b0413d9e5e77e6f673fb29919f7f4ec29bf7d264b1bbd1198086b94",
            "bd48b0d25e1d9d686ad763f4305ba24b45e67c691b3d059b6ffc9dd9526bc1e9",
        ]
    );
}

fn hsm_with(env: &Env, migrations: &Path, args: &[&str]) -> Run {
    let mut cmd = env.command();
    cmd.args(args)
        .arg("--database")
        .arg(&env.db)
        .arg("--migrations")
        .arg(migrations)
        .arg("--log-file")
        .arg(env.log_file());
    Run::from(cmd.output().unwrap())
}

#[test]
fn a_failing_statement_is_named_with_its_file_and_line_and_nothing_is_kept() {
    let env = Env::empty();
    let folder = env.migrations.join("2024-01-01-000001_broken");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("up.sql"),
        "CREATE TABLE kept_out (x);\n\n  INSERT INTO nowhere VALUES (1);\n",
    )
    .unwrap();
    env.hsm(&["up", "--no-backup"])
        .assert_code(1)
        .assert_stderr_contains("2024-01-01-000001_broken/up.sql: no such table: nowhere in statement 2 (line 3:3): `INSERT INTO nowhere VALUES (1);`");
    let conn = env.open();
    assert_eq!(schema(&conn), []);
}

#[test]
fn a_missing_down_is_irreversible_and_an_empty_one_is_a_no_op() {
    let env = Env::empty();
    let set = vec![
        migration("keep", "CREATE TABLE kept (x);", None),
        migration("noop", "CREATE TABLE stays (y);", Some("")),
    ];
    write_set(&env.migrations, "golang-migrate", &set);
    env.hsm(&["up", "--no-backup"]).assert_success();
    env.hsm(&["down", "--no-backup"]).assert_success();
    let conn = env.open();
    assert!(schema(&conn).iter().any(|(_, name, _)| name == "stays"));
    env.hsm(&["down", "--no-backup"])
        .assert_code(1)
        .assert_stderr_contains("irreversible");
}

#[test]
fn a_sql_file_gets_the_same_sandbox_as_any_component() {
    for (file, text, refusal) in [
        (
            "1_attach.sql",
            "ATTACH DATABASE '/tmp/hsm-sql-attach.db' AS evil;",
            "ATTACH and DETACH are not allowed",
        ),
        (
            "1_schema.sql",
            "PRAGMA writable_schema = ON;",
            "PRAGMA writable_schema = ON is not allowed",
        ),
        (
            "1_history.sql",
            "DELETE FROM migration_history;",
            "`migration_history` belongs to hsm-host",
        ),
        (
            "1_ends.sql",
            "CREATE TABLE t (id INTEGER PRIMARY KEY ON CONFLICT ROLLBACK);\nINSERT INTO t VALUES (1);\nINSERT INTO t VALUES (1);\nCREATE TABLE after_rollback (x);",
            "it ended hsm-host's transaction",
        ),
    ] {
        let env = Env::empty();
        std::fs::write(env.migrations.join(file), text).unwrap();
        env.hsm(&["up", "--no-backup"])
            .assert_code(1)
            .assert_stderr_contains(refusal);
        assert_eq!(schema(&env.open()), [], "{file}");
    }
    assert!(!Path::new("/tmp/hsm-sql-attach.db").exists());
}

#[test]
fn names_from_hostile_file_names_are_plain() {
    let env = Env::empty();
    std::fs::write(
        env.migrations.join("7_\u{1b}[31mred; rm -rf.sql"),
        "CREATE TABLE ok (x);",
    )
    .unwrap();
    env.hsm(&["up", "--no-backup"]).assert_success();
    let name: String = env
        .open()
        .query_row("SELECT name FROM migrations WHERE version = 7", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(name, "__31mred__rm__rf");
}
