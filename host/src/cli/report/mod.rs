//! What the subcommands print on stdout: a short human report, or JSON with `--json`.

use std::io::Write;

use anyhow::{Context, Result};
use std::path::Path;

use hsm_host::backup::BackupInfo;
use hsm_host::error::human_bytes;
use hsm_host::migrator::{DryRunReport, RunReport, StepReport};
use hsm_host::restore::RestoreReport;
use hsm_host::{Direction, Status};
use serde::Serialize;

mod authoring;
pub use authoring::*;

/// The version of the `--json` documents' shapes (README, "JSON output"): within it keys are
/// only ever added.
pub const JSON_SHAPE_VERSION: u32 = 2;

/// Writes one `--json` document: always an object, carrying `shape_version`.
fn json(value: &impl Serialize, out: &mut impl Write) -> Result<()> {
    let mut document = serde_json::to_value(value).context("cannot write JSON")?;
    let object = document
        .as_object_mut()
        .context("a --json document is an object")?;
    object.insert("shape_version".into(), JSON_SHAPE_VERSION.into());
    serde_json::to_writer_pretty(&mut *out, &document).context("cannot write JSON")?;
    writeln!(out).context("cannot write to stdout")
}

pub fn status(status: &Status, as_json: bool, out: &mut impl Write) -> Result<()> {
    if as_json {
        return json(status, out);
    }
    let database = status
        .database
        .as_ref()
        .map_or_else(|| ":memory:".to_owned(), |p| p.display().to_string());
    writeln!(out, "Database:        {database}")?;
    if !status.exists {
        writeln!(
            out,
            "                 (does not exist yet: `hsm-host up` creates it)"
        )?;
    }
    writeln!(out, "Current version: {}", status.current_version)?;
    if status.server {
        writeln!(
            out,
            "                 (a server: each migration's transaction stands in for a backup; \
             see docs/postgresql.md)"
        )?;
    }
    if status.exists && !status.server {
        let space = &status.storage;
        let bytes = hsm_host::error::human_bytes;
        let mut line = format!(
            "Space:           database {} (stored components {}), backups {} ({})",
            bytes(space.database),
            bytes(space.stored_components),
            bytes(space.backups),
            status.backups.len()
        );
        if let Some(cache) = space.compile_cache {
            line.push_str(&format!(", compile cache {}", bytes(cache)));
        }
        writeln!(out, "{line}")?;
    }

    for version in &status.interrupted {
        writeln!(
            out,
            "WARNING: migration {version} was interrupted (the process ended during it); it was rolled back and is now recorded as failed"
        )?;
    }

    writeln!(out)?;
    writeln!(out, "Applied ({}):", status.applied.len())?;
    for row in &status.applied {
        let missing = if status.missing_components.contains(&row.version) {
            // A file not read yet may be this migration's, changed: say where to look.
            if status.unread_components.is_empty() {
                "  [component file missing]"
            } else {
                "  [no file read for it: changed or missing, see Not read yet]"
            }
        } else if status.changed_components.contains(&row.version) {
            "  [component file CHANGED since it was applied]"
        } else {
            ""
        };
        writeln!(
            out,
            "  {:>4}  {:<32} {}{missing}",
            row.version, row.name, row.applied_at
        )?;
    }

    writeln!(out)?;
    writeln!(out, "Pending ({}):", status.pending.len())?;
    for pending in &status.pending {
        let mut notes = Vec::new();
        if pending.rolled_back {
            notes.push("rolled back");
        }
        if !pending.reversible {
            notes.push("irreversible");
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("  [{}]", notes.join(", "))
        };
        writeln!(out, "  {:>4}  {:<32}{notes}", pending.version, pending.name)?;
    }
    if !status.unread_components.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "Not read yet ({}): files neither the compile cache nor an applied migration \
             knows (new, changed, or not components); `hsm-host up --dry-run` reads them:",
            status.unread_components.len()
        )?;
        for file in &status.unread_components {
            writeln!(out, "        {}", file.display())?;
        }
    }

    writeln!(out)?;
    writeln!(out, "Recent history:")?;
    if status.history.is_empty() {
        writeln!(out, "  (none)")?;
    }
    for row in &status.history {
        let error = row
            .error_message
            .as_deref()
            .map(|e| format!("  {e}"))
            .unwrap_or_default();
        writeln!(
            out,
            "  {}  {:>4} {:<4} {:<7}{error}",
            row.started_at, row.version, row.direction, row.status
        )?;
    }
    writeln!(out)?;
    if status.server {
        return Ok(());
    }
    write_backups(&status.backups, out)
}

