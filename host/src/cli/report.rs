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
    if status.exists {
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
            "  [component file missing]"
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

/// `hsm-host inspect`: one block per file, or `{"components": [...]}`.
pub fn inspected(
    found: &[hsm_host::runtime::Inspection],
    as_json: bool,
    out: &mut impl Write,
) -> Result<()> {
    if as_json {
        return json(&serde_json::json!({ "components": found }), out);
    }
    for (i, item) in found.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{}", item.path.display())?;
        if let Some(m) = &item.metadata {
            writeln!(out, "  version      {}", m.version)?;
            writeln!(out, "  name         {}", m.name)?;
            writeln!(out, "  description  {}", m.description)?;
            writeln!(
                out,
                "  reversible   {}",
                if m.reversible { "yes" } else { "no" }
            )?;
        }
        if let (Some(contract), Some(world)) = (&item.contract, &item.world) {
            writeln!(out, "  contract     {contract} (world {world})")?;
        }
        if !item.imports.is_empty() {
            writeln!(out, "  imports      {}", item.imports.join(", "))?;
        }
        writeln!(out, "  size         {}", human_bytes(item.size))?;
        writeln!(out, "  sha256       {}", item.sha256)?;
        match &item.problem {
            None => writeln!(out, "  accepted     yes")?,
            Some(problem) => writeln!(out, "  accepted     no: {problem}")?,
        }
    }
    Ok(())
}

/// An error under `--json` (see [`JSON_SHAPE_VERSION`]):
/// `{"error": {"message", "exit_code", "meaning", "kind", ...}}`. `meaning` is `usage` (exit
/// code 2: the request was wrong, nothing changed) or `failure` (exit code 1). A failed
/// migration adds `version`, `name`, `direction`, `cause` and `completed` (the steps of the
/// run that stay done).
pub fn exported(path: &std::path::Path, as_json: bool, out: &mut impl Write) -> Result<()> {
    if as_json {
        return json(&serde_json::json!({ "exported": path }), out);
    }
    writeln!(out, "wrote {}", path.display())?;
    Ok(())
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

pub fn error(error: &anyhow::Error, exit_code: u8, out: &mut impl Write) -> Result<()> {
    let mut body = serde_json::json!({
        "message": error_text(error),
        "exit_code": exit_code,
        "meaning": if exit_code == 2 { "usage" } else { "failure" },
        "kind": "error",
    });
    if let Some(library) = error.downcast_ref::<hsm_host::Error>() {
        body["kind"] = library.kind().into();
        if let hsm_host::Error::MigrationFailed {
            version,
            name,
            direction,
            cause,
            completed,
            sqlite_code,
        } = library
        {
            body["sqlite_code"] = (*sqlite_code).into();
            body["version"] = (*version).into();
            body["name"] = name.as_str().into();
            body["direction"] = direction.as_str().into();
            body["cause"] = cause.as_str().into();
            body["completed"] = completed.clone().into();
        }
    }
    json(&serde_json::json!({ "error": body }), out)
}

/// `hsm-host test`: one line per migration, and what differed for a failure.
pub fn tested(
    report: &hsm_host::roundtrip::TestReport,
    as_json: bool,
    out: &mut impl Write,
) -> Result<()> {
    use hsm_host::roundtrip::Outcome;
    if as_json {
        return json(report, out);
    }
    if report.cases.is_empty() {
        writeln!(
            out,
            "Nothing to test: no migration is pending on the scratch database."
        )?;
        return Ok(());
    }
    for case in &report.cases {
        match &case.outcome {
            Outcome::Pass => writeln!(out, "pass  {:>4} {}", case.version, case.name)?,
            Outcome::Irreversible => writeln!(
                out,
                "skip  {:>4} {} (irreversible: applied, not rolled back)",
                case.version, case.name
            )?,
            Outcome::Fail { reason } => {
                writeln!(out, "FAIL  {:>4} {}: {reason}", case.version, case.name)?
            }
            Outcome::NotTested { reason } => writeln!(
                out,
                "----  {:>4} {} (not tested: {reason})",
                case.version, case.name
            )?,
        }
    }
    let count = |f: fn(&Outcome) -> bool| report.cases.iter().filter(|c| f(&c.outcome)).count();
    writeln!(
        out,
        "{} passed, {} irreversible, {} failed, {} not tested.",
        count(|o| matches!(o, Outcome::Pass)),
        count(|o| matches!(o, Outcome::Irreversible)),
        count(|o| matches!(o, Outcome::Fail { .. })),
        count(|o| matches!(o, Outcome::NotTested { .. }))
    )?;
    Ok(())
}

/// `hsm-host new`: what was made, and the next commands.
pub fn scaffolded_module(
    made: &hsm_host::scaffold::Scaffolded,
    build: &str,
    as_json: bool,
    out: &mut impl Write,
) -> Result<()> {
    if as_json {
        return json(
            &serde_json::json!({ "version": made.version, "files": made.files, "build": build }),
            out,
        );
    }
    writeln!(out, "Made migration {}:", made.version)?;
    for file in &made.files {
        writeln!(out, "  {}", file.display())?;
    }
    writeln!(
        out,
        "Next: write up/down, then build it (./scripts/guest-tools.sh installs the tool under \
         target/guest-tools/; put its bin directory on PATH):"
    )?;
    writeln!(out, "  {build}")?;
    writeln!(out, "then `hsm-host test` and `hsm-host up`.")?;
    Ok(())
}

/// `hsm-host new`: what was made and the next commands (for a Rust crate, `rust_workspace`
/// is the workspace it is in and the migrations directory).
pub fn scaffolded(
    made: &hsm_host::scaffold::Scaffolded,
    rust_workspace: Option<(&Path, &Path)>,
    as_json: bool,
    out: &mut impl Write,
) -> Result<()> {
    if as_json {
        return json(made, out);
    }
    writeln!(out, "Made migration {}:", made.version)?;
    for file in &made.files {
        writeln!(out, "  {}", file.display())?;
    }
    if rust_workspace.is_none() {
        writeln!(
            out,
            "Next: edit the SQL, then `hsm-host test` and `hsm-host up` (the directory is read \
             as it is)."
        )?;
    } else if let Some((workspace, migrations)) = rust_workspace {
        // Paths from where the command ran, so each line can be pasted as it is.
        let prefix = format!("v{:03}_", made.version);
        let crate_name = made
            .files
            .iter()
            .filter(|file| file.ends_with("src/lib.rs"))
            .filter_map(|lib| lib.parent()?.parent()?.file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .find(|name| name.starts_with(&prefix))
            .unwrap_or_default();
        let release = workspace.join("target/wasm32-wasip2/release");
        writeln!(out, "Next: write up/down in src/lib.rs, then:")?;
        writeln!(
            out,
            "  (cd {} && cargo build --release --target wasm32-wasip2)",
            workspace.display()
        )?;
        writeln!(out, "  hsm-host test --migrations {}", release.display())?;
        writeln!(
            out,
            "  cp {} {}/",
            release.join(format!("{crate_name}.wasm")).display(),
            migrations.display()
        )?;
        writeln!(out, "  hsm-host up")?;
    }
    Ok(())
}
