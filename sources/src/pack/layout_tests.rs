//! Tests of [`super::read`]: each tool's layout, as real projects' directories use it.

use super::*;
use crate::tool::Tool;

fn write(dir: &Path, path: &str, text: &str) {
    let path = dir.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn every_layout_is_read_in_version_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "2024-03-13-170000_create_users/up.sql",
        "-- Users.\nCREATE TABLE users (id INTEGER PRIMARY KEY);",
    );
    write(
        d,
        "2024-03-13-170000_create_users/down.sql",
        "DROP TABLE users;",
    );
    write(
        d,
        "20240314000000_add_posts.up.sql",
        "CREATE TABLE posts (id INTEGER);",
    );
    write(
        d,
        "20240314000000_add_posts.down.sql",
        "-- nothing to undo\n",
    );
    write(
        d,
        "20240315000000_seed.sql",
        "INSERT INTO users VALUES (1);",
    );
    write(
        d,
        "20240316000000_tags.sql",
        "-- migrate:up\nCREATE TABLE tags (t);\n-- migrate:down\nDROP TABLE tags;\n",
    );
    write(
        d,
        "20240317000000_notes.sql",
        "-- +goose Up\n-- +goose StatementBegin\nCREATE TABLE notes (n);\n-- +goose StatementEnd\n\n-- +goose Down\nDROP TABLE notes;\n",
    );
    write(d, "V20240318000000__flags.sql", "CREATE TABLE flags (f);");
    write(d, "U20240318000000__flags.sql", "DROP TABLE flags;");
    write(d, "README.md", "not a migration");
    let set = read(d, None).unwrap();
    let summary: Vec<(u64, &str, bool)> = set
        .iter()
        .map(|m| (m.version, m.name.as_str(), m.down.is_some()))
        .collect();
    assert_eq!(
        summary,
        [
            (20240313170000, "create_users", true),
            (20240314000000, "add_posts", true),
            (20240315000000, "seed", false),
            (20240316000000, "tags", true),
            (20240317000000, "notes", true),
            (20240318000000, "flags", true),
        ]
    );
    assert_eq!(
        set[0].description,
        "Users. (diesel migration `2024-03-13-170000_create_users`)"
    );
    assert_eq!(set[3].up.trim(), "CREATE TABLE tags (t);");
    assert_eq!(
        set[3].down.as_deref().map(str::trim),
        Some("DROP TABLE tags;")
    );
    assert_eq!(set[4].up.trim(), "CREATE TABLE notes (n);");
    assert_eq!(
        set[4].down.as_deref().map(str::trim),
        Some("DROP TABLE notes;")
    );
}

#[test]
fn diesels_empty_initial_setup_is_skipped_and_a_real_one_runs_first() {
    let dir = tempfile::tempdir().unwrap();
    let setup = "-- This file was automatically created by Diesel to setup helper functions\n";
    write(
        dir.path(),
        "00000000000000_diesel_initial_setup/up.sql",
        setup,
    );
    write(
        dir.path(),
        "00000000000000_diesel_initial_setup/down.sql",
        setup,
    );
    write(
        dir.path(),
        "2024-01-01-000000_users/up.sql",
        "CREATE TABLE users (id);",
    );
    let set = read(dir.path(), None).unwrap();
    assert_eq!(set.len(), 1);
    assert_eq!(set[0].version, 20240101000000);

    // Version 0 with SQL in it is diesel's first migration: numbered 1.
    write(
        dir.path(),
        "00000000000000_diesel_initial_setup/up.sql",
        "CREATE TABLE x (y);",
    );
    let set = read(dir.path(), None).unwrap();
    assert_eq!(
        set.iter().map(|m| m.version).collect::<Vec<_>>(),
        [1, 20240101000000]
    );
}

