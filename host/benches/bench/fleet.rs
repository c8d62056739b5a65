//! `fleet`: 100 SQLite databases × the nine examples (seven Rust, one Python, one JavaScript)
//! with `hsm-host fleet up`, against what operators did before it: a shell loop of
//! `hsm-host up`, one process (and one load of the set) per database. Then the peak memory of
//! a fleet of 100 and of 1,000 databases (one small SQL migration each): a fleet streams, so
//! the two should match.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Bench;
use crate::measure::{Report, peak_rss_kib, run_process};

const TARGETS: usize = 100;

pub(crate) fn fleet(bench: &Bench, report: &mut Report) {
    let dir = bench.dir.join("fleet");
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    let mut examples: Vec<&str> = hsm_test_artifacts::EXAMPLES.to_vec();
    examples.extend(hsm_test_artifacts::PY_V008_ADD_DISPLAY_NAMES);
    examples.extend(hsm_test_artifacts::JS_V009_ADD_EMAIL_DOMAINS);
    for example in &examples {
        let name = Path::new(example).file_name().unwrap();
        std::fs::copy(example, migrations.join(name)).unwrap();
    }
    let cache = dir.join("cache");
    let hsm = |args: &[&str]| {
        let mut cmd = Command::new(bench.hsm);
        cmd.args(args)
            .arg("--migrations")
            .arg(&migrations)
            .arg("--cache-dir")
            .arg(&cache)
            .arg("--log-file")
            .arg(dir.join("migration.log"));
        cmd
    };
    // The compile cache warm for both, as on an operator's machine after the first run.
    let warm = dir.join("warm.db");
    run_process(hsm(&["up", "--database", warm.to_str().unwrap()]).arg("--no-backup"));
    let targets = |run: &str| -> (PathBuf, Vec<PathBuf>) {
        let sites = dir.join(run);
        std::fs::create_dir_all(&sites).unwrap();
        let paths: Vec<PathBuf> = (0..TARGETS)
            .map(|i| sites.join(format!("site{i:03}.db")))
            .collect();
        let file = sites.join("targets.txt");
        let lines: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        std::fs::write(&file, lines.join("\n")).unwrap();
        (file, paths)
    };
    let runs = bench.scale.runs.min(3);
    for parallel in ["1", "2"] {
        let (mut ours, mut looped) = (Vec::new(), Vec::new());
        for run in 0..runs {
            // Each database stores the components it applied (the Python one is large): a
            // run's databases are removed once measured, or the disk fills.
            let (file, _) = targets(&format!("fleet-{parallel}-{run}"));
            ours.push(run_process(&mut hsm(&[
                "fleet",
                "up",
                "--targets",
                file.to_str().unwrap(),
                "--parallel",
                parallel,
            ])));
            std::fs::remove_dir_all(file.parent().unwrap()).unwrap();
            let (file, paths) = targets(&format!("loop-{parallel}-{run}"));
            looped.push(
                crate::measure::time(|| {
                    for path in &paths {
                        run_process(&mut hsm(&["up", "--database", path.to_str().unwrap()]));
                    }
                })
                .0,
            );
            std::fs::remove_dir_all(file.parent().unwrap()).unwrap();
        }
        report.compare(
            &format!(
                "fleet up: {TARGETS} databases × {} examples, --parallel {parallel}",
                examples.len()
            ),
            &ours,
            &looped,
            "a shell loop of hsm-host up",
            "(first measure)",
        );
    }
    peak_by_size(bench, report, &dir);
}

/// Peak RSS of `fleet up --parallel 4` over 100 and 1,000 new databases.
fn peak_by_size(bench: &Bench, report: &mut Report, dir: &Path) {
    let migrations = dir.join("small-set");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(migrations.join("1_a.up.sql"), "CREATE TABLE a (x);").unwrap();
    std::fs::write(migrations.join("1_a.down.sql"), "DROP TABLE a;").unwrap();
    let mut peaks = Vec::new();
    for n in [100, 1000] {
        let sites = dir.join(format!("peak-{n}"));
        std::fs::create_dir_all(&sites).unwrap();
        let file = sites.join("targets.txt");
        let lines: String = (0..n).map(|i| format!("site{i:04}.db\n")).collect();
        std::fs::write(&file, lines).unwrap();
        let log = dir.join("migration.log");
        peaks.push(peak_rss_kib(&[
            bench.hsm,
            "--migrations",
            migrations.to_str().unwrap(),
            "--log-file",
            log.to_str().unwrap(),
            "fleet",
            "up",
            "--targets",
            file.to_str().unwrap(),
            "--parallel",
            "4",
        ]));
        std::fs::remove_dir_all(&sites).unwrap();
    }
    report.absolute(
        "peak RSS, fleet up --parallel 4: 100 / 1,000 databases",
        format!(
            "{:.1} / {:.1} MiB",
            peaks[0] as f64 / 1024.0,
            peaks[1] as f64 / 1024.0
        ),
        "1,000 within 10% of 100",
    );
}
