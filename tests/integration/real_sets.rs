//! Rules of the tools as real projects' directories exercise them (see docs/sql-sets.md for the
//! projects): fixtures of our own that reproduce each naming and ordering quirk found there,
//! run through the real binary with no edits.

use std::path::Path;

use crate::support::{Env, applied, table_exists};

pub(crate) fn write(dir: &Path, path: &str, text: &str) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Three diesel migrations, each needing the one before it; the second's folder is named with
/// `_` where the others have `-` (its version is `20240313`, 8 digits), as in a real project.
fn sso_migrations(m: &Path) {
    for (folder, up, down) in [
        (
            "2024-03-06-170000_add_sso",
            "CREATE TABLE sso (user INTEGER);",
            "DROP TABLE sso;",
        ),
        (
            "2024-03-13_170000_sso_cascade",
            "ALTER TABLE sso ADD COLUMN nonce TEXT;",
            "ALTER TABLE sso DROP COLUMN nonce;",
        ),
        (
            "2024-06-05-131359_index_nonce",
            "CREATE INDEX sso_nonce ON sso (nonce);",
            "DROP INDEX sso_nonce;",
        ),
    ] {
        write(m, &format!("{folder}/up.sql"), up);
        write(m, &format!("{folder}/down.sql"), down);
    }
}

/// diesel compares versions as strings. A folder named with `_` where the others have `-`
/// (`2024-03-13_170000_…`, version `20240313`) runs between `20240306…` and `20240605…`;
/// diesel 2.3's 18-digit versions (`…-0000`) sit among 14-digit ones; a version-0 folder with
/// SQL runs first. Each migration here needs the one before it, so any other order fails.
#[test]
fn a_diesel_set_runs_in_diesels_order() {
    let env = Env::empty();
    let m = &env.migrations;
    write(
        m,
        "00000000000000_initial/up.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);",
    );
    write(m, "00000000000000_initial/down.sql", "DROP TABLE users;");
    sso_migrations(m);
    write(
        m,
        "2026-02-10-064457-0000_create_projects/up.sql",
        "CREATE TABLE projects (id);",
    );
    write(
        m,
        "2026-02-10-064457-0000_create_projects/down.sql",
        "DROP TABLE projects;",
    );
    write(
        m,
        "2026-02-11-000000_project_owner/up.sql",
        "ALTER TABLE projects ADD COLUMN owner;",
    );
    write(
        m,
        "2026-02-11-000000_project_owner/down.sql",
        "ALTER TABLE projects DROP COLUMN owner;",
    );
    write(m, ".keep", "");
    write(m, ".diesel_lock", "");
    env.hsm(&["up"]).assert_success();
    assert_eq!(
        applied(&env.open()),
        [
            1,
            20240306170000,
            20240313000000,
            20240605131359,
            20260210064457,
            20260211000000
        ]
    );
    env.hsm(&["down", "0"]).assert_success();
    assert!(!table_exists(&env.open(), "users"));
    env.hsm(&["up"]).assert_success();
    env.hsm(&["test"]).assert_success();
}

/// golang-migrate pairs up and down by version: their names may differ, and a name may end in
/// a dot (`…_flags..up.sql` beside `…_flags.down.sql`).
#[test]
fn golang_migrate_pairs_files_by_version() {
    let env = Env::empty();
    let m = &env.migrations;
    write(m, "1_create_notes.up.sql", "CREATE TABLE notes (x);");
    write(m, "1_drop_notes.down.sql", "DROP TABLE notes;");
    write(
        m,
        "20240813211251_passkey_backup_flags..up.sql",
        "CREATE TABLE flags (x);",
    );
    write(
        m,
        "20240813211251_passkey_backup_flags.down.sql",
        "DROP TABLE flags;",
    );
    env.hsm(&["up"]).assert_success();
    assert!(table_exists(&env.open(), "flags"));
    env.hsm(&["down", "0"]).assert_success();
    let conn = env.open();
    assert!(!table_exists(&conn, "notes") && !table_exists(&conn, "flags"));
}

