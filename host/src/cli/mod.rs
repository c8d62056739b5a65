//! The command line: arguments, logging, and one function per subcommand.
//!
//! Exit codes: 0 success, 1 a migration or check failed, 2 the command line or its targets
//! were wrong.

mod args;
mod bar;
mod config;
mod fleet;
mod fleet_args;
mod fleet_status;
mod logging;
mod report;
mod server;
mod signing;
mod signing_args;
mod sink;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, FromArgMatches};
use hsm_host::backup::BackupConfig;
use hsm_host::tracking::Tracking;
use hsm_host::{Limits, Project, Safety, restore};

use args::{Args, Command, Global, UpTarget};

/// Exit code of a usage error.
const USAGE: u8 = 2;

/// Runs the command line and returns the process's exit code.
pub fn main() -> ExitCode {
    let parsed = Args::command()
        .try_get_matches()
        .and_then(|matches| Args::from_arg_matches(&matches).map(|args| (args, matches)));
    let (mut args, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            // clap prints help and version to stdout with exit code 0, usage errors with 2.
            let _ = error.print();
            let code = error.exit_code() as u8;
            // A --json reader gets a usage error as JSON too (the command line did not parse,
            // so the flag is looked for as it was written).
            if code == USAGE && std::env::args_os().any(|arg| arg == "--json") {
                usage_error_as_json(anyhow::anyhow!(first_line(&error)));
            }
            return ExitCode::from(code);
        }
    };
    // The settings file fills what the command line and the environment left unset.
    if let Err(error) = config::apply(&mut args.global, &matches) {
        eprintln!("error: {error:#}");
        if args.global.json {
            usage_error_as_json(error.context("the settings file is wrong"));
        }
        return ExitCode::from(USAGE);
    }
    // A fleet's output is JSON lines (under --json), its log beside the migrations.
    let fleet = matches!(args.command, Command::Fleet { .. });
    // Completions and the manual page only print: no log file is made for them.
    let _log_guard =
        (!matches!(args.command, Command::Completions { .. } | Command::Man {})).then(|| {
            logging::init(
                args.global.verbose,
                &args.global.log_path(fleet),
                args.global.color(),
                fleet,
            )
        });
    // A hard stop (a migration SQLite kept past its deadline) ends the process from the
    // library: the log file is flushed first, and a --json reader still gets its error.
    let json = args.global.json;
    hsm_host::runtime::set_hard_stop_hook(std::sync::Arc::new(move |message: &str| {
        if json {
            let error = anyhow::anyhow!(message.to_owned());
            let _ = report::error(
                &error,
                1,
                fleet,
                &mut sink::SafeOut::new(std::io::stdout().lock()),
            );
        }
        logging::flush();
    }));
    // A bar only for a person at a terminal: never under --json, never into a pipe or the log.
    // (A fleet draws its own, of targets: its migrations' bars would take turns.)
    if !args.global.json && std::io::stderr().is_terminal() && !fleet {
        hsm_host::runtime::set_progress_sink(std::sync::Arc::new(bar::Bar::stderr()));
    }
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed stdout (`hsm-host status | head`) is the reader's choice, not a failure.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{}", report::error_text(&error));
            let usage = error.downcast_ref::<UsageError>().is_some()
                || error
                    .downcast_ref::<hsm_host::Error>()
                    .is_some_and(hsm_host::Error::is_usage);
            let code = if usage { USAGE } else { 1 };
            if args.global.json && error.downcast_ref::<Reported>().is_none() {
                // The reader of --json gets the error as JSON on stdout too (the log line
                // above still goes to stderr and the log file).
                let _ = report::error(
                    &error,
                    code,
                    fleet,
                    &mut sink::SafeOut::new(std::io::stdout().lock()),
                );
            }
            ExitCode::from(code)
        }
    }
}

/// Writes a usage error (exit code 2) as the `--json` error document on stdout.
fn usage_error_as_json(error: anyhow::Error) {
    let _ = report::error(
        &error,
        USAGE,
        false,
        &mut sink::SafeOut::new(std::io::stdout().lock()),
    );
}

/// The first line of clap's message, without its `error: ` prefix.
fn first_line(error: &clap::Error) -> String {
    let text = error.render().to_string();
    let line = text.lines().next().unwrap_or_default();
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}

