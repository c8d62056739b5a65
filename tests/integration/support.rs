//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rusqlite::Connection;
use rusqlite::types::ValueRef;
use tempfile::TempDir;

/// A temporary working directory with a migrations folder, a database path and a log file.
pub struct Env {
    pub dir: TempDir,
    pub migrations: PathBuf,
    pub db: PathBuf,
}

impl Env {
    /// An environment whose migrations folder holds the seven examples.
    pub fn with_examples() -> Self {
        let env = Self::empty();
        for wasm in hsm_test_artifacts::EXAMPLES {
            env.add(wasm);
        }
        env
    }

    /// An environment with an empty migrations folder.
    pub fn empty() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let migrations = dir.path().join("migrations");
        std::fs::create_dir(&migrations).unwrap();
        let db = dir.path().join("data").join("test.db");
        Self {
            dir,
            migrations,
            db,
        }
    }

    /// Copies a built component into the migrations folder under its own file name.
    pub fn add(&self, wasm: &str) -> PathBuf {
        let name = Path::new(wasm).file_name().unwrap();
        self.add_as(wasm, name.to_str().unwrap())
    }

    /// Copies a built component into the migrations folder as `file_name`.
    pub fn add_as(&self, wasm: &str, file_name: &str) -> PathBuf {
        let to = self.migrations.join(file_name);
        std::fs::copy(wasm, &to).unwrap();
        to
    }

    /// Runs `hsm-host` in the environment's directory with the database, migrations and log
    /// file pointed inside it (appended after `args`, so they also test "options after the
    /// subcommand").
    pub fn hsm(&self, args: &[&str]) -> Run {
        Run::from(self.hsm_command(args).output().unwrap())
    }

    /// The command [`Env::hsm`] runs, to spawn or adjust it first.
    pub fn hsm_command(&self, args: &[&str]) -> Command {
        let mut cmd = self.command();
        cmd.args(args)
            .arg("--database")
            .arg(&self.db)
            .arg("--migrations")
            .arg(&self.migrations)
            .arg("--log-file")
            .arg(self.log_file());
        cmd
    }

    /// The binary, in the environment's directory, with no options added.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hsm-host"));
        // One compile cache for all tests (it is content-addressed), away from the user's own.
        cmd.current_dir(self.dir.path())
            .env_remove("DATABASE_PATH")
            .env_remove("HSM_TRACKING_PREFIX")
            .env_remove("HSM_CONFIG")
            .env_remove("HSM_ENV")
            .env_remove("RUST_LOG")
            .env("XDG_CACHE_HOME", test_cache_home());
        cmd
    }

    pub fn log_file(&self) -> PathBuf {
        self.dir.path().join("logs").join("migration.log")
    }

    pub fn open(&self) -> Connection {
        Connection::open(&self.db).unwrap()
    }

    /// `hsm-host backup`, and the path of the backup it printed.
    pub fn take_backup(&self) -> String {
        let run = self.hsm(&["backup"]);
        run.assert_success();
        run.stdout
            .lines()
            .find_map(|l| l.strip_prefix("Backup taken: "))
            .unwrap_or_else(|| panic!("no backup path: {}", run.stdout))
            .to_owned()
    }

    /// `hsm-host status --json`, parsed.
    pub fn status(&self) -> serde_json::Value {
        let run = self.hsm(&["status", "--json"]);
        run.assert_success();
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
    }
}

/// `XDG_CACHE_HOME` for the binary under test.
pub fn test_cache_home() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("xdg-cache")
}

/// The outcome of one `hsm-host` run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Self {
            code: output
                .status
                .code()
                .expect("hsm-host was killed by a signal"),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }
}

impl Run {
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "hsm-host failed:\n{}\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "unexpected exit code:\n{}\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn assert_stdout_contains(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}:\n{}",
            self.stdout
        );
        self
    }
}