/// diesel compares versions as strings: an 8-digit version (a folder named with `_` where
/// the others have `-`) and diesel 2.3's 18-digit ones keep diesel's order, and 14-digit
/// versions keep the numbers earlier releases gave them.
#[test]
fn diesel_versions_keep_diesels_string_order() {
    let dir = tempfile::tempdir().unwrap();
    for folder in [
        "2024-03-06-170000_add_sso",
        "2024-03-13_170000_sso_cascade",
        "2024-06-05-131359_later",
        "2026-02-10-064457-0000_create_projects",
        "2026-02-11-000000_create_pty",
    ] {
        write(dir.path(), &format!("{folder}/up.sql"), "SELECT 1;");
    }
    let set = read(dir.path(), None).unwrap();
    let order: Vec<(u64, &str)> = set.iter().map(|m| (m.version, m.name.as_str())).collect();
    assert_eq!(
        order,
        [
            (20240306170000, "add_sso"),
            (20240313000000, "170000_sso_cascade"),
            (20240605131359, "later"),
            (20260210064457, "create_projects"),
            (20260211000000, "create_pty"),
        ]
    );
    // A second migration in the same second (diesel 2.3's counter) comes after the first.
    write(
        dir.path(),
        "2026-02-10-064457-0001_again/up.sql",
        "SELECT 1;",
    );
    let set = read(dir.path(), None).unwrap();
    assert_eq!(set[4].version, 20260210064458);
    assert_eq!(set[4].name, "again");
    // ...and one of the very next second has its number: named as a duplicate.
    write(dir.path(), "2026-02-10-064458_next/up.sql", "SELECT 1;");
    let error = read(dir.path(), None).unwrap_err();
    assert!(
        error.reason.contains("versions must be unique"),
        "{error:?}"
    );
}

#[test]
fn a_pattern_reads_a_projects_own_naming() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "V0001.Initial_Schema.up.sql",
        "CREATE TABLE a (x);",
    );
    write(dir.path(), "V0001.Initial_Schema.down.sql", "DROP TABLE a;");
    write(dir.path(), "V0002.Empty.up.sql", "");
    write(dir.path(), "V0002.Empty.down.sql", "");
    write(dir.path(), "V0010.Later.up.sql", "CREATE TABLE b (x);");
    write(dir.path(), "README.md", "not SQL");
    let layout = Layout::parse("V{version}.{name}.{direction}.sql").unwrap();
    let set = read(dir.path(), Some(layout)).unwrap();
    let order: Vec<(u64, &str, bool)> = set
        .iter()
        .map(|m| (m.version, m.name.as_str(), m.down.is_some()))
        .collect();
    assert_eq!(
        order,
        [
            (1, "initial_schema", true),
            (2, "empty", true),
            (10, "later", false)
        ]
    );
    // A SQL file the pattern does not describe is named, not skipped.
    write(dir.path(), "0003_other.sql", "SELECT 1;");
    let error = read(dir.path(), Some(layout)).unwrap_err();
    assert!(
        error.reason.contains("does not match the layout pattern"),
        "{error:?}"
    );
    assert!(Layout::parse("V{nam}.sql").is_err());
    assert!(
        Layout::parse("nonsense")
            .unwrap_err()
            .contains("a pattern such as")
    );
}

#[test]
fn up_and_down_files_pair_by_version_as_golang_migrate_does() {
    let dir = tempfile::tempdir().unwrap();
    // Different names for one version's up and down; a name ending in a dot.
    write(
        dir.path(),
        "1_create_notes.up.sql",
        "CREATE TABLE notes (x);",
    );
    write(dir.path(), "1_drop_notes.down.sql", "DROP TABLE notes;");
    write(dir.path(), "2_flags..up.sql", "CREATE TABLE flags (x);");
    write(dir.path(), "2_flags.down.sql", "DROP TABLE flags;");
    let set = read(dir.path(), None).unwrap();
    assert_eq!(set.len(), 2);
    assert_eq!(set[0].name, "create_notes");
    assert!(
        set[0].down.as_deref() == Some("DROP TABLE notes;"),
        "{:?}",
        set[0].down
    );
    assert!(set[1].down.as_deref() == Some("DROP TABLE flags;"));

    // Two up files of one version are named as that, not as a version clash.
    write(dir.path(), "2_other.up.sql", "SELECT 1;");
    let error = read(dir.path(), None).unwrap_err();
    assert!(
        error.reason.contains("second up file of version 2"),
        "{error:?}"
    );
}