/// A project's own naming, described with `--layout PATTERN`: versions compared as numbers,
/// empty files are real (no-op) migrations, a SQL file the pattern does not describe is named.
#[test]
fn a_layout_pattern_reads_a_projects_own_naming() {
    let env = Env::empty();
    let m = &env.migrations;
    write(
        m,
        "V0001.Initial_Schema.up.sql",
        "CREATE TABLE totp (id INTEGER PRIMARY KEY);",
    );
    write(m, "V0001.Initial_Schema.down.sql", "DROP TABLE totp;");
    write(m, "V0002.Nothing_Yet.up.sql", "");
    write(m, "V0002.Nothing_Yet.down.sql", "");
    write(
        m,
        "V0010.Add_Secret.up.sql",
        "ALTER TABLE totp ADD COLUMN secret BLOB;",
    );
    write(
        m,
        "V0010.Add_Secret.down.sql",
        "ALTER TABLE totp DROP COLUMN secret;",
    );
    let layout = ["--layout", "V{version}.{name}.{direction}.sql"];
    let run = env.hsm(&[&["up"][..], &layout].concat());
    run.assert_success();
    assert_eq!(applied(&env.open()), [1, 2, 10]);
    env.hsm(&[&["down", "0"][..], &layout].concat())
        .assert_success();
    assert!(!table_exists(&env.open(), "totp"));
    // Without the pattern, the directory is not one of the tools' layouts, and the error says
    // how to describe it rather than suggesting a rename.
    let run = env.hsm(&["up"]);
    assert_ne!(run.code, 0);
    run.assert_stderr_contains("--layout");
    assert!(!run.stderr.contains("rename"), "{}", run.stderr);
    // A file the pattern does not describe is named.
    write(m, "0003_stray.sql", "SELECT 1;");
    env.hsm(&[&["up"][..], &layout].concat())
        .assert_stderr_contains("does not match the layout pattern");
}

/// A failing down names the down file, and a syntax error its line and column in that file.
#[test]
fn a_failing_statement_is_placed_in_its_own_file() {
    let env = Env::empty();
    let m = &env.migrations;
    write(
        m,
        "20250326160051_create_scripts.up.sql",
        "CREATE TABLE scripts (name TEXT);",
    );
    write(
        m,
        "20250326160051_create_scripts.down.sql",
        "DROP TABLE scripts;",
    );
    write(
        m,
        "20250402170430_unique_names.up.sql",
        "CREATE UNIQUE INDEX name_uniq_idx ON scripts (name);",
    );
    // MySQL's syntax, as a real project's down has it.
    write(
        m,
        "20250402170430_unique_names.down.sql",
        "-- Add down migration script here\nalter table scripts drop index name_uniq_idx;",
    );
    env.hsm(&["up"]).assert_success();
    env.hsm(&["down", "0"])
        .assert_code(1)
        .assert_stderr_contains(
            "20250402170430_unique_names.down.sql: near \"index\": syntax error",
        )
        .assert_stderr_contains("at line 2:26");
}

