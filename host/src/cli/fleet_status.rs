//! `hsm-host fleet status`: each target's version and what needs attention (behind, changed,
//! interrupted), a line as each is read, then the targets grouped by version.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use hsm_host::fleet;
use hsm_host::{Project, Status};
use serde_json::json;

use super::args::Global;
use super::fleet::json_line;
use super::{Reported, sink};

/// Reads each target's status in turn and reports it at once: only the counts by version are
/// kept.
pub(super) fn status(project: &Project, global: &Global, targets: &[PathBuf]) -> Result<()> {
    let mut out = sink::SafeOut::new(std::io::stdout().lock());
    let mut by_version: BTreeMap<u64, usize> = BTreeMap::new();
    let mut newest = None;
    let mut failed = 0;
    // The verdict does not depend on the report reaching a reader (`| head` closes it).
    let mut printing = Ok(());
    for target in targets {
        let shown = fleet::shown(target);
        // What reading it logs (an interrupted run found) names the target.
        let span = tracing::info_span!("target", target = %shown);
        let _entered = span.enter();
        let read = match target
            .to_str()
            .filter(|t| hsm_host::server::is_server_url(t))
        {
            Some(url) => super::server::server_project(global, url).and_then(|p| p.status()),
            None => project.clone().with_database(target).status(),
        };
        let line = match read {
            Ok(status) => {
                *by_version.entry(status.current_version).or_default() += 1;
                // The set is the same for every target: its newest migration, seen once.
                newest.get_or_insert_with(|| newest_in_set(&status));
                line_for(&shown, &status, global.json)
            }
            Err(error) => {
                failed += 1;
                match global.json {
                    true => Line::Json(json!({
                        "target": shown,
                        "status": "failed",
                        "error": { "message": error.to_string(), "kind": error.kind() },
                    })),
                    false => Line::Text(format!("FAILED         {shown}: {error}")),
                }
            }
        };
        if printing.is_ok() {
            printing = match line {
                Line::Json(value) => json_line(&mut out, &value),
                Line::Text(text) => writeln!(out, "{text}"),
            };
        }
    }
    if printing.is_ok() {
        let _ = summary(
            &mut out,
            global.json,
            targets.len(),
            &by_version,
            newest,
            failed,
        );
    }
    if failed > 0 {
        return Err(Reported(format!("{failed} target(s) could not be read")).into());
    }
    Ok(())
}

enum Line {
    Json(serde_json::Value),
    Text(String),
}

/// The set's newest migration, as one target's status sees it: a target ahead of the set
/// (versions the set lacks) does not count.
fn newest_in_set(status: &Status) -> u64 {
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
        .unwrap_or(0)
}

fn line_for(target: &str, status: &Status, as_json: bool) -> Line {
    // Behind: anything pending, a version below the newest one too (it blocks `up`).
    let behind = !status.pending.is_empty();
    if as_json {
        return Line::Json(json!({
            "target": target,
            "exists": status.exists,
            "current_version": status.current_version,
            "pending": status.pending.len(),
            "behind": behind,
            "changed_components": status.changed_components,
            "missing_components": status.missing_components,
            "interrupted": status.interrupted,
        }));
    }
    let mut notes = Vec::new();
    if behind {
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
    Line::Text(format!(
        "version {:<6} {target}{}",
        status.current_version,
        match notes.is_empty() {
            true => String::new(),
            false => format!("  ({})", notes.join("; ")),
        }
    ))
}

fn summary(
    out: &mut impl Write,
    as_json: bool,
    targets: usize,
    by_version: &BTreeMap<u64, usize>,
    newest: Option<u64>,
    failed: usize,
) -> std::io::Result<()> {
    if as_json {
        let groups: Vec<serde_json::Value> = by_version
            .iter()
            .rev()
            .map(|(version, count)| json!({ "version": version, "targets": count }))
            .collect();
        return json_line(
            out,
            &json!({
                "shape_version": 2,
                "summary": {
                    "targets": targets,
                    "newest": newest.unwrap_or(0),
                    "by_version": groups,
                    "failed": failed,
                }
            }),
        );
    }
    let mut parts: Vec<String> = by_version
        .iter()
        .rev()
        .map(|(version, count)| format!("{count} at version {version}"))
        .collect();
    if failed > 0 {
        parts.push(format!("{failed} unreadable"));
    }
    let newest = match newest {
        Some(newest) => format!(" (newest migration: {newest})"),
        None => String::new(),
    };
    writeln!(
        out,
        "Fleet: {targets} target(s): {}{newest}.",
        parts.join(", ")
    )?;
    out.flush()
}