/// The manual page: clap_mangen's sections, with the commands listed as `hsm-host status` …
/// rather than as references to `hsm-host-status(1)` pages that do not exist.
fn manual(out: &mut impl Write) -> std::io::Result<()> {
    let command = <Args as clap::CommandFactory>::command();
    let man = clap_mangen::Man::new(command.clone());
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    let roff = |text: &str| text.replace('\\', "\\e").replace('-', "\\-");
    writeln!(out, ".SH COMMANDS")?;
    for sub in command.get_subcommands() {
        writeln!(out, ".TP")?;
        writeln!(out, "\\fBhsm\\-host {}\\fR", roff(sub.get_name()))?;
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        writeln!(out, "{}", roff(&about))?;
    }
    writeln!(
        out,
        ".PP\nEach command's own options: \\fBhsm\\-host COMMAND \\-\\-help\\fR."
    )?;
    man.render_extra_section(out)?;
    man.render_version_section(out)
}

/// Whether the failure is stdout's reader gone (`| head`): a quiet end, not an error. JSON is
/// written through serde_json, whose error keeps the io error's kind.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    let broken = Some(std::io::ErrorKind::BrokenPipe);
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().map(|e| e.kind()) == broken
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(|e| e.io_error_kind())
                == broken
    })
}

/// A failure the command's own output already reports (under `--json` too): only the exit code
/// and the log line are left to say.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Reported(String);

/// A command line that is wrong in a way clap cannot see.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

