//! Sections on running migrations: compile, up, SQL sets, peak memory, status.

use super::*;

/// Cold compile of every component (parallel), then loading them from the cache.
pub(crate) fn compile(bench: &Bench, report: &mut Report) {
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
pub(crate) fn new_migration(bench: &Bench, report: &mut Report) {
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

/// up-100, cache warm, backups and checks on; and the hand-written runner, in each journal
/// mode. Mostly fsync latency, the noisiest thing on these machines: more runs, interleaved.
/// CPU time is compared too: it is what hsm-host adds, whatever the disk does.
pub(crate) fn up(bench: &Bench, report: &mut Report) {
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

/// Plain SQL sets: packing 100 files, a cold `up` of a SQL directory never seen (empty
/// cache), and up-100 from SQL files with a warm cache against the native runner, on a WAL
/// database and on a rollback-journal one.
pub(crate) fn sql(bench: &Bench, report: &mut Report) {
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
pub(crate) fn rss(bench: &Bench, report: &mut Report) {
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
pub(crate) fn status(bench: &Bench, report: &mut Report) {
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