fn write_backups(backups: &[BackupInfo], out: &mut impl Write) -> Result<()> {
    writeln!(out, "Backups ({}):", backups.len())?;
    for backup in backups {
        let version = backup
            .schema_version
            .map_or_else(|| "unreadable".to_owned(), |v| format!("version {v}"));
        writeln!(
            out,
            "  {}  {:>10}  {}  {}",
            backup.taken_at,
            human_bytes(backup.size),
            version,
            backup.path.display()
        )?;
    }
    Ok(())
}

pub fn backups(
    dir: &Path,
    backups: &[BackupInfo],
    as_json: bool,
    out: &mut impl Write,
) -> Result<()> {
    if as_json {
        return json(&serde_json::json!({ "backups": backups }), out);
    }
    writeln!(out, "Backup directory: {}", dir.display())?;
    write_backups(backups, out)?;
    if let Some(newest) = backups.first() {
        writeln!(out)?;
        writeln!(
            out,
            "Restore one with: hsm-host restore {}",
            newest.path.display()
        )?;
    }
    Ok(())
}

pub fn backup_taken(path: &Path, as_json: bool, out: &mut impl Write) -> Result<()> {
    if as_json {
        return json(&serde_json::json!({ "backup": path }), out);
    }
    writeln!(out, "Backup taken: {}", path.display())?;
    Ok(())
}

pub fn restored(report: &RestoreReport, as_json: bool, out: &mut impl Write) -> Result<()> {
    if as_json {
        return json(report, out);
    }
    writeln!(
        out,
        "Restored {} from {}.",
        report.database.display(),
        report.restored_from.display()
    )?;
    if let Some(previous) = &report.previous {
        writeln!(
            out,
            "The database as it was is in {} (restore it to undo).",
            previous.display()
        )?;
    }
    writeln!(
        out,
        "Schema version now in force: {}.",
        report.schema_version
    )?;
    Ok(())
}

pub fn repaired(versions: &[u64], as_json: bool, out: &mut impl Write) -> Result<()> {
    if as_json {
        return json(&serde_json::json!({ "repaired": versions }), out);
    }
    if versions.is_empty() {
        writeln!(
            out,
            "Nothing to repair: every applied migration matches its file."
        )?;
    } else {
        let list: Vec<String> = versions.iter().map(u64::to_string).collect();
        writeln!(
            out,
            "Accepted the current component files of migrations {}.",
            list.join(", ")
        )?;
    }
    Ok(())
}

