//! `hsm-host fleet …`'s command line: its actions, its targets and its pace.

use std::path::PathBuf;

use clap::Subcommand;

/// Where a fleet's targets come from.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetTargets {
    /// File of targets: one SQLite database path (relative to the file; globs such as
    /// `data/*.db`) or PostgreSQL URL a line, `#` comments [default: `targets` in the
    /// settings file's [fleet] table]
    #[arg(long, value_name = "FILE")]
    pub targets: Option<PathBuf>,
}

/// How a fleet runs (each also `parallel`, `on_error`, `canary` in the settings file's
/// [fleet] table).
#[derive(Debug, Clone, clap::Args)]
pub struct FleetPace {
    /// How many targets migrate at once [default: 1]
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: Option<u16>,
    /// After a target fails: start no new one (stop; running ones finish) or run them all
    /// [default: stop]
    #[arg(long, value_enum)]
    pub on_error: Option<OnErrorArg>,
    /// Run the first K targets one by one before the rest; any failure among them stops the
    /// fleet [default: 0]
    #[arg(long, value_name = "K")]
    pub canary: Option<usize>,
}

/// `--on-error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnErrorArg {
    /// Start no new target after a failure.
    Stop,
    /// Run every target.
    Continue,
}

/// `hsm-host fleet …`.
#[derive(Debug, Subcommand)]
pub enum FleetAction {
    /// Each target's version, grouped: which are behind, changed or interrupted
    Status {
        #[command(flatten)]
        targets: FleetTargets,
    },
    /// Apply pending migrations on every target, all of them or up to TARGET
    Up {
        /// Version to migrate each target up to [default: the newest]
        target: Option<u64>,
        #[command(flatten)]
        targets: FleetTargets,
        #[command(flatten)]
        pace: FleetPace,
    },
    /// Roll back on every target: the newest migration, or every one above TARGET (0 = all)
    Down {
        /// Version to roll each target back to
        target: Option<u64>,
        #[command(flatten)]
        targets: FleetTargets,
        #[command(flatten)]
        pace: FleetPace,
    },
}

/// The settings file's `[fleet]` table (an `[env.NAME.fleet]` one first), paths resolved:
/// what the command line leaves out.
#[derive(Debug, Clone, Default)]
pub struct FleetConfig {
    /// `targets`: a targets file, or the list itself.
    pub targets: Option<ConfiguredTargets>,
    /// `parallel`.
    pub parallel: Option<u16>,
    /// `on_error`.
    pub on_error: Option<OnErrorArg>,
    /// `canary`.
    pub canary: Option<usize>,
}

/// `targets` in the settings file.
#[derive(Debug, Clone)]
pub enum ConfiguredTargets {
    /// `targets = "tenants.txt"`: a targets file, relative to the settings file.
    File(PathBuf),
    /// `targets = ["sites/*.db", "postgresql://…"]`: the lines themselves.
    List {
        /// Each entry, read as a line of a targets file.
        entries: Vec<String>,
        /// The settings file's directory, for relative paths.
        base: PathBuf,
        /// The settings file, for errors.
        origin: String,
    },
}
