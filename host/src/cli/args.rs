//! The command line's shape. Global options are accepted before or after the subcommand.

use std::path::PathBuf;
use std::time::Duration;

pub use super::fleet_args::{
    ConfiguredTargets, FleetAction, FleetConfig, FleetPace, FleetTargets, OnErrorArg,
};
pub use super::signing_args::SigningCommand;
use clap::{Args as ClapArgs, Parser, Subcommand};
use hsm_host::runtime::Compiler;

#[derive(Debug, Parser)]
#[command(
    name = "hsm-host",
    version,
    about = "Runs SQLite migrations shipped as sandboxed WebAssembly components",
    after_help = "Exit codes: 0 success, 1 a migration or check failed, 2 usage error \
                  (bad arguments or an impossible target)."
)]
pub struct Args {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, ClapArgs)]
pub struct Global {
    /// Settings file (hsm.toml: database, migrations, backup_dir, keep_backups, log_file,
    /// tracking_prefix, layout, …, and [env.NAME] tables); paths in it are relative to it
    /// [default: ./hsm.toml if there is one]
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "HSM_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// The [env.NAME] table of the settings file to use on top of its top level
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "HSM_ENV",
        value_name = "NAME"
    )]
    pub env: Option<String>,

    /// The options the settings file gave (not the command line or the environment).
    #[arg(skip)]
    pub from_config: Vec<&'static str>,

    /// The settings file's [fleet] table.
    #[arg(skip)]
    pub fleet: FleetConfig,

    /// The SQLite database to migrate (parent directories are created), or a PostgreSQL server's
    /// URL (postgresql://user:password@host/database; see docs/postgresql.md)
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "DATABASE_PATH",
        default_value = "./data/home-server-monitor.db"
    )]
    pub database: PathBuf,

    /// Directory holding the migration components (*.wasm) and SQL files
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "HSM_MIGRATIONS",
        default_value = "./migrations"
    )]
    pub migrations: PathBuf,

    /// Layout of the SQL migrations in --migrations (and for `pack`): diesel, golang-migrate,
    /// sqlx, dbmate, goose, flyway, refinery, prisma, drizzle, pop, or a pattern for a naming of
    /// a project's own,
    /// such as 'V{version}.{name}.{direction}.sql' [default: recognised from the file names]
    #[arg(long, global = true, help_heading = "Global options", env = "HSM_LAYOUT", value_parser = parse_layout)]
    pub layout: Option<hsm_host::pack::Layout>,

    /// A value for a Flyway set's placeholder `${NAME}` (repeatable): `--placeholder NAME=VALUE`.
    #[arg(long = "placeholder", global = true, help_heading = "Global options", value_name = "NAME=VALUE",
          value_parser = hsm_host::pack::placeholders::parse)]
    pub placeholders: Vec<(String, String)>,

    /// Prefix of hsm-host's tracking tables (`hsm_` gives hsm_migrations, hsm_migration_history
    /// and hsm_hsm_components), for an application that owns a table called `migrations`
    /// [default: none: migrations, migration_history, hsm_components]
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "HSM_TRACKING_PREFIX",
        default_value = "",
        hide_default_value = true
    )]
    pub tracking_prefix: String,

    /// Print results as JSON on stdout
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,

    /// Colour on stderr: auto (a terminal, unless NO_COLOR is set), always, never
    #[arg(long, global = true, help_heading = "Global options", value_enum, default_value_t = Color::Auto)]
    pub color: Color,

    /// More log output on stderr (-v debug, -vv trace)
    #[arg(short, long, global = true, help_heading = "Global options", action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// File the log is appended to [default: migration.log next to the database]
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "HSM_LOG_FILE"
    )]
    pub log_file: Option<PathBuf>,

    /// Where backups go [default: backups/ next to the database]
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "HSM_BACKUP_DIR"
    )]
    pub backup_dir: Option<PathBuf>,

    /// How many backups of this database to keep (the newest), beyond the one taken before
    /// each applied irreversible migration
    #[arg(long, global = true, help_heading = "Global options", env = "HSM_KEEP_BACKUPS",
          default_value_t = hsm_host::backup::DEFAULT_KEEP)]
    pub keep_backups: usize,

    /// Also drop backups older than this (`30d`, `12h`, `90m`); the one before each applied
    /// irreversible migration and the newest are kept whatever their age
    #[arg(long, global = true, help_heading = "Global options", env = "HSM_KEEP_BACKUPS_FOR",
          value_parser = parse_age)]
    pub keep_backups_for: Option<Duration>,

    /// Do not back up before migrating (dangerous: only the migrations' own down steps can undo a run)
    #[arg(long, global = true, help_heading = "Global options")]
    pub no_backup: bool,

    /// On PostgreSQL, dump the database with pg_dump (custom format, into --backup-dir)
    /// before an up or down that runs a migration; needs a pg_dump as new as the server.
    /// (A SQLite database is always backed up, by copying it.)
    #[arg(long, global = true, help_heading = "Global options", value_enum)]
    pub backup: Option<BackupMethod>,

    /// Use PRAGMA quick_check instead of the full integrity_check (faster on large databases)
    #[arg(long, global = true, help_heading = "Global options")]
    pub quick: bool,

    /// Run all of an up or down in one transaction: it reaches its target or changes nothing
    /// (default: each migration commits on its own)
    #[arg(long, global = true, help_heading = "Global options")]
    pub single_transaction: bool,

    /// Run only components this trust file accepts (see `verify`): an unsigned, untrusted,
    /// tampered or revoked one is refused before anything changes; SQL migrations must be
    /// packed and signed ahead (`pack --sign`)
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "HSM_REQUIRE_SIGNED",
        value_name = "TRUST"
    )]
    pub require_signed: Option<PathBuf>,

    /// Time one migration may run (`300`, `90s`, `5m`, `1h`)
    #[arg(long, global = true, help_heading = "Global options", env = "HSM_TIMEOUT", default_value = "5m",
          value_parser = parse_duration)]
    pub timeout: Duration,

    /// Memory one migration may use (`256MiB`, `1GiB`, or bytes: `1048576`; at least 1 MiB)
    #[arg(long, global = true, help_heading = "Global options", env = "HSM_MAX_MEMORY", default_value = "256MiB",
          value_parser = parse_size)]
    pub max_memory: usize,

    /// Where compiled components are cached [default: $XDG_CACHE_HOME/hsm-host or ~/.cache/hsm-host]
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "HSM_CACHE_DIR"
    )]
    pub cache_dir: Option<PathBuf>,

    /// Most the compile cache may hold; the least recently used entries go first (`512MiB`, `2GiB`)
    #[arg(long, global = true, help_heading = "Global options", env = "HSM_CACHE_MAX", default_value = "512MiB",
          value_parser = parse_size)]
    pub cache_max: usize,

    /// Compiler of components not in the cache: auto (Winch, quick to compile, for components of
    /// 4 MiB and more such as Python and JavaScript interpreters; Cranelift for the rest),
    /// cranelift (fastest code) or winch
    #[arg(long, global = true, help_heading = "Global options", env = "HSM_COMPILER", default_value = "auto",
          value_parser = parse_compiler)]
    pub compiler: Compiler,

    /// Compile every component, without reading or writing the compile cache
    #[arg(long, global = true, help_heading = "Global options")]
    pub no_cache: bool,

    /// Seconds to wait for another hsm-host's migration lock
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "HSM_LOCK_TIMEOUT",
        default_value_t = 60,
        value_name = "SECONDS"
    )]
    pub lock_timeout: u64,
}