#[test]
fn no_transaction_markers_are_refused_by_name() {
    for (file, text) in [
        ("1_a.sql", "-- no-transaction\nCREATE TABLE a (x);"),
        ("1_a.up.sql", "-- no-transaction\nCREATE TABLE a (x);"),
        (
            "1_a.sql",
            "-- migrate:up transaction:false\nCREATE TABLE a (x);\n-- migrate:down\n",
        ),
        (
            "1_a.sql",
            "-- +goose Up\n-- +goose NO TRANSACTION\nCREATE TABLE a (x);\n",
        ),
        (
            "2024-01-01-000000_a/metadata.toml",
            "run_in_transaction = false\n",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), file, text);
        write(
            dir.path(),
            "2024-01-01-000000_a/up.sql",
            "CREATE TABLE b (x);",
        );
        if !file.contains("metadata") {
            std::fs::remove_dir_all(dir.path().join("2024-01-01-000000_a")).unwrap();
        }
        // Refused when read for SQLite (the default)…
        let error = crate::pack::read_dir(dir.path(), None).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("asks to run outside a transaction"),
            "{file}: {error:?}"
        );
        // …and read, marked, for a database server.
        let options = crate::pack::SqlOptions {
            no_transaction: true,
            ..Default::default()
        };
        let set = crate::pack::read_dir(dir.path(), options).unwrap();
        assert!(
            set.iter().any(|m| m.no_transaction.is_some()),
            "{file}: not marked"
        );
    }
    // The marker's words inside a statement are not a marker.
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "1_a.sql",
        "CREATE TABLE a (x DEFAULT '-- no-transaction');",
    );
    assert!(read(dir.path(), None).unwrap()[0].no_transaction.is_none());
}

#[test]
fn clashing_and_unusable_versions_are_named() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "1_a.up.sql", "SELECT 1;");
    write(dir.path(), "1_b.sql", "SELECT 1;");
    let error = read(dir.path(), None).unwrap_err();
    assert!(
        error.reason.contains("versions must be unique"),
        "{error:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "1.1_x.up.sql", "SELECT 1;");
    let error = read(dir.path(), None).unwrap_err();
    assert!(error.reason.contains("has parts"), "{error:?}");
    assert!(error.path.ends_with("1.1_x.up.sql"));

    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "V1.1__x.sql", "SELECT 1;");
    write(dir.path(), "V2__y.sql", "SELECT 1;");
    let error = read(dir.path(), None).unwrap_err();
    assert!(error.reason.contains("mixes versions"), "{error:?}");

    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "x_init.sql", "SELECT 1;");
    write(dir.path(), "99999999999999999999_big.sql", "SELECT 1;");
    assert!(
        read(dir.path(), None)
            .unwrap_err()
            .reason
            .contains("not a usable version")
    );
}

#[test]
fn a_set_that_starts_at_version_0_is_numbered_from_1() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "0_initial.up.sql", "CREATE TABLE a (x);");
    write(dir.path(), "1_variants.up.sql", "CREATE TABLE b (x);");
    write(dir.path(), "10_later.up.sql", "CREATE TABLE c (x);");
    write(dir.path(), "2_more.up.sql", "CREATE TABLE d (x);");
    let set = read(dir.path(), None).unwrap();
    let numbers: Vec<(u64, &str)> = set.iter().map(|m| (m.version, m.name.as_str())).collect();
    assert_eq!(
        numbers,
        [(1, "initial"), (2, "variants"), (3, "more"), (11, "later")]
    );
    assert!(
        set[0].description.contains("0_initial"),
        "{}",
        set[0].description
    );
}

