//! `hsm-host fleet status|up|down`: a row of a table per target as it finishes (a JSON line
//! with `--json`; on a terminal, under a progress bar), then a summary; exit 1 when any target
//! failed or was not started.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;
use hsm_host::fleet::{self, FleetOptions, OnError, Outcome, TargetOutcome};
use hsm_host::{Direction, Project};
use serde_json::json;

use super::args::{ConfiguredTargets, FleetAction, FleetPace, FleetTargets, Global, OnErrorArg};
use super::{Reported, UsageError, sink};

/// Runs `action` for the set `project` names.
pub(super) fn run(project: &Project, global: &Global, action: &FleetAction) -> Result<()> {
    match action {
        FleetAction::Status { targets: args } => {
            super::fleet_status::status(project, global, &targets(global, args)?)
        }
        FleetAction::Up {
            target,
            targets,
            pace,
        } => migrate(project, global, targets, pace, Direction::Up, *target),
        FleetAction::Down {
            target,
            targets,
            pace,
        } => migrate(project, global, targets, pace, Direction::Down, *target),
    }
}

/// The targets: `--targets FILE`, else `targets` in the settings file's `[fleet]`.
fn targets(global: &Global, args: &FleetTargets) -> Result<Vec<PathBuf>> {
    if let Some(file) = &args.targets {
        return Ok(fleet::read_targets(file)?);
    }
    match &global.fleet.targets {
        Some(ConfiguredTargets::File(file)) => Ok(fleet::read_targets(file)?),
        Some(ConfiguredTargets::List {
            entries,
            base,
            origin,
        }) => Ok(fleet::from_lines(
            entries.iter().map(String::as_str),
            base,
            origin,
            "entry",
        )?),
        None => Err(UsageError(
            "which databases? Give --targets FILE, or `targets` in the [fleet] table of the \
             settings file (hsm.toml)"
                .into(),
        )
        .into()),
    }
}

/// One JSON document on a line of its own, written raw (JSON escapes its own strings; the
/// line writer would turn a `\u{202e}` into text that is not JSON, and cut long lines).
pub(super) fn json_line(out: &mut impl Write, value: &serde_json::Value) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

/// The command line's pace, else the settings file's, else the defaults.
fn options(global: &Global, pace: &FleetPace) -> FleetOptions {
    let config = &global.fleet;
    FleetOptions {
        parallel: usize::from(pace.parallel.or(config.parallel).unwrap_or(1)),
        on_error: match pace.on_error.or(config.on_error) {
            Some(OnErrorArg::Continue) => OnError::Continue,
            Some(OnErrorArg::Stop) | None => OnError::Stop,
        },
        canary: pace.canary.or(config.canary).unwrap_or(0),
    }
}

fn migrate(
    project: &Project,
    global: &Global,
    targets_args: &FleetTargets,
    pace: &FleetPace,
    direction: Direction,
    version: Option<u64>,
) -> Result<()> {
    let targets = targets(global, targets_args)?;
    let as_json = global.json;
    let table = Table::for_targets(&targets);
    let out = Mutex::new(sink::SafeOut::new(std::io::stdout()));
    // The header comes with the first row: a set that fails to load prints no table.
    let headed = std::sync::Once::new();
    // A bar for a person at a terminal, rows printed above it as targets finish.
    let bar = (!as_json && std::io::stderr().is_terminal())
        .then(|| super::bar::FleetBar::stderr(direction.as_str(), targets.len() as u64));
    let failures = AtomicUsize::new(0);
    let on_done = |done: TargetOutcome| {
        let failed = matches!(done.outcome, Outcome::Failed(_));
        let failures =
            failures.fetch_add(usize::from(failed), Ordering::Relaxed) + usize::from(failed);
        let write = || {
            let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
            if !as_json {
                headed.call_once(|| drop(writeln!(out, "{}", table.header())));
            }
            let _ = match as_json {
                true => json_line(&mut *out, &target_json(&done)),
                false => writeln!(out, "{}", table.row(&done)),
            };
            let _ = out.flush();
        };
        match &bar {
            Some(bar) => bar.finished(failures, write),
            None => write(),
        }
    };
    let server = |url: &str| super::server::server_project(global, url);
    let summary = fleet::run(
        project,
        &server,
        &targets,
        direction,
        version,
        options(global, pace),
        &on_done,
    );
    drop(bar);
    let summary = summary?;
    let mut out = out.into_inner().unwrap_or_else(|p| p.into_inner());
    // The verdict does not depend on the summary reaching a reader (`| head` closes it).
    let _ = match as_json {
        true => json_line(&mut out, &json!({ "shape_version": 2, "summary": summary })),
        false => writeln!(
            out,
            "Fleet: {} target(s): {} done, {} failed, {} not started.",
            summary.targets, summary.succeeded, summary.failed, summary.not_started
        ),
    };
    let _ = out.flush();
    if summary.failed + summary.not_started > 0 {
        return Err(Reported(format!(
            "{} of {} target(s) failed and {} did not start",
            summary.failed, summary.targets, summary.not_started
        ))
        .into());
    }
    Ok(())
}