/// A database diesel migrated (its history as diesel writes it: version strings without dashes,
/// one of them 8 digits): `up` will not start from nothing over it, `adopt` takes it over and
/// `up` goes on in diesel's order; after hsm-host rolls adopted versions back, `adopt` again
/// leaves them rolled back (a deploy script's `adopt && up` then applies them again).
#[test]
fn a_diesel_database_is_adopted_once_and_then_hsm_hosts_history_is_the_truth() {
    let env = Env::empty();
    let m = &env.migrations;
    sso_migrations(m);
    std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
    {
        let conn = rusqlite::Connection::open(&env.db).unwrap();
        conn.execute_batch(
            "CREATE TABLE __diesel_schema_migrations (version VARCHAR(50) PRIMARY KEY NOT NULL,
                 run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
             CREATE TABLE sso (user INTEGER, nonce TEXT);
             INSERT INTO __diesel_schema_migrations (version) VALUES ('20240306170000'), ('20240313');",
        )
        .unwrap();
    }
    let before = std::fs::read(&env.db).unwrap();
    for args in [&["up"][..], &["up", "--dry-run"]] {
        env.hsm(args)
            .assert_code(1)
            .assert_stderr_contains("migrated by diesel")
            .assert_stderr_contains("hsm-host adopt --dry-run");
        assert_eq!(
            std::fs::read(&env.db).unwrap(),
            before,
            "{args:?} changed the file"
        );
    }
    env.hsm(&["adopt"]).assert_success();
    env.hsm(&["up"]).assert_success();
    assert_eq!(
        applied(&env.open()),
        [20240306170000, 20240313000000, 20240605131359]
    );
    env.hsm(&["down", "20240306170000"]).assert_success();
    assert_eq!(applied(&env.open()), [20240306170000]);
    // diesel's table still lists 20240313: adopting again must not mark it applied.
    env.hsm(&["adopt"]).assert_success();
    assert_eq!(applied(&env.open()), [20240306170000]);
    env.hsm(&["up"]).assert_success();
    assert_eq!(
        applied(&env.open()),
        [20240306170000, 20240313000000, 20240605131359]
    );
}

/// `--migrations` at a project's top directory, where the SQLite set is one level down (as in
/// projects that ship a directory per database): an error naming where the migrations are,
/// not an empty database and "nothing to do".
#[test]
fn a_directory_without_migrations_names_those_below_it() {
    let env = Env::empty();
    let m = &env.migrations;
    write(
        m,
        "sqlite/2024-01-01-000000_users/up.sql",
        "CREATE TABLE users (id);",
    );
    write(
        m,
        "postgresql/2024-01-01-000000_users/up.sql",
        "CREATE TABLE users (id SERIAL);",
    );
    write(m, "README.md", "one directory per database");
    let run = env.hsm(&["up"]);
    run.assert_code(2)
        .assert_stderr_contains("holds no migrations")
        .assert_stderr_contains("sqlite");
    assert!(!env.db.exists(), "an empty database was made");
    env.hsm(&["up", "--dry-run"]).assert_code(2);
}

/// golang-migrate accepts version 0, and a project that starts there (`0_initial.up.sql`, no
/// zero padding, so `10_…` sorts before `2_…` as text) is numbered from 1; adopting its
/// history (golang-migrate keeps the current version, 0 included) maps it the same way.
#[test]
fn a_set_that_starts_at_version_0_applies_and_adopts() {
    let env = Env::empty();
    let m = &env.migrations;
    write(
        m,
        "0_initial.up.sql",
        "CREATE TABLE flags (key TEXT PRIMARY KEY);",
    );
    for n in 1..=11 {
        write(
            m,
            &format!("{n}_step.up.sql"),
            &format!("ALTER TABLE flags ADD COLUMN c{n} TEXT;"),
        );
    }
    env.hsm(&["up"]).assert_success();
    assert_eq!(applied(&env.open()), (1..=12).collect::<Vec<i64>>());

    // The same set over a database golang-migrate took to its version 5.
    let env2 = Env::empty();
    for entry in std::fs::read_dir(m).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), env2.migrations.join(entry.file_name())).unwrap();
    }
    std::fs::create_dir_all(env2.db.parent().unwrap()).unwrap();
    {
        let conn = rusqlite::Connection::open(&env2.db).unwrap();
        let mut sql = String::from(
            "CREATE TABLE schema_migrations (version uint64, dirty bool);
             CREATE UNIQUE INDEX version_unique ON schema_migrations (version);
             INSERT INTO schema_migrations VALUES (5, 0);
             CREATE TABLE flags (key TEXT PRIMARY KEY);",
        );
        for n in 1..=5 {
            sql += &format!("ALTER TABLE flags ADD COLUMN c{n} TEXT;");
        }
        conn.execute_batch(&sql).unwrap();
    }
    env2.hsm(&["adopt"]).assert_success();
    assert_eq!(applied(&env2.open()), (1..=6).collect::<Vec<i64>>());
    env2.hsm(&["up"]).assert_success();
    assert_eq!(applied(&env2.open()), (1..=12).collect::<Vec<i64>>());
}

