//! `hsm.toml`: settings in a file, paths relative to it, `[env.NAME]` on top, the command line
//! and the environment over both; with it, nothing is written to the working directory.

use std::path::Path;

use crate::support::{Env, Run, applied};

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `hsm-host ARGS` from the directory `cwd`, with nothing else on the command line.
fn hsm_in(env: &Env, cwd: &Path, args: &[&str]) -> Run {
    let mut cmd = env.command();
    cmd.current_dir(cwd).args(args);
    Run::from(cmd.output().unwrap())
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_settings_file_runs_from_any_directory_and_writes_nothing_there() {
    let env = Env::empty();
    let app = env.dir.path().join("app");
    write(
        &app.join("migrations/001_notes.up.sql"),
        "CREATE TABLE notes (id INTEGER);",
    );
    write(
        &app.join("migrations/001_notes.down.sql"),
        "DROP TABLE notes;",
    );
    write(
        &app.join("hsm.toml"),
        "database = \"data/app.db\"\nmigrations = \"migrations\"\nkeep_backups = 3\n\n\
         [env.staging]\ndatabase = \"data/staging.db\"\n",
    );
    let elsewhere = env.dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let config = app.join("hsm.toml");
    let config = config.to_str().unwrap();

    hsm_in(&env, &elsewhere, &["up", "--config", config]).assert_success();
    assert_eq!(
        applied(&rusqlite::Connection::open(app.join("data/app.db")).unwrap()),
        [1]
    );
    // The log sits next to the database; the working directory is left as it was.
    assert!(app.join("data/migration.log").is_file());
    assert!(entries(&elsewhere).is_empty(), "{:?}", entries(&elsewhere));

    // An environment's table on top of the file's; the environment variable finds the file.
    let mut cmd = env.command();
    cmd.current_dir(&elsewhere)
        .env("HSM_CONFIG", config)
        .args(["up", "--env", "staging"]);
    Run::from(cmd.output().unwrap()).assert_success();
    assert!(app.join("data/staging.db").is_file());
    // The command line over the file.
    let other = env.dir.path().join("other.db");
    hsm_in(
        &env,
        &elsewhere,
        &[
            "up",
            "--config",
            config,
            "--database",
            other.to_str().unwrap(),
        ],
    )
    .assert_success();
    assert!(other.is_file());
    assert!(entries(&elsewhere).is_empty(), "{:?}", entries(&elsewhere));

    // ./hsm.toml is found by itself.
    hsm_in(&env, &app, &["status", "--check"]).assert_success();
}

#[test]
fn a_bad_settings_file_is_a_usage_error_naming_it() {
    let env = Env::empty();
    let file = env.dir.path().join("hsm.toml");
    write(&file, "databse = \"typo.db\"\n");
    hsm_in(&env, env.dir.path(), &["status"])
        .assert_code(2)
        .assert_stderr_contains("hsm.toml is not a valid configuration file")
        .assert_stderr_contains("databse");
    write(&file, "database = \"x.db\"\n");
    hsm_in(&env, env.dir.path(), &["status", "--env", "prod"])
        .assert_code(2)
        .assert_stderr_contains("has no [env.prod]");
    write(&file, "database = \"x.db\"\ncache_max = \"12 parsecs\"\n");
    hsm_in(&env, env.dir.path(), &["status"])
        .assert_code(2)
        .assert_stderr_contains("cache_max: unknown size unit `parsecs`");
    // A size is text or a number of bytes, as on the command line.
    write(
        &file,
        "database = \"x.db\"\ncache_max = 1048576\nmax_memory = \"64MiB\"\n",
    );
    hsm_in(&env, env.dir.path(), &["status"]).assert_success();
    assert!(!env.dir.path().join("x.db").exists());
}

/// The settings file chooses the database and what runs: one others may write, or a link
/// (planted in a shared working directory, say), is refused, naming why.
#[test]
fn a_settings_file_others_could_change_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::empty();
    let file = env.dir.path().join("hsm.toml");
    write(&file, "database = \"x.db\"\n");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
    hsm_in(&env, env.dir.path(), &["status"])
        .assert_code(2)
        .assert_stderr_contains("others may write it");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link_dir = env.dir.path().join("shared");
    std::fs::create_dir(&link_dir).unwrap();
    std::os::unix::fs::symlink(&file, link_dir.join("hsm.toml")).unwrap();
    hsm_in(&env, &link_dir, &["status"])
        .assert_code(2)
        .assert_stderr_contains("hsm.toml");
    assert!(!env.dir.path().join("x.db").exists());
    assert!(!link_dir.join("x.db").exists());
}
