//! Benchmarks: hsm-host next to native baselines measured in the same run, reported as
//! medians and ratios (this machine is noisy; ratios are what BENCHMARKS.md quotes).
//!
//! `cargo bench -p hsm-host` runs everything; `HSM_BENCH_SCALE=small` shrinks the data sets
//! for a quick look. Inputs are generated here: 100 DDL components (one build, patched
//! versions), a 1M-row table, a 1 GiB database.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hsm_host::backup::BackupConfig;
use hsm_host::{Database, Migrator, Runtime, Safety};
use rusqlite::{Connection, params};

struct Scale {
    runs: usize,
    migrations: u64,
    rows: i64,
    big_db_bytes: u64,
}

fn scale() -> Scale {
    match std::env::var("HSM_BENCH_SCALE").as_deref() {
        Ok("small") => Scale {
            runs: 3,
            migrations: 100,
            rows: 100_000,
            big_db_bytes: 64 << 20,
        },
        _ => Scale {
            runs: 5,
            migrations: 100,
            rows: 1_000_000,
            big_db_bytes: 1 << 30,
        },
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time<T>(f: impl FnOnce() -> T) -> (Duration, T) {
    let start = Instant::now();
    let value = f();
    (start.elapsed(), value)
}

/// CPU time (user + system) of this process so far, all threads.
fn process_cpu() -> Duration {
    // SAFETY: getrusage writes into the struct it is given and reads nothing else.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    let of = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    of(usage.ru_utime) + of(usage.ru_stime)
}

/// Wall and CPU time of `f` (the CPU of every thread of this process while it ran).
fn time_cpu<T>(f: impl FnOnce() -> T) -> (Duration, Duration, T) {
    let cpu = process_cpu();
    let (wall, value) = time(f);
    (wall, process_cpu() - cpu, value)
}

/// The journal modes every `up` and data row is measured in: WAL first, as the application
/// runs, then SQLite's default rollback journal.
const MODES: [(bool, &str); 2] = [(true, "WAL"), (false, "rollback journal")];

/// Prints the table's rows as they are measured.
struct Report;

impl Report {
    /// One row from paired samples (`ours[i]` and `native[i]` ran back to back): the medians
    /// of each, and the median of the per-pair ratios, which drifts less than a ratio of
    /// medians when the machine's speed (above all its fsync latency) changes during the run.
    fn compare(
        &mut self,
        name: &str,
        ours: &[Duration],
        native: &[Duration],
        native_name: &str,
        target: &str,
    ) {
        let mut ratios: Vec<f64> = ours
            .iter()
            .zip(native)
            .map(|(o, n)| o.as_secs_f64() / n.as_secs_f64())
            .collect();
        ratios.sort_by(f64::total_cmp);
        let ratio = ratios[ratios.len() / 2];
        let line = format!(
            "| {name} | {:.1} ms | {native_name}: {:.1} ms | {ratio:.2}x | {target} |",
            ms(median(ours.to_vec())),
            ms(median(native.to_vec()))
        );
        println!("{line}");
    }

    fn absolute(&mut self, name: &str, value: String, target: &str) {
        let line = format!("| {name} | {value} | | | {target} |");
        println!("{line}");
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// 100 distinct DDL components: one build, its version cell patched.
fn ddl_components(dir: &Path, count: u64) -> PathBuf {
    let template = std::fs::read(hsm_test_artifacts::GUEST_BENCH_DDL).unwrap();
    let at = template
        .windows(8)
        .position(|w| w == b"HSMVERSN")
        .expect("the version cell is in the component")
        + 8;
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    for version in 1..=count {
        let mut bytes = template.clone();
        bytes[at..at + 8].copy_from_slice(&version.to_le_bytes());
        std::fs::write(migrations.join(format!("m{version:03}.wasm")), bytes).unwrap();
    }
    migrations
}

fn migrator(migrations: &Path, cache: &Path, safety: Safety) -> Migrator {
    let runtime = Runtime::new().unwrap().with_cache_dir(cache);
    Migrator::load_dir_with(runtime, migrations)
        .unwrap()
        .with_safety(safety)
}

/// What a careful hand-written rusqlite runner does for the same migrations: tracking tables,
/// a history row, one transaction per migration with its tracking row.
fn native_up(db: &Path, count: u64) {
    let conn = Connection::open(db).unwrap();
    conn.execute_batch(&hsm_host::tracking::Tracking::default().schema())
        .unwrap();
    for v in 1..=count {
        let now = chrono::Utc::now().to_rfc3339();
        conn.execute(
            "INSERT INTO migration_history (version, direction, status, started_at) VALUES (?1, 'up', 'running', ?2)",
            params![v, now],
        )
        .unwrap();
        let attempt = conn.last_insert_rowid();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn.execute_batch(&format!(
            "CREATE TABLE bench_{v} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, created_at TEXT);
             CREATE INDEX bench_{v}_name ON bench_{v} (name);"
        ))
        .unwrap();
        conn.execute(
            "INSERT INTO migrations (version, name, description, applied_at) VALUES (?1, 'bench_ddl', '', ?2)",
            params![v, now],
        )
        .unwrap();
        conn.execute(
            "UPDATE migration_history SET status = 'success', completed_at = ?1 WHERE id = ?2",
            params![now, attempt],
        )
        .unwrap();
        conn.execute_batch("COMMIT").unwrap();
    }
}

fn items_db(path: &Path, rows: i64, wal: bool) {
    let conn = Connection::open(fresh_db(path, wal)).unwrap();
    conn.execute_batch("CREATE TABLE items (id INTEGER PRIMARY KEY, email TEXT NOT NULL);")
        .unwrap();
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO items SELECT i, '  User' || i || '@Example.COM ' FROM n",
        [rows],
    )
    .unwrap();
}

/// The same transformation as `guest_bench_data`, natively: pages, prepared statements.
fn native_transform(db: &Path) -> Duration {
    let conn = Connection::open(db).unwrap();
    let (elapsed, ()) = time(|| {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        {
            let mut page = conn
                .prepare("SELECT id, email FROM items WHERE id > ?1 ORDER BY id LIMIT 10000")
                .unwrap();
            let mut update = conn
                .prepare("UPDATE items SET email = ?2 WHERE id = ?1")
                .unwrap();
            let mut last = i64::MIN;
            loop {
                let rows: Vec<(i64, String)> = page
                    .query_map([last], |r| Ok((r.get(0)?, r.get(1)?)))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                let Some(tail) = rows.last() else { break };
                last = tail.0;
                for (id, email) in rows {
                    update
                        .execute(params![id, email.trim().to_lowercase()])
                        .unwrap();
                }
            }
        }
        conn.execute_batch("COMMIT").unwrap();
    });
    elapsed
}

/// A migrator over one component, without backups and with the quick check: the data
/// benchmarks time the migration step alone.
fn single_migration(dir: &Path, component: &str, cache: &Path) -> Migrator {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(component, dir.join("migration.wasm")).unwrap();
    let safety = Safety {
        backups: None,
        quick_check: true,
        ..Safety::default()
    };
    migrator(dir, cache, safety)
}

/// Times of the migration step (the `up` of `migrator`'s one component) and of `native`, run
/// in pairs, each on its own fresh copy of `items`.
fn on_fresh_copies(
    items: &Path,
    runs: usize,
    migrator: &Migrator,
    native: fn(&Path) -> Duration,
) -> (Vec<Duration>, Vec<Duration>) {
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let copy = items.with_file_name(format!("copy-ours-{run}.db"));
        std::fs::copy(items, &copy).unwrap();
        let report = migrator.up(&Database::open(&copy).unwrap(), None).unwrap();
        ours.push(Duration::from_millis(report.steps[0].duration_ms));
        let native_copy = items.with_file_name(format!("copy-native-{run}.db"));
        std::fs::copy(items, &native_copy).unwrap();
        theirs.push(native(&native_copy));
        let _ = std::fs::remove_file(copy);
        let _ = std::fs::remove_file(native_copy);
    }
    (ours, theirs)
}

/// `UPDATE items SET email = normalize_email(email)` with the function registered natively.
fn native_function_update(db: &Path) -> Duration {
    use rusqlite::functions::FunctionFlags;
    let conn = Connection::open(db).unwrap();
    conn.create_scalar_function(
        "normalize_email",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| Ok(ctx.get::<String>(0)?.trim().to_lowercase()),
    )
    .unwrap();
    time(|| {
        conn.execute_batch(
            "BEGIN IMMEDIATE; UPDATE items SET email = normalize_email(email); COMMIT;",
        )
        .unwrap()
    })
    .0
}

/// `SELECT sum(identity(id)) FROM items` with `identity` registered natively.
fn native_identity_sum(db: &Path) -> Duration {
    use rusqlite::functions::FunctionFlags;
    let conn = Connection::open(db).unwrap();
    conn.create_scalar_function(
        "identity",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| ctx.get::<i64>(0),
    )
    .unwrap();
    time(|| {
        conn.query_row("SELECT sum(identity(id)) FROM items", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
    })
    .0
}

fn run_process(cmd: &mut Command) -> Duration {
    let (elapsed, out) = time(|| cmd.output().unwrap());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    elapsed
}

/// Peak resident set of a child process, in KiB (GNU time's %M).
fn peak_rss_kib(cmd: &[&str]) -> u64 {
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .args(cmd)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    stderr.lines().last().unwrap().trim().parse().unwrap()
}

/// What every section shares.
struct Bench {
    scale: Scale,
    dir: PathBuf,
    migrations: PathBuf,
    /// A compile cache holding every DDL component.
    cache: PathBuf,
    hsm: &'static str,
}

/// One part of the benchmark, printing its rows.
type Section = fn(&Bench, &mut Report);

/// `HSM_BENCH_ONLY=status,function` runs only those sections.
fn selected(section: &str) -> bool {
    std::env::var("HSM_BENCH_ONLY")
        .map_or(true, |only| only.split(',').any(|s| s.trim() == section))
}

fn main() {
    let scale = scale();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().to_owned();
    let migrations = ddl_components(&dir, scale.migrations);
    let cache = dir.join("cache");
    migrator(&migrations, &cache, Safety::default());
    let bench = Bench {
        scale,
        dir,
        migrations,
        cache,
        hsm: env!("CARGO_BIN_EXE_hsm-host"),
    };
    let mut report = Report;
    println!(
        "| bench | hsm-host (median of {}) | native baseline | ratio | target |",
        bench.scale.runs
    );
    println!("|---|---|---|---|---|");
    let sections: [(&str, Section); 10] = [
        ("compile", compile),
        ("up", up),
        ("sql", sql),
        ("rss", rss),
        ("status", status),
        ("data", data),
        ("function", function),
        ("backup", backup),
        ("languages", languages),
        ("languages-data", languages_data),
    ];
    for (name, section) in sections {
        if selected(name) {
            section(&bench, &mut report);
        }
    }
}

/// Cold compile of every component (parallel), then loading them from the cache.
fn compile(bench: &Bench, report: &mut Report) {
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for run in 0..bench.scale.runs {
        let cache = bench.dir.join(format!("cache-cold-{run}"));
        cold.push(time(|| migrator(&bench.migrations, &cache, Safety::default())).0);
        // Finding the components and loading the code of each from the cache.
        warm.push(
            time(|| {
                let m = migrator(&bench.migrations, &cache, Safety::default());
                for info in m.migrations() {
                    m.component(info.version()).unwrap();
                }
            })
            .0,
        );
    }
    let n = bench.scale.migrations as u32;
    report.absolute(
        &format!("cold compile of {n} components"),
        format!("{:.0} ms total", ms(median(cold))),
        "<= 2 s total",
    );
    report.absolute(
        "cached load, per component",
        format!("{:.3} ms", ms(median(warm)) / f64::from(n)),
        "<= 1 ms each",
    );
    new_migration(bench, report);
}

/// A project whose migrations are compiled gets a new one (the v007 example after v001-v006):
/// loading the directory then compiles that one, reusing the functions the others compiled
/// (kept on disk), and, for comparison, with those functions gone.
fn new_migration(bench: &Bench, report: &mut Report) {
    use hsm_test_artifacts as built;
    let compiled = [
        built::V001_INITIAL_SCHEMA,
        built::V002_ADD_EMAIL_COLUMN,
        built::V003_NORMALIZE_EMAIL_ADDRESSES,
        built::V004_ADD_SESSIONS_TABLE,
        built::V005_ADD_USER_ROLE,
        built::V006_ADD_PERFORMANCE_INDEXES,
    ];
    let (mut kept, mut gone) = (Vec::new(), Vec::new());
    for run in 0..bench.scale.runs.max(5) {
        for (keep_functions, times) in [(true, &mut kept), (false, &mut gone)] {
            let project = bench.dir.join(format!("project-{run}-{keep_functions}"));
            let cache = bench
                .dir
                .join(format!("project-cache-{run}-{keep_functions}"));
            std::fs::create_dir_all(&project).unwrap();
            for component in compiled {
                let name = Path::new(component).file_name().unwrap();
                std::fs::copy(component, project.join(name)).unwrap();
            }
            migrator(&project, &cache, Safety::default());
            if !keep_functions {
                std::fs::remove_dir_all(cache.join("functions")).unwrap();
            }
            std::fs::copy(
                built::V007_MIGRATE_LEGACY_DATA,
                project.join("v007_migrate_legacy_data.wasm"),
            )
            .unwrap();
            times.push(time(|| migrator(&project, &cache, Safety::default())).0);
        }
    }
    report.compare(
        "a new migration added to a compiled project: load the directory (v007 compiles)",
        &kept,
        &gone,
        "same, without the functions kept on disk",
        "<= 50 ms",
    );
}

/// A database with every DDL migration applied by hsm-host, backups and checks on.
fn up_with_backups(bench: &Bench, path: &Path, backups: &Path) {
    let m = migrator(
        &bench.migrations,
        &bench.cache,
        Safety {
            backups: Some(BackupConfig {
                dir: Some(backups.to_owned()),
                keep: 10,
                keep_for: None,
            }),
            ..Safety::default()
        },
    );
    m.up(&Database::open(path).unwrap(), None).unwrap();
}

/// up-100, cache warm, backups and checks on; and the hand-written runner, in each journal
/// mode. Mostly fsync latency, the noisiest thing on these machines: more runs, interleaved.
/// CPU time is compared too: it is what hsm-host adds, whatever the disk does.
fn up(bench: &Bench, report: &mut Report) {
    let dir = &bench.dir;
    let n = bench.scale.migrations;
    for (wal, mode) in MODES {
        let (mut ours, mut ours_cpu, mut ours_bare) = (Vec::new(), Vec::new(), Vec::new());
        let (mut native, mut native_cpu) = (Vec::new(), Vec::new());
        for run in 0..bench.scale.runs.max(11) {
            let path = fresh_db(&dir.join(format!("up-{run}-{wal}.db")), wal).to_owned();
            let backups = dir.join(format!("backups-{run}-{wal}"));
            let (wall, cpu, ()) = time_cpu(|| up_with_backups(bench, &path, &backups));
            ours.push(wall);
            ours_cpu.push(cpu);
            let bare_path = fresh_db(&dir.join(format!("up-bare-{run}-{wal}.db")), wal).to_owned();
            ours_bare.push(
                time(|| {
                    let m = migrator(
                        &bench.migrations,
                        &bench.cache,
                        Safety {
                            backups: None,
                            quick_check: true,
                            ..Safety::default()
                        },
                    );
                    m.up(&Database::open(&bare_path).unwrap(), None).unwrap()
                })
                .0,
            );
            let native_path = fresh_db(&dir.join(format!("native-{run}-{wal}.db")), wal).to_owned();
            let (wall, cpu, ()) = time_cpu(|| native_up(&native_path, n));
            native.push(wall);
            native_cpu.push(cpu);
        }
        let runner = format!("rusqlite runner, {mode}");
        let target = if wal { "<= 1.5x" } else { "(reference)" };
        report.compare(
            &format!("up-{n}, backups + checks on, {mode}"),
            &ours,
            &native,
            &runner,
            target,
        );
        let target = if wal { "<= 2x" } else { "(reference)" };
        report.compare(
            &format!("up-{n}, backups + checks on, {mode}: CPU time"),
            &ours_cpu,
            &native_cpu,
            &format!("{runner}: CPU time"),
            target,
        );
        report.compare(
            &format!("up-{n}, no backup, quick_check, {mode}"),
            &ours_bare,
            &native,
            &runner,
            "(reference)",
        );
    }
}

/// The DDL of the bench's migrations as 100 plain SQL files (golang-migrate layout), the same
/// statements the native runner runs.
fn sql_files(dir: &Path, count: u64) -> PathBuf {
    let sql = dir.join("sql");
    std::fs::create_dir_all(&sql).unwrap();
    for v in 1..=count {
        std::fs::write(
            sql.join(format!("{v:04}_bench_ddl.up.sql")),
            format!(
                "CREATE TABLE bench_{v} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, created_at TEXT);
                 CREATE INDEX bench_{v}_name ON bench_{v} (name);"
            ),
        )
        .unwrap();
        std::fs::write(
            sql.join(format!("{v:04}_bench_ddl.down.sql")),
            format!("DROP TABLE bench_{v};"),
        )
        .unwrap();
    }
    sql
}

/// A new empty database in WAL mode (the application's journal mode: it is kept in the file),
/// or in the default rollback-journal mode.
fn fresh_db(path: &Path, wal: bool) -> &Path {
    if wal {
        let conn = Connection::open(path).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
    path
}

/// Plain SQL sets: packing 100 files, a cold `up` of a SQL directory never seen (empty
/// cache), and up-100 from SQL files with a warm cache against the native runner, on a WAL
/// database and on a rollback-journal one.
fn sql(bench: &Bench, report: &mut Report) {
    let n = bench.scale.migrations;
    let sql = sql_files(&bench.dir, n);
    let safety = Safety {
        backups: None,
        ..Safety::default()
    };
    let (mut pack, mut cold) = (Vec::new(), Vec::new());
    // [WAL, rollback journal] × [hsm-host, native]
    let mut warm: [[Vec<Duration>; 2]; 2] = Default::default();
    let mut from_wasm = Vec::new();
    let warm_cache = bench.dir.join("sql-cache");
    migrator(&sql, &warm_cache, safety.clone());
    let packed = bench.dir.join("packed");
    hsm_host::pack::pack_dir(&sql, &packed, None).unwrap();
    migrator(&packed, &warm_cache, safety.clone());
    for run in 0..bench.scale.runs.max(11) {
        let out = bench.dir.join(format!("packed-{run}"));
        pack.push(time(|| hsm_host::pack::pack_dir(&sql, &out, None).unwrap()).0);
        let cold_cache = bench.dir.join(format!("sql-cold-cache-{run}"));
        let cold_db = fresh_db(&bench.dir.join(format!("sql-cold-{run}.db")), true).to_owned();
        cold.push(
            time(|| {
                let m = migrator(&sql, &cold_cache, safety.clone());
                m.up(&Database::open(&cold_db).unwrap(), None).unwrap()
            })
            .0,
        );
        for (mode, wal) in [true, false].into_iter().enumerate() {
            let warm_db = bench.dir.join(format!("sql-warm-{run}-{wal}.db"));
            let warm_db = fresh_db(&warm_db, wal);
            warm[mode][0].push(
                time(|| {
                    let m = migrator(&sql, &warm_cache, safety.clone());
                    m.up(&Database::open(warm_db).unwrap(), None).unwrap()
                })
                .0,
            );
            let native_db = bench.dir.join(format!("sql-native-{run}-{wal}.db"));
            let native_db = fresh_db(&native_db, wal);
            warm[mode][1].push(time(|| native_up(native_db, n)).0);
        }
        // The same migrations as packed component files: what SQL costs beyond components.
        let wasm_db = fresh_db(&bench.dir.join(format!("sql-wasm-{run}.db")), true).to_owned();
        from_wasm.push(
            time(|| {
                let m = migrator(&packed, &warm_cache, safety.clone());
                m.up(&Database::open(&wasm_db).unwrap(), None).unwrap()
            })
            .0,
        );
    }
    report.absolute(
        &format!("pack {n} SQL files"),
        format!("{:.0} ms", ms(median(pack))),
        "<= 1 s",
    );
    report.absolute(
        &format!("cold up of {n} SQL files never seen (empty cache, no backup, WAL)"),
        format!("{:.0} ms", ms(median(cold))),
        "<= 3 s",
    );
    report.compare(
        &format!("up-{n} from the packed .wasm files, cache warm, no backup, WAL"),
        &from_wasm,
        &warm[0][1],
        "rusqlite runner, WAL",
        "(for reference)",
    );
    for (mode, name) in ["WAL", "rollback journal"].into_iter().enumerate() {
        report.compare(
            &format!("up-{n} from SQL files, cache warm, no backup, {name}"),
            &warm[mode][0],
            &warm[mode][1],
            &format!("rusqlite runner, {name}"),
            "<= 1.5x",
        );
    }
}

/// Peak RSS of the real binary during up-100, in each journal mode.
fn rss(bench: &Bench, report: &mut Report) {
    for (wal, mode) in MODES {
        let rss_db = fresh_db(&bench.dir.join(format!("rss-{wal}.db")), wal).to_owned();
        let rss = peak_rss_kib(&[
            bench.hsm,
            "up",
            "--database",
            rss_db.to_str().unwrap(),
            "--migrations",
            bench.migrations.to_str().unwrap(),
            "--cache-dir",
            bench.cache.to_str().unwrap(),
            "--log-file",
            bench.dir.join("bench.log").to_str().unwrap(),
        ]);
        report.absolute(
            &format!("peak RSS, hsm-host up-{}, {mode}", bench.scale.migrations),
            format!("{:.1} MiB", rss as f64 / 1024.0),
            "<= 32 MiB",
        );
    }
}

/// status with 100 applied: the binary against sqlite3 reading the tracking table.
fn status(bench: &Bench, report: &mut Report) {
    let applied = bench.dir.join("status.db");
    up_with_backups(bench, &applied, &bench.dir.join("status-backups"));
    let (mut ours, mut native) = (Vec::new(), Vec::new());
    for _ in 0..bench.scale.runs.max(11) {
        ours.push(run_process(
            Command::new(bench.hsm)
                .args(["status", "--database", applied.to_str().unwrap()])
                .args(["--migrations", bench.migrations.to_str().unwrap()])
                .args(["--cache-dir", bench.cache.to_str().unwrap()])
                .args(["--log-file", bench.dir.join("bench.log").to_str().unwrap()]),
        ));
        native.push(run_process(
            Command::new("sqlite3")
                .arg(&applied)
                .arg("SELECT * FROM migrations ORDER BY version"),
        ));
    }
    report.compare(
        &format!("status, {} applied", bench.scale.migrations),
        &ours,
        &native,
        "sqlite3 CLI",
        "<= 2x",
    );
}

/// The `items` table the data benchmarks transform, made once per journal mode.
fn items(bench: &Bench, wal: bool) -> PathBuf {
    let items = bench.dir.join(format!("items-{wal}.db"));
    if !items.exists() {
        items_db(&items, bench.scale.rows, wal);
    }
    items
}

/// Runs `guest` as a migration on fresh copies of the items table, each paired with `native`
/// on its own copy, in each journal mode: `[WAL, rollback journal]`.
fn guest_against_native(
    bench: &Bench,
    guest: &str,
    native: fn(&Path) -> Duration,
) -> [(Vec<Duration>, Vec<Duration>); 2] {
    let name = Path::new(guest).file_stem().unwrap();
    let migration = single_migration(&bench.dir.join(name), guest, &bench.cache);
    MODES.map(|(wal, _)| on_fresh_copies(&items(bench, wal), bench.scale.runs, &migration, native))
}

/// `what`'s rows, one per journal mode, each against `native_name` in the same mode.
fn compare_in_modes(
    report: &mut Report,
    what: &str,
    runs: &[(Vec<Duration>, Vec<Duration>); 2],
    native_name: &str,
    target: &str,
) {
    for ((ours, native), (_, mode)) in runs.iter().zip(MODES) {
        report.compare(
            &format!("{what}, {mode}"),
            ours,
            native,
            &format!("{native_name}, {mode}"),
            target,
        );
    }
}

/// data-1M: the transformation in guest code against the same loop in native Rust.
fn data(bench: &Bench, report: &mut Report) {
    let runs = guest_against_native(
        bench,
        hsm_test_artifacts::GUEST_BENCH_DATA,
        native_transform,
    );
    compare_in_modes(
        report,
        &format!(
            "data: {} rows read, transformed in guest code, written back",
            bench.scale.rows
        ),
        &runs,
        "native Rust loop",
        "<= 1.3x",
    );
}

/// The same transformation through a guest-defined SQL function, against the function
/// registered natively; and the floor under that ratio: one call into the component per row,
/// doing nothing.
fn function(bench: &Bench, report: &mut Report) {
    let runs = guest_against_native(
        bench,
        hsm_test_artifacts::GUEST_BENCH_FUNCTION,
        native_function_update,
    );
    compare_in_modes(
        report,
        &format!(
            "data: {} rows, UPDATE ... SET email = f(email), guest function",
            bench.scale.rows
        ),
        &runs,
        "same UPDATE, native function",
        "<= 3x",
    );

    let runs = guest_against_native(
        bench,
        hsm_test_artifacts::GUEST_BENCH_CALL_FLOOR,
        native_identity_sum,
    );
    compare_in_modes(
        report,
        &format!(
            "call floor: {} rows, SELECT sum(f(id)), f returns its integer argument",
            bench.scale.rows
        ),
        &runs,
        "same SELECT, native function",
        "(reference)",
    );
    let (ours, native) = &runs[0];
    let per_call = (median(ours.clone()).as_secs_f64() - median(native.clone()).as_secs_f64())
        / bench.scale.rows as f64;
    report.absolute(
        "cost of one guest function call (from the WAL row above)",
        format!("{:.0} ns", per_call * 1e9),
        "(reference)",
    );
}

/// Backup of a large database against cp.
fn backup(bench: &Bench, report: &mut Report) {
    let dir = &bench.dir;
    let big = dir.join("big.db");
    {
        let conn = Connection::open(&big).unwrap();
        let rows = bench.scale.big_db_bytes / 4096;
        conn.execute_batch("CREATE TABLE blobs (b BLOB)").unwrap();
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
             INSERT INTO blobs SELECT randomblob(4000) FROM n",
            [rows as i64],
        )
        .unwrap();
    }
    let size = std::fs::metadata(&big).unwrap().len();
    let (mut ours, mut native) = (Vec::new(), Vec::new());
    for run in 0..bench.scale.runs.min(3) {
        let backups = dir.join(format!("big-backups-{run}"));
        let conn = Connection::open(&big).unwrap();
        let config = BackupConfig {
            dir: Some(backups.clone()),
            keep: 1,
            keep_for: None,
        };
        ours.push(time(|| hsm_host::backup::create(&conn, &big, &config).unwrap()).0);
        let _ = std::fs::remove_dir_all(&backups);
        let target = dir.join("big-copy.db");
        native.push(run_process(Command::new("cp").arg(&big).arg(&target)));
        let _ = std::fs::remove_file(&target);
    }
    report.compare(
        &format!(
            "backup of a {:.2} GiB database",
            size as f64 / f64::from(1 << 30)
        ),
        &ours,
        &native,
        "cp",
        "(for reference)",
    );
}

/// The data migration of `guest_bench_data` written in Rust, Python and JavaScript (its twins
/// are in `tests/lang-guests/`). Needs the tools of `scripts/guest-tools.sh`.
fn twins() -> [(&'static str, Option<&'static str>); 3] {
    [
        ("Rust", Some(hsm_test_artifacts::GUEST_BENCH_DATA)),
        ("Python", hsm_test_artifacts::PY_BENCH_DATA),
        ("JavaScript", hsm_test_artifacts::JS_BENCH_DATA),
    ]
}

/// Each language's twin: component size, cold compile, and cached load (find, map, link).
fn languages(bench: &Bench, report: &mut Report) {
    for (language, component) in twins() {
        let Some(component) = component else {
            println!("| {language}: not built (run scripts/guest-tools.sh) | | | | |");
            continue;
        };
        let size = std::fs::metadata(component).unwrap().len();
        let dir = bench.dir.join(format!("lang-{language}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(component, dir.join("migration.wasm")).unwrap();
        let (mut cold, mut warm) = (Vec::new(), Vec::new());
        for run in 0..bench.scale.runs.min(3) {
            let cache = dir.join(format!("cache-{run}"));
            cold.push(time(|| migrator(&dir, &cache, Safety::default())).0);
            // The cache trusts an artifact by its file's identity once it has settled (1 s).
            std::thread::sleep(Duration::from_millis(1100));
            for _ in 0..3 {
                warm.push(
                    time(|| {
                        let m = migrator(&dir, &cache, Safety::default());
                        m.component(1).unwrap();
                    })
                    .0,
                );
            }
        }
        report.absolute(
            &format!("{language}: component size, cold compile, cached load"),
            format!(
                "{:.1} MiB, {:.0} ms, {:.1} ms",
                size as f64 / f64::from(1 << 20),
                ms(median(cold)),
                ms(median(warm))
            ),
            "(reference)",
        );
    }
}

/// Each language's twin run against the native loop.
fn languages_data(bench: &Bench, report: &mut Report) {
    for (language, component) in twins() {
        let Some(component) = component else {
            continue;
        };
        let runs = guest_against_native(bench, component, native_transform);
        compare_in_modes(
            report,
            &format!(
                "{language}: data, {} rows read, transformed, written back",
                bench.scale.rows
            ),
            &runs,
            "native Rust loop",
            "(reference)",
        );
    }
}