/// A set that gains a version-0 file after it was applied is renumbered (a set starting at 0
/// counts from 1): every applied version now holds another migration. `up` says so instead of
/// advising `repair`, and `repair` refuses, so the shifted files are never accepted and run
/// again as new.
#[test]
fn a_version_0_file_added_later_is_refused_not_repaired() {
    let env = Env::empty();
    let m = &env.migrations;
    write(m, "1_a.up.sql", "CREATE TABLE a (x);");
    write(m, "2_b.up.sql", "CREATE TABLE b (x);");
    env.hsm(&["up"]).assert_success();
    write(m, "0_init.up.sql", "CREATE TABLE init (x);");
    env.hsm(&["up"])
        .assert_code(1)
        .assert_stderr_contains("migration 1 was applied as `a`")
        .assert_stderr_contains("numbering changed");
    env.hsm(&["repair"])
        .assert_code(1)
        .assert_stderr_contains("does not accept another migration");
    assert_eq!(applied(&env.open()), [1, 2]);
    assert!(!table_exists(&env.open(), "init"));
}

/// `inspect` takes a SQL file (an up, a down, a diesel `up.sql`) and shows the component it is
/// packed into, as `up` would load it.
#[test]
fn inspect_takes_sql_files() {
    let env = Env::empty();
    let m = &env.migrations;
    write(m, "20240101000000_notes.up.sql", "CREATE TABLE notes (x);");
    write(m, "20240101000000_notes.down.sql", "DROP TABLE notes;");
    let diesel = env.dir.path().join("diesel");
    write(
        &diesel,
        "2024-01-01-000000_users/up.sql",
        "CREATE TABLE users (id);",
    );
    for file in [
        m.join("20240101000000_notes.up.sql"),
        m.join("20240101000000_notes.down.sql"),
        diesel.join("2024-01-01-000000_users/up.sql"),
    ] {
        let run = env.hsm(&["inspect", file.to_str().unwrap()]);
        run.assert_success()
            .assert_stdout_contains("accepted     yes")
            .assert_stdout_contains("version      20240101000000");
    }
    write(m, "notes.txt.sql", "SELECT 1;");
    env.hsm(&["inspect", m.join("notes.txt.sql").to_str().unwrap()])
        .assert_stderr_contains("is not a SQL migration of its directory");
}

/// `new --sql` follows the layout the directory's migrations are in (a diesel folder named by
/// the time, a dbmate or goose file with its markers, a Flyway V/U pair, ...), and what it
/// makes is read back as the next migration of the set and round-trips.
#[test]
fn new_sql_follows_the_directorys_layout() {
    for (first, text, made) in [
        (
            "2024-01-01-000000_users/up.sql",
            "CREATE TABLE users (id);",
            "/up.sql",
        ),
        (
            "20240101000000_users.up.sql",
            "CREATE TABLE users (id);",
            "_add_notes.up.sql",
        ),
        (
            "20240101000000_users.sql",
            "-- migrate:up\nCREATE TABLE users (id);\n-- migrate:down\nDROP TABLE users;\n",
            "_add_notes.sql",
        ),
        (
            "20240101000000_users.sql",
            "-- +goose Up\nCREATE TABLE users (id);\n-- +goose Down\nDROP TABLE users;\n",
            "_add_notes.sql",
        ),
        (
            "V1__users.sql",
            "CREATE TABLE users (id);",
            "V2__add_notes.sql",
        ),
    ] {
        let env = Env::empty();
        write(&env.migrations, first, text);
        let run = env.hsm(&["new", "add_notes", "--sql"]);
        run.assert_success().assert_stdout_contains(made);
        let test = env.hsm(&["test"]);
        assert_eq!(test.code, 0, "{first}: {}{}", test.stdout, test.stderr);
        assert!(
            test.stdout.contains("add_notes"),
            "{first}: {}",
            test.stdout
        );
        env.hsm(&["up"]).assert_success();
        assert!(table_exists(&env.open(), "add_notes"), "{first}");
    }
}