/// When stderr gets colour.
/// How a database server is backed up before migrating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackupMethod {
    /// PostgreSQL's pg_dump.
    #[value(name = "pg_dump")]
    PgDump,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    /// On a terminal, unless `NO_COLOR` is set (no-color.org).
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl Global {
    /// Whether stderr gets colour.
    pub fn color(&self) -> bool {
        use std::io::IsTerminal;
        match self.color {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => {
                std::io::stderr().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }

    /// The compile cache: `--cache-dir`, else the user's, none with `--no-cache`.
    pub fn compile_cache_dir(&self) -> Option<PathBuf> {
        match self.no_cache {
            true => None,
            false => self
                .cache_dir
                .clone()
                .or_else(hsm_host::runtime::cache::default_dir),
        }
    }

    /// Where a server's dumps go: `--backup-dir`, else `backups/` beside the migrations
    /// directory (a URL has no directory of its own).
    pub fn server_backup_dir(&self) -> PathBuf {
        self.backup_dir.clone().unwrap_or_else(|| {
            self.migrations
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."))
                .join("backups")
        })
    }

    /// The log file: `--log-file`, else `migration.log` next to the database (never in the
    /// working directory).
    pub fn log_path(&self, fleet: bool) -> PathBuf {
        if self.log_file.is_none() && (fleet || self.server_url().is_some()) {
            // A URL has no directory, and a fleet's databases many: the log goes beside the
            // migrations directory.
            return self
                .migrations
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."))
                .join("migration.log");
        }
        self.log_file.clone().unwrap_or_else(|| {
            self.database
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."))
                .join("migration.log")
        })
    }
}

impl Global {
    /// The database server's URL, when `--database` names one rather than a SQLite file.
    pub fn server_url(&self) -> Option<&str> {
        self.database
            .to_str()
            .filter(|url| hsm_host::server::is_server_url(url))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the current version, applied and pending migrations, and recent history
    Status {
        /// Exit 1 when anything needs the operator: pending, changed or missing migrations, or
        /// a failed or interrupted one (0 when the database is up to date), for CI and cron
        #[arg(long)]
        check: bool,
    },
    /// Apply pending migrations, all of them or up to TARGET
    Up {
        /// Version to stop at (default: the newest); `dry-run` is the same as --dry-run
        target: Option<UpTarget>,
        /// Run the migrations in a transaction that is rolled back, and report what they would change
        #[arg(long)]
        dry_run: bool,
    },
    /// Roll back the newest migration, or every migration above TARGET (0 = all)
    Down {
        /// Version to roll back to
        target: Option<u64>,
        /// Run every step's down in a transaction that is rolled back, and report what each
        /// would change: a broken down is found before anything is touched
        #[arg(long)]
        dry_run: bool,
    },
    /// Roll the newest migration back and apply it again (to try a changed down or up)
    Redo {},
    /// Take a backup of the database now
    Backup {},
    /// Write the component an applied migration was applied from back out, as the database
    /// stored it (to put back a file that changed or is gone)
    Export {
        /// The applied migration's version
        version: u64,
        /// Where to write it [default: <version>_<name>.wasm here]; never over an existing file
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Replace the database with a backup (without PATH: list the backups)
    Restore {
        /// The backup file to restore
        path: Option<PathBuf>,
        /// Do not ask for confirmation (required when stdin is not a terminal)
        #[arg(long)]
        yes: bool,
    },
    /// Accept the component files as they are now for applied migrations whose file changed
    Repair {},
    /// Drop stored components no applied migration uses, and compact the database (VACUUM)
    Gc {},
    /// Record as applied, without running them, the migrations another tool (diesel, sqlx,
    /// golang-migrate, dbmate, goose, Flyway, refinery, Prisma, Drizzle, pop) applied, read from
    /// its history table
    Adopt {
        /// Say what would be recorded, and record nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Record every migration up to VERSION as applied without running it (a database that
    /// already has that schema and no history)
    Baseline {
        /// The last migration the database already has
        version: u64,
        /// Say what would be recorded, and record nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Turn a directory of plain SQL migrations (diesel, golang-migrate, sqlx, dbmate, goose,
    /// Flyway, refinery, Prisma, Drizzle, pop) into migration components, one
    /// `<version>_<name>.wasm` each
    Pack {
        /// The directory of SQL migrations
        src: PathBuf,
        /// Where to write the components [default: the --migrations directory]
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// Sign each component written with this secret key (embedded), for a host that runs
        /// with --require-signed
        #[arg(long, value_name = "KEY")]
        sign: Option<PathBuf>,
        /// Declare the databases the components run on (sqlite, postgresql), as `declare`
        /// does: `sqlite,postgresql` for a set a PostgreSQL server runs
        #[arg(long, value_delimiter = ',')]
        dialects: Vec<String>,
    },
    /// Say what component files are before anyone runs them: version, name, description,
    /// reversible, contract and world, imports, size, sha256, and whether this host accepts
    /// them (the checks of `up`, without a database). Exits 1 if any is refused
    Inspect {
        /// The component files (*.wasm)
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Say which databases a component's SQL is written for, in the component (an
    /// `hsm:dialects` section; the Rust SDK's `migration!` writes it from `dialects`): for a
    /// Python or JavaScript migration whose SQL also runs on PostgreSQL. Declarations only add
    Declare {
        /// The component file; rewritten unless --output names another
        file: PathBuf,
        /// The dialects, comma-separated: sqlite, postgresql
        #[arg(long, value_delimiter = ',', required = true)]
        dialects: Vec<String>,
        /// Write the component here instead
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Test every migration on a scratch database: each is applied, and each reversible one
    /// rolled back (the schema must be exactly as before) and applied again (exactly as up
    /// made it). Exits 1 on any failure. What CI runs on a pull request
    Test {
        /// Test on a copy (in memory) of this database instead of an empty one; the file is
        /// never written
        #[arg(long, value_name = "DB")]
        against: Option<PathBuf>,
        /// Also this directory's migrations (repeatable): test a new migration on top of the
        /// ones it builds on, e.g. `--migrations my-new/ --with migrations/`
        #[arg(long, value_name = "DIR")]
        with: Vec<PathBuf>,
    },
    /// Make a new migration for the next free version: a Rust guest crate v<NNN>_<NAME> in
    /// --dir (joining its workspace, or making one with the SDK vendored), or with --sql a pair
    /// of SQL files in the --migrations directory
    New {
        /// snake_case, e.g. add_email_column
        name: String,
        /// Where the crate goes [default: the current directory]
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Make <version>_<name>.up.sql and .down.sql in the --migrations directory instead
        #[arg(long, conflicts_with_all = ["python", "js"])]
        sql: bool,
        /// Make a Python migration (app.py and the helper) in --dir instead, and print the
        /// command that builds it into the --migrations directory
        #[arg(long, conflicts_with = "js")]
        python: bool,
        /// Make a JavaScript migration (app.js and the helper) in --dir instead, and print the
        /// command that builds it into the --migrations directory
        #[arg(long)]
        js: bool,
    },
    /// Print a shell completion script (e.g. `hsm-host completions bash > /etc/bash_completion.d/hsm-host`)
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff: `hsm-host man | man -l -`)
    Man {},
    /// PostgreSQL: make the roles and the tracking schema once (init, with a superuser's
    /// --database URL), or check that migrations run as a role that is a boundary (doctor)
    Pg {
        #[command(subcommand)]
        action: PgAction,
    },
    /// One migration set, many databases: status, up or down on every SQLite database or
    /// PostgreSQL URL a targets file lists, the set loaded once; a line per target as it finishes, then a
    /// summary. Exits 1 when any target failed or was not started
    Fleet {
        #[command(subcommand)]
        action: FleetAction,
    },
    #[command(flatten)]
    Signing(SigningCommand),
}

/// `hsm-host pg …`.
#[derive(Debug, Subcommand)]
pub enum PgAction {
    /// Make the migrator and owner roles, the tracking schema (hsm, or --tracking-prefix) and
    /// the functions that alone record migrations; run once with a superuser's --database URL
    Init {
        /// The role that owns the application's tables; migrations act as it [default: the
        /// database's owner]
        #[arg(long, value_name = "ROLE")]
        app_role: Option<String>,
        /// The role hsm-host will connect as for up, down and status [default: the URL's]
        #[arg(long, value_name = "ROLE")]
        host_role: Option<String>,
    },
    /// Refuse a migrator role that is a superuser, may create roles, read or write the
    /// server's files or run programs, and list what it could still reach. Exits 1 if refused
    Doctor {},
}

/// `up`'s positional argument: a version, or the guide's spelling `up dry-run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpTarget {
    Version(u64),
    DryRun,
}

impl std::str::FromStr for UpTarget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "dry-run" {
            return Ok(UpTarget::DryRun);
        }
        s.parse()
            .map(UpTarget::Version)
            .map_err(|_| format!("`{s}` is neither a version number nor `dry-run`"))
    }
}

/// `30d`, `12h`, `90m`, `3600s` (or seconds), for an age bound.
pub(super) fn parse_age(text: &str) -> Result<Duration, String> {
    humane_duration(text).map_err(|_| format!("`{text}` is not an age such as 30d, 12h or 90m"))
}

/// `300` (seconds), `300s`, `5m`, `1h`, `500ms`: a time limit, above zero.
/// `--compiler`: one of [`Compiler::NAMES`].
fn parse_compiler(text: &str) -> Result<Compiler, String> {
    text.parse()
}

pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humane_duration(text).map_err(|reason| {
        format!("`{text}` is not a duration like 300, 90s, 5m or 1h ({reason})")
    })?;
    if duration.is_zero() {
        return Err("the time limit must be above zero".into());
    }
    Ok(duration)
}

/// A bare number of seconds, or what humantime reads (`90s`, `5m`, `1h 30m`, `30d`); too large
/// a number is an error, not an overflow.
fn humane_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map(Duration::from_secs)
            .map_err(|e| e.to_string());
    }
    humantime::parse_duration(text).map_err(|e| e.to_string())
}

/// `65536`, `64KiB`, `256MiB`, `1GiB` (also `K`, `M`, `G`, `KB`, `MB`, `GB`, all powers of 1024).
pub(super) fn parse_size(text: &str) -> Result<usize, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 256MiB or 1GiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        other => return Err(format!("unknown size unit `{other}` (use KiB, MiB or GiB)")),
    };
    match number.checked_mul(1 << shift) {
        Some(bytes) if bytes >= 1 << 20 => Ok(bytes),
        Some(_) => Err(format!("`{text}` is too small: at least 1 MiB")),
        None => Err(format!("`{text}` is too large")),
    }
}

fn parse_layout(value: &str) -> Result<hsm_host::pack::Layout, String> {
    hsm_host::pack::Layout::parse(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_parse() {
        assert_eq!(parse_duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        // Too large is an error, not an overflow (it panicked in debug builds).
        assert!(parse_duration("99999999999999999h").is_err());
        assert!(parse_age("99999999999999999d").is_err());
        assert_eq!(parse_age("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("12").is_err(), "below 1 MiB");
        assert!(parse_size("lots").is_err());
    }
}
