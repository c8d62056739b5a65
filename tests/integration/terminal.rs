//! What reaches the operator's terminal: one line per step, progress bars only on a terminal,
//! colour as asked, completions and the manual page, and a quiet end when the reader goes.

use crate::support::{Env, Run};

#[test]
fn completions_and_the_manual_page_are_printed_and_nothing_is_written() {
    let env = Env::empty();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef hsm-host"),
        ("fish", "complete -c hsm-host"),
    ] {
        let run = Run::from(env.command().args(["completions", shell]).output().unwrap());
        run.assert_success().assert_stdout_contains(marker);
        // Every subcommand is offered.
        for command in ["status", "up", "down", "inspect", "adopt", "pack"] {
            run.assert_stdout_contains(command);
        }
    }
    let run = Run::from(env.command().arg("man").output().unwrap());
    run.assert_success()
        .assert_stdout_contains(".TH hsm-host")
        .assert_stdout_contains("tracking\\-prefix")
        .assert_stdout_contains("\\fBhsm\\-host status\\fR");
    // No references to pages that do not exist.
    assert!(
        !run.stdout.contains("hsm\\-host\\-status(1)"),
        "{}",
        run.stdout
    );
    // A command's own options come first, the global ones under their heading.
    let help = Run::from(env.command().args(["status", "--help"]).output().unwrap());
    let own = help.stdout.find("--check").unwrap();
    let globals = help.stdout.find("Global options:").unwrap();
    assert!(own < globals, "{}", help.stdout);
    // No log file, no database.
    assert!(!env.dir.path().join("logs").exists());
    assert!(!env.db.exists());
}

#[test]
fn each_step_is_one_line_on_the_terminal_and_the_details_go_to_the_log() {
    let env = Env::with_examples();
    let run = env.hsm(&["up", "5"]);
    run.assert_success();
    assert_eq!(
        run.stdout
            .lines()
            .filter(|l| l.starts_with("Applied"))
            .count(),
        5,
        "{}",
        run.stdout
    );
    assert!(!run.stderr.contains(": starting"), "{}", run.stderr);
    assert!(!run.stderr.contains("rows changed"), "{}", run.stderr);
    let log = std::fs::read_to_string(env.log_file()).unwrap();
    assert!(
        log.contains("up migration 4 (add_sessions_table): starting"),
        "{log}"
    );
    // -v shows them again.
    env.hsm(&["down", "4", "-v"])
        .assert_success()
        .assert_stderr_contains("down migration 5 (add_user_role): starting");
}

/// Runs `args` under a pseudo-terminal (util-linux `script`), as an operator at a terminal
/// would; returns everything the terminal showed.
fn on_a_terminal(env: &Env, args: &[&str]) -> String {
    on_a_terminal_with(env, args, &[])
}

