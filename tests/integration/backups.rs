//! Automatic and manual backups, retention, permissions, and restore.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::{Env, applied, assert_same_bytes};

/// Every file in a backup directory but the note of whose backups it holds.
fn backups_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|path| !path.to_string_lossy().ends_with(".backups-of"));
    files.sort();
    files
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn up_backs_up_first_records_the_path_and_keeps_it_private() {
    let env = Env::with_examples();
    env.hsm(&["up", "3"]).assert_success();
    let backup_dir = env.db.parent().unwrap().join("backups");
    assert_eq!(mode(&backup_dir), 0o700);
    let first = backups_in(&backup_dir);
    assert_eq!(first.len(), 1);
    let name = first[0].file_name().unwrap().to_str().unwrap().to_owned();
    assert!(
        name.starts_with("test.db.backup-") && name.ends_with('Z'),
        "{name}"
    );
    assert_eq!(mode(&first[0]), 0o600);

    let run = env.hsm(&["up"]);
    run.assert_success().assert_stdout_contains("Backup: ");
    let second: Vec<PathBuf> = backups_in(&backup_dir)
        .into_iter()
        .filter(|p| !first.contains(p))
        .collect();
    assert_eq!(second.len(), 1, "one backup per run");
    // The backup holds the database as it was before the run: version 3.
    let inside = rusqlite::Connection::open(&second[0]).unwrap();
    assert_eq!(applied(&inside), [1, 2, 3]);

    let conn = env.open();
    let recorded: Vec<String> = conn
        .prepare("SELECT DISTINCT backup_path FROM migrations WHERE version > 3")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(recorded, [second[0].display().to_string()]);
    let history_paths: i64 = conn
        .query_row(
            "SELECT count(*) FROM migration_history WHERE version > 3 AND backup_path = ?1",
            [second[0].display().to_string()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(history_paths, 4);

    let status = env.status();
    let listed = status["backups"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed[0]["schema_version"], 3,
        "newest first, with its version"
    );
    assert_eq!(listed[1]["schema_version"], 0);
}

#[test]
fn no_backup_when_nothing_changes_or_when_told_not_to() {
    let env = Env::with_examples();
    let backup_dir = env.dir.path().join("elsewhere");
    let dir_arg = backup_dir.to_str().unwrap();
    env.hsm(&["up", "--dry-run", "--backup-dir", dir_arg])
        .assert_success();
    assert!(backups_in(&backup_dir).is_empty());
    env.hsm(&["up", "2", "--no-backup", "--backup-dir", dir_arg])
        .assert_success()
        .assert_stderr_contains("NO BACKUP");
    assert!(backups_in(&backup_dir).is_empty());
    env.hsm(&["up", "2", "--backup-dir", dir_arg])
        .assert_success()
        .assert_stdout_contains("Nothing to do");
    assert!(backups_in(&backup_dir).is_empty());
    env.hsm(&["up", "--backup-dir", dir_arg]).assert_success();
    assert_eq!(backups_in(&backup_dir).len(), 1);
}

#[test]
fn retention_prunes_only_this_databases_backups() {
    let env = Env::with_examples();
    env.hsm(&["up", "1"]).assert_success();
    let dir = env.db.parent().unwrap().join("backups");
    let ours_old: Vec<PathBuf> = (0..5)
        .map(|i| dir.join(format!("test.db.backup-2020-01-0{}T00-00-00-000Z", i + 1)))
        .collect();
    let strangers = [
        dir.join("other.db.backup-2020-01-01T00-00-00-000Z"),
        dir.join("test.db.backup-notes.txt"),
        dir.join("test.db.backup-2020-01-01T00-00-00-000Z.keep"),
    ];
    for path in ours_old.iter().chain(&strangers) {
        std::fs::write(path, b"x").unwrap();
    }
    env.hsm(&["backup", "--keep-backups", "3"])
        .assert_success()
        .assert_stdout_contains("Backup taken: ");
    let left = backups_in(&dir);
    for stranger in &strangers {
        assert!(
            left.contains(stranger),
            "{} was removed",
            stranger.display()
        );
    }
    let ours: Vec<&PathBuf> = left.iter().filter(|p| !strangers.contains(p)).collect();
    assert_eq!(ours.len(), 3, "{ours:?}");
    // The newest three: the two taken now and the newest fake one.
    assert!(ours.contains(&&ours_old[4]));
    assert!(!ours.contains(&&ours_old[3]));
}

#[test]
fn restore_round_trip_backs_up_the_current_database_first() {
    let env = Env::with_examples();
    env.hsm(&["up", "3"]).assert_success();
    env.hsm(&["up"]).assert_success();
    let status = env.status();
    let at_three = status["backups"][0]["path"].as_str().unwrap().to_owned();
    assert_eq!(status["backups"][0]["schema_version"], 3);

    let run = env.hsm(&["restore", &at_three, "--yes"]);
    run.assert_success()
        .assert_stdout_contains("Schema version now in force: 3.")
        .assert_stderr_contains("OVERWRITES");
    assert_eq!(applied(&env.open()), [1, 2, 3]);
    for suffix in ["-wal", "-shm", "-journal"] {
        let stale = PathBuf::from(format!("{}{suffix}", env.db.display()));
        assert!(!stale.exists(), "{} left behind", stale.display());
    }

    // The database as it was (version 7) was backed up first, so the restore can be undone.
    let status = env.status();
    let undo = status["backups"][0]["path"].as_str().unwrap().to_owned();
    assert_eq!(status["backups"][0]["schema_version"], 7);
    env.hsm(&["restore", &undo, "--yes"]).assert_success();
    assert_eq!(applied(&env.open()), [1, 2, 3, 4, 5, 6, 7]);

    // Without an argument, restore lists the backups.
    env.hsm(&["restore"])
        .assert_success()
        .assert_stdout_contains("Restore one with: hsm-host restore");
}

/// A database named through a link (a release's `current/app.db` pointing at `shared/app.db`):
/// its backups sit beside the file, and `restore` replaces the file, leaving the link a link.
#[test]
fn a_database_named_through_a_link_is_backed_up_and_restored_as_the_file() {
    let env = Env::with_examples();
    let shared = env.dir.path().join("shared");
    let current = env.dir.path().join("current");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::create_dir_all(&current).unwrap();
    let real = shared.join("app.db");
    let link = current.join("app.db");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let hsm = |args: &[&str]| {
        let mut cmd = env.command();
        cmd.args(args)
            .arg("--database")
            .arg(&link)
            .arg("--migrations")
            .arg(&env.migrations);
        crate::support::Run::from(cmd.output().unwrap())
    };
    hsm(&["up", "3"]).assert_success();
    hsm(&["up"]).assert_success();
    assert!(shared.join("backups").is_dir(), "backups beside the file");
    assert!(!current.join("backups").exists());
    assert!(!current.join("app.db.lock").exists());
    let backups: Vec<_> = std::fs::read_dir(shared.join("backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let at_three = backups.iter().max().unwrap().to_str().unwrap().to_owned();

    hsm(&["restore", &at_three, "--yes"]).assert_success();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link was replaced by a file"
    );
    assert_eq!(
        applied(&rusqlite::Connection::open(&real).unwrap()),
        [1, 2, 3]
    );
}

/// Two databases of one file name (`prod/app.db`, `staging/app.db`) pointed at one backup
/// directory: the second is refused there before anything changes, and never lists, prunes or
/// recommends the first one's backups.
#[test]
fn a_backup_directory_serves_one_database_of_a_name() {
    let env = Env::with_examples();
    let bk = env.dir.path().join("bk");
    let bk = bk.to_str().unwrap();
    let run = |db: &str, args: &[&str]| {
        let mut cmd = env.command();
        cmd.args(args)
            .args(["--database", db, "--backup-dir", bk, "--migrations"])
            .arg(&env.migrations);
        crate::support::Run::from(cmd.output().unwrap())
    };
    let prod = env.dir.path().join("prod/app.db");
    let staging = env.dir.path().join("staging/app.db");
    let (prod, staging) = (prod.to_str().unwrap(), staging.to_str().unwrap());
    run(prod, &["up", "2"]).assert_success();
    let prods: Vec<_> = std::fs::read_dir(bk)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("app.db.backup-"))
        .collect();
    assert_eq!(prods.len(), 1);

    run(staging, &["up", "2", "--keep-backups", "1"])
        .assert_code(1)
        .assert_stderr_contains("holds the backups of")
        .assert_stderr_contains("give this one its own --backup-dir");
    assert!(
        !Path::new(staging).exists()
            || applied(&rusqlite::Connection::open(staging).unwrap()).is_empty()
    );
    let listed = run(staging, &["restore"]);
    listed.assert_success();
    assert!(!listed.stdout.contains(&prods[0]), "{}", listed.stdout);
    assert!(
        Path::new(bk).join(&prods[0]).exists(),
        "prod's backup was pruned"
    );
}

#[test]
fn restore_refuses_garbage_corrupt_files_and_unconfirmed_runs() {
    let env = Env::with_examples();
    env.hsm(&["up", "3"]).assert_success();
    let before = std::fs::read(&env.db).unwrap();

    let garbage = env.dir.path().join("garbage.db");
    std::fs::write(&garbage, b"not a database").unwrap();
    env.hsm(&["restore", garbage.to_str().unwrap(), "--yes"])
        .assert_code(1)
        .assert_stderr_contains("it is not a SQLite database");

    let corrupt = env.dir.path().join("corrupt.db");
    std::fs::copy(&env.db, &corrupt).unwrap();
    crate::support::corrupt_table(&corrupt, "users");
    env.hsm(&["restore", corrupt.to_str().unwrap(), "--yes"])
        .assert_code(1)
        .assert_stderr_contains("fails integrity_check");

    let good = env.status()["backups"][0]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    // stdin is not a terminal here: without --yes the restore must not happen.
    env.hsm(&["restore", &good])
        .assert_code(2)
        .assert_stderr_contains("--yes");
    assert_same_bytes(&env.db, &before, "the database");
}

#[test]
fn backups_are_consistent_while_another_process_writes_in_wal_mode() {
    let env = Env::with_examples();
    env.hsm(&["up", "1"]).assert_success();
    {
        let conn = env.open();
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        // Every committed state keeps a + b = 100 in every row.
        conn.execute_batch("CREATE TABLE ledger (id INTEGER PRIMARY KEY, a INTEGER, b INTEGER)")
            .unwrap();
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (db, stop) = (env.db.clone(), stop.clone());
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(db).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(5))
                .unwrap();
            let mut commits = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                conn.execute_batch(
                    "BEGIN IMMEDIATE;
                     INSERT INTO ledger (a, b) VALUES (50, 50);
                     UPDATE ledger SET a = a + 1, b = b - 1 WHERE id % 7 = (SELECT count(*) FROM ledger) % 7;
                     COMMIT;",
                )
                .unwrap();
                commits += 1;
            }
            commits
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    for _ in 0..3 {
        env.hsm(&["backup"]).assert_success();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(
        writer.join().unwrap() > 0,
        "the writer made progress during the backups"
    );

    let backups = backups_in(&env.db.parent().unwrap().join("backups"));
    assert_eq!(
        backups.len(),
        4,
        "the one `up` took and the three taken by hand"
    );
    // Names sort by time: the last three are the ones taken while the writer ran.
    for backup in &backups[1..] {
        let copy = rusqlite::Connection::open(backup).unwrap();
        let check: String = copy
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "{}", backup.display());
        let torn: i64 = copy
            .query_row("SELECT count(*) FROM ledger WHERE a + b <> 100", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(
            torn,
            0,
            "{} holds a half-written transaction",
            backup.display()
        );
    }
}

#[test]
fn not_enough_space_for_a_backup_is_refused_before_anything_is_written() {
    let env = Env::with_examples();
    env.hsm(&["up", "3"]).assert_success();
    crate::support::add_ballast(&env.open());
    let before = std::fs::read(&env.db).unwrap();
    let small = env.dir.path().join("small-disk");
    std::fs::create_dir(&small).unwrap();
    // A 512 KiB filesystem of its own for the backup directory, in a private mount namespace
    // (private, as a backup directory must be).
    let hsm = env!("CARGO_BIN_EXE_hsm-host");
    let script = format!(
        "mount -t tmpfs -o size=512k,mode=0700 tmpfs '{dir}' && exec '{hsm}' up --backup-dir '{dir}' \
         --database '{db}' --migrations '{migrations}' --log-file '{log}'",
        dir = small.display(),
        db = env.db.display(),
        migrations = env.migrations.display(),
        log = env.log_file().display(),
    );
    let run = crate::support::Run::from(
        std::process::Command::new("unshare")
            .args(["--mount", "sh", "-c", &script])
            .env("XDG_CACHE_HOME", crate::support::test_cache_home())
            .output()
            .unwrap(),
    );
    run.assert_code(1)
        .assert_stderr_contains("not enough free space for a backup in")
        .assert_stderr_contains("needed")
        .assert_stderr_contains("free");
    assert_same_bytes(&env.db, &before, "the database");
    assert_eq!(applied(&env.open()), [1, 2, 3]);
}

/// Bytes 18 and 19 of a database file: 1 for a rollback journal, 2 for WAL.
fn file_format(path: &Path) -> (u8, u8) {
    let header = std::fs::read(path).unwrap();
    (header[18], header[19])
}

fn sidecars(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with("-wal") || n.ends_with("-shm") || n.ends_with("-journal"))
        .collect()
}

#[test]
fn backups_of_a_wal_database_are_single_files_and_restore_brings_wal_back() {
    let env = Env::with_examples();
    std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
    let mode: String = env
        .open()
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    env.hsm(&["up", "3"]).assert_success();
    env.hsm(&["up"]).assert_success();
    let backup_dir = env.db.parent().unwrap().join("backups");
    let backups = backups_in(&backup_dir);
    assert_eq!(backups.len(), 2);
    for backup in &backups {
        assert_eq!(
            file_format(backup),
            (1, 1),
            "{} is not self-contained",
            backup.display()
        );
    }
    // Reading the backups' versions (status) leaves nothing beside them.
    let status = env.status();
    assert_eq!(status["backups"][0]["schema_version"], 3);
    assert_eq!(sidecars(&backup_dir), Vec::<String>::new());

    // Restored, the database is in WAL mode again, at the backup's version.
    let newest = backups[1].to_str().unwrap().to_owned();
    env.hsm(&["restore", &newest, "--yes", "--no-backup"])
        .assert_success();
    assert_eq!(file_format(&env.db), (2, 2));
    assert_eq!(env.status()["current_version"], 3);
    assert_eq!(sidecars(&backup_dir), Vec::<String>::new());
}

#[test]
fn pruning_removes_the_sidecars_of_backups_it_removes_and_orphans() {
    let env = Env::with_examples();
    env.hsm(&["up", "2"]).assert_success();
    let backup_dir = env.db.parent().unwrap().join("backups");
    let old = backups_in(&backup_dir).remove(0);
    let old_name = old.file_name().unwrap().to_str().unwrap().to_owned();
    // Left by an older hsm-host: sidecars of this backup and of one pruned long ago.
    let gone = old_name.replace("backup-2", "backup-1");
    for name in [
        format!("{old_name}-wal"),
        format!("{old_name}-shm"),
        format!("{gone}-wal"),
    ] {
        std::fs::write(backup_dir.join(name), b"x").unwrap();
    }
    // Not ours: left alone.
    std::fs::write(backup_dir.join("notes.txt-wal"), b"x").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    env.hsm(&["backup", "--keep-backups", "1"]).assert_success();
    assert!(!old.exists());
    assert_eq!(sidecars(&backup_dir), vec!["notes.txt-wal".to_owned()]);
}

/// The backup taken before an irreversible migration is the only way back past it: pruning
/// keeps it beyond `--keep-backups` (20 more backups with `--keep-backups 2`), and `down`'s
/// refusal names it with the command that restores it, or says plainly that it is gone.
#[test]
fn the_backup_before_an_irreversible_migration_survives_and_down_names_it() {
    let env = Env::empty();
    let m = &env.migrations;
    std::fs::write(
        m.join("001_notes.up.sql"),
        "CREATE TABLE notes (id INTEGER);",
    )
    .unwrap();
    std::fs::write(m.join("001_notes.down.sql"), "DROP TABLE notes;").unwrap();
    // No down file: irreversible.
    std::fs::write(m.join("002_seed.up.sql"), "INSERT INTO notes VALUES (1);").unwrap();
    std::fs::write(m.join("003_more.up.sql"), "CREATE TABLE more (id INTEGER);").unwrap();
    std::fs::write(m.join("003_more.down.sql"), "DROP TABLE more;").unwrap();
    let keep = ["--keep-backups", "2"];
    env.hsm(&["up", "1", keep[0], keep[1]]).assert_success();
    env.hsm(&["up", "2", keep[0], keep[1]]).assert_success();
    let before_seed: String = env
        .open()
        .query_row(
            "SELECT backup_path FROM migrations WHERE version = 2",
            [],
            |r| r.get(0),
        )
        .unwrap();
    env.hsm(&["up", keep[0], keep[1]]).assert_success();
    for _ in 0..20 {
        env.hsm(&["backup", keep[0], keep[1]]).assert_success();
    }
    let dir = env.db.parent().unwrap().join("backups");
    let left = backups_in(&dir);
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(
        Path::new(&before_seed).is_file(),
        "{before_seed} was pruned"
    );
    env.hsm(&["down", "0"])
        .assert_code(1)
        .assert_stderr_contains(&format!("hsm-host restore {before_seed}"));

    std::fs::remove_file(&before_seed).unwrap();
    env.hsm(&["down", "0"])
        .assert_code(1)
        .assert_stderr_contains("is gone; restore an older backup of your own");
}

/// Storage stays bounded: ten re-applies of a changed migration leave one stored component,
/// `gc` drops what no applied migration uses and compacts the file, `status` shows the space.
#[test]
fn one_stored_component_per_applied_version_and_gc_compacts() {
    let env = Env::empty();
    let m = &env.migrations;
    std::fs::write(m.join("001_notes.down.sql"), "DROP TABLE notes;").unwrap();
    let stored = |env: &Env| -> i64 {
        env.open()
            .query_row("SELECT count(*) FROM hsm_components", [], |r| r.get(0))
            .unwrap()
    };
    for i in 0..10 {
        std::fs::write(
            m.join("001_notes.up.sql"),
            format!("CREATE TABLE notes (id INTEGER, v{i} TEXT);"),
        )
        .unwrap();
        env.hsm(&["up", "--no-backup"]).assert_success();
        assert_eq!(stored(&env), 1, "after apply {i}");
        env.hsm(&["down", "0", "--no-backup"]).assert_success();
    }
    env.hsm(&["up", "--no-backup"]).assert_success();
    assert_eq!(stored(&env), 1);
    let status = env.status();
    assert!(
        status["storage"]["stored_components"].as_u64().unwrap() > 0,
        "{status}"
    );
    assert!(
        status["storage"]["database"].as_u64().unwrap() > 0,
        "{status}"
    );
    // A stored component nothing uses (an older release's leftovers) goes with gc.
    env.open()
        .execute(
            "INSERT INTO hsm_components (checksum, bytes, stored_at) VALUES ('0', x'00', 'then')",
            [],
        )
        .unwrap();
    env.hsm(&["gc"])
        .assert_success()
        .assert_stdout_contains("1 unused stored component(s) dropped");
    assert_eq!(stored(&env), 1);
    assert_eq!(applied(&env.open()), [1]);
}

/// `--keep-backups-for`: backups older than the bound go, even within `--keep-backups`; the
/// one before an applied irreversible migration and the one just taken stay.
#[test]
fn an_age_bound_drops_old_backups_but_not_the_ones_that_matter() {
    let env = Env::empty();
    let m = &env.migrations;
    std::fs::write(m.join("001_seed.up.sql"), "CREATE TABLE t (x);").unwrap();
    env.hsm(&["up"]).assert_success();
    let dir = env.db.parent().unwrap().join("backups");
    let taken: String = env
        .open()
        .query_row(
            "SELECT backup_path FROM migrations WHERE version = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // The backup that matters, dated long ago; and another old one that does not matter.
    let protected = dir.join("test.db.backup-2020-01-01T00-00-00-000Z");
    std::fs::rename(&taken, &protected).unwrap();
    env.open()
        .execute(
            "UPDATE migrations SET backup_path = ?1",
            [protected.to_str().unwrap()],
        )
        .unwrap();
    let old = dir.join("test.db.backup-2020-02-01T00-00-00-000Z");
    std::fs::copy(&protected, &old).unwrap();
    env.hsm(&[
        "backup",
        "--keep-backups",
        "10",
        "--keep-backups-for",
        "30d",
    ])
    .assert_success();
    let left = backups_in(&dir);
    assert!(protected.is_file(), "{left:?}");
    assert!(!old.exists(), "{left:?}");
    assert_eq!(left.len(), 2, "{left:?}");
}