#[test]
fn flyway_versions_with_parts_keep_flyways_order() {
    let versions = [
        "1.1",
        "1.2",
        "1_3",
        "1.10",
        "1.10.1",
        "2.0",
        "2024.01.15",
        "9223371.0",
    ];
    let numbers: Vec<u64> = versions
        .iter()
        .map(|v| flyway_version(v).unwrap())
        .collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
    assert_eq!(flyway_version("1.2").unwrap(), 1_000_002_000_000);
    assert_eq!(flyway_version("7").unwrap(), 7);
    for bad in ["1.2.3.4", "1.1000000", "9223373.0", "0", "1..2", "1.a", ""] {
        assert!(flyway_version(bad).is_err(), "{bad}");
    }

    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "V1.10__c.sql", "SELECT 3;");
    write(dir.path(), "V1.2__b.sql", "SELECT 2;");
    write(dir.path(), "V1_1__a.sql", "SELECT 1;");
    write(dir.path(), "U1.2__b.sql", "SELECT -2;");
    let set = read(dir.path(), None).unwrap();
    let names: Vec<&str> = set.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert!(set[1].down.is_some() && set[0].down.is_none());
    assert!(
        set[0].description.contains("`V1_1`"),
        "{}",
        set[0].description
    );
}

#[test]
fn a_named_layout_decides_what_ambiguous_files_are_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "V1__users.sql", "CREATE TABLE users (id);");
    write(
        dir.path(),
        "U2__backfill.sql",
        "INSERT INTO users VALUES (1);",
    );
    // As Flyway, `U2` would undo a V2 that is not there: the error says what to do.
    let error = read(dir.path(), None).unwrap_err();
    assert!(error.reason.contains("--layout refinery"), "{error:?}");
    // As refinery, it is a migration of its own, with no down.
    let set = read(dir.path(), Some(Layout::Tool(Tool::Refinery))).unwrap();
    assert_eq!(set.len(), 2);
    assert_eq!((set[1].version, set[1].down.is_none()), (2, true));
    assert!(set[1].description.contains("refinery migration `U2`"));

    // A file of another layout in a directory held to one is named.
    write(dir.path(), "3_more.up.sql", "SELECT 1;");
    let error = read(dir.path(), Some(Layout::Tool(Tool::Refinery))).unwrap_err();
    assert!(
        error.reason.contains("--layout refinery expects"),
        "{error:?}"
    );
    assert!(error.path.ends_with("3_more.up.sql"));

    // sqlx names a file dbmate would claim as a plain sqlx migration; dbmate needs its
    // marker.
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "1_a.sql",
        "-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 2;\n",
    );
    write(dir.path(), "2_b.sql", "SELECT 1;");
    let set = read(dir.path(), Some(Layout::Tool(Tool::Sqlx))).unwrap();
    assert!(set.iter().all(|m| m.down.is_none()));
    let error = read(dir.path(), Some(Layout::Tool(Tool::Dbmate))).unwrap_err();
    assert!(error.reason.contains("-- migrate:up"), "{error:?}");
    assert!(error.path.ends_with("2_b.sql"));
    assert_eq!(
        Layout::from_name("Golang-Migrate"),
        Some(Layout::Tool(Tool::GolangMigrate))
    );
}

#[test]
fn a_goose_migration_in_go_refuses_the_set_rather_than_vanish() {
    // Found on a real goose set: `00002_backfill.go` was passed over without a word, and a
    // later SQL migration failed on the table it makes.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "00001_a.sql", "-- +goose Up\nCREATE TABLE a (x int);\n");
    write(d, "00002_backfill.go", "package migrations\n");
    write(d, "00003_c.sql", "-- +goose Up\nCREATE TABLE c (x int);\n");
    let error = read(d, None).unwrap_err();
    assert!(error.path.ends_with("00002_backfill.go"), "{error:?}");
    assert!(
        error.reason.contains("goose migration written in Go"),
        "{error:?}"
    );
    // Go files that are not migrations stay out of it.
    std::fs::remove_file(d.join("00002_backfill.go")).unwrap();
    write(d, "main.go", "package main\n");
    write(d, "00002_helpers_test.go", "package migrations\n");
    assert_eq!(read(d, None).unwrap().len(), 2);
}
