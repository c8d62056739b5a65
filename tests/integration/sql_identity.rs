//! A SQL migration is recorded by its files' own digests (what `sha256sum` prints), whatever
//! layout it was read with and however hsm-host packs it; what earlier releases recorded (the
//! sha256 of the component they packed) is still accepted.

use std::path::Path;

use crate::support::{Env, applied, sha256_file};

fn write(dir: &Path, path: &str, text: &str) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn recorded(env: &Env, version: i64) -> String {
    env.open()
        .query_row(
            "SELECT checksum FROM migrations WHERE version = ?1",
            [version],
            |row| row.get(0),
        )
        .unwrap()
}

const NOTES: &str = "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);\n";
const TITLE: &str = "ALTER TABLE notes ADD COLUMN title TEXT;\n";

/// Files named `V1__x.sql` are Flyway's by default and refinery's with `--layout refinery`:
/// the same files, so the same record, whichever way they were read.
#[test]
fn a_sql_migration_is_recorded_by_its_file_whatever_the_layout() {
    let env = Env::empty();
    let m = &env.migrations;
    write(m, "V1__create_notes.sql", NOTES);
    write(m, "V2__add_title.sql", TITLE);
    env.hsm(&["up", "--layout", "refinery"]).assert_success();
    assert_eq!(
        recorded(&env, 1),
        sha256_file(&m.join("V1__create_notes.sql"))
    );
    assert_eq!(recorded(&env, 2), sha256_file(&m.join("V2__add_title.sql")));
    // Read as Flyway's now: nothing changed, nothing to do.
    let status = env.status();
    assert_eq!(
        status["changed_components"],
        serde_json::json!([]),
        "{status}"
    );
    env.hsm(&["up"])
        .assert_success()
        .assert_stdout_contains("Nothing to do");
    assert_eq!(applied(&env.open()), [1, 2]);
}

/// A down file of its own is part of the record (`<up>+<down>`): editing it is a change that
/// `repair` accepts, and the new record is again the files' digests.
#[test]
fn a_down_file_of_its_own_is_part_of_the_record() {
    let env = Env::empty();
    let m = &env.migrations;
    write(m, "2024-01-01-000000_create_notes/up.sql", NOTES);
    write(
        m,
        "2024-01-01-000000_create_notes/down.sql",
        "DROP TABLE notes;\n",
    );
    let folder = m.join("2024-01-01-000000_create_notes");
    env.hsm(&["up"]).assert_success();
    let version = 20240101000000;
    let expected = format!(
        "{}+{}",
        sha256_file(&folder.join("up.sql")),
        sha256_file(&folder.join("down.sql"))
    );
    assert_eq!(recorded(&env, version), expected);
    // `status` shows both digests whole.
    assert_eq!(env.status()["applied"][0]["checksum"], expected.as_str());

    write(
        m,
        "2024-01-01-000000_create_notes/down.sql",
        "DROP TABLE IF EXISTS notes;\n",
    );
    assert_eq!(
        env.status()["changed_components"],
        serde_json::json!([version])
    );
    env.hsm(&["up"])
        .assert_code(1)
        .assert_stderr_contains(&format!("was applied as sha256 {expected}"))
        .assert_stderr_contains("its up file's, then its down file's");
    env.hsm(&["repair"]).assert_success();
    let now = format!(
        "{}+{}",
        sha256_file(&folder.join("up.sql")),
        sha256_file(&folder.join("down.sql"))
    );
    assert_eq!(recorded(&env, version), now);
    assert_eq!(env.status()["changed_components"], serde_json::json!([]));
}

