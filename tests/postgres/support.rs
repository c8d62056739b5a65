//! A throw-away database on the PostgreSQL server `pg_virtualenv` started (scripts/test.sh
//! runs these tests inside it), made ready by `hsm-host pg init`, and the `hsm-host` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use postgres::{Client, NoTls};
use tempfile::TempDir;

/// The server's connection variables, which `pg_virtualenv` exports. Missing, the tests fail:
/// they never pass without a server.
pub fn server_var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the PostgreSQL tests run against a real server; run them with \
             scripts/test.sh, or as `pg_virtualenv -t cargo test -p hsm-host --features \
             postgres-tests --test postgres`"
        )
    })
}

/// One test's database, roles and migrations directory.
pub struct PgEnv {
    pub dir: TempDir,
    pub migrations: PathBuf,
    pub database: String,
    pub app_role: String,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A URL for `database` as the server's superuser.
pub fn superuser_url(database: &str) -> String {
    format!(
        "postgresql://{}:{}@{}:{}/{database}",
        server_var("PGUSER"),
        server_var("PGPASSWORD"),
        server_var("PGHOST"),
        server_var("PGPORT")
    )
}

/// A client on `database` as the superuser.
pub fn connect(database: &str) -> Client {
    Client::connect(&superuser_url(database), NoTls).expect("connect as the superuser")
}

impl PgEnv {
    /// A new database owned by a new application role, initialised by `hsm-host pg init`.
    pub fn new() -> Self {
        let env = Self::uninitialised();
        env.hsm(&["pg", "init"]).success();
        env
    }

    /// A new database owned by a new application role, without `pg init`.
    pub fn uninitialised() -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let database = format!("hsm_t{}_{n}", std::process::id());
        let app_role = format!("{database}_app");
        let mut admin = connect("postgres");
        // One statement per call: a simple-query string of several is one transaction, and
        // CREATE DATABASE refuses to run in one.
        for statement in [
            format!("CREATE ROLE {app_role} NOLOGIN"),
            format!("CREATE DATABASE {database} OWNER {app_role}"),
        ] {
            admin
                .batch_execute(&statement)
                .expect("make the test's database");
        }
        let dir = tempfile::tempdir().unwrap();
        let migrations = dir.path().join("migrations");
        std::fs::create_dir(&migrations).unwrap();
        Self {
            dir,
            migrations,
            database,
            app_role,
        }
    }

    /// The superuser's URL of this database (the host role of these tests).
    pub fn url(&self) -> String {
        superuser_url(&self.database)
    }

    /// A client on this database as the superuser, for looking.
    pub fn client(&self) -> Client {
        connect(&self.database)
    }

    /// Writes a migration file.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.migrations.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Copies a built component into the migrations directory.
    pub fn add(&self, wasm: &str) {
        let name = Path::new(wasm).file_name().unwrap();
        std::fs::copy(wasm, self.migrations.join(name)).unwrap();
    }

    /// `hsm-host ARGS --database URL --migrations DIR`.
    pub fn hsm(&self, args: &[&str]) -> Run {
        Run(self.hsm_command(args).output().unwrap())
    }

    /// The command [`PgEnv::hsm`] runs, to spawn or adjust it first.
    pub fn hsm_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hsm-host"));
        cmd.current_dir(self.dir.path())
            .env_remove("DATABASE_PATH")
            .env_remove("HSM_CONFIG")
            .env("HSM_CACHE_DIR", cache_dir())
            .args(args)
            .arg("--database")
            .arg(self.url())
            .arg("--migrations")
            .arg(&self.migrations)
            .arg("--log-file")
            .arg(self.dir.path().join("migration.log"));
        cmd
    }

    /// The versions the tracking table says are applied.
    pub fn applied(&self) -> Vec<i64> {
        self.client()
            .query(
                "SELECT version FROM hsm.migrations WHERE status = 'applied' ORDER BY version",
                &[],
            )
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    /// Whether `table` exists in the public schema.
    pub fn has_table(&self, table: &str) -> bool {
        self.client()
            .query_one(
                "SELECT to_regclass($1) IS NOT NULL",
                &[&format!("public.{table}")],
            )
            .unwrap()
            .get(0)
    }

    /// The history rows as (version, direction, status, error).
    pub fn history(&self) -> Vec<(i64, String, String, Option<String>)> {
        self.client()
            .query(
                "SELECT version, direction, status, error_message FROM hsm.migration_history \
                 ORDER BY id",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    }
}

impl PgEnv {
    /// Brings the database to version 1, then runs `hostile` as migration 2: `up` fails
    /// naming `needle`, migration 2 is not recorded, its table `planted` is not there, and
    /// its file is removed again (the next case can follow on the same database).
    pub fn refuses(&self, hostile: &str, needle: &str) {
        self.write("001_base.up.sql", "CREATE TABLE base (x int);");
        self.hsm(&["up"]).success();
        self.write("002_hostile.up.sql", hostile);
        let run = self.hsm(&["up"]).fails_with(1);
        assert!(
            run.stderr().contains(needle),
            "expected {needle:?} in:\n{}",
            run.stderr()
        );
        assert_eq!(
            self.applied(),
            vec![1],
            "the hostile migration was recorded"
        );
        assert!(
            !self.has_table("planted"),
            "the hostile migration's table stayed"
        );
        std::fs::remove_file(self.migrations.join("002_hostile.up.sql")).unwrap();
    }
}

impl Drop for PgEnv {
    fn drop(&mut self) {
        let mut admin = connect("postgres");
        let db = &self.database;
        for statement in [
            format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
            format!("DROP ROLE IF EXISTS hsm_migrator_{db}"),
            format!("DROP ROLE IF EXISTS hsm_owner_{db}"),
            format!("DROP ROLE IF EXISTS {}", self.app_role),
        ] {
            let _ = admin.batch_execute(&statement);
        }
    }
}

/// One compile cache for every test (content-addressed).
fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pg-test-cache")
}

/// A finished `hsm-host` process.
pub struct Run(pub Output);

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    pub fn code(&self) -> Option<i32> {
        self.0.status.code()
    }

    /// Asserts exit code 0.
    pub fn success(self) -> Self {
        assert_eq!(
            self.code(),
            Some(0),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }

    /// Asserts exit code `code`.
    pub fn fails_with(self, code: i32) -> Self {
        assert_eq!(
            self.code(),
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
}
