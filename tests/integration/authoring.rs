//! What a plugin author runs: `new` (Rust, Python, JavaScript), `inspect`, `test` (alone and
//! on top of the migrations a new one builds on).

use crate::support::{Env, assert_same_bytes, table_exists};

#[test]
fn inspect_says_what_a_component_is_and_whether_it_would_be_accepted() {
    let env = Env::empty();
    let good = env.add(hsm_test_artifacts::V003_NORMALIZE_EMAIL_ADDRESSES);
    let old = env.add(hsm_test_artifacts::GUEST_CONTRACT_V010);
    let run = env.hsm(&["inspect", good.to_str().unwrap(), old.to_str().unwrap()]);
    run.assert_success()
        .assert_stdout_contains("version      3")
        .assert_stdout_contains("name         normalize_email_addresses")
        .assert_stdout_contains("reversible   no")
        .assert_stdout_contains("contract     hsm:migration@0.2.1 (world migration-with-functions)")
        .assert_stdout_contains("contract     hsm:migration@0.1.0 (world migration)")
        .assert_stdout_contains("accepted     yes");
    let sha = hsm_host::runtime::sha256_hex(&std::fs::read(&good).unwrap());
    run.assert_stdout_contains(&format!("sha256       {sha}"));

    // A component of another world is described, refused with the reason, and the exit code
    // says so; one that imports sockets (as every Python component does) is accepted, and its
    // imports are listed.
    let other = env.add(hsm_test_artifacts::GUEST_WRONG_WORLD);
    let net = env.add(hsm_test_artifacts::GUEST_NET);
    let run = env.hsm(&[
        "inspect",
        "--json",
        good.to_str().unwrap(),
        other.to_str().unwrap(),
        net.to_str().unwrap(),
    ]);
    run.assert_code(1)
        .assert_stderr_contains("1 of 3 component(s) would be refused");
    let document: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        document["shape_version"], 2,
        "every document says its shape"
    );
    let found = &document["components"];
    assert_eq!(found[0]["accepted"], true);
    assert_eq!(found[0]["metadata"]["version"], 3);
    assert_eq!(found[1]["accepted"], false);
    assert!(
        found[1]["problem"]
            .as_str()
            .unwrap()
            .contains("hsm:migration"),
        "{}",
        found[1]["problem"]
    );
    assert_eq!(found[2]["accepted"], true, "{}", found[2]);
    assert!(
        found[2]["imports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i.as_str().unwrap().starts_with("wasi:sockets/"))
    );
    // Nothing was opened or created.
    assert!(!env.db.exists());
}

