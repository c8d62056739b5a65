//! The command line: arguments, logging, and one function per subcommand.
//!
//! Exit codes: 0 success, 1 a migration or check failed, 2 the command line or its targets
//! were wrong.

mod args;
mod logging;
mod report;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use hsm_host::{Database, Migrator};

use args::{Args, Command, UpTarget};

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(error) => {
            // clap prints help and version to stdout with exit code 0, usage errors with 2.
            let _ = error.print();
            return ExitCode::from(error.exit_code() as u8);
        }
    };
    let _log_guard = logging::init(args.global.verbose, &args.global.log_file);
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            let usage = error
                .downcast_ref::<hsm_host::Error>()
                .is_some_and(hsm_host::Error::is_usage);
            if usage {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn run(args: &Args) -> Result<()> {
    let global = &args.global;
    let migrator = Migrator::load_dir(&global.migrations).with_context(|| {
        format!(
            "cannot load the migrations in {} (choose the directory with --migrations)",
            global.migrations.display()
        )
    })?;
    let mut out = std::io::stdout().lock();
    match &args.command {
        Command::Status { .. } => status(&migrator, &global.database, global.json, &mut out),
        Command::Up { target, dry_run } => {
            let (target, dry_run) = match target {
                Some(UpTarget::DryRun) => (None, true),
                Some(UpTarget::Version(version)) => (Some(*version), *dry_run),
                None => (None, *dry_run),
            };
            if dry_run {
                self::dry_run(&migrator, &global.database, target, global.json, &mut out)
            } else {
                let db = open(&global.database)?;
                let run = migrator.up(&db, target)?;
                report::run(&run, global.json, &mut out)
            }
        }
        Command::Down { target } => {
            let db = open(&global.database)?;
            let run = migrator.down(&db, *target)?;
            report::run(&run, global.json, &mut out)
        }
    }?;
    out.flush().context("cannot write to stdout")
}

fn open(path: &Path) -> Result<Database> {
    Ok(Database::open(path)?)
}

fn status(migrator: &Migrator, path: &Path, json: bool, out: &mut impl Write) -> Result<()> {
    // Status only reads: it neither creates the file nor the tracking tables.
    let db = if path.exists() {
        Some(Database::open_read_only(path)?)
    } else {
        None
    };
    let mut status = migrator.status(db.as_ref())?;
    status.database.get_or_insert_with(|| path.to_owned());
    report::status(&status, json, out)
}

fn dry_run(
    migrator: &Migrator,
    path: &Path,
    target: Option<u64>,
    json: bool,
    out: &mut impl Write,
) -> Result<()> {
    // A dry run must not leave a file behind: a database that does not exist yet is rehearsed
    // in memory, where it starts just as empty.
    let db = if path.exists() {
        Database::open(path)?
    } else {
        Database::open_in_memory()?
    };
    let report = migrator.dry_run(&db, target)?;
    report::dry_run(&report, json, out)
}
