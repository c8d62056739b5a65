//! One list of the attack classes a stranger's migration set can make with SQL alone, run
//! through every guest-facing entry point of the real binary: a plain SQL file, a component on
//! contract 0.2 (Rust), one on contract 0.1 (through the adapter), Python and JavaScript. A new
//! entry point inherits the whole list by adding itself to [`entry_points`]; a new class, by
//! adding itself to [`CLASSES`].
//!
//! Every run, whatever the class, is also read as a terminal and a log reader would: no raw
//! control character and no forged line reach stdout, stderr or the log file, and none of them
//! grows past a bound.

use std::time::{Duration, Instant};

use hsm_test_artifacts::{GUEST_ATTACK, GUEST_SCRIPT_V01, JS_ATTACK, PY_ATTACK, lang_guest};
use rusqlite::Connection;

use crate::support::{Env, Run, applied, dump};

/// What the host must do with a class's script.
enum Expect {
    /// Refuse it: exit 1, every needle in stderr, the database as it was.
    Refused(&'static [&'static str]),
    /// Apply it (a legitimate migration, or one whose danger is only in what is printed).
    Applied,
    /// Stop it at the deadline, or end the process soon after it: exit 1, no abort, the
    /// database as it was.
    Stopped,
    /// End the process soon after the deadline (SQLite cannot be interrupted while it
    /// compiles): exit 1, no abort, the database as it was.
    HardStop,
}

struct Class {
    name: &'static str,
    /// The application's schema before the migration (run directly, not as a migration).
    setup: fn() -> String,
    script: fn() -> String,
    expect: Expect,
}