#[test]
fn test_round_trips_every_migration_and_names_a_down_that_forgets_an_index() {
    let env = Env::with_examples();
    let run = env.hsm(&["test"]);
    run.assert_success()
        .assert_stdout_contains("pass     1 initial_schema")
        .assert_stdout_contains("skip     3 normalize_email_addresses (irreversible")
        .assert_stdout_contains("skip     7 migrate_legacy_data (irreversible")
        .assert_stdout_contains("5 passed, 2 irreversible, 0 failed, 0 not tested.");
    assert!(!env.db.exists(), "test touched the database");

    let env = Env::empty();
    for (name, up, down) in [
        ("1_t", "CREATE TABLE t (x);", "DROP TABLE t;"),
        (
            "2_idx",
            "CREATE INDEX t_x ON t (x);",
            "-- forgot DROP INDEX t_x\n",
        ),
        (
            "3_col",
            "ALTER TABLE t ADD COLUMN y INTEGER;",
            "ALTER TABLE t DROP COLUMN y;",
        ),
    ] {
        std::fs::write(env.migrations.join(format!("{name}.up.sql")), up).unwrap();
        std::fs::write(env.migrations.join(format!("{name}.down.sql")), down).unwrap();
    }
    let run = env.hsm(&["test"]);
    run.assert_code(1)
        .assert_stdout_contains("pass     1 t")
        .assert_stdout_contains("FAIL     2 idx: down did not restore the schema before up")
        .assert_stdout_contains("+ index t_x is left over")
        .assert_stdout_contains("----     3 col (not tested: migration 2 failed")
        .assert_stderr_contains("1 migration(s) failed their round trip");

    // Against a copy of a real database: the file is never written.
    env.hsm(&["up", "1", "--no-backup"]).assert_success();
    let before = std::fs::read(&env.db).unwrap();
    let run = env.hsm(&["test", "--json", "--against", env.db.to_str().unwrap()]);
    run.assert_code(1);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let cases = report["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 2, "{report}");
    assert_eq!(cases[0]["version"], 2);
    assert_eq!(cases[0]["outcome"], "fail");
    assert_eq!(cases[1]["outcome"], "not_tested");
    assert_same_bytes(&env.db, &before, "test --against");
}

/// The README's path for a new plugin author: `new`, `cargo build`, `test`, `up`, `down`.
#[test]
fn a_new_author_goes_from_nothing_to_a_tested_applied_and_rolled_back_migration() {
    let env = Env::empty();
    let work = env.dir.path().join("my-migrations");
    let made = env.hsm(&["new", "add_widgets", "--dir", work.to_str().unwrap()]);
    made.assert_success()
        .assert_stdout_contains("Made migration 1:")
        .assert_stdout_contains("v001_add_widgets");
    // The next commands, each with paths from where `new` ran.
    let release = work.join("target/wasm32-wasip2/release");
    made.assert_stdout_contains(&format!("(cd {} && cargo build", work.display()))
        .assert_stdout_contains(&format!("hsm-host test --migrations {}", release.display()))
        .assert_stdout_contains(&format!("cp {}/v001_add_widgets.wasm ", release.display()));
    // A second one takes the next version.
    env.hsm(&["new", "add_gadgets", "--dir", work.to_str().unwrap()])
        .assert_success()
        .assert_stdout_contains("Made migration 2:");
    env.hsm(&["new", "Bad-Name", "--dir", work.to_str().unwrap()])
        .assert_code(2)
        .assert_stderr_contains("is not a snake_case name");

    // Built as the README says, with the SDK and contract `new` vendored.
    let target = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("new-author-target");
    let mut cargo = std::process::Command::new(env!("CARGO"));
    cargo
        .current_dir(&work)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .env("CARGO_TARGET_DIR", &target);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
    ] {
        cargo.env_remove(var);
    }
    let built = cargo.output().unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let release = target.join("wasm32-wasip2/release");
    for wasm in ["v001_add_widgets.wasm", "v002_add_gadgets.wasm"] {
        std::fs::copy(release.join(wasm), env.migrations.join(wasm)).unwrap();
    }
    env.hsm(&["test"])
        .assert_success()
        .assert_stdout_contains("pass     1 add_widgets")
        .assert_stdout_contains("pass     2 add_gadgets");
    env.hsm(&["up"]).assert_success();
    assert!(table_exists(&env.open(), "add_widgets"));
    env.hsm(&["down", "0"]).assert_success();
    assert!(!table_exists(&env.open(), "add_gadgets"));

    // Or as SQL files, read as they are.
    let sql = Env::empty();
    sql.hsm(&["new", "add_notes", "--sql"])
        .assert_success()
        .assert_stdout_contains("1_add_notes.up.sql");
    sql.hsm(&["test"])
        .assert_success()
        .assert_stdout_contains("pass     1 add_notes");
}