/// dbmate and goose keep up and down in one file: an error is placed at its line in the file,
/// not in its section (goose's annotations between statements count as lines too).
#[test]
fn an_error_in_a_sectioned_file_is_placed_at_the_files_line() {
    for (file, text, up_line, down_line) in [
        (
            "20240101000000_notes.sql",
            "-- migrate:up\nCREATE TABLE notes (id INTEGER);\n\nCREATE TABLE notes (id INTEGER);\n\n-- migrate:down\nDROP TABLE notes;\nDROP TABLE nothing_here;\n",
            "line 4:",
            "line 7:1",
        ),
        (
            "20240101000000_notes.sql",
            "-- +goose Up\n-- +goose StatementBegin\nCREATE TABLE notes (id INTEGER);\n-- +goose StatementEnd\n\nCREATE TABLE notes (id INTEGER);\n-- +goose Down\n-- +goose StatementBegin\nDROP TABLE notes;\n-- +goose StatementEnd\nDROP TABLE nothing_here;\n",
            "line 6:",
            "line 10:1",
        ),
    ] {
        let env = Env::empty();
        write(&env.migrations, file, text);
        env.hsm(&["up"])
            .assert_code(1)
            .assert_stderr_contains("table notes already exists")
            .assert_stderr_contains(up_line);
        // Without the first CREATE (one line less), up applies; the down's error is placed in
        // the file too.
        let fixed = text.replacen("CREATE TABLE notes (id INTEGER);\n", "", 1);
        write(&env.migrations, file, &fixed);
        env.hsm(&["up"]).assert_success();
        env.hsm(&["down", "0"])
            .assert_code(1)
            .assert_stderr_contains("no such table: nothing_here")
            .assert_stderr_contains(down_line);
    }
}

/// SQL files no layout reads as migrations are named, never left out in silence: as the reason
/// a directory holds no migrations, and in a warning beside migrations that were read.
#[test]
fn sql_files_that_are_not_migrations_are_named() {
    let env = Env::empty();
    let m = &env.migrations;
    write(m, "schema.sql", "CREATE TABLE a (x);");
    write(m, "seed.sql", "INSERT INTO a VALUES (1);");
    env.hsm(&["up"])
        .assert_code(2)
        .assert_stderr_contains("its 2 .sql file(s) (schema.sql, seed.sql)")
        .assert_stderr_contains("--layout");
    assert!(!env.db.exists());
    write(m, "0001_init.sql", "CREATE TABLE b (y);");
    let run = env.hsm(&["up"]);
    run.assert_success();
    assert!(
        run.stderr.contains("not read as migrations") && run.stderr.contains("schema.sql"),
        "{}",
        run.stderr
    );
}

