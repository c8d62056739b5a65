//! `hsm-host fleet status|up|down`: a line per target as it finishes (JSON with `--json`),
//! then a summary; exit 1 when any target failed or was not started.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;

use anyhow::Result;
use hsm_host::fleet::{self, FleetOptions, OnError, Outcome, TargetOutcome};
use hsm_host::{Direction, Project};
use serde_json::json;

use super::args::{FleetAction, FleetArgs, Global, OnErrorArg};
use super::{Reported, sink};

/// Runs `action` for the set `project` names.
pub(super) fn run(project: &Project, global: &Global, action: &FleetAction) -> Result<()> {
    match action {
        FleetAction::Status { fleet } => status(project, global, fleet),
        FleetAction::Up { target, fleet } => {
            migrate(project, global, fleet, Direction::Up, *target)
        }
        FleetAction::Down { target, fleet } => {
            migrate(project, global, fleet, Direction::Down, *target)
        }
    }
}

/// One JSON document on a line of its own, written raw (JSON escapes its own strings; the
/// line writer would turn a `\u{202e}` into text that is not JSON, and cut long lines).
fn json_line(out: &mut impl Write, value: &serde_json::Value) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

fn options(args: &FleetArgs) -> FleetOptions {
    FleetOptions {
        parallel: usize::from(args.parallel),
        on_error: match args.on_error {
            OnErrorArg::Stop => OnError::Stop,
            OnErrorArg::Continue => OnError::Continue,
        },
        canary: args.canary,
    }
}

fn migrate(
    project: &Project,
    global: &Global,
    args: &FleetArgs,
    direction: Direction,
    version: Option<u64>,
) -> Result<()> {
    let targets = fleet::read_targets(&args.targets)?;
    let out = Mutex::new(sink::SafeOut::new(std::io::stdout()));
    let as_json = global.json;
    let on_done = |done: TargetOutcome| {
        let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = match as_json {
            true => json_line(&mut *out, &target_json(&done)),
            false => writeln!(out, "{}", target_line(&done)),
        };
        let _ = out.flush();
    };
    let server = |url: &str| super::server::server_project(global, url);
    let summary = fleet::run(
        project,
        &server,
        &targets,
        direction,
        version,
        options(args),
        &on_done,
    )?;
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
        Outcome::Failed(error) => json!({
            "target": done.target,
            "status": "failed",
            "duration_ms": duration_ms,
            "error": { "message": error.to_string(), "kind": error.kind() },
        }),
        Outcome::NotStarted => json!({ "target": done.target, "status": "not_started" }),
    }
}

fn target_line(done: &TargetOutcome) -> String {
    let target = &done.target;
    match &done.outcome {
        Outcome::Done(run) => format!(
            "done         {target}: {} -> {} ({} migration(s), {} ms)",
            run.from,
            run.to,
            run.steps.len(),
            done.duration.as_millis()
        ),
        Outcome::Failed(error) => format!("FAILED       {target}: {error}"),
        Outcome::NotStarted => format!("not started  {target}"),
    }
}

/// Each target's version and what needs attention, then the targets grouped by version.
fn status(project: &Project, global: &Global, args: &FleetArgs) -> Result<()> {
    let targets = fleet::read_targets(&args.targets)?;
    let mut out = sink::SafeOut::new(std::io::stdout().lock());
    let mut by_version: BTreeMap<u64, usize> = BTreeMap::new();
    let mut newest = 0;
    let mut failed = 0;
    let mut lines = Vec::new();
    for target in &targets {
        let read = match target
            .to_str()
            .filter(|t| hsm_host::server::is_server_url(t))
        {
            Some(url) => super::server::server_project(global, url).and_then(|p| p.status()),
            None => project.clone().with_database(target).status(),
        };
        match read {
            Ok(status) => {
                *by_version.entry(status.current_version).or_default() += 1;
                // The set's newest migration: a target ahead of the set does not count.
                newest = newest.max(
                    status
                        .pending
                        .iter()
                        .map(|p| p.version)
                        .chain(
                            status
                                .applied
                                .iter()
                                .map(|row| row.version)
                                .filter(|v| !status.missing_components.contains(v)),
                        )
                        .max()
                        .unwrap_or(0),
                );
                lines.push((fleet::shown(target), Ok(status)));
            }
            Err(error) => {
                failed += 1;
                lines.push((fleet::shown(target), Err(error)));
            }
        }
    }
    // The verdict does not depend on the report reaching a reader (`| head` closes it).
    let printed = (|| -> std::io::Result<()> {
        for (target, status) in &lines {
            match (status, global.json) {
                (Ok(status), true) => json_line(
                    &mut out,
                    &json!({
                        "target": target,
                        "exists": status.exists,
                        "current_version": status.current_version,
                        "pending": status.pending.len(),
                        "behind": status.current_version < newest,
                        "changed_components": status.changed_components,
                        "missing_components": status.missing_components,
                        "interrupted": status.interrupted,
                    }),
                )?,
                (Ok(status), false) => {
                    let mut notes = Vec::new();
                    if status.current_version < newest {
                        notes.push(format!("behind: {} pending", status.pending.len()));
                    }
                    if !status.changed_components.is_empty() {
                        notes.push(format!("changed: {:?}", status.changed_components));
                    }
                    if !status.interrupted.is_empty() {
                        notes.push(format!("interrupted: {:?}", status.interrupted));
                    }
                    if !status.exists {
                        notes.push("no database yet".into());
                    }
                    writeln!(
                        out,
                        "version {:<6} {}{}",
                        status.current_version,
                        target,
                        match notes.is_empty() {
                            true => String::new(),
                            false => format!("  ({})", notes.join("; ")),
                        }
                    )?;
                }
                (Err(error), true) => json_line(
                    &mut out,
                    &json!({
                        "target": target,
                        "status": "failed",
                        "error": { "message": error.to_string(), "kind": error.kind() },
                    }),
                )?,
                (Err(error), false) => writeln!(out, "FAILED         {target}: {error}")?,
            }
        }
        let groups: Vec<serde_json::Value> = by_version
            .iter()
            .rev()
            .map(|(version, count)| json!({ "version": version, "targets": count }))
            .collect();
        match global.json {
            true => json_line(
                &mut out,
                &json!({
                    "shape_version": 2,
                    "summary": { "targets": targets.len(), "newest": newest, "by_version": groups, "failed": failed }
                }),
            )?,
            false => {
                let shown: Vec<String> = by_version
                    .iter()
                    .rev()
                    .map(|(version, count)| format!("{count} at version {version}"))
                    .collect();
                writeln!(
                    out,
                    "Fleet: {} target(s): {}{} (newest migration: {newest}).",
                    targets.len(),
                    shown.join(", "),
                    match failed {
                        0 => String::new(),
                        n => format!(", {n} unreadable"),
                    }
                )?;
            }
        }
        out.flush()
    })();
    drop(printed);
    if failed > 0 {
        return Err(Reported(format!("{failed} target(s) could not be read")).into());
    }
    Ok(())
}