/// `new --python` / `--js`: the next free version (after the migrations directory's), the
/// module with its helper beside it, the contract vendored, and the exact build command.
#[test]
fn new_makes_python_and_javascript_migrations_with_their_build_command() {
    let env = crate::support::Env::with_examples();
    let work = env.dir.path().join("authors");
    let made = env.hsm(&[
        "new",
        "add_notes",
        "--python",
        "--dir",
        work.to_str().unwrap(),
    ]);
    made.assert_success()
        .assert_stdout_contains("Made migration 8:")
        .assert_stdout_contains("componentize-py -d ../wit -w migration-with-functions");
    assert!(work.join("v008_add_notes/app.py").is_file());
    assert!(work.join("v008_add_notes/hsm_guest.py").is_file());
    assert!(work.join("wit/migration.wit").is_file());
    let app = std::fs::read_to_string(work.join("v008_add_notes/app.py")).unwrap();
    assert!(
        app.contains("version=8") && app.contains("name=\"add_notes\""),
        "{app}"
    );
    env.hsm(&["new", "add_tags", "--js", "--dir", work.to_str().unwrap()])
        .assert_success()
        .assert_stdout_contains("Made migration 9:")
        .assert_stdout_contains("componentize-js app.js -w ../wit");
    assert!(work.join("v009_add_tags/hsm-guest.js").is_file());
    env.hsm(&["new", "x", "--js", "--python"]).assert_code(2);
}

/// `test --with DIR`: a new migration is tested on top of the ones it builds on (alone it finds
/// no `users` table); two directories with one version are refused.
#[test]
fn test_with_takes_the_migrations_a_new_one_builds_on() {
    let env = crate::support::Env::with_examples();
    let new = env.dir.path().join("new");
    std::fs::create_dir(&new).unwrap();
    std::fs::write(
        new.join("008_add_nickname.up.sql"),
        "ALTER TABLE users ADD COLUMN nickname TEXT;",
    )
    .unwrap();
    std::fs::write(
        new.join("008_add_nickname.down.sql"),
        "ALTER TABLE users DROP COLUMN nickname;",
    )
    .unwrap();
    let test = |args: &[&str]| {
        let mut cmd = env.command();
        cmd.args(["test", "--migrations"]).arg(&new).args(args);
        crate::support::Run::from(cmd.output().unwrap())
    };
    test(&[])
        .assert_code(1)
        .assert_stdout_contains("no such table: users");
    test(&["--with", env.migrations.to_str().unwrap()])
        .assert_success()
        .assert_stdout_contains("pass     8 add_nickname")
        .assert_stdout_contains("6 passed, 2 irreversible, 0 failed");
    std::fs::write(new.join("001_clash.up.sql"), "SELECT 1;").unwrap();
    test(&["--with", env.migrations.to_str().unwrap()])
        .assert_code(1)
        .assert_stderr_contains("version 1");
}

#[test]
fn declare_writes_only_regular_files_it_read_whole_and_keeps_their_mode() {
    use std::os::unix::fs::PermissionsExt;
    let env = crate::support::Env::empty();
    let component = env.dir.path().join("m.wasm");
    std::fs::copy(hsm_test_artifacts::EXAMPLES[0], &component).unwrap();
    std::fs::set_permissions(&component, std::fs::Permissions::from_mode(0o640)).unwrap();
    env.hsm(&[
        "declare",
        component.to_str().unwrap(),
        "--dialects",
        "postgresql",
    ])
    .assert_success()
    .assert_stdout_contains("declares: postgresql");
    let mode = std::fs::metadata(&component).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o640);
    // A link, a device and a FIFO are refused, and nothing is written (found by the review).
    let link = env.dir.path().join("link.wasm");
    std::os::unix::fs::symlink(&component, &link).unwrap();
    env.hsm(&["declare", link.to_str().unwrap(), "--dialects", "sqlite"])
        .assert_code(2)
        .assert_stderr_contains("symbolic link");
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    env.hsm(&["declare", "/dev/zero", "--dialects", "sqlite"])
        .assert_code(2);
    let fifo = crate::support::fifo(&env.dir.path().join("fifo.wasm"));
    env.hsm(&["declare", fifo.to_str().unwrap(), "--dialects", "sqlite"])
        .assert_code(2);
}
