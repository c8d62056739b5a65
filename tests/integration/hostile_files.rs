//! The filesystem around a run is input too: the migrations directory a stranger's set came
//! in, the backup directory, the compile cache's path, the files beside the database. Each
//! test shapes one of them as an attacker would and runs the real binary.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{Env, Run, applied};

const SECRET: &str = "AKIA-THE-OPERATORS-SECRET";

/// An environment whose set has one ordinary SQL migration.
fn sql_env() -> Env {
    let env = Env::empty();
    std::fs::write(
        env.migrations.join("0001_users.sql"),
        "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT);",
    )
    .unwrap();
    env
}

/// Runs `hsm-host args…`, killing it (and failing) if it has not ended within `limit`.
fn run_within(env: &Env, args: &[&str], limit: Duration) -> Run {
    let mut child = env
        .hsm_command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            panic!("hsm-host {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Run::from(child.wait_with_output().unwrap())
}

fn assert_secret_nowhere(env: &Env, run: &Run) {
    assert!(!run.stdout.contains(SECRET), "{}", run.stdout);
    assert!(!run.stderr.contains(SECRET), "{}", run.stderr);
    let log = std::fs::read_to_string(env.log_file()).unwrap_or_default();
    assert!(!log.contains(SECRET), "the log file holds the secret");
    if let Ok(bytes) = std::fs::read(&env.db) {
        let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
        assert!(!found, "the database holds the secret");
    }
}

#[test]
fn a_sql_file_linked_to_the_operators_files_is_refused_and_its_text_lands_nowhere() {
    let env = sql_env();
    let secret = env.dir.path().join("credentials");
    std::fs::write(
        &secret,
        format!("[default]\naws_secret_access_key = {SECRET}\n"),
    )
    .unwrap();
    symlink(&secret, env.migrations.join("0002_creds.sql")).unwrap();
    for args in [&["status"][..], &["up"], &["up", "--dry-run"]] {
        let run = run_within(&env, args, Duration::from_secs(60));
        assert_ne!(run.code, 0, "{args:?}: {}", run.stdout);
        run.assert_stderr_contains("0002_creds.sql")
            .assert_stderr_contains("symbolic link out of the migrations directory");
        assert_secret_nowhere(&env, &run);
    }
    // A link to another file of the set is an ordinary file of the set.
    std::fs::remove_file(env.migrations.join("0002_creds.sql")).unwrap();
    std::fs::write(
        env.migrations.join("real.sql.txt"),
        "CREATE TABLE notes (x);",
    )
    .unwrap();
    symlink("real.sql.txt", env.migrations.join("0002_notes.sql")).unwrap();
    env.hsm(&["up"]).assert_success();
    assert_eq!(applied(&env.open()), [1, 2]);
}

#[test]
fn a_fifo_or_a_device_in_the_set_fails_at_once_without_reading() {
    let fifo = |path: &Path| {
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            path,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap()
    };
    for (name, make) in [
        ("0002_wait.sql", &fifo as &dyn Fn(&Path)),
        ("0002_zero.sql", &|p: &Path| {
            symlink("/dev/zero", p).unwrap()
        }),
        ("v002_wait.wasm", &fifo),
        ("v002_zero.wasm", &|p: &Path| {
            symlink("/dev/zero", p).unwrap()
        }),
    ] {
        let env = sql_env();
        make(&env.migrations.join(name));
        for args in [&["status"][..], &["up"]] {
            let run = run_within(&env, args, Duration::from_secs(60));
            assert_ne!(run.code, 0, "{name} {args:?}");
            run.assert_stderr_contains(name);
            assert!(
                run.stderr.contains("is a FIFO")
                    || run.stderr.contains("out of the migrations directory"),
                "{name}: {}",
                run.stderr
            );
        }
        assert!(
            !env.db.exists() || applied(&env.open()).is_empty(),
            "{name}"
        );
    }
}

#[test]
fn an_oversized_sql_file_is_refused_naming_the_limit() {
    let env = sql_env();
    let mut big = String::from("INSERT INTO users (email) VALUES ");
    while big.len() < (5 << 20) {
        big += "('someone@example.com'), ";
    }
    big += "('last@example.com');";
    std::fs::write(env.migrations.join("0002_big.sql"), big).unwrap();
    let run = env.hsm(&["up"]);
    assert_ne!(run.code, 0);
    run.assert_stderr_contains("0002_big.sql")
        .assert_stderr_contains("4194304 bytes at most");
}

#[test]
fn backups_planted_in_the_future_never_prune_the_backup_just_taken() {
    let env = sql_env();
    env.hsm(&["up"]).assert_success();
    std::fs::write(
        env.migrations.join("0002_notes.sql"),
        "CREATE TABLE notes (x);",
    )
    .unwrap();
    let backups = env.db.parent().unwrap().join("backups");
    let planted: Vec<_> = (0..12)
        .map(|i| backups.join(format!("test.db.backup-2099-01-{:02}T00-00-00-000Z", i + 1)))
        .collect();
    for path in &planted {
        std::fs::write(path, "planted").unwrap();
    }
    // And a link named like an old backup, to a file that must survive pruning.
    let victim = env.dir.path().join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    symlink(
        &victim,
        backups.join("test.db.backup-2000-01-01T00-00-00-000Z"),
    )
    .unwrap();
    let run = env.hsm(&["up", "--keep-backups", "1"]);
    run.assert_success();
    let line = run
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Backup: "))
        .unwrap_or_else(|| panic!("no backup line: {}", run.stdout));
    assert!(
        Path::new(line).is_file(),
        "the backup it printed is gone: {line}"
    );
    assert!(
        planted.iter().all(|p| p.is_file()),
        "planted files were pruned"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
}

#[test]
fn a_backup_directory_others_can_write_is_refused_before_anything_changes() {
    let env = sql_env();
    let backups = env.db.parent().unwrap().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    std::fs::set_permissions(&backups, std::fs::Permissions::from_mode(0o777)).unwrap();
    // The database exists (and has data) before, so a backup is due.
    {
        let conn = rusqlite::Connection::open(&env.db).unwrap();
        conn.execute_batch("CREATE TABLE app (x); INSERT INTO app VALUES (1);")
            .unwrap();
    }
    let run = env.hsm(&["up"]);
    assert_ne!(run.code, 0, "{}", run.stdout);
    run.assert_stderr_contains("refusing the backup directory")
        .assert_stderr_contains("writable by no one else");
    assert!(applied(&env.open()).is_empty());
}

#[test]
fn a_compile_cache_below_a_directory_others_can_write_is_not_used() {
    let env = sql_env();
    let open = env.dir.path().join("shared");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let run = Run::from(
        env.hsm_command(&["up"])
            .env("XDG_CACHE_HOME", &open)
            .output()
            .unwrap(),
    );
    run.assert_success()
        .assert_stderr_contains("compile cache disabled")
        .assert_stderr_contains("writable by other users");
    assert_eq!(applied(&env.open()), [1]);
    // Nothing was written below it.
    let cache = open.join("hsm-host");
    let entries = std::fs::read_dir(&cache).map_or(0, |d| d.count());
    assert_eq!(entries, 0, "the cache was written");
}

#[test]
fn a_planted_restore_partial_link_is_not_written_through() {
    let env = sql_env();
    env.hsm(&["up"]).assert_success();
    let path = env.take_backup();
    let victim = env.dir.path().join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    symlink(&victim, env.db.with_file_name(".test.db.restore-partial")).unwrap();
    env.hsm(&["restore", &path, "--yes"]).assert_success();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    assert!(!env.db.is_symlink(), "the database became the planted link");
    assert_eq!(applied(&env.open()), [1]);
}

#[test]
fn a_lock_file_link_is_not_written_through() {
    let env = sql_env();
    std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
    let victim = env.dir.path().join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    symlink(&victim, env.db.with_file_name("test.db.lock")).unwrap();
    let run = env.hsm(&["up"]);
    assert_ne!(run.code, 0);
    run.assert_stderr_contains("test.db.lock");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
}

#[test]
fn a_database_in_a_directory_every_user_may_write_is_refused() {
    // Another user could plant `<db>-journal` there, which SQLite would roll into the database.
    let env = sql_env();
    let dir = env.db.parent().unwrap();
    std::fs::create_dir_all(dir).unwrap();
    rusqlite::Connection::open(&env.db)
        .unwrap()
        .execute_batch("CREATE TABLE app (x);")
        .unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    for args in [&["status"][..], &["up"]] {
        let run = env.hsm(args);
        assert_ne!(run.code, 0, "{args:?}");
        run.assert_stderr_contains("is writable by other users");
    }
    let backup = env.dir.path().join("elsewhere.db");
    std::fs::copy(&env.db, &backup).unwrap();
    let run = env.hsm(&["restore", backup.to_str().unwrap(), "--yes"]);
    assert_ne!(run.code, 0);
    run.assert_stderr_contains("is writable by other users");
    // Group-writable is as open (another member could plant the journal).
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o770)).unwrap();
    env.hsm(&["status"])
        .assert_code(1)
        .assert_stderr_contains("is writable by other users");
    // A journal beside the database that is not a regular file is refused too.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    symlink(
        env.dir.path().join("planted"),
        env.db.with_file_name("test.db-journal"),
    )
    .unwrap();
    env.hsm(&["status"])
        .assert_stderr_contains("test.db-journal is not a regular file");
}

