//! Sections on data migrations: guest loops and functions against native ones, backups, and
//! the Python and JavaScript guests.

use super::*;

/// Runs `guest` as a migration on fresh copies of the items table, each paired with `native`
/// on its own copy, in each journal mode: `[WAL, rollback journal]`.
pub(crate) fn guest_against_native(
    bench: &Bench,
    guest: &str,
    native: fn(&Path) -> Duration,
) -> [(Vec<Duration>, Vec<Duration>); 2] {
    guest_against_native_with(bench, guest, native, Compiler::Auto)
}

/// [`guest_against_native`], the guest compiled by `compiler`.
pub(crate) fn guest_against_native_with(
    bench: &Bench,
    guest: &str,
    native: fn(&Path) -> Duration,
    compiler: Compiler,
) -> [(Vec<Duration>, Vec<Duration>); 2] {
    let name = Path::new(guest).file_stem().unwrap();
    let migration = single_migration_with(&bench.dir.join(name), guest, &bench.cache, compiler);
    MODES.map(|(wal, _)| on_fresh_copies(&items(bench, wal), bench.scale.runs, &migration, native))
}

/// `what`'s rows, one per journal mode, each against `native_name` in the same mode.
pub(crate) fn compare_in_modes(
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
pub(crate) fn data(bench: &Bench, report: &mut Report) {
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
pub(crate) fn function(bench: &Bench, report: &mut Report) {
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
pub(crate) fn backup(bench: &Bench, report: &mut Report) {
    for (wal, mode) in MODES {
        backup_in(bench, report, wal, mode);
    }
}

/// A backup of a 1 GiB database in one journal mode, against `cp` and `sync` of the file.
fn backup_in(bench: &Bench, report: &mut Report, wal: bool, mode: &str) {
    let dir = &bench.dir;
    let big = dir.join(format!("big-{wal}.db"));
    {
        let conn = Connection::open(fresh_db(&big, wal)).unwrap();
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
        native.push(run_process(
            Command::new("sh")
                .args(["-c", "cp \"$0\" \"$1\" && sync \"$1\""])
                .arg(&big)
                .arg(&target),
        ));
        let _ = std::fs::remove_file(&target);
    }
    report.compare(
        &format!(
            "backup of a {:.2} GiB database, {mode}",
            size as f64 / f64::from(1 << 30)
        ),
        &ours,
        &native,
        "cp + sync",
        "<= 1.4x",
    );
    let _ = std::fs::remove_file(&big);
}

/// The data migration of `guest_bench_data` written in Rust, Python and JavaScript (its twins
/// are in `tests/lang-guests/`). Needs the tools of `scripts/guest-tools.sh`.
pub(crate) fn twins() -> [(&'static str, Option<&'static str>); 3] {
    [
        ("Rust", Some(hsm_test_artifacts::GUEST_BENCH_DATA)),
        ("Python", hsm_test_artifacts::PY_BENCH_DATA),
        ("JavaScript", hsm_test_artifacts::JS_BENCH_DATA),
    ]
}

/// The compilers a language's twin is measured with: Cranelift, and Winch (what `auto` picks
/// for an interpreter).
const COMPILERS: [(Compiler, &str); 2] = [
    (Compiler::Cranelift, "Cranelift"),
    (Compiler::Winch, "Winch"),
];

/// Each language's twin: component size, cold compile, and cached load (find, map, link),
/// with each compiler.
pub(crate) fn languages(bench: &Bench, report: &mut Report) {
    for ((language, component), (compiler, compiler_name)) in twins()
        .into_iter()
        .flat_map(|twin| COMPILERS.map(|c| (twin, c)))
    {
        let Some(component) = component else {
            println!("| {language}: not built (run scripts/guest-tools.sh) | | | | |");
            continue;
        };
        let size = std::fs::metadata(component).unwrap().len();
        let dir = bench.dir.join(format!("lang-{language}-{compiler_name}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(component, dir.join("migration.wasm")).unwrap();
        let (mut cold, mut warm) = (Vec::new(), Vec::new());
        for run in 0..bench.scale.runs.min(3) {
            let cache = dir.join(format!("cache-{run}"));
            cold.push(time(|| migrator_with(&dir, &cache, Safety::default(), compiler)).0);
            // The cache trusts an artifact by its file's identity once it has settled (1 s).
            std::thread::sleep(Duration::from_millis(1100));
            for _ in 0..3 {
                warm.push(
                    time(|| {
                        let m = migrator_with(&dir, &cache, Safety::default(), compiler);
                        m.component(1).unwrap();
                    })
                    .0,
                );
            }
        }
        report.absolute(
            &format!("{language} ({compiler_name}): component size, cold compile, cached load"),
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
pub(crate) fn languages_data(bench: &Bench, report: &mut Report) {
    for ((language, component), (compiler, compiler_name)) in twins()
        .into_iter()
        .flat_map(|twin| COMPILERS.map(|c| (twin, c)))
    {
        let Some(component) = component else {
            continue;
        };
        let runs = guest_against_native_with(bench, component, native_transform, compiler);
        compare_in_modes(
            report,
            &format!(
                "{language} ({compiler_name}): data, {} rows read, transformed, written back",
                bench.scale.rows
            ),
            &runs,
            "native Rust loop",
            "(reference)",
        );
    }
}
