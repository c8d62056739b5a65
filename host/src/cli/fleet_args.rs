//! `hsm-host fleet …`'s command line: its actions, its targets and its pace.

use std::path::PathBuf;

use clap::Subcommand;

/// The targets and pace of `hsm-host fleet …`.
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// File of targets: one SQLite database path (relative to the file; globs such as
    /// `data/*.db`) or PostgreSQL URL a line, `#` comments
    #[arg(long, value_name = "FILE")]
    pub targets: PathBuf,
    /// How many targets migrate at once
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallel: u16,
    /// After a target fails: start no new one (stop; running ones finish) or run them all
    #[arg(long, value_enum, default_value_t = OnErrorArg::Stop)]
    pub on_error: OnErrorArg,
    /// Run the first K targets one by one before the rest; any failure among them stops the
    /// fleet
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub canary: usize,
}

/// `--on-error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
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
        fleet: FleetArgs,
    },
    /// Apply pending migrations on every target, all of them or up to TARGET
    Up {
        /// Version to migrate each target up to [default: the newest]
        target: Option<u64>,
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Roll back on every target: the newest migration, or every one above TARGET (0 = all)
    Down {
        /// Version to roll each target back to
        target: Option<u64>,
        #[command(flatten)]
        fleet: FleetArgs,
    },
}