pub fn adopted(report: &hsm_host::AdoptReport, as_json: bool, out: &mut impl Write) -> Result<()> {
    if as_json {
        return json(report, out);
    }
    let list = |versions: &[u64]| {
        versions
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let from = report
        .tool
        .map_or(String::new(), |tool| format!(" (applied by {tool})"));
    let verb = if report.dry_run {
        "Would record"
    } else {
        "Recorded"
    };
    if report.recorded.is_empty() {
        writeln!(
            out,
            "Nothing to record{from}: hsm-host already tracks every one."
        )?;
    } else {
        writeln!(
            out,
            "{verb} {} migration(s) as applied without running them{from}: {}",
            report.recorded.len(),
            list(&report.recorded)
        )?;
    }
    if !report.already.is_empty() {
        writeln!(out, "Already tracked: {}", list(&report.already))?;
    }
    Ok(())
}

pub fn packed(files: &[std::path::PathBuf], as_json: bool, out: &mut impl Write) -> Result<()> {
    if as_json {
        return json(&serde_json::json!({ "packed": files }), out);
    }
    let functions = |f: &std::path::PathBuf| {
        f.file_name()
            .is_some_and(|n| n == hsm_host::runtime::SQL_FUNCTIONS_FILE)
    };
    for file in files {
        match functions(file) {
            true => writeln!(out, "copied {} (the set's SQL functions)", file.display())?,
            false => writeln!(out, "packed {}", file.display())?,
        }
    }
    let migrations = files.iter().filter(|f| !functions(f)).count();
    writeln!(out, "{migrations} SQL migrations packed.")?;
    Ok(())
}

/// `hsm-host redo`: the down run, then the up run (`{down, up}` under `--json`).
pub fn redone(down: &RunReport, up: &RunReport, as_json: bool, out: &mut impl Write) -> Result<()> {
    if as_json {
        return json(&serde_json::json!({ "down": down, "up": up }), out);
    }
    run(down, false, out)?;
    run(up, false, out)
}

pub fn run(report: &RunReport, as_json: bool, out: &mut impl Write) -> Result<()> {
    if as_json {
        return json(report, out);
    }
    for version in &report.interrupted {
        writeln!(
            out,
            "Note: an earlier attempt at migration {version} was interrupted; it had been rolled back and is now recorded as failed."
        )?;
    }
    if report.steps.is_empty() {
        writeln!(
            out,
            "Nothing to do: the database is at version {}.",
            report.from
        )?;
        return Ok(());
    }
    if let Some(backup) = &report.backup {
        writeln!(out, "Backup: {}", backup.display())?;
    }
    let verb = match report.direction {
        Direction::Up => "Applied",
        Direction::Down => "Rolled back",
    };
    for step in &report.steps {
        writeln!(out, "{verb} {}", describe(step))?;
    }
    writeln!(out, "Version {} -> {}.", report.from, report.to)?;
    Ok(())
}

pub fn dry_run(report: &DryRunReport, as_json: bool, out: &mut impl Write) -> Result<()> {
    if as_json {
        return json(report, out);
    }
    if report.steps.is_empty() {
        let nothing = match report.direction {
            Direction::Up => "nothing pending",
            Direction::Down => "nothing to roll back",
        };
        writeln!(out, "Dry run: {nothing} at version {}.", report.from)?;
        return Ok(());
    }
    writeln!(
        out,
        "Dry run: every step below ran and was rolled back; the database is unchanged."
    )?;
    let verb = match report.direction {
        Direction::Up => "Would apply",
        Direction::Down => "Would roll back",
    };
    for step in &report.steps {
        writeln!(out, "{verb} {}", describe(step))?;
    }
    writeln!(out, "Version would go {} -> {}.", report.from, report.to)?;
    Ok(())
}

fn describe(step: &StepReport) -> String {
    let mut parts = Vec::new();
    for (verb, objects) in [
        ("created", &step.schema.created),
        ("dropped", &step.schema.dropped),
        ("altered", &step.schema.altered),
    ] {
        if !objects.is_empty() {
            parts.push(format!("{verb} {}", objects.join(", ")));
        }
    }
    if step.rows_dropped > 0 {
        parts.push(format!(
            "{} rows removed with the dropped tables",
            step.rows_dropped
        ));
    }
    parts.push(format!("{} rows changed", step.rows_changed));
    format!(
        "{:>4} {} ({} ms): {}",
        step.version,
        step.name,
        step.duration_ms,
        parts.join("; ")
    )
}

pub fn collected(
    report: &hsm_host::migrator::GcReport,
    as_json: bool,
    out: &mut impl Write,
) -> Result<()> {
    if as_json {
        return json(report, out);
    }
    writeln!(
        out,
        "{} unused stored component(s) dropped; the database went from {} to {}.",
        report.components_dropped,
        hsm_host::error::human_bytes(report.bytes_before),
        hsm_host::error::human_bytes(report.bytes_after)
    )?;
    if let Some(cache) = &report.compile_cache {
        writeln!(
            out,
            "Compile cache: {} ({} least recently used entries removed to stay under --cache-max).",
            hsm_host::error::human_bytes(cache.bytes_after),
            cache.entries_removed
        )?;
    }
    Ok(())
}

/// An error and its causes on one line, each cause once: a message that already quotes its
/// cause (`cannot read …: No such file or directory`) does not get it again.
pub fn error_text(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// The error document of `--json`: pretty, as every document is, or on one line where the
/// output is JSON lines (a fleet's).
pub fn error(
    error: &anyhow::Error,
    exit_code: u8,
    one_line: bool,
    out: &mut impl Write,
) -> Result<()> {
    let mut body = serde_json::json!({
        "message": error_text(error),
        "exit_code": exit_code,
        "meaning": if exit_code == 2 { "usage" } else { "failure" },
        "kind": "error",
    });
    if let Some(library) = error.downcast_ref::<hsm_host::Error>() {
        add_library_error(&mut body, library);
    }
    let document = serde_json::json!({ "error": body });
    match one_line {
        false => json(&document, out),
        true => {
            let mut document = document;
            document["shape_version"] = JSON_SHAPE_VERSION.into();
            serde_json::to_writer(&mut *out, &document).context("cannot write JSON")?;
            writeln!(out).context("cannot write to stdout")
        }
    }
}

/// A library error's kind and, for a failed migration, which one and why, added to a JSON
/// error `body` (the single run's and each fleet target's).
pub fn add_library_error(body: &mut serde_json::Value, library: &hsm_host::Error) {
    body["kind"] = library.kind().into();
    if let hsm_host::Error::MigrationFailed {
        version,
        name,
        direction,
        cause,
        completed,
        sqlite_code,
        backup,
    } = library
    {
        body["backup"] = serde_json::json!(backup);
        body["sqlite_code"] = (*sqlite_code).into();
        body["version"] = (*version).into();
        body["name"] = name.as_str().into();
        body["direction"] = direction.as_str().into();
        body["cause"] = cause.as_str().into();
        body["completed"] = completed.clone().into();
    }
    if let hsm_host::Error::DamagedAfterRun {
        backup, completed, ..
    } = library
    {
        body["backup"] = serde_json::json!(backup);
        body["completed"] = completed.clone().into();
    }
}
