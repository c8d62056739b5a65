//! The commands on a database server (`--database postgresql://…`).

use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use hsm_host::Direction;
use hsm_host::server::{Checkup, DumpPlan, Dumped, InitReport, ServerProject};

use super::args::{Args, BackupMethod, Command, Global, PgAction, UpTarget};
use super::{Reported, UsageError, report, sink, sql_options, with_loading_context};

/// Runs `args.command` on the server `url`.
pub(super) fn run(args: &Args, url: &str) -> Result<()> {
    let global = &args.global;
    let dump_plan = dump_plan(global);
    let project = server_project(global, url)?;
    let mut out = sink::SafeOut::new(std::io::BufWriter::new(std::io::stdout().lock()));
    match &args.command {
        Command::Status { check } => {
            let status = with_loading_context(global, project.status())?;
            report::status(&status, global.json, &mut out)?;
            let attention = status.needs_attention();
            if *check && !attention.is_empty() {
                return Err(Reported(format!(
                    "the database needs attention: {}",
                    attention.join(", ")
                ))
                .into());
            }
        }
        Command::Up { target, dry_run } => {
            let (target, dry_run) = match target {
                Some(UpTarget::DryRun) => (None, true),
                Some(UpTarget::Version(version)) => (Some(*version), *dry_run),
                None => (None, *dry_run),
            };
            if dry_run {
                let report = with_loading_context(global, project.dry_run(Direction::Up, target))?;
                report::dry_run(&report, global.json, &mut out)?;
                out.flush()?;
                return Ok(());
            }
            let run = with_loading_context(global, project.up(target))?;
            report::run(&run, global.json, &mut out)?;
        }
        Command::Down {
            target,
            dry_run: true,
        } => {
            let report = with_loading_context(global, project.dry_run(Direction::Down, *target))?;
            report::dry_run(&report, global.json, &mut out)?;
        }
        Command::Adopt { dry_run } => {
            let report = with_loading_context(global, project.adopt(*dry_run))?;
            report::adopted(&report, global.json, &mut out)?;
        }
        Command::Baseline { version, dry_run } => {
            let report = with_loading_context(global, project.baseline(*version, *dry_run))?;
            report::adopted(&report, global.json, &mut out)?;
        }
        Command::Down { target, .. } => {
            let run = with_loading_context(global, project.down(*target))?;
            report::run(&run, global.json, &mut out)?;
        }
        Command::Repair {} => {
            let repaired = with_loading_context(global, project.repair())?;
            report::repaired(&repaired, global.json, &mut out)?;
        }
        Command::Backup {} => {
            let dumped = project.backup(&dump_plan)?;
            dumped_to(&dumped, global.json, &mut out)?;
        }
        Command::Pg {
            action:
                PgAction::Init {
                    app_role,
                    host_role,
                },
        } => {
            let made = project.init(app_role.clone(), host_role.clone())?;
            initialized(&made, global.json, &mut out)?;
        }
        Command::Pg {
            action: PgAction::Doctor {},
        } => {
            let checkup = project.doctor()?;
            examined(&checkup, global.json, &mut out)?;
            if !checkup.refusals.is_empty() {
                out.flush()?;
                return Err(Reported(format!(
                    "the migrator role is no boundary: {}",
                    checkup.refusals.join("; ")
                ))
                .into());
            }
        }
        other => return Err(not_yet(command_name(other))),
    }
    out.flush()?;
    Ok(())
}

/// Where `--backup pg_dump` writes and how many it keeps.
fn dump_plan(global: &Global) -> DumpPlan {
    DumpPlan {
        dir: global.server_backup_dir(),
        keep: global.keep_backups,
    }
}

/// The server `url` with the command line's settings (a fleet makes one per target).
pub(super) fn server_project(global: &Global, url: &str) -> hsm_host::Result<ServerProject> {
    let schema = match global.tracking_prefix.as_str() {
        "" => "hsm".to_owned(),
        prefix => prefix.trim_end_matches('_').to_owned(),
    };
    let cache_dir = global.compile_cache_dir();
    Ok(ServerProject::new(url, &global.migrations)?
        .with_trust(super::trust(global)?)
        .with_sql(sql_options(global))
        .with_schema(&schema)
        .with_limits(hsm_host::Limits {
            timeout: global.timeout,
            max_memory: global.max_memory,
        })
        .with_cache(cache_dir, global.cache_max as u64)
        .with_compiler(global.compiler)
        .with_lock_wait(Duration::from_secs(global.lock_timeout))
        .with_dump(match (global.backup, global.no_backup) {
            (Some(BackupMethod::PgDump), false) => Some(dump_plan(global)),
            _ => None,
        }))
}

fn not_yet(what: &str) -> anyhow::Error {
    UsageError(format!(
        "{what} is not available for a PostgreSQL database yet (status, up, down, their dry \
         runs, adopt, baseline, repair, backup, pg init and pg doctor are; see \
         docs/postgresql.md)"
    ))
    .into()
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Redo {} => "redo",
        Command::Restore { .. } => {
            "restore (a dump hsm-host took is restored with pg_restore --clean --if-exists \
             --single-transaction --use-set-session-authorization --dbname URL FILE; see \
             docs/postgresql.md)"
        }
        Command::Export { .. } => "export",
        Command::Gc {} => "gc",
        Command::Test { .. } => "test",
        _ => "this command",
    }
}

fn dumped_to(dumped: &Dumped, as_json: bool, out: &mut impl Write) -> Result<()> {
    if as_json {
        let removed: Vec<_> = dumped
            .removed
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        serde_json::to_writer_pretty(
            &mut *out,
            &serde_json::json!({ "backup": dumped.path, "removed": removed }),
        )?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "Backup taken: {}", dumped.path.display())?;
    writeln!(
        out,
        "Restore it with: pg_restore --clean --if-exists --single-transaction \
         --use-set-session-authorization --dbname URL {}",
        dumped.path.display()
    )?;
    writeln!(
        out,
        "(--use-set-session-authorization loads each table as its owner: without it, a \
         migration's CHECK constraints, domains and generated columns run as the restoring \
         superuser)"
    )?;
    Ok(())
}

fn initialized(made: &InitReport, as_json: bool, out: &mut impl Write) -> Result<()> {
    if as_json {
        serde_json::to_writer_pretty(&mut *out, made)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "Made the tracking schema {} in {} (owned by {}).",
        made.schema, made.database, made.owner_role
    )?;
    writeln!(
        out,
        "Migrations run as {}, acting as {} (the owner of the application's tables).",
        made.migrator_role, made.app_role
    )?;
    writeln!(
        out,
        "Run up, down and status connected as {}: hsm-host --database postgresql://{}@HOST/{} up",
        made.host_role, made.host_role, made.database
    )?;
    Ok(())
}

fn examined(checkup: &Checkup, as_json: bool, out: &mut impl Write) -> Result<()> {
    if as_json {
        serde_json::to_writer_pretty(&mut *out, checkup)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "Migrations act as: {}", checkup.acts_as.join(", "))?;
    for refusal in &checkup.refusals {
        writeln!(out, "Refused: {refusal}")?;
    }
    for reach in &checkup.reachable {
        writeln!(out, "Reachable: {reach}")?;
    }
    if checkup.refusals.is_empty() {
        writeln!(out, "The migrator role is a boundary.")?;
    }
    Ok(())
}