const CLASSES: &[Class] = &[
    Class {
        // fts5 with content='' claims `x_content` without making it: a trigger put there
        // first would escape a check that skips shadow tables.
        name: "trap_on_a_claimed_shadow_table",
        setup: String::new,
        script: || {
            "CREATE TABLE x_content (id INTEGER PRIMARY KEY, c0);
             CREATE TRIGGER x_trap AFTER INSERT ON x_content
             BEGIN UPDATE migrations SET status = 'rolled_back'; END;
             CREATE VIRTUAL TABLE x USING fts5(body, content='');"
                .into()
        },
        expect: Expect::Refused(&["shadow table", "x_content"]),
    },
    Class {
        name: "virtual_table_claims_an_application_table",
        setup: || {
            "CREATE TABLE post_content (id INTEGER PRIMARY KEY, c0);
             INSERT INTO post_content VALUES (1, 'kept');"
                .into()
        },
        script: || "CREATE VIRTUAL TABLE post USING fts5(body, content='')".into(),
        expect: Expect::Refused(&["would take the existing table `post_content`"]),
    },
    Class {
        name: "trigger_writes_sqlite_sequence",
        setup: || "CREATE TABLE app (id INTEGER PRIMARY KEY AUTOINCREMENT, x);".into(),
        script: || {
            "CREATE TRIGGER dos AFTER INSERT ON app BEGIN
               UPDATE sqlite_sequence SET seq = 9223372036854775807
               WHERE name = 'migration_history'; END;"
                .into()
        },
        expect: Expect::Refused(&["may not write sqlite_sequence", "`dos`"]),
    },
    Class {
        // Legitimate: SQLite makes temp.sqlite_sequence itself, and it cannot be dropped.
        name: "temp_autoincrement_table",
        setup: String::new,
        script: || {
            "CREATE TEMP TABLE scratch (id INTEGER PRIMARY KEY AUTOINCREMENT, x);
             INSERT INTO scratch (x) VALUES ('carried');
             CREATE TABLE kept (x);
             INSERT INTO kept SELECT x FROM scratch;"
                .into()
        },
        expect: Expect::Applied,
    },
    Class {
        name: "names_that_drive_the_terminal",
        setup: String::new,
        script: || {
            "CREATE TABLE \"t\r\nFORGED Applied 42 evil\x1b]0;owned\x07\x1b[2J\u{9b}31m\u{202e}\
             \u{61c}\u{feff}\u{2028}\" (x);"
                .into()
        },
        expect: Expect::Applied,
    },
    Class {
        // The host's own failure message (a foreign-key list) carries the name.
        name: "names_in_a_host_built_failure",
        setup: || "CREATE TABLE p (id INTEGER PRIMARY KEY);".into(),
        script: || {
            "CREATE TABLE \"c\r\nFORGED ERROR migration 3 failed\x1b[31m\" (p INTEGER REFERENCES p(id));
             INSERT INTO \"c\r\nFORGED ERROR migration 3 failed\x1b[31m\" VALUES (99);"
                .into()
        },
        expect: Expect::Refused(&["foreign-key violation"]),
    },
    Class {
        // Tables are looked up before table-valued functions: a table `pragma_table_info` would
        // break the host's own reads (status, up, restore) and the application's.
        name: "a_table_named_like_a_table_valued_function",
        setup: String::new,
        script: || "CREATE TABLE pragma_page_count (x);".into(),
        expect: Expect::Refused(&["table-valued functions"]),
    },
    Class {
        // Cheap while the migration writes (NULL past the 32 MiB value limit), a gigabyte per
        // row if the host's checks afterwards ran without that limit; and a CHECK that fails
        // at random when re-evaluated. Neither may slow or refuse this run or the next.
        name: "checks_that_cost_or_fail_only_after_the_migration",
        setup: String::new,
        script: || {
            "CREATE TABLE bomb (x INTEGER,
               CHECK (length(printf('%.*c', 900000000, 'x')) IS NULL OR x > 0));
             WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 20)
             INSERT INTO bomb SELECT i FROM r;
             CREATE TABLE coin (x, CHECK (x IS NULL OR random() % 2 = 0));
             WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 100)
             INSERT OR IGNORE INTO coin SELECT i FROM r;"
                .into()
        },
        expect: Expect::Applied,
    },
    Class {
        // 3.5 MiB of names in one migration.
        name: "a_flood_of_names",
        setup: String::new,
        script: || {
            (0..60)
                .map(|i| format!("CREATE TABLE \"{i}{}\" (x);", "n".repeat(60_000)))
                .collect()
        },
        expect: Expect::Applied,
    },
    Class {
        // 25,000 chained CTEs (under 1 MiB): SQLite recurses once per CTE while compiling,
        // past a main thread's stack (the host aborted). Now it ends at the deadline.
        name: "a_statement_that_recurses_past_the_stack",
        setup: String::new,
        script: || {
            let mut sql = String::from("WITH c0 AS (SELECT 1 AS x)");
            for i in 1..25_000 {
                sql += &format!(", c{i} AS (SELECT x FROM c{})", i - 1);
            }
            sql + " SELECT * FROM c24999;"
        },
        expect: Expect::Stopped,
    },
    Class {
        // A chain of 4,000 views (each a small statement, made before): compiling one SELECT
        // of the last takes SQLite far longer than the deadline, deaf to the interrupt.
        name: "a_statement_that_compiles_past_the_deadline",
        setup: || {
            let mut sql = String::from("CREATE TABLE t (x); CREATE VIEW v0 AS SELECT x FROM t;");
            for i in 1..4_000 {
                sql += &format!("CREATE VIEW v{i} AS SELECT x FROM v{};", i - 1);
            }
            sql
        },
        script: || "SELECT * FROM v3999;".into(),
        expect: Expect::HardStop,
    },
];

/// What a run may add to: hsm-host's tables (and their AUTOINCREMENT counters).
const HOST_TABLES: &[&str] = &[
    "migrations",
    "migration_history",
    "hsm_components",
    "sqlite_autoindex_hsm_components_1",
    "sqlite_sequence",
];