/// [`on_a_terminal`] with these environment variables set.
fn on_a_terminal_with(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> String {
    let mut line = format!(
        "'{}' --database '{}' --migrations '{}' --log-file '{}'",
        env!("CARGO_BIN_EXE_hsm-host"),
        env.db.display(),
        env.migrations.display(),
        env.log_file().display()
    );
    for arg in args {
        line.push_str(&format!(" '{arg}'"));
    }
    let run = std::process::Command::new("script")
        .args(["-qfec", &line, "/dev/null"])
        .current_dir(env.dir.path())
        .env("XDG_CACHE_HOME", crate::support::test_cache_home())
        .env("TERM", "xterm")
        .env("COLUMNS", "120")
        .env_remove("DATABASE_PATH")
        .env_remove("HSM_TRACKING_PREFIX")
        .env_remove("NO_COLOR")
        .envs(vars.iter().copied())
        .output()
        .expect("util-linux `script` runs the command under a pseudo-terminal");
    assert!(run.status.success(), "{run:?}");
    String::from_utf8_lossy(&run.stdout).into_owned()
}

#[test]
fn progress_bars_are_drawn_on_a_terminal_and_nowhere_else() {
    let env = Env::with_examples();
    env.add(hsm_test_artifacts::GUEST_SLOW_BULK);
    env.hsm(&["up", "7"]).assert_success();
    // A database large enough for the backup's bar (64 MiB and up).
    env.open()
        .execute_batch(
            "CREATE TABLE ballast (b BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
             INSERT INTO ballast SELECT randomblob(4000) FROM n;",
        )
        .unwrap();
    let shown = on_a_terminal(&env, &["up"]);
    // The bar of the backup taken before migrating, and of the migration's own progress.
    assert!(shown.contains("taking a backup (MiB)"), "{shown}");
    assert!(shown.contains("migration 8 (slow_bulk)"), "{shown}");
    assert!(shown.contains("Version 7 -> 8."), "{shown}");
    // Into a pipe, or under --json: no bar, and none in the log file.
    env.hsm(&["down"]).assert_success();
    let piped = env.hsm(&["up"]);
    piped.assert_success();
    assert!(
        !piped.stderr.contains("taking a backup (MiB)"),
        "{}",
        piped.stderr
    );
    let log = std::fs::read_to_string(env.log_file()).unwrap();
    assert!(!log.contains("taking a backup (MiB)"));
    env.hsm(&["down"]).assert_success();
    let json = on_a_terminal(&env, &["up", "--json"]);
    assert!(!json.contains("taking a backup (MiB)"), "{json}");
    // Restoring a large backup draws its own bar.
    let backup = std::fs::read_dir(env.dir.path().join("data/backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let shown = on_a_terminal(&env, &["restore", backup.to_str().unwrap(), "--yes"]);
    assert!(shown.contains("restoring (MiB)"), "{shown}");
}

/// Colour only when asked for or on a terminal (never under NO_COLOR); the operator's own
/// mistakes (a bad name for `new`, a migrations directory that is not there) exit 2.
#[test]
fn colour_is_chosen_and_usage_mistakes_exit_2() {
    let env = crate::support::Env::empty();
    std::fs::write(env.migrations.join("001_a.up.sql"), "CREATE TABLE a (x);").unwrap();
    let run = env.hsm(&["up", "--color", "always"]);
    run.assert_success();
    assert!(run.stderr.contains("\u{1b}["), "{}", run.stderr);
    let run = env.hsm(&["status", "--color", "never", "-v"]);
    assert!(!run.stderr.contains('\u{1b}'), "{}", run.stderr);
    env.hsm(&["new", "BadName", "--sql"])
        .assert_code(2)
        .assert_stderr_contains("is not a snake_case name");
    let mut cmd = env.command();
    cmd.args(["up", "--migrations", "nowhere", "--database"])
        .arg(&env.db);
    crate::support::Run::from(cmd.output().unwrap())
        .assert_code(2)
        .assert_stderr_contains("choose the directory with --migrations");
}

/// On a terminal the levels are coloured (`status -vv` logs a TRACE line), unless NO_COLOR is set (to anything but empty) or
/// `--color never` is given; `--color always` wins over NO_COLOR.
#[test]
fn no_color_turns_colour_off_even_on_a_terminal() {
    let env = Env::empty();
    std::fs::write(env.migrations.join("001_a.up.sql"), "CREATE TABLE a (x);").unwrap();
    let coloured = on_a_terminal(&env, &["status", "-vv"]);
    assert!(coloured.contains("\u{1b}["), "{coloured:?}");
    let plain = on_a_terminal_with(&env, &["status", "-vv"], &[("NO_COLOR", "1")]);
    assert!(plain.contains("TRACE"), "{plain:?}");
    assert!(!plain.contains('\u{1b}'), "{plain:?}");
    let never = on_a_terminal(&env, &["status", "-vv", "--color", "never"]);
    assert!(!never.contains('\u{1b}'), "{never:?}");
    let always = on_a_terminal_with(
        &env,
        &["status", "-vv", "--color", "always"],
        &[("NO_COLOR", "1")],
    );
    assert!(always.contains("\u{1b}["), "{always:?}");
}

/// A reader that stops early (`| head`) ends the command quietly with exit 0: no panic, no
/// ERROR line. The completion script is larger than a pipe holds, so the write fails for sure.
#[test]
fn a_closed_pipe_is_a_quiet_exit() {
    use std::io::Read;
    let env = crate::support::Env::with_examples();
    for args in [&["completions", "bash"][..], &["completions", "fish"]] {
        let mut child = env
            .hsm_command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 16];
        child.stdout.take().unwrap().read_exact(&mut first).unwrap();
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
    // A reader gone before anything is written: every write fails.
    env.hsm(&["up", "3"]).assert_success();
    for args in [&["status", "--json"][..], &["status"], &["restore"]] {
        let mut child = env
            .hsm_command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

#[test]
fn a_fleet_on_a_terminal_draws_a_bar_of_targets_over_its_table() {
    let env = Env::empty();
    std::fs::write(env.migrations.join("1_a.up.sql"), "CREATE TABLE a (x);").unwrap();
    std::fs::write(env.migrations.join("1_a.down.sql"), "DROP TABLE a;").unwrap();
    let targets = env.dir.path().join("targets.txt");
    std::fs::write(
        &targets,
        (0..12)
            .map(|i| format!("sites/s{i:02}.db\n"))
            .collect::<String>(),
    )
    .unwrap();
    std::fs::create_dir(env.dir.path().join("sites")).unwrap();
    let shown = on_a_terminal(
        &env,
        &[
            "fleet",
            "up",
            "--targets",
            targets.to_str().unwrap(),
            "--parallel",
            "2",
        ],
    );
    assert!(shown.contains("fleet up ["), "{shown}");
    assert!(shown.contains("/12 targets"), "{shown}");
    assert!(shown.contains("TARGET"), "{shown}");
    assert!(
        shown.contains("Fleet: 12 target(s): 12 done, 0 failed"),
        "{shown}"
    );
    // The table reports each target: the run's info lines stay in the log file.
    assert!(!shown.contains(" INFO "), "{shown}");
    let log = std::fs::read_to_string(env.log_file()).unwrap();
    assert!(log.contains("s11.db"), "{log}");
    // Into a pipe: the table, no bar.
    let piped = env.hsm(&["fleet", "down", "--targets", targets.to_str().unwrap()]);
    piped.assert_success();
    assert!(!piped.stderr.contains("fleet down ["), "{}", piped.stderr);
    assert!(piped.stdout.starts_with("TARGET"), "{}", piped.stdout);
}
