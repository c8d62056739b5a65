//! An all-or-nothing run and a peer tool on the same 100 migrations, and `status` on a
//! machine that has compiled nothing.

use super::*;

/// up-100 with `--single-transaction` (WAL, backups and checks on) against the native
/// runner, and diesel_cli applying the same DDL from its own migration folders (when
/// `diesel` is on the PATH: `cargo install diesel_cli --no-default-features --features
/// sqlite-bundled`).
pub(crate) fn group(bench: &Bench, report: &mut Report) {
    let dir = &bench.dir;
    let n = bench.scale.migrations;
    let diesel_dir = diesel_folders(dir, n);
    let diesel = Command::new("diesel").arg("--version").output().is_ok();
    let (mut ours, mut native, mut peer) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..bench.scale.runs.max(11) {
        let path = fresh_db(&dir.join(format!("group-{run}.db")), true).to_owned();
        let backups = dir.join(format!("group-backups-{run}"));
        let m = migrator(
            &bench.migrations,
            &bench.cache,
            Safety {
                backups: Some(BackupConfig {
                    dir: Some(backups),
                    keep: 10,
                    keep_for: None,
                }),
                single_transaction: true,
                ..Safety::default()
            },
        );
        ours.push(time(|| m.up(&Database::open(&path).unwrap(), None).unwrap()).0);
        let native_path = fresh_db(&dir.join(format!("group-native-{run}.db")), true).to_owned();
        native.push(time(|| native_up(&native_path, n)).0);
        if diesel {
            let peer_path = fresh_db(&dir.join(format!("group-diesel-{run}.db")), true).to_owned();
            peer.push(run_process(
                Command::new("diesel")
                    .args(["migration", "run", "--database-url"])
                    .arg(&peer_path)
                    .arg("--migration-dir")
                    .arg(&diesel_dir),
            ));
        }
    }
    report.compare(
        &format!("up-{n} --single-transaction, backups + checks on, WAL"),
        &ours,
        &native,
        "rusqlite runner, WAL",
        "(reference)",
    );
    if diesel {
        report.compare(
            &format!("up-{n} --single-transaction, backups + checks on, WAL, vs diesel_cli"),
            &ours,
            &peer,
            "diesel migration run (process), WAL",
            "<= 1.5x",
        );
        report.compare(
            &format!("diesel_cli applying the same {n} migrations, WAL"),
            &peer,
            &native,
            "rusqlite runner, WAL",
            "(peer)",
        );
    } else {
        println!("| diesel_cli peer row | skipped: `diesel` is not on the PATH | | | |");
    }
}

/// The bench's DDL as diesel migration folders (`<version>_<name>/up.sql`, `down.sql`).
fn diesel_folders(dir: &Path, count: u64) -> PathBuf {
    let root = dir.join("diesel");
    for v in 1..=count {
        let folder = root.join(format!("{v:014}_bench_ddl"));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            folder.join("up.sql"),
            format!(
                "CREATE TABLE bench_{v} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, created_at TEXT);
                 CREATE INDEX bench_{v}_name ON bench_{v} (name);"
            ),
        )
        .unwrap();
        std::fs::write(folder.join("down.sql"), format!("DROP TABLE bench_{v};")).unwrap();
    }
    root
}

/// `status` of the examples on a machine that has compiled none of them (an empty cache):
/// the binary, each run with a new cache directory.
pub(crate) fn cold_status(bench: &Bench, report: &mut Report) {
    let examples = bench.dir.join("cold-status-examples");
    std::fs::create_dir_all(&examples).unwrap();
    for component in hsm_test_artifacts::EXAMPLES {
        let name = Path::new(component).file_name().unwrap();
        std::fs::copy(component, examples.join(name)).unwrap();
    }
    let db = bench.dir.join("cold-status.db");
    let mut ours = Vec::new();
    for run in 0..bench.scale.runs.max(11) {
        let cache = bench.dir.join(format!("cold-status-cache-{run}"));
        ours.push(run_process(
            Command::new(bench.hsm)
                .args(["status", "--database", db.to_str().unwrap()])
                .args(["--migrations", examples.to_str().unwrap()])
                .args(["--cache-dir", cache.to_str().unwrap()])
                .args(["--log-file", bench.dir.join("bench.log").to_str().unwrap()]),
        ));
    }
    report.absolute(
        &format!(
            "status of the {} examples, nothing compiled yet (empty cache)",
            hsm_test_artifacts::EXAMPLES.len()
        ),
        format!("{:.1} ms", ms(median(ours))),
        "<= 1 s",
    );
}
