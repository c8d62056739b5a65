//! `hsm-host fleet`: one set, many SQLite databases, through the real binary: a poisoned
//! target under `--on-error continue` and `stop`, `--canary`, a rerun that goes on from where
//! each target stands, `fleet status` grouping targets by version, and the JSON lines.

use std::path::PathBuf;

use crate::support::{Env, applied};

/// An environment with a three-migration SQL set and `n` target paths (none made yet), listed
/// in a targets file; target `poisoned` already has a `tags` table, so migration 2 fails there.
fn fleet(n: usize, poisoned: Option<usize>) -> (Env, PathBuf, Vec<PathBuf>) {
    let env = Env::empty();
    let write = |name: &str, sql: &str| std::fs::write(env.migrations.join(name), sql).unwrap();
    write(
        "1_users.up.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY);",
    );
    write("1_users.down.sql", "DROP TABLE users;");
    write(
        "2_tags.up.sql",
        "CREATE TABLE tags (id INTEGER PRIMARY KEY);",
    );
    write("2_tags.down.sql", "DROP TABLE tags;");
    write(
        "3_notes.up.sql",
        "CREATE TABLE notes (id INTEGER PRIMARY KEY);",
    );
    write("3_notes.down.sql", "DROP TABLE notes;");
    let dir = env.dir.path().join("sites");
    std::fs::create_dir(&dir).unwrap();
    let targets: Vec<PathBuf> = (0..n).map(|i| dir.join(format!("site{i:02}.db"))).collect();
    if let Some(i) = poisoned {
        rusqlite::Connection::open(&targets[i])
            .unwrap()
            .execute_batch("CREATE TABLE tags (legacy TEXT);")
            .unwrap();
    }
    let file = env.dir.path().join("targets.txt");
    let mut text = String::from("# every installation\n\n");
    for target in &targets {
        text.push_str(&format!(
            "sites/{}\n",
            target.file_name().unwrap().to_str().unwrap()
        ));
    }
    std::fs::write(&file, text).unwrap();
    (env, file, targets)
}

/// The JSON lines of a run: every target's, then the summary.
fn lines(stdout: &str) -> (Vec<serde_json::Value>, serde_json::Value) {
    let mut all: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let summary = all.pop().unwrap();
    (all, summary["summary"].clone())
}

fn count(targets: &[serde_json::Value], status: &str) -> usize {
    targets.iter().filter(|t| t["status"] == status).count()
}