/// A target's JSON line. A failed target's `from` and `to` are null (its run did not
/// finish); `applied` lists what it did before failing, which stays done.
fn target_json(done: &TargetOutcome) -> serde_json::Value {
    let duration_ms = done.duration.as_millis() as u64;
    match &done.outcome {
        Outcome::Done(run) => json!({
            "target": done.target,
            "status": "done",
            "from": run.from,
            "to": run.to,
            "applied": run.steps.iter().map(|s| s.version).collect::<Vec<_>>(),
            "duration_ms": duration_ms,
            "backup": run.backup,
        }),
        Outcome::Failed(error) => {
            let mut body = json!({ "message": error.to_string() });
            super::report::add_library_error(&mut body, error);
            json!({
                "target": done.target,
                "status": "failed",
                "from": null,
                "to": null,
                "applied": completed(error),
                "duration_ms": duration_ms,
                "backup": taken(error),
                "error": body,
            })
        }
        Outcome::NotStarted => json!({
            "target": done.target,
            "status": "not_started",
            "from": null,
            "to": null,
            "applied": [],
            "duration_ms": 0,
            "backup": null,
            "error": null,
        }),
    }
}

/// What a failed run did before it failed (and which stays done).
fn completed(error: &hsm_host::Error) -> &[u64] {
    match error {
        hsm_host::Error::MigrationFailed { completed, .. }
        | hsm_host::Error::DamagedAfterRun { completed, .. } => completed,
        _ => &[],
    }
}

/// The backup a failed run took before its first step: the way back.
fn taken(error: &hsm_host::Error) -> Option<&std::path::Path> {
    match error {
        hsm_host::Error::MigrationFailed { backup, .. }
        | hsm_host::Error::DamagedAfterRun { backup, .. } => backup.as_deref(),
        _ => None,
    }
}

/// The text report's columns: the target column as wide as the longest name (up to a point),
/// known before the first row since the targets are.
struct Table {
    width: usize,
}

impl Table {
    fn for_targets(targets: &[PathBuf]) -> Self {
        let widest = targets
            .iter()
            // As printed: a control character shows as an escape, wider than itself.
            .map(|t| hsm_host::neutralize(&fleet::shown(t), 200).chars().count())
            .max()
            .unwrap_or(0);
        Self {
            width: widest.clamp("TARGET".len(), 60),
        }
    }

    fn header(&self) -> String {
        format!(
            "{:<w$}  {:<11}  {:>5}  {:>8}  VERSION",
            "TARGET",
            "STATUS",
            "STEPS",
            "TIME",
            w = self.width
        )
    }

    /// The version last: timestamp versions (`20240101120000 -> 20240301090000`) are wide.
    fn row(&self, done: &TargetOutcome) -> String {
        let ms = |d: std::time::Duration| format!("{} ms", d.as_millis());
        let (status, steps, time, versions) = match &done.outcome {
            Outcome::Done(run) => (
                "done",
                run.steps.len().to_string(),
                ms(done.duration),
                format!("{} -> {}", run.from, run.to),
            ),
            Outcome::Failed(error) => (
                "FAILED",
                completed(error).len().to_string(),
                ms(done.duration),
                format!("-  {error}"),
            ),
            Outcome::NotStarted => ("not started", "-".into(), "-".into(), "-".into()),
        };
        format!(
            "{:<w$}  {status:<11}  {steps:>5}  {time:>8}  {versions}",
            hsm_host::neutralize(&done.target, 200),
            w = self.width
        )
    }
}