fn run(args: &Args) -> Result<()> {
    let global = &args.global;
    if let Command::Declare {
        file,
        dialects,
        output,
    } = &args.command
    {
        let mut out = sink::SafeOut::new(std::io::stdout().lock());
        return declare(file, dialects, output.as_deref(), &mut out);
    }
    if let Command::Signing(command) = &args.command {
        let mut out = sink::SafeOut::new(std::io::stdout().lock());
        return signing::run(command, global.json, &mut out);
    }
    if let Command::Fleet { action } = &args.command {
        // Each target is its own database: --database is not one of them.
        let project = project(global)?;
        return fleet::run(&project, global, action);
    }
    if let Some(url) = global.server_url() {
        return server::run(args, url);
    }
    if global.backup.is_some() {
        return Err(UsageError(
            "--backup pg_dump is for a PostgreSQL --database URL; a SQLite database is backed \
             up by copying it, before every run (unless --no-backup)"
                .into(),
        )
        .into());
    }
    if let Command::Pg { .. } = &args.command {
        return Err(UsageError(
            "hsm-host pg takes a PostgreSQL server's --database URL (postgresql://…)".into(),
        )
        .into());
    }
    // Refused before anything is opened, whatever the command.
    let project = project(global)?;
    // One write for the whole report rather than one per line (flushed below, or when
    // dropped on an error, before the error is printed).
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
            Ok(())
        }
        Command::Up { target, dry_run } => {
            let (target, dry_run) = match target {
                Some(UpTarget::DryRun) => (None, true),
                Some(UpTarget::Version(version)) => (Some(*version), *dry_run),
                None => (None, *dry_run),
            };
            if dry_run {
                let report = with_loading_context(global, project.dry_run_up(target))?;
                report::dry_run(&report, global.json, &mut out)
            } else {
                let run = with_loading_context(global, project.up(target))?;
                report::run(&run, global.json, &mut out)
            }
        }
        Command::Down {
            target,
            dry_run: true,
        } => {
            let report = with_loading_context(global, project.dry_run_down(*target))?;
            report::dry_run(&report, global.json, &mut out)
        }
        Command::Down { target, .. } => {
            let run = with_loading_context(global, project.down(*target))?;
            report::run(&run, global.json, &mut out)
        }
        Command::Redo {} => {
            let (down, up) = with_loading_context(global, project.redo())?;
            report::redone(&down, &up, global.json, &mut out)
        }
        Command::Backup {} => {
            let path = project.backup()?;
            report::backup_taken(&path, global.json, &mut out)
        }
        Command::Export { version, output } => {
            let path = project.export(*version, output.as_deref())?;
            report::exported(&path, global.json, &mut out)
        }
        Command::Restore { path: None, .. } => {
            let backups = project.backups()?;
            report::backups(&project.backup_dir(), &backups, global.json, &mut out)
        }
        Command::Restore {
            path: Some(path),
            yes,
        } => restore(&project, global, path, *yes, &mut out),
        Command::Adopt { dry_run } => {
            let report = with_loading_context(global, project.adopt(*dry_run))?;
            report::adopted(&report, global.json, &mut out)
        }
        Command::Baseline { version, dry_run } => {
            let report = with_loading_context(global, project.baseline(*version, *dry_run))?;
            report::adopted(&report, global.json, &mut out)
        }
        Command::Pack {
            src,
            out: to,
            sign,
            dialects,
        } => {
            let to = to.as_ref().unwrap_or(&global.migrations);
            // A key that cannot sign is refused before anything is written.
            let key = sign
                .as_deref()
                .map(hsm_signing::read_secret_key)
                .transpose()?;
            let secret = key.as_ref().map(|(secret, _)| secret);
            let written =
                hsm_host::pack::pack_dir_signed(src, to, sql_options(global), dialects, secret)?;
            report::packed(&written, global.json, &mut out)?;
            if key.is_some() && !global.json {
                signing::packed_signed(&written, &mut out)?;
            }
            Ok(())
        }
        Command::Inspect { files } => {
            let found = files
                .iter()
                .map(|file| project.inspect(file))
                .collect::<hsm_host::Result<Vec<_>>>()?;
            report::inspected(&found, global.json, &mut out)?;
            match found.iter().filter(|i| !i.accepted).count() {
                0 => Ok(()),
                refused => Err(Reported(format!(
                    "{refused} of {} component(s) would be refused",
                    found.len()
                ))
                .into()),
            }
        }
        Command::Test { against, with } => {
            let report = with_loading_context(global, project.test_with(against.as_deref(), with))?;
            report::tested(&report, global.json, &mut out)?;
            if report.passed() {
                Ok(())
            } else {
                let failed = report
                    .cases
                    .iter()
                    .filter(|c| matches!(c.outcome, hsm_host::roundtrip::Outcome::Fail { .. }))
                    .count();
                Err(Reported(format!("{failed} migration(s) failed their round trip")).into())
            }
        }
        Command::Declare {
            file,
            dialects,
            output,
        } => declare(file, dialects, output.as_deref(), &mut out),
        Command::New {
            name,
            dir,
            sql,
            python,
            js,
        } => {
            let workspace = dir.clone().unwrap_or_else(|| PathBuf::from("."));
            // The versions already taken in the migrations directory (none if it is not there).
            let taken: Vec<u64> = if global.migrations.is_dir() {
                hsm_host::source::describe_dir(
                    &project.runtime()?,
                    &global.migrations,
                    sql_options(global),
                )?
                .iter()
                .map(|c| c.version())
                .collect()
            } else {
                Vec::new()
            };
            if *python || *js {
                let language = match python {
                    true => hsm_host::scaffold::Language::Python,
                    false => hsm_host::scaffold::Language::JavaScript,
                };
                let dir = dir.clone().unwrap_or_else(|| PathBuf::from("."));
                let (made, build) =
                    hsm_host::scaffold::module(&dir, name, &taken, language, &global.migrations)?;
                report::scaffolded_module(&made, &build, global.json, &mut out)?;
                return out.flush().context("cannot write to stdout");
            }
            let made = if *sql {
                // The layout the directory's newest SQL migration follows.
                let layout = match global.migrations.is_dir() {
                    true => hsm_host::pack::read_dir(&global.migrations, sql_options(global))?
                        .last()
                        .map(|migration| migration.layout)
                        .or(global.layout),
                    false => global.layout,
                };
                hsm_host::scaffold::sql_files(
                    &global.migrations,
                    name,
                    &taken,
                    layout,
                    chrono::Utc::now(),
                )?
            } else {
                hsm_host::scaffold::rust_crate(&workspace, name, &taken)?
            };
            let rust = (!*sql).then_some((workspace.as_path(), global.migrations.as_path()));
            report::scaffolded(&made, rust, global.json, &mut out)
        }
        Command::Completions { shell } => {
            let mut command = <Args as clap::CommandFactory>::command();
            // Generated text, nothing a migration chose: written as it is. Made in memory
            // first: clap_complete panics when its writer fails (a reader gone, `| head`).
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut command, "hsm-host", &mut script);
            std::io::stdout()
                .write_all(&script)
                .context("cannot write the completion script")
        }
        Command::Man {} => manual(&mut std::io::stdout()).context("cannot write the manual page"),
        Command::Repair {} => {
            let repaired = with_loading_context(global, project.repair())?;
            report::repaired(&repaired, global.json, &mut out)
        }
        Command::Gc {} => report::collected(&project.gc()?, global.json, &mut out),
        Command::Pg { .. } | Command::Fleet { .. } | Command::Signing(_) => {
            unreachable!("answered above")
        }
    }?;
    out.flush().context("cannot write to stdout")
}

/// How the migrations directory's SQL files are read (`--layout`, `--placeholder`).
fn sql_options(global: &Global) -> hsm_host::pack::SqlOptions {
    hsm_host::pack::SqlOptions {
        layout: global.layout,
        placeholders: global.placeholders.iter().cloned().collect(),
        // Refused on SQLite; the server's project allows it (see `ServerProject::with_sql`).
        no_transaction: false,
    }
}