#[test]
fn fifty_targets_in_parallel_one_poisoned_the_rest_migrate_and_the_report_says_which() {
    let (env, file, targets) = fleet(50, Some(17));
    let file = file.to_str().unwrap();
    let run = env.hsm(&[
        "fleet",
        "up",
        "--targets",
        file,
        "--parallel",
        "4",
        "--on-error",
        "continue",
        "--json",
    ]);
    run.assert_code(1);
    let (each, summary) = lines(&run.stdout);
    assert_eq!(each.len(), 50);
    assert_eq!(
        summary,
        serde_json::json!({"targets": 50, "succeeded": 49, "failed": 1, "not_started": 0})
    );
    let failed: Vec<_> = each.iter().filter(|t| t["status"] == "failed").collect();
    assert!(failed[0]["target"].as_str().unwrap().ends_with("site17.db"));
    assert_eq!(failed[0]["error"]["kind"], "migration_failed");
    for target in each.iter().filter(|t| t["status"] == "done") {
        assert_eq!(target["to"], 3);
        assert_eq!(target["applied"], serde_json::json!([1, 2, 3]));
    }
    for (i, target) in targets.iter().enumerate() {
        let conn = rusqlite::Connection::open(target).unwrap();
        let want: Vec<i64> = if i == 17 { vec![1] } else { vec![1, 2, 3] };
        // The poisoned one kept what committed before its failure (one transaction each).
        assert_eq!(applied(&conn), want, "{}", target.display());
    }

    // fleet status groups them by version; the behind one is named.
    let status = env.hsm(&["fleet", "status", "--targets", file]);
    status.assert_success();
    assert!(
        status.stdout.contains("49 at version 3, 1 at version 1"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("site17.db  (behind: 2 pending)"),
        "{}",
        status.stdout
    );

    // Fixed, a rerun goes on from where each stands: one target moves, 49 have nothing to do.
    rusqlite::Connection::open(&targets[17])
        .unwrap()
        .execute_batch("DROP TABLE tags;")
        .unwrap();
    let rerun = env.hsm(&[
        "fleet",
        "up",
        "--targets",
        file,
        "--parallel",
        "3",
        "--json",
    ]);
    rerun.assert_success();
    let (each, summary) = lines(&rerun.stdout);
    assert_eq!(summary["succeeded"], 50);
    let moved: Vec<_> = each
        .iter()
        .filter(|t| t["applied"].as_array().is_some_and(|a| !a.is_empty()))
        .collect();
    assert_eq!(moved.len(), 1);
    assert_eq!(moved[0]["applied"], serde_json::json!([2, 3]));
}

#[test]
fn on_error_stop_starts_no_target_after_a_failure() {
    let (env, file, targets) = fleet(20, Some(5));
    let run = env.hsm(&["fleet", "up", "--targets", file.to_str().unwrap(), "--json"]);
    run.assert_code(1);
    let (each, summary) = lines(&run.stdout);
    assert_eq!(
        summary,
        serde_json::json!({"targets": 20, "succeeded": 5, "failed": 1, "not_started": 14})
    );
    assert_eq!(count(&each, "not_started"), 14);
    // Those not started were not touched at all: no database made.
    assert!(!targets[6].exists() && !targets[19].exists());
    assert!(
        run.stderr
            .contains("1 of 20 target(s) failed and 14 did not start"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_failing_canary_stops_the_fleet_whatever_on_error_says() {
    let (env, file, targets) = fleet(10, Some(1));
    let run = env.hsm(&[
        "fleet",
        "up",
        "--targets",
        file.to_str().unwrap(),
        "--canary",
        "2",
        "--parallel",
        "4",
        "--on-error",
        "continue",
    ]);
    run.assert_code(1);
    assert!(
        run.stdout
            .contains("Fleet: 10 target(s): 1 done, 1 failed, 8 not started."),
        "{}",
        run.stdout
    );
    // A table: its header, then a row per target in the target column's width.
    let mut rows = run.stdout.lines();
    let header = rows.next().unwrap();
    assert!(
        header.starts_with("TARGET") && header.contains("STATUS"),
        "{header}"
    );
    let failed = run.stdout.lines().find(|l| l.contains("FAILED")).unwrap();
    let column = header.find("STATUS").unwrap();
    assert_eq!(failed.find("FAILED"), Some(column), "{}", run.stdout);
    assert!(failed.contains("migration 2 (tags) failed"), "{failed}");
    assert!(!targets[2].exists());
    // Without a failure, the canary runs first and the rest follow.
    rusqlite::Connection::open(&targets[1])
        .unwrap()
        .execute_batch("DROP TABLE tags;")
        .unwrap();
    let run = env.hsm(&[
        "fleet",
        "up",
        "--targets",
        file.to_str().unwrap(),
        "--canary",
        "2",
        "--parallel",
        "4",
    ]);
    run.assert_success();
    assert!(run.stdout.contains("10 done, 0 failed"), "{}", run.stdout);
    // And down rolls every target back to the version asked.
    env.hsm(&[
        "fleet",
        "down",
        "1",
        "--targets",
        file.to_str().unwrap(),
        "--parallel",
        "2",
    ])
    .assert_success();
    for target in &targets {
        assert_eq!(applied(&rusqlite::Connection::open(target).unwrap()), [1]);
    }
}

#[test]
fn a_targets_file_that_names_nothing_usable_is_a_usage_error() {
    let (env, file, _) = fleet(2, None);
    std::fs::write(&file, "# nothing\nsites/*.nothing\n").unwrap();
    let run = env.hsm(&["fleet", "up", "--targets", file.to_str().unwrap()]);
    run.assert_code(2);
    assert!(run.stderr.contains("matches no database"), "{}", run.stderr);
    std::fs::write(&file, "# nothing at all\n").unwrap();
    env.hsm(&["fleet", "status", "--targets", file.to_str().unwrap()])
        .assert_code(2)
        .assert_stderr_contains("names no database");
}

#[test]
fn a_locked_target_fails_alone_and_a_fleet_killed_midway_goes_on_when_rerun() {
    let (env, file, targets) = fleet(6, None);
    // A slow migration, so the kill lands while targets are migrating.
    std::fs::write(
        env.migrations.join("4_big.up.sql"),
        "CREATE TABLE big (x INTEGER);\n\
         WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000)\n\
         INSERT INTO big SELECT x FROM c;",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    // Another process holds target 3's lock: that target fails, as a single run would.
    rusqlite::Connection::open(&targets[3]).unwrap();
    let held = hsm_host::lock::acquire(&targets[3], std::time::Duration::ZERO).unwrap();
    let run = env.hsm(&[
        "fleet",
        "up",
        "3",
        "--targets",
        file,
        "--parallel",
        "2",
        "--on-error",
        "continue",
        "--lock-timeout",
        "1",
        "--json",
    ]);
    run.assert_code(1);
    let (each, summary) = lines(&run.stdout);
    assert_eq!(summary["failed"], 1);
    let locked: Vec<_> = each.iter().filter(|t| t["status"] == "failed").collect();
    assert!(locked[0]["target"].as_str().unwrap().ends_with("site03.db"));
    assert_eq!(locked[0]["error"]["kind"], "locked");
    drop(held);

    // Killed while the slow migration runs on the first targets.
    let mut child = env
        .hsm_command(&["fleet", "up", "--targets", file, "--parallel", "2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    child.kill().unwrap();
    child.wait().unwrap();
    // Each target is whole: its migration 4 either committed or left nothing.
    for target in &targets {
        let conn = rusqlite::Connection::open(target).unwrap();
        // Not reached before the kill (the locked one was never migrated): no tables yet.
        let versions = match crate::support::table_exists(&conn, "migrations") {
            true => applied(&conn),
            false => Vec::new(),
        };
        let has_big = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'big'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
            == 1;
        assert_eq!(versions.contains(&4), has_big, "{}", target.display());
    }
    let rerun = env.hsm(&["fleet", "up", "--targets", file, "--parallel", "2"]);
    rerun.assert_success();
    for target in &targets {
        let conn = rusqlite::Connection::open(target).unwrap();
        assert_eq!(applied(&conn), [1, 2, 3, 4], "{}", target.display());
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM big", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 2_000_000);
    }
}

#[test]
fn one_database_however_spelled_runs_once_and_the_verdict_survives_a_closed_pipe() {
    // Found by the review: `a.db`, `./a.db` and a link to it ran three times, and `down`
    // rolled one database back three steps.
    let (env, file, targets) = fleet(3, Some(2));
    let sites = targets[0].parent().unwrap();
    std::os::unix::fs::symlink("site00.db", sites.join("alias.db")).unwrap();
    let file = file.to_str().unwrap();
    env.hsm(&[
        "fleet",
        "up",
        "2",
        "--targets",
        file,
        "--on-error",
        "continue",
    ])
    .assert_code(1);
    std::fs::write(
        file,
        "sites/site00.db\n./sites/site00.db\nsites/alias.db\nsites/../sites/site00.db\n",
    )
    .unwrap();
    let down = env.hsm(&["fleet", "down", "--targets", file, "--json"]);
    down.assert_success();
    let (each, summary) = lines(&down.stdout);
    assert_eq!(each.len(), 1, "{}", down.stdout);
    assert_eq!(summary["targets"], 1);
    assert_eq!(
        applied(&rusqlite::Connection::open(&targets[0]).unwrap()),
        [1]
    );

    // The verdict does not depend on stdout's reader: a failed target exits 1 even when the
    // reader is gone (`| head -1`).
    std::fs::write(file, "sites/site01.db\nsites/site02.db\n").unwrap();
    let mut child = env
        .hsm_command(&["fleet", "up", "--targets", file, "--on-error", "continue"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    assert_eq!(child.wait().unwrap().code(), Some(1));
}

#[test]
fn json_lines_stay_json_and_the_log_names_each_target() {
    let (env, file, _) = fleet(2, None);
    let odd = env.dir.path().join("sites").join("c\u{202e}gnp\u{1b}2J.db");
    std::fs::write(&file, format!("sites/site00.db\n{}\n", odd.display())).unwrap();
    let run = env.hsm(&["fleet", "up", "--targets", file.to_str().unwrap(), "--json"]);
    run.assert_success();
    let (each, _) = lines(&run.stdout);
    assert!(each.iter().any(|t| {
        t["target"]
            .as_str()
            .unwrap()
            .ends_with("c\u{202e}gnp\u{1b}2J.db")
    }));
    assert!(
        !run.stdout.contains('\u{1b}'),
        "a raw escape reached stdout"
    );
    let log = std::fs::read_to_string(env.log_file()).unwrap();
    assert!(log.contains("site00.db"), "{log}");
}

#[test]
fn a_version_the_set_lacks_or_an_endless_targets_file_is_the_command_lines_mistake() {
    let (env, file, targets) = fleet(2, None);
    env.hsm(&["fleet", "up", "99", "--targets", file.to_str().unwrap()])
        .assert_code(2)
        .assert_stderr_contains("there is no migration with version 99");
    assert!(!targets[0].exists());
    let zero = env.dir.path().join("zero.txt");
    std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
    env.hsm(&["fleet", "status", "--targets", zero.to_str().unwrap()])
        .assert_code(2);
    let fifo = crate::support::fifo(&env.dir.path().join("fifo.txt"));
    env.hsm(&["fleet", "status", "--targets", fifo.to_str().unwrap()])
        .assert_code(2);
    std::fs::write(&file, "sites/**/*.db\n").unwrap();
    env.hsm(&["fleet", "status", "--targets", file.to_str().unwrap()])
        .assert_code(2)
        .assert_stderr_contains("`**` is not supported");
}

#[test]
fn the_settings_file_names_the_fleet_and_its_pace_and_the_command_line_wins() {
    let (env, _, targets) = fleet(6, Some(4));
    let config = env.dir.path().join("hsm.toml");
    std::fs::write(
        &config,
        "[fleet]\ntargets = [\"sites/site00.db\", \"sites/site01.db  # the first two\"]\n\
         on_error = \"continue\"\nparallel = 2\n\n\
         [env.all.fleet]\ntargets = \"all.txt\"\n",
    )
    .unwrap();
    std::fs::write(
        env.dir.path().join("all.txt"),
        (0..6)
            .map(|i| format!("sites/site{i:02}.db\n"))
            .collect::<String>(),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let run = env.hsm(&["fleet", "up", "--config", config, "--json"]);
    run.assert_success();
    let (each, summary) = lines(&run.stdout);
    assert_eq!(summary["targets"], 2, "{}", run.stdout);
    assert_eq!(count(&each, "done"), 2);
    assert!(!targets[2].exists());
    // [env.all.fleet] names the file of all six; its on_error (continue, from [fleet]) runs
    // past the poisoned one, and the failure's line says what it did and where it failed.
    let run = env.hsm(&["fleet", "up", "--config", config, "--env", "all", "--json"]);
    run.assert_code(1);
    let (each, summary) = lines(&run.stdout);
    assert_eq!(
        (summary["succeeded"].as_u64(), summary["failed"].as_u64()),
        (Some(5), Some(1))
    );
    let failed = each.iter().find(|t| t["status"] == "failed").unwrap();
    assert!(
        failed["target"].as_str().unwrap().ends_with("site04.db"),
        "{failed}"
    );
    assert_eq!(failed["applied"], serde_json::json!([1]), "{failed}");
    assert_eq!(failed["error"]["kind"], "migration_failed", "{failed}");
    assert_eq!(failed["error"]["version"], 2, "{failed}");
    assert_eq!(
        failed["error"]["completed"],
        serde_json::json!([1]),
        "{failed}"
    );
    assert!(
        failed["error"]["cause"].as_str().unwrap().contains("tags"),
        "{failed}"
    );
    // The way back: the backup taken before its run, there on disk.
    let backup = failed["backup"]
        .as_str()
        .expect("a failed target names its backup");
    assert!(std::path::Path::new(backup).is_file(), "{failed}");
    assert_eq!(failed["error"]["backup"], failed["backup"], "{failed}");
    // The command line's --on-error stop wins over the file's continue: rolled back, then
    // up again with the poisoned one first, nothing after it starts.
    env.hsm(&["fleet", "down", "0", "--config", config, "--env", "all"])
        .assert_success();
    std::fs::write(
        env.dir.path().join("all.txt"),
        "sites/site04.db\nsites/site00.db\nsites/site01.db\n",
    )
    .unwrap();
    let run = env.hsm(&[
        "fleet",
        "up",
        "--config",
        config,
        "--env",
        "all",
        "--on-error",
        "stop",
        "--parallel",
        "1",
        "--json",
    ]);
    run.assert_code(1);
    let (_, summary) = lines(&run.stdout);
    assert_eq!(summary["not_started"], 2, "{}", run.stdout);
    // Without targets anywhere, the command says where to give them.
    std::fs::write(env.dir.path().join("hsm.toml"), "[fleet]\nparallel = 2\n").unwrap();
    env.hsm(&["fleet", "status", "--config", config])
        .assert_code(2)
        .assert_stderr_contains("--targets FILE");
    // A pace that makes no sense is refused before anything runs.
    std::fs::write(env.dir.path().join("hsm.toml"), "[fleet]\nparallel = 0\n").unwrap();
    env.hsm(&["fleet", "up", "--config", config, "--targets", "all.txt"])
        .assert_code(2)
        .assert_stderr_contains("fleet.parallel");
    // `status` runs one target at a time and takes no pace.
    env.hsm(&["fleet", "status", "--targets", "all.txt", "--parallel", "2"])
        .assert_code(2);
}

#[test]
fn a_glob_in_a_targets_file_of_the_working_directory_takes_the_databases_there() {
    let (env, _, targets) = fleet(3, None);
    for target in &targets {
        rusqlite::Connection::open(target)
            .unwrap()
            .execute_batch("PRAGMA user_version = 1;")
            .unwrap();
    }
    // Named as `targets.txt` from its own directory: the glob reads `sites/`, not `/sites/`.
    std::fs::write(
        env.dir.path().join("here.txt"),
        "sites/*.db  # all of them\n",
    )
    .unwrap();
    // Without --log-file, the log goes beside the migrations directory (not into a `data/`
    // made for the default --database, which is none of the targets).
    let run = crate::support::Run::from(
        env.command()
            .args(["--migrations", env.migrations.to_str().unwrap()])
            .args(["fleet", "up", "--targets", "here.txt", "--json"])
            .output()
            .unwrap(),
    );
    run.assert_success();
    let log = env.migrations.parent().unwrap().join("migration.log");
    assert!(log.is_file(), "no log at {}", log.display());
    assert!(!env.dir.path().join("data").exists());
    let (each, _) = lines(&run.stdout);
    assert_eq!(count(&each, "done"), 3, "{}", run.stdout);
    for target in &targets {
        assert_eq!(
            applied(&rusqlite::Connection::open(target).unwrap()),
            [1, 2, 3]
        );
    }
}

#[test]
fn fleet_status_counts_a_target_missing_an_older_migration_as_behind() {
    let (env, file, targets) = fleet(2, None);
    let file = file.to_str().unwrap();
    env.hsm(&["fleet", "up", "--targets", file])
        .assert_success();
    // One target rolled back to 1, then given 3 again with 2 left out: at version 3, yet
    // migration 2 is pending there (and blocks `up`).
    let site = targets[0].to_str().unwrap();
    let single = |args: &[&str], migrations: &std::path::Path| {
        crate::support::Run::from(
            env.command()
                .args(args)
                .args(["--database", site, "--migrations"])
                .arg(migrations)
                .output()
                .unwrap(),
        )
    };
    single(&["down", "1"], &env.migrations).assert_success();
    assert_eq!(
        applied(&rusqlite::Connection::open(&targets[0]).unwrap()),
        [1]
    );
    let only_three = env.dir.path().join("only-three");
    std::fs::create_dir(&only_three).unwrap();
    for name in ["1_users", "3_notes"] {
        for direction in ["up", "down"] {
            let file = format!("{name}.{direction}.sql");
            std::fs::copy(env.migrations.join(&file), only_three.join(&file)).unwrap();
        }
    }
    single(&["up"], &only_three).assert_success();
    let status = env.hsm(&["fleet", "status", "--targets", file, "--json"]);
    status.assert_success();
    let (each, _) = lines(&status.stdout);
    let gap = each
        .iter()
        .find(|t| t["target"].as_str().unwrap().ends_with("site00.db"))
        .unwrap();
    assert_eq!(gap["current_version"], 3, "{gap}");
    assert_eq!(gap["behind"], true, "{gap}");
    assert_eq!(gap["pending"], 1, "{gap}");
}
