//! The inputs the sections measure: components, SQL files, databases, migrators.

use super::*;

/// 100 distinct DDL components: one build, its version cell patched.
pub(crate) fn ddl_components(dir: &Path, count: u64) -> PathBuf {
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

pub(crate) fn migrator(migrations: &Path, cache: &Path, safety: Safety) -> Migrator {
    migrator_with(migrations, cache, safety, Compiler::Auto)
}

/// [`migrator`], its components compiled by `compiler`.
pub(crate) fn migrator_with(
    migrations: &Path,
    cache: &Path,
    safety: Safety,
    compiler: Compiler,
) -> Migrator {
    let runtime = Runtime::new()
        .unwrap()
        .with_cache_dir(cache)
        .with_compiler(compiler);
    Migrator::load_dir_with(runtime, migrations)
        .unwrap()
        .with_safety(safety)
}

pub(crate) fn items_db(path: &Path, rows: i64, wal: bool) {
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

/// A migrator over one component, without backups and with the quick check: the data
/// benchmarks time the migration step alone. Compiled by `compiler`.
pub(crate) fn single_migration_with(
    dir: &Path,
    component: &str,
    cache: &Path,
    compiler: Compiler,
) -> Migrator {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(component, dir.join("migration.wasm")).unwrap();
    let safety = Safety {
        backups: None,
        quick_check: true,
        ..Safety::default()
    };
    migrator_with(dir, cache, safety, compiler)
}

/// Times of the migration step (the `up` of `migrator`'s one component) and of `native`, run
/// in pairs, each on its own fresh copy of `items`.
pub(crate) fn on_fresh_copies(
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

/// A database with every DDL migration applied by hsm-host, backups and checks on.
pub(crate) fn up_with_backups(bench: &Bench, path: &Path, backups: &Path) {
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

/// The DDL of the bench's migrations as 100 plain SQL files (golang-migrate layout), the same
/// statements the native runner runs.
pub(crate) fn sql_files(dir: &Path, count: u64) -> PathBuf {
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
pub(crate) fn fresh_db(path: &Path, wal: bool) -> &Path {
    if wal {
        let conn = Connection::open(path).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }
    path
}

/// The `items` table the data benchmarks transform, made once per journal mode.
pub(crate) fn items(bench: &Bench, wal: bool) -> PathBuf {
    let items = bench.dir.join(format!("items-{wal}.db"));
    if !items.exists() {
        items_db(&items, bench.scale.rows, wal);
    }
    items
}