/// The file gone, `down` runs the migration as it was applied: the component stored then is
/// found by the files' digests the row records.
#[test]
fn down_finds_the_stored_sql_migration_by_its_files_digests() {
    let env = Env::empty();
    let m = &env.migrations;
    write(m, "2024-01-01-000000_create_notes/up.sql", NOTES);
    write(
        m,
        "2024-01-01-000000_create_notes/down.sql",
        "DROP TABLE notes;\n",
    );
    write(m, "2024-01-02-000000_add_title/up.sql", TITLE);
    write(
        m,
        "2024-01-02-000000_add_title/down.sql",
        "ALTER TABLE notes DROP COLUMN title;\n",
    );
    env.hsm(&["up"]).assert_success();
    std::fs::remove_dir_all(m.join("2024-01-02-000000_add_title")).unwrap();
    env.hsm(&["down", "20240101000000"]).assert_success();
    let conn = env.open();
    assert_eq!(applied(&conn), [20240101000000]);
    let columns: i64 = conn
        .query_row(
            "SELECT count(*) FROM pragma_table_info('notes') WHERE name = 'title'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(columns, 0);
}

/// What the release before recorded for these very files (the sha256 of the 0.1.3 component
/// it packed them into, with `--layout refinery`, and from a diesel folder), measured with
/// that release: still the migration as it is, until `repair` rewrites it as the files' own.
#[test]
fn what_earlier_releases_recorded_is_still_accepted() {
    let env = Env::empty();
    let m = &env.migrations;
    write(m, "V1__create_notes.sql", NOTES);
    write(m, "V2__add_title.sql", TITLE);
    env.hsm(&["up", "--layout", "refinery"]).assert_success();
    let earlier = [
        (
            1,
            "2e6ea6bc1a0777fa8d198f207e5ffa3e625d82af77c72e72277d6d85b0c1829e",
        ),
        (
            2,
            "c2714dac5192be75bf11383c26d3abbb8576b0c4bf3ac0b62146450bf963cd8c",
        ),
    ];
    {
        let conn = env.open();
        for (version, checksum) in earlier {
            conn.execute(
                "UPDATE migrations SET checksum = ?1 WHERE version = ?2",
                rusqlite::params![checksum, version],
            )
            .unwrap();
        }
        // A components table of that release, without the column naming files' digests.
        conn.execute_batch("ALTER TABLE hsm_components DROP COLUMN recorded_as")
            .unwrap();
    }
    for args in [&["status", "--layout", "refinery"][..], &["status"]] {
        let run = env.hsm(args);
        run.assert_success();
        assert!(!run.stdout.contains("CHANGED"), "{args:?}: {}", run.stdout);
    }
    env.hsm(&["up"])
        .assert_success()
        .assert_stdout_contains("Nothing to do");
    env.hsm(&["repair"]).assert_success();
    assert_eq!(
        recorded(&env, 1),
        sha256_file(&m.join("V1__create_notes.sql"))
    );
    assert_eq!(recorded(&env, 2), sha256_file(&m.join("V2__add_title.sql")));

    // A diesel folder with a down file, as that release recorded it.
    let env = Env::empty();
    let m = &env.migrations;
    write(m, "2024-01-01-000000_create_notes/up.sql", NOTES);
    write(
        m,
        "2024-01-01-000000_create_notes/down.sql",
        "DROP TABLE notes;\n",
    );
    env.hsm(&["up"]).assert_success();
    env.open()
        .execute(
            "UPDATE migrations SET checksum = ?1",
            ["94e06c9315051a37c13084b738eacfc60248ffc02902675497345d634575a30b"],
        )
        .unwrap();
    assert_eq!(env.status()["changed_components"], serde_json::json!([]));
    env.hsm(&["down"]).assert_success();
    assert_eq!(applied(&env.open()), Vec::<i64>::new());
    env.hsm(&["up"]).assert_success();
    // A record that is neither is a change.
    env.open()
        .execute("UPDATE migrations SET checksum = ?1", ["0".repeat(64)])
        .unwrap();
    assert_eq!(
        env.status()["changed_components"],
        serde_json::json!([20240101000000i64])
    );
}

/// Two files with the same SQL, one with a byte-order mark: two records, two stored
/// components, so `down` after `repair` (and the files gone) still finds the one applied.
#[test]
fn a_byte_order_mark_is_part_of_the_file_and_down_still_finds_its_component() {
    let env = Env::empty();
    let m = &env.migrations;
    write(m, "001_notes.up.sql", &format!("\u{feff}{NOTES}"));
    write(m, "001_notes.down.sql", "DROP TABLE notes;\n");
    env.hsm(&["up"]).assert_success();
    write(m, "001_notes.up.sql", NOTES);
    assert_eq!(env.status()["changed_components"], serde_json::json!([1]));
    env.hsm(&["repair"]).assert_success();
    assert_eq!(env.status()["changed_components"], serde_json::json!([]));
    std::fs::remove_file(m.join("001_notes.up.sql")).unwrap();
    std::fs::remove_file(m.join("001_notes.down.sql")).unwrap();
    env.hsm(&["down", "0"]).assert_success();
    assert_eq!(applied(&env.open()), Vec::<i64>::new());
}
