//! `--backup pg_dump` and `hsm-host backup` on a server: a dump pg_restore reads, taken before
//! the first step and only when one runs, mode 0600, the password never on pg_dump's command
//! line, and a pg_dump too old for the server refused before anything runs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::PgEnv;

fn dumps(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    found.sort();
    found
}

/// What pg_restore lists of a dump's contents.
fn listed(dump: &Path) -> String {
    let out = Command::new("pg_restore")
        .arg("--list")
        .arg(dump)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A pg_dump that writes its arguments and whether it got a password, then runs the real one.
fn recording_pg_dump(env: &PgEnv) -> (PathBuf, PathBuf) {
    let record = env.dir.path().join("pg_dump.args");
    let script = env.dir.path().join("pg_dump");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             if [ \"$1\" != --version ]; then\n\
             echo \"args: $*\" >> {record}\n\
             echo \"password set: ${{PGPASSWORD:+yes}}\" >> {record}\n\
             fi\n\
             exec pg_dump \"$@\"\n",
            record = record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, record)
}

#[test]
fn up_with_backup_pg_dump_takes_a_restorable_dump_before_migrating() {
    let env = PgEnv::new();
    env.write(
        "1_tags.up.sql",
        "CREATE TABLE tags (id bigint PRIMARY KEY, name text NOT NULL);\n\
         INSERT INTO tags VALUES (1, 'first');",
    );
    env.write("1_tags.down.sql", "DROP TABLE tags;");
    env.write(
        "2_colour.up.sql",
        "ALTER TABLE tags ADD COLUMN colour text;",
    );
    env.write("2_colour.down.sql", "ALTER TABLE tags DROP COLUMN colour;");
    let backups = env.dir.path().join("dumps");
    let dir = backups.to_str().unwrap();
    let (pg_dump, record) = recording_pg_dump(&env);

    let mut first = env.hsm_command(&["up", "1", "--backup", "pg_dump", "--backup-dir", dir]);
    first.env("HSM_PG_DUMP", &pg_dump);
    let run = crate::support::Run(first.output().unwrap()).success();
    let taken = dumps(&backups);
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert!(run.stdout().contains("Backup:"), "{}", run.stdout());
    let mode = std::fs::metadata(&taken[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // Taken before migration 1: the dump has the tracking schema but not yet `tags`.
    let before = listed(&taken[0]);
    assert!(before.contains("migrations"), "{before}");
    assert!(!before.contains("TABLE public tags"), "{before}");
    let recorded = std::fs::read_to_string(&record).unwrap();
    assert!(recorded.contains("password set: yes"), "{recorded}");
    let password = crate::support::server_var("PGPASSWORD");
    assert!(
        !recorded.contains(&password),
        "the password reached pg_dump's arguments"
    );

    // The next up dumps again (now with `tags`); one with nothing to run takes none.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let mut second = env.hsm_command(&["up", "--backup", "pg_dump", "--backup-dir", dir]);
    second.env("HSM_PG_DUMP", &pg_dump);
    crate::support::Run(second.output().unwrap()).success();
    let taken = dumps(&backups);
    assert_eq!(taken.len(), 2, "{taken:?}");
    assert!(listed(&taken[1]).contains("TABLE public tags"));
    env.hsm(&["up", "--backup", "pg_dump", "--backup-dir", dir])
        .success();
    assert_eq!(dumps(&backups).len(), 2);
    assert_eq!(env.applied(), [1, 2]);

    // `backup` dumps now, and --keep-backups keeps the newest.
    env.hsm(&["backup", "--backup-dir", dir, "--keep-backups", "2"])
        .success();
    let kept = dumps(&backups);
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(!kept.contains(&taken[0]), "the oldest dump was kept");
}

#[test]
fn a_pg_dump_older_than_the_server_is_refused_before_anything_runs() {
    let env = PgEnv::new();
    env.write("1_t.up.sql", "CREATE TABLE t (id bigint);");
    let old = env.dir.path().join("pg_dump");
    std::fs::write(&old, "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n").unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o755)).unwrap();
    let backups = env.dir.path().join("dumps");
    let mut up = env.hsm_command(&[
        "up",
        "--backup",
        "pg_dump",
        "--backup-dir",
        backups.to_str().unwrap(),
    ]);
    up.env("HSM_PG_DUMP", &old);
    let run = crate::support::Run(up.output().unwrap());
    assert_ne!(run.code(), Some(0));
    let stderr = run.stderr();
    assert!(stderr.contains("needs pg_dump from PostgreSQL"), "{stderr}");
    assert!(stderr.contains("is 9"), "{stderr}");
    assert!(env.applied().is_empty());
    assert!(!env.has_table("t"));
    assert!(dumps(&backups).is_empty(), "{:?}", dumps(&backups));
}

#[test]
fn a_failing_pg_dump_leaves_no_partial_file_and_runs_nothing() {
    let env = PgEnv::new();
    env.write("1_t.up.sql", "CREATE TABLE t (id bigint);");
    let failing = env.dir.path().join("pg_dump");
    std::fs::write(
        &failing,
        "#!/bin/sh\n\
         if [ \"$1\" = --version ]; then echo 'pg_dump (PostgreSQL) 99.0'; exit 0; fi\n\
         echo 'pg_dump: error: connection refused' >&2; exit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&failing, std::fs::Permissions::from_mode(0o755)).unwrap();
    let backups = env.dir.path().join("dumps");
    let mut up = env.hsm_command(&[
        "up",
        "--backup",
        "pg_dump",
        "--backup-dir",
        backups.to_str().unwrap(),
    ]);
    up.env("HSM_PG_DUMP", &failing);
    let run = crate::support::Run(up.output().unwrap());
    assert_ne!(run.code(), Some(0));
    assert!(
        run.stderr()
            .contains("the backup (pg_dump) failed, so nothing was migrated"),
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains("connection refused"));
    assert!(env.applied().is_empty());
    assert!(dumps(&backups).is_empty(), "{:?}", dumps(&backups));
}

#[test]
fn backup_pg_dump_on_a_sqlite_file_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hsm-host"))
        .current_dir(dir.path())
        .env_remove("DATABASE_PATH")
        .args(["up", "--backup", "pg_dump", "--database", "app.db"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is for a PostgreSQL --database URL"),
        "{stderr}"
    );
    assert!(!dir.path().join("app.db").exists());
}

#[test]
fn the_restore_hsm_host_prints_runs_no_migration_code_as_the_superuser() {
    // Found by the review: restored as the superuser, a migration's CHECK constraint ran as
    // it (COPY checks constraints as the restoring user) and made the application's role a
    // superuser.
    let env = PgEnv::new();
    env.write(
        "1_trap.up.sql",
        &format!(
            "CREATE FUNCTION evil() RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
             BEGIN
               IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
                 ALTER ROLE {app} SUPERUSER;
               END IF;
               RETURN true;
             END $$;
             CREATE TABLE trapped (x int CHECK (evil()));
             INSERT INTO trapped VALUES (1);",
            app = env.app_role
        ),
    );
    env.hsm(&["up"]).success();
    let backups = env.dir.path().join("dumps");
    std::fs::create_dir(&backups).unwrap();
    std::fs::set_permissions(&backups, std::fs::Permissions::from_mode(0o700)).unwrap();
    let run = env
        .hsm(&["backup", "--backup-dir", backups.to_str().unwrap()])
        .success();
    let stdout = run.stdout();
    let printed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Restore it with: "))
        .unwrap_or_else(|| panic!("no restore line in {stdout}"));
    let args: Vec<String> = printed
        .split_whitespace()
        .skip(1)
        .map(|a| match a {
            "URL" => env.url(),
            other => other.to_owned(),
        })
        .collect();
    let restored = Command::new("pg_restore").args(&args).output().unwrap();
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let superuser: bool = env
        .client()
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = $1",
            &[&env.app_role],
        )
        .unwrap()
        .get(0);
    assert!(
        !superuser,
        "the restore ran the migration's code as the superuser"
    );
    assert_eq!(env.applied(), [1]);
    let rows: i64 = env
        .client()
        .query_one("SELECT count(*) FROM trapped", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 1);
    // And the restored database still migrates.
    env.write("2_more.up.sql", "CREATE TABLE more (x int);");
    env.hsm(&["up"]).success();
    assert_eq!(env.applied(), [1, 2]);
}