/// Every schema object and every row of every table except `skip`, as text: two equal dumps
/// mean equal schema and data.
pub fn dump(conn: &Connection, skip: &[&str]) -> String {
    let mut out = String::new();
    let objects: Vec<(String, String, Option<String>)> = conn
        .prepare("SELECT type, name, sql FROM sqlite_schema ORDER BY type, name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (kind, name, sql) in objects {
        if skip.contains(&name.as_str()) {
            continue;
        }
        out += &format!("{kind} {name}: {}\n", sql.unwrap_or_default());
        if kind != "table" {
            continue;
        }
        // sqlite_sequence holds one row per AUTOINCREMENT table: skipped tables' rows go too.
        let filter = if name == "sqlite_sequence" {
            let skipped: Vec<String> = skip.iter().map(|s| format!("'{s}'")).collect();
            format!(" WHERE name NOT IN ({})", skipped.join(", "))
        } else {
            String::new()
        };
        let mut stmt = conn
            .prepare(&format!("SELECT * FROM \"{name}\"{filter} ORDER BY rowid"))
            .unwrap();
        let width = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        while let Some(row) = rows.next().unwrap() {
            let cells: Vec<String> = (0..width)
                .map(|i| match row.get_ref(i).unwrap() {
                    ValueRef::Null => "NULL".into(),
                    ValueRef::Integer(v) => v.to_string(),
                    ValueRef::Real(v) => v.to_string(),
                    ValueRef::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
                    ValueRef::Blob(b) => format!("x{b:02x?}"),
                })
                .collect();
            out += &format!("  {}\n", cells.join(" | "));
        }
    }
    out
}

/// The columns of a table: (name, type, not null, default, primary key position).
pub fn columns(conn: &Connection, table: &str) -> Vec<(String, String, bool, Option<String>, i64)> {
    conn.prepare(
        "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1) ORDER BY cid",
    )
    .unwrap()
    .query_map([table], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

pub fn table_exists(conn: &Connection, name: &str) -> bool {
    conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .unwrap()
        == 1
}

/// History rows as (version, direction, status, error_message), oldest first.
pub fn history(conn: &Connection) -> Vec<(i64, String, String, Option<String>)> {
    conn.prepare(
        "SELECT version, direction, status, error_message FROM migration_history ORDER BY id",
    )
    .unwrap()
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Asserts two files hold the same bytes without printing them all.
#[track_caller]
pub fn assert_same_bytes(path: &Path, expected: &[u8], what: &str) {
    let now = std::fs::read(path).unwrap();
    assert!(
        now == expected,
        "{what}: {} changed ({} bytes, was {})",
        path.display(),
        now.len(),
        expected.len()
    );
}

/// Applied versions according to the `migrations` table.
pub fn applied(conn: &Connection) -> Vec<i64> {
    conn.prepare("SELECT version FROM migrations WHERE status = 'applied' ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Overwrites the root page of `table` with garbage, so that `integrity_check` fails while
/// the schema (page 1) still reads.
pub fn corrupt_table(db: &Path, table: &str) {
    let (root, page_size): (i64, i64) = {
        let conn = Connection::open(db).unwrap();
        let root = conn
            .query_row(
                "SELECT rootpage FROM sqlite_schema WHERE name = ?1",
                [table],
                |r| r.get(0),
            )
            .unwrap();
        let page_size = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap();
        (root, page_size)
    };
    use std::io::{Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    file.seek(SeekFrom::Start(((root - 1) * page_size) as u64))
        .unwrap();
    file.write_all(&[0xA5; 64]).unwrap();
}

/// Grows a database by 1 MiB of random blobs, past the small limits some tests impose.
pub fn add_ballast(conn: &Connection) {
    conn.execute_batch(
        "CREATE TABLE ballast (b BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 64)
         INSERT INTO ballast SELECT randomblob(16384) FROM n;",
    )
    .unwrap();
}

/// The SHA-256 of a file, in lowercase hex (as `sha256sum` prints it).
pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A FIFO at `path` (a file that never ends when read), for the hostile-file tests.
pub fn fifo(path: &Path) -> PathBuf {
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success(), "mkfifo {}", path.display());
    path.to_owned()
}