#[test]
fn a_log_file_link_is_not_written_through() {
    let env = sql_env();
    std::fs::create_dir_all(env.log_file().parent().unwrap()).unwrap();
    let victim = env.dir.path().join("victim.txt");
    std::fs::write(&victim, "keep me").unwrap();
    symlink(&victim, env.log_file()).unwrap();
    env.hsm(&["up"])
        .assert_success()
        .assert_stderr_contains("not writing the log file");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
}

#[test]
fn a_huge_lock_file_is_read_only_as_far_as_a_holder_line() {
    let env = sql_env();
    std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
    let lock = env.db.with_file_name("test.db.lock");
    let file = std::fs::File::create(&lock).unwrap();
    file.set_len(4 << 30).unwrap(); // sparse: 4 GiB of nothing
    file.lock().unwrap();
    let run = run_within(
        &env,
        &["up", "--lock-timeout", "1"],
        Duration::from_secs(30),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.len() < 16 << 10, "{} bytes", run.stderr.len());
    drop(file);
}

#[test]
fn entries_planted_in_the_backup_directory_are_neither_read_nor_recommended() {
    let env = sql_env();
    env.hsm(&["up"]).assert_success();
    let backups = env.db.parent().unwrap().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        backups.join("test.db.backup-2020-01-01T00-00-00-000Z"),
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    std::fs::write(
        backups.join("test.db.backup-2099-01-01T00-00-00-000Z"),
        "planted",
    )
    .unwrap();
    let status = run_within(&env, &["status", "--json"], Duration::from_secs(30));
    status.assert_success();
    assert!(!status.stdout.contains("2099"), "{}", status.stdout);
    assert!(!status.stdout.contains("2020-01-01"), "{}", status.stdout);
    let listing = run_within(&env, &["restore"], Duration::from_secs(30));
    listing.assert_success();
    assert!(!listing.stdout.contains("2099"), "{}", listing.stdout);
}

/// Under a group-writable umask (Debian's default for users, 002), the first run on a new
/// database path makes its directory writable by its owner only, and goes on.
#[test]
fn a_group_writable_umask_does_not_make_the_first_run_refuse_its_own_directory() {
    let env = Env::with_examples();
    let db = env.dir.path().join("fresh").join("x.db");
    let mut cmd = std::process::Command::new("sh");
    cmd.current_dir(env.dir.path())
        .env("XDG_CACHE_HOME", crate::support::test_cache_home())
        .arg("-c")
        .arg("umask 002; exec \"$0\" up 3 --database \"$1\" --migrations \"$2\"")
        .arg(env!("CARGO_BIN_EXE_hsm-host"))
        .arg(&db)
        .arg(&env.migrations);
    Run::from(cmd.output().unwrap()).assert_success();
    let mode = std::fs::metadata(db.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
}