/// Files written for the sqlite3 shell, named `N_to_M.sql` (the schema version they take the
/// database from and to): numeric order (10 after 9), the shell's session commands skipped,
/// each file's own `BEGIN TRANSACTION; … COMMIT;` run inside hsm-host's; a command that reads
/// another file is refused by name and line.
#[test]
fn sqlite3_shell_scripts_apply_in_numeric_order() {
    let env = Env::empty();
    let m = &env.migrations;
    write(
        m,
        "1_to_2.sql",
        ".timeout 30000\n.bail on\nBEGIN TRANSACTION;\nCREATE TABLE steps (n INTEGER);\nCOMMIT;\n",
    );
    for n in 2..=10 {
        write(
            m,
            &format!("{n}_to_{}.sql", n + 1),
            &format!(
                ".timeout 30000\nBEGIN TRANSACTION;\nINSERT INTO steps VALUES ({n});\nUPDATE steps SET n = n * 0 + {n} WHERE n = (SELECT max(n) FROM steps);\nCOMMIT;\n.print migrated to {}\n",
                n + 1
            ),
        );
    }
    env.hsm(&["up"]).assert_success();
    let order: Vec<i64> = env
        .open()
        .prepare("SELECT n FROM steps ORDER BY rowid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(order, (2..=10).collect::<Vec<i64>>());
    assert_eq!(applied(&env.open()), (1..=10).collect::<Vec<i64>>());

    write(
        m,
        "11_to_12.sql",
        "CREATE TABLE more (x);\n.read ../secrets.sql\n",
    );
    env.hsm(&["up"])
        .assert_code(1)
        .assert_stderr_contains("11_to_12.sql")
        .assert_stderr_contains("line 2: `.read` is a command of the sqlite3 shell");
    assert!(!table_exists(&env.open(), "more"));
}

/// A dbmate file whose lines end in CR alone is one line to any reader: refused, not run as an
/// empty migration.
#[test]
fn a_file_with_cr_line_endings_is_refused_not_run_empty() {
    let env = Env::empty();
    write(
        &env.migrations,
        "20240101000000_notes.sql",
        "-- migrate:up\rCREATE TABLE notes (id INTEGER);\r-- migrate:down\rDROP TABLE notes;\r",
    );
    env.hsm(&["up"])
        .assert_code(1)
        .assert_stderr_contains("ends its lines with CR alone");
    assert!(!env.db.exists() || applied(&env.open()).is_empty());
}

/// Flyway replaces `${name}` placeholders in every migration, as a real project sets a column's
/// default and a row's value from its configuration: values come from `--placeholder`, Flyway's
/// built-ins are known, and one with no value stops everything before anything runs, naming it.
#[test]
fn flyway_placeholders_are_replaced_or_named() {
    let env = Env::empty();
    let m = &env.migrations;
    write(
        m,
        "V20220105143154__library_options.sql",
        "CREATE TABLE library (id INTEGER PRIMARY KEY, hash_files BOOLEAN NOT NULL DEFAULT ${library-file-hashing});\n\
         -- made in ${flyway:defaultSchema} by ${flyway:filename}\n\
         INSERT INTO library (id) VALUES (1);\n",
    );
    write(
        m,
        "V20230918114751__scan_startup.sql",
        "ALTER TABLE library ADD COLUMN scan_startup BOOLEAN NOT NULL DEFAULT 0;\n\
         UPDATE library SET scan_startup = ${library-scan-startup};\n",
    );
    env.hsm(&["up"])
        .assert_code(1)
        .assert_stderr_contains("V20220105143154__library_options.sql")
        .assert_stderr_contains("line 1: the placeholder `${library-file-hashing}` has no value")
        .assert_stderr_contains("--placeholder library-file-hashing=VALUE");
    assert!(!env.db.exists() || applied(&env.open()).is_empty());
    env.hsm(&[
        "up",
        "--placeholder",
        "library-file-hashing=1",
        "--placeholder",
        "library-scan-startup=1",
    ])
    .assert_success();
    let row: (i64, i64) = env
        .open()
        .query_row("SELECT hash_files, scan_startup FROM library", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(row, (1, 1));
    // The record is the file's, whatever the values: another value is no change to the file.
    let status = env.hsm(&[
        "status",
        "--json",
        "--placeholder",
        "library-file-hashing=0",
        "--placeholder",
        "library-scan-startup=0",
    ]);
    status.assert_success();
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["changed_components"], serde_json::json!([]));
}