/// The timeout every run gets (`--timeout`), and the most a hard stop may take past it
/// (the promise is 2 s; the rest is a loaded 2-core machine starting a process).
const TIMEOUT_SECS: u64 = 3;
const HARD_STOP_SLACK: Duration = Duration::from_secs(6);
/// The timeout of runs that must apply: bounds minute-long checks, not a busy machine.
const APPLIED_TIMEOUT_SECS: u64 = 60;

enum Entry {
    SqlFile,
    Component(&'static str),
}

fn entry_points() -> Vec<(&'static str, Entry)> {
    vec![
        ("SQL file", Entry::SqlFile),
        ("component, contract 0.2", Entry::Component(GUEST_ATTACK)),
        (
            "component, contract 0.1",
            Entry::Component(GUEST_SCRIPT_V01),
        ),
        ("Python", Entry::Component(lang_guest(PY_ATTACK))),
        ("JavaScript", Entry::Component(lang_guest(JS_ATTACK))),
    ]
}

/// Runs `class` through `entry`: sets the database up, runs `up`, checks the outcome.
fn attack(entry_name: &str, entry: &Entry, class: &Class) {
    let what = format!("{} through {entry_name}", class.name);
    let env = Env::empty();
    std::fs::create_dir_all(env.db.parent().unwrap()).unwrap();
    let script = (class.script)();
    {
        let conn = Connection::open(&env.db).unwrap();
        conn.execute_batch(&(class.setup)()).unwrap();
        match entry {
            Entry::SqlFile => {
                std::fs::write(env.migrations.join("0008_attack.sql"), &script).unwrap();
            }
            Entry::Component(wasm) => {
                env.add(wasm);
                conn.execute_batch(
                    "CREATE TABLE attack (name TEXT); INSERT INTO attack VALUES ('script');
                     CREATE TABLE attack_script (sql TEXT);",
                )
                .unwrap();
                conn.execute("INSERT INTO attack_script VALUES (?1)", [&script])
                    .unwrap();
            }
        }
    }
    let before = dump(&env.open(), HOST_TABLES);
    // What must apply gets time to spare on a loaded 2-core machine (the flood of names once
    // took 3 s there); what must be stopped gets the short limit it has to be stopped by.
    let limit = match class.expect {
        Expect::Applied => APPLIED_TIMEOUT_SECS,
        _ => TIMEOUT_SECS,
    };
    let timeout = format!("{limit}s");
    // A warm-up `status` loads (and compiles, the first time) the component, so the timed run
    // below measures the step, not a Python interpreter's first compile.
    env.hsm(&["status"]);
    let started = Instant::now();
    let run = env.hsm(&["up", "--timeout", &timeout]);
    let took = started.elapsed();
    assert_output_is_safe(&what, &run, &env);
    let conn = env.open();
    let unchanged = || {
        assert_eq!(
            dump(&conn, HOST_TABLES),
            before,
            "{what}: the database changed"
        );
        assert!(applied(&conn).is_empty(), "{what}: recorded as applied");
    };
    match &class.expect {
        Expect::Refused(needles) => {
            assert_eq!(run.code, 1, "{what}: {}", run.stderr);
            for needle in *needles {
                assert!(
                    run.stderr.contains(needle),
                    "{what}: no {needle:?} in {}",
                    run.stderr
                );
            }
            unchanged();
        }
        Expect::Applied => {
            assert_eq!(run.code, 0, "{what}: {}", run.stderr);
            assert_eq!(applied(&conn), [8], "{what}");
            assert!(
                took < Duration::from_secs(APPLIED_TIMEOUT_SECS),
                "{what}: took {took:?}"
            );
            // The next run's checks accept the database, within the same bound.
            let started = Instant::now();
            env.hsm(&["up"]).assert_success();
            assert!(
                started.elapsed() < Duration::from_secs(APPLIED_TIMEOUT_SECS),
                "{what}: the next run took {:?}",
                started.elapsed()
            );
        }
        Expect::Stopped => {
            assert_eq!(
                run.code, 1,
                "{what}: ended by a signal or succeeded: {}",
                run.stderr
            );
            assert!(run.stderr.contains("time limit"), "{what}: {}", run.stderr);
            assert!(
                took < Duration::from_secs(TIMEOUT_SECS) + HARD_STOP_SLACK,
                "{what}: took {took:?}"
            );
            unchanged();
        }
        Expect::HardStop => {
            assert_eq!(
                run.code, 1,
                "{what}: ended by a signal or succeeded: {}",
                run.stderr
            );
            assert!(
                run.stderr.contains("still running"),
                "{what}: {}",
                run.stderr
            );
            assert!(
                took < Duration::from_secs(TIMEOUT_SECS) + HARD_STOP_SLACK,
                "{what}: took {took:?}"
            );
            unchanged();
            drop(conn);
            // The next command finds the attempt and records it as interrupted.
            let next = env.hsm(&["status", "--json"]);
            next.assert_success();
            let conn = env.open();
            let status: String = conn
                .query_row(
                    "SELECT status FROM migration_history WHERE version = 8",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_ne!(status, "running", "{what}");
            let check: String = conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(check, "ok", "{what}");
        }
    }
}

/// No raw control character (but line breaks) and no line a migration forged in what the run
/// printed or logged, and each bounded.
fn assert_output_is_safe(what: &str, run: &Run, env: &Env) {
    let log = std::fs::read_to_string(env.log_file()).unwrap_or_default();
    for (sink, text, bound) in [
        ("stdout", &run.stdout, 32 << 10),
        ("stderr", &run.stderr, 64 << 10),
        ("log file", &log, 256 << 10),
    ] {
        let raw = text.chars().find(|&c| {
            (c.is_control() && c != '\n' && c != '\t')
                || matches!(c, '\u{2028}' | '\u{202e}' | '\u{61c}' | '\u{feff}')
        });
        assert!(raw.is_none(), "{what}: {sink} holds {raw:?}");
        assert!(
            !text
                .lines()
                .any(|line| line.trim_start().starts_with("FORGED")),
            "{what}: a forged line in {sink}"
        );
        assert!(text.len() < bound, "{what}: {sink} is {} bytes", text.len());
    }
}

macro_rules! through_every_entry_point {
    ($($test:ident => $class:literal),* $(,)?) => {$(
        #[test]
        fn $test() {
            let class = CLASSES.iter().find(|c| c.name == $class).expect("a class of the list");
            for (name, entry) in entry_points() {
                attack(name, &entry, class);
            }
        }
    )*};
}

through_every_entry_point! {
    trap_on_a_claimed_shadow_table => "trap_on_a_claimed_shadow_table",
    virtual_table_claims_an_application_table => "virtual_table_claims_an_application_table",
    trigger_writes_sqlite_sequence => "trigger_writes_sqlite_sequence",
    temp_autoincrement_table => "temp_autoincrement_table",
    names_that_drive_the_terminal => "names_that_drive_the_terminal",
    names_in_a_host_built_failure => "names_in_a_host_built_failure",
    a_flood_of_names => "a_flood_of_names",
    checks_that_cost_or_fail_only_after_the_migration =>
        "checks_that_cost_or_fail_only_after_the_migration",
    a_table_named_like_a_table_valued_function => "a_table_named_like_a_table_valued_function",
    a_statement_that_recurses_past_the_stack => "a_statement_that_recurses_past_the_stack",
    a_statement_that_compiles_past_the_deadline => "a_statement_that_compiles_past_the_deadline",
}

#[test]
fn every_class_of_the_list_has_a_test() {
    let source = include_str!("attack_classes.rs");
    let tests = &source[source.find("\nthrough_every_entry_point! {").unwrap()..];
    for class in CLASSES {
        assert!(
            tests.contains(&format!("\"{}\"", class.name)),
            "{} has no test",
            class.name
        );
    }
}