/// The database, migrations and settings the command line names.
fn project(global: &Global) -> Result<Project> {
    let tracking =
        Tracking::with_prefix(&global.tracking_prefix).map_err(|e| UsageError(e.to_string()))?;
    let cache_dir = global.compile_cache_dir();
    let backups = BackupConfig {
        dir: global.backup_dir.clone(),
        keep: global.keep_backups,
        keep_for: global.keep_backups_for,
    };
    Ok(Project::new(&global.database, &global.migrations)
        .with_trust(trust(global)?)
        .with_layout(global.layout)
        .with_placeholders(sql_options(global).placeholders)
        .with_tracking(tracking)
        .with_limits(Limits {
            timeout: global.timeout,
            max_memory: global.max_memory,
        })
        .with_cache_dir(cache_dir)
        .with_cache_max(global.cache_max as u64)
        .with_compiler(global.compiler)
        .with_safety(Safety {
            backups: (!global.no_backup).then_some(backups),
            quick_check: global.quick,
            lock_timeout: Duration::from_secs(global.lock_timeout),
            single_transaction: global.single_transaction,
        }))
}

/// The trust file of `--require-signed`, read and checked.
fn trust(global: &Global) -> hsm_host::Result<Option<hsm_signing::Trust>> {
    global
        .require_signed
        .as_deref()
        .map(hsm_signing::Trust::read)
        .transpose()
}

/// Says which directory failed to load, and how to choose another, on errors of loading it.
fn with_loading_context<T>(global: &Global, result: hsm_host::Result<T>) -> Result<T> {
    use hsm_host::Error::{DuplicateVersion, InvalidComponent, ReadMigrations, SqlSet};
    result.map_err(|error| match error {
        // Only a directory that is not there is likely the wrong one.
        ReadMigrations { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            anyhow::Error::new(error).context(format!(
                "cannot load the migrations in {} (choose the directory with --migrations)",
                global.migrations.display()
            ))
        }
        ReadMigrations { .. }
        | InvalidComponent { .. }
        | DuplicateVersion { .. }
        | SqlSet { .. } => anyhow::Error::new(error).context(format!(
            "cannot load the migrations in {}",
            global.migrations.display()
        )),
        other => other.into(),
    })
}

fn restore(
    project: &Project,
    global: &Global,
    path: &Path,
    yes: bool,
    out: &mut impl Write,
) -> Result<()> {
    // Refuse a bad file before asking anything.
    restore::check_restorable(path)?;
    let database = &global.database;
    tracing::warn!(
        "restore OVERWRITES {} with {} (the current database is backed up first{})",
        database.display(),
        path.display(),
        if global.no_backup {
            ", except that --no-backup was given"
        } else {
            ""
        }
    );
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(UsageError(
                "restore overwrites the database: pass --yes to confirm when stdin is not a terminal"
                    .into(),
            )
            .into());
        }
        eprint!("Type 'yes' to overwrite {}: ", database.display());
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .context("cannot read the confirmation")?;
        if answer.trim() != "yes" {
            bail!("restore cancelled: nothing was changed");
        }
    }
    let report = project.restore(path)?;
    report::restored(&report, global.json, out)
}

/// `hsm-host declare`: no database involved.
fn declare(
    file: &Path,
    dialects: &[String],
    output: Option<&Path>,
    out: &mut impl Write,
) -> Result<()> {
    // A regular file, not followed through a link, at most a component's size (the review
    // pointed it at /dev/zero and a FIFO).
    let (bytes, mode) = hsm_store::files::open_regular(file, false)
        .and_then(|(handle, meta)| {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            hsm_store::files::read_capped(handle, &meta, hsm_store::files::MAX_COMPONENT_FILE)
                .map(|bytes| (bytes, mode))
        })
        .map_err(|reason| UsageError(format!("{}: {reason}", file.display())))?;
    // Declaring rewrites the component: its signatures would no longer verify (review).
    let signed = hsm_signing::signature_count(&bytes, None).unwrap_or(0) > 0
        || hsm_signing::detached_path(file).exists();
    if signed {
        return Err(UsageError(format!(
            "{} is signed, and declaring rewrites it so its signatures would no longer verify: \
             declare the unsigned component, then sign it",
            file.display()
        ))
        .into());
    }
    let (declared, names) = hsm_host::runtime::dialects::declare(&bytes, dialects)
        .map_err(|reason| UsageError(format!("{}: {reason}", file.display())))?;
    let target = output.unwrap_or(file);
    hsm_store::files::write_replacing(target, &declared, mode)
        .with_context(|| format!("cannot write {}", target.display()))?;
    writeln!(out, "{} declares: {}", target.display(), names.join(", "))?;
    out.flush()?;
    Ok(())
}
